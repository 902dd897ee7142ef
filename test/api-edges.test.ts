/**
 * The client-facing API as a plain generated stub in any language calls it, at its edges: every
 * refusal ends the call with its status and a message naming the field, whatever the client sent.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTesseraProto, loadTesseraRoot } from '../shared/proto.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import { sha256 } from '../shared/streams.js';
import { rawSubmit, until } from './helpers/raw-grpc.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
let dir: string;
let shared: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-api-edges-'));
  shared = path.join(dir, 'shared');
  await mkdir(shared);
  cluster = await startCluster({ workers: 1, coordinatorArgs: ['--shared-root', shared] });
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A stub on a connection of its own (not shared with other stubs of this process). */
function ownStub(): JobServiceClient {
  const { proto } = loadTesseraProto();
  return new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as JobServiceClient;
}

type Ended = { code: number; details: string };
const ended = (err: grpc.ServiceError | null): Ended => ({ code: err?.code ?? grpc.status.OK, details: err?.details ?? '' });

describe('refusals of oversized strings', () => {
  const long = 'x'.repeat(100_000);

  it('a 100 KB job_id, state or output name is refused with its status, in time, and the connection goes on serving', async () => {
    const c = ownStub();
    const deadline = (): grpc.CallOptions => ({ deadline: Date.now() + 5000 });
    const get = await new Promise<Ended>((resolve) => c.GetJob({ job_id: long }, deadline(), (err) => resolve(ended(err))));
    expect(get.code, get.details).toBe(grpc.status.NOT_FOUND);
    // The message is cut to 4 KiB.
    expect(get.details).toMatch(/^job x+\.\.\. \(cut\)$/);
    expect(Buffer.byteLength(get.details)).toBeLessThan(4200);
    const list = await new Promise<Ended>((resolve) => c.ListJobs({ state: long }, deadline(), (err) => resolve(ended(err))));
    expect(list.code, list.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(list.details).toMatch(/^state: /);
    // The connection that carried them still answers.
    const after = await new Promise<Ended>((resolve) => c.ListJobs({}, deadline(), (err) => resolve(ended(err))));
    expect(after.code, after.details).toBe(grpc.status.OK);
    c.close();
  });

  it('a 100 KB output name of a finished job is NOT_FOUND (or INVALID_ARGUMENT), not a download that never ends', async () => {
    const id = await submitPassthrough();
    await finished(id);
    const c = ownStub();
    const r = await new Promise<Ended>((resolve) => {
      const call = c.DownloadOutput({ job_id: id, name: long, offset: 0 }, { deadline: Date.now() + 5000 });
      call.on('data', () => undefined);
      call.on('error', (err: grpc.ServiceError) => resolve(ended(err)));
      call.on('end', () => resolve(ended(null)));
    });
    expect([grpc.status.NOT_FOUND, grpc.status.INVALID_ARGUMENT], r.details).toContain(r.code);
    c.close();
  });
});

/** A passthrough job of one small uploaded input, by a plain stub; its id. */
async function submitPassthrough(passthrough: object = {}): Promise<string> {
  const c = ownStub();
  const data = Buffer.from('hello');
  const job = await new Promise<{ id: string }>((resolve, reject) => {
    const call = c.SubmitJob((err, j) => (err ? reject(err) : resolve(j as { id: string })));
    call.write({ spec: { passthrough } });
    call.write({ input: { name: 'a.bin', size: data.length } });
    call.write({ data });
    call.write({ input_end: { sha256: sha256(data) } });
    call.end();
  });
  c.close();
  return job.id;
}

/** The job's state once it has finished (GetJob polled). */
function finished(id: string): Promise<string> {
  const c = ownStub();
  return until(`job ${id} to finish`, () =>
    new Promise<string | undefined>((resolve, reject) =>
      c.GetJob({ job_id: id }, (err, job) => (err ? reject(err) : resolve(['JOB_STATE_QUEUED', 'JOB_STATE_RUNNING'].includes(String(job!.state)) ? undefined : String(job!.state)))),
    ),
  ).finally(() => c.close());
}

describe('WatchJob', () => {
  it("with after_seq past every event of a running job is OUT_OF_RANGE, not a stream held open past the job's end", async () => {
    const id = await submitPassthrough({ work_ms: 500 });
    const c = ownStub();
    const started = Date.now();
    const r = await new Promise<Ended & { events: number }>((resolve) => {
      let events = 0;
      const call = c.WatchJob({ job_id: id, after_seq: 1_000_000 }, { deadline: Date.now() + 15_000 });
      call.on('data', () => events++);
      call.on('error', (err: grpc.ServiceError) => resolve({ ...ended(err), events }));
      call.on('end', () => resolve({ ...ended(null), events }));
    });
    expect(await finished(id)).toBe('JOB_STATE_SUCCEEDED');
    // Refused at once, not held open past the job's end until the client's deadline.
    expect(r.code, `${r.details} after ${Date.now() - started} ms`).toBe(grpc.status.OUT_OF_RANGE);
    expect(r.details).toMatch(new RegExp(`^after_seq 1000000 is past the last event of job ${id} \\(\\d+\\)`));
    c.close();
  });
});

describe('SubmitJob', () => {
  it('an input name that is not valid UTF-8 is INVALID_ARGUMENT, not taken under another name', async () => {
    // SubmitJobRequest{input: InputHeader{name: "a\xff.bin"}} written by hand: a generated stub of a
    // lenient runtime (C, Python's pure protobuf, ...) sends such bytes as they are.
    const root = loadTesseraRoot();
    const Req = root.lookupType('tessera.v1.SubmitJobRequest');
    const enc = (o: object): Buffer => Buffer.from(Req.encode(Req.fromObject(o)).finish());
    const name = Buffer.from([0x61, 0xff, 0x2e, 0x62, 0x69, 0x6e]);
    const header = Buffer.concat([Buffer.from([0x12, name.length + 2, 0x0a, name.length]), name]);
    const data = Buffer.from('hello');
    const Raw = grpc.makeGenericClientConstructor(
      { SubmitJob: { path: '/tessera.v1.JobService/SubmitJob', requestStream: true, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
      'Raw',
    );
    const raw = new Raw(cluster.address, grpc.credentials.createInsecure()) as unknown as { SubmitJob: (md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => grpc.ClientWritableStream<Buffer>; close(): void };
    const r = await new Promise<{ err: grpc.ServiceError | null; job?: { inputs: { name: string }[] } }>((resolve) => {
      const call = raw.SubmitJob(new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => resolve({ err, ...(res ? { job: root.lookupType('tessera.v1.Job').toObject(root.lookupType('tessera.v1.Job').decode(res)) as { inputs: { name: string }[] } } : {}) }));
      for (const m of [enc({ spec: { passthrough: {} } }), header, enc({ data }), enc({ input_end: { sha256: sha256(data) } })]) call.write(m);
      call.end();
    });
    raw.close();
    expect(r.job?.inputs.map((i) => i.name), 'accepted as').toBeUndefined();
    expect(r.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.err?.details).toMatch(/input name .*UTF-8/);
  });

  it('an input by reference whose input_end carries a SHA-256 is checked against it (DATA_LOSS), a malformed one refused', async () => {
    const file = path.join(shared, 'f.bin');
    await writeFile(file, 'the shared bytes');
    const wrong = await rawSubmit(cluster.address, [{ spec: { passthrough: {} } }, { input: { name: 'f.bin', shared_path: file } }, { input_end: { sha256: sha256(Buffer.from('other bytes')) } }]);
    expect(wrong?.code, 'a digest of other bytes').toBe(grpc.status.DATA_LOSS);
    expect(wrong?.details).toMatch(/^input f\.bin: .*f\.bin is not the file input_end\.sha256 names/);
    // The right one passes.
    expect(await rawSubmit(cluster.address, [{ spec: { passthrough: {} } }, { input: { name: 'f.bin', shared_path: file } }, { input_end: { sha256: sha256(Buffer.from('the shared bytes')) } }])).toBeUndefined();
    const malformed = await rawSubmit(cluster.address, [{ spec: { passthrough: {} } }, { input: { name: 'f.bin', shared_path: file } }, { input_end: { sha256: 'not-a-digest' } }]);
    expect(malformed?.code, 'a malformed digest').toBe(grpc.status.INVALID_ARGUMENT);
    expect(malformed?.details).toMatch(/input_end\.sha256/);
  });
});
