/**
 * The client-facing API as a plain generated stub in any language calls it, at its edges: every
 * refusal ends the call with its status and a message naming the field, whatever the client sent.
 *
 * And every answer fits what such a stub takes by default (review API): SubmitJob's and GetJob's answers must fit what any gRPC client accepts by default
 * (4 MiB, grpc-js's and Python's grpcio's default receive limit), as the subtask pages were made to:
 * a job's `inputs` (and `outputs`) lists are sent whole and unpaged, and within the coordinator's
 * own limits (10,000 inputs, 200-byte names, shared paths of any length) they pass 4 MiB. The
 * submitting client then gets RESOURCE_EXHAUSTED for a job that was made and runs, and GetJob of
 * that job fails for it whatever it asks (include_subtasks = false too). The lists now come as far as
 * they fit in 2 MiB, with a token for the rest.
 *
 * A refusal about a 64-bit field names the value the client sent: read with Number(), anything past
 * 2^53 was rounded before the message was written, and 18446744073709551615 (an unset -1 from a C
 * or Go stub) was said as 18446744073709552000, a number it never sent and no uint64.
 */
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTesseraProto, loadTesseraRoot } from '../shared/proto.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import { sha256 } from '../shared/streams.js';
import { rawDownload, rawJobService, rawSubmit, until } from './helpers/raw-grpc.js';
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

  it('a submission refused after an input by reference with a SHA-256 is answered at once, not once that file is read (review G)', async () => {
    // 8 GiB of holes: reading and hashing it takes seconds (the page cache gives zeros), as a
    // camera original on a network share would take minutes.
    const big = path.join(shared, 'huge-sparse.bin');
    await writeFile(big, '');
    await truncate(big, 8 * 2 ** 30);
    try {
      const started = Date.now();
      // The second input's name is refused at once; the first one's digest is still being read.
      const refused = await rawSubmit(cluster.address, [{ spec: { passthrough: {} } }, { input: { name: 'huge.bin', shared_path: big } }, { input_end: { sha256: '0'.repeat(64) } }, { input: { name: '../escape.bin', shared_path: big } }]);
      const ms = Date.now() - started;
      expect(refused?.code).toBe(grpc.status.INVALID_ARGUMENT);
      // Before: the refusal waited for the whole file's hash (seconds here, minutes for a real one).
      expect(ms, `answered after ${ms} ms`).toBeLessThan(3000);
    } finally {
      await rm(big, { force: true });
    }
  });
});

const MAX_U64 = '18446744073709551615';
const PAST_2_53 = '9007199254740993';

describe('answers with a long inputs list, to a client with the default 4 MiB receive limit', () => {
  it('SubmitJob answers the job it made, and GetJob (without subtasks) answers, rather than RESOURCE_EXHAUSTED', async () => {
    // 1,200 one-byte files by reference under a deep folder (paths of about 3.6 KB; the coordinator
    // sets no limit on them). Uploading 7,000 inputs with 200-byte names (the name limit) does the
    // same: SubmitJob's answer 4,298,929 bytes, GetJob's 5,446,153 (measured), but takes 20 s.
    let folder = shared;
    for (let i = 0; i < 14; i++) folder = path.join(folder, String.fromCharCode(97 + i).repeat(250));
    await mkdir(folder, { recursive: true });
    const files: string[] = [];
    for (let i = 0; i < 1200; i++) {
      const f = path.join(folder, `${String(i).padStart(5, '0')}.bin`);
      await writeFile(f, 'x');
      files.push(f);
    }
    const label = 'answer-size-inputs';
    const c = ownStub();
    const submit = await new Promise<Ended & { id?: string }>((resolve) => {
      const call = c.SubmitJob({ deadline: Date.now() + 30_000 }, (err, job) => resolve({ ...ended(err), id: job?.id }));
      call.write({ spec: { label, input_count: files.length, passthrough: { work_ms: 0 } } });
      for (const f of files) call.write({ input: { name: path.basename(f), shared_path: f } });
      call.end();
    });
    // The job was made all the same (the library client, with its larger limit, sees it).
    const made = (await cluster.client.listJobs({ limit: 10 })).filter((j) => j.spec?.label === label);
    expect(made).toHaveLength(1);
    const id = made[0]!.id;
    const get = await new Promise<Ended>((resolve) => c.GetJob({ job_id: id, include_subtasks: false }, { deadline: Date.now() + 10_000 }, (err) => resolve(ended(err))));
    c.close();
    // Was: RESOURCE_EXHAUSTED "Received message larger than max (4391027 vs. 4194304)" for both.
    expect(submit.code, submit.details).toBe(grpc.status.OK);
    expect(submit.id).toBe(id);
    expect(get.code, get.details).toBe(grpc.status.OK);
    // Ended, its inputs and outputs (each path-long) still answered to the default stub, a page at a
    // time, and read whole by the library, which asks for the pages.
    const done = await cluster.client.wait(id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const stub = ownStub();
    const pages: Array<{ inputs: number; outputs: number }> = [];
    let token = '';
    do {
      const page = await new Promise<{ code: number; details: string; job?: { inputs: unknown[]; outputs: unknown[]; next_list_page_token: string; input_count: number } }>((resolve) =>
        stub.GetJob({ job_id: id, include_subtasks: true, subtask_limit: 10_000, list_page_token: token }, { deadline: Date.now() + 10_000 }, (err, job) => resolve({ ...ended(err), ...(job && { job: job as never }) })),
      );
      expect(page.code, page.details).toBe(grpc.status.OK);
      expect(page.job!.input_count).toBe(1200);
      pages.push({ inputs: page.job!.inputs.length, outputs: page.job!.outputs.length });
      token = page.job!.next_list_page_token;
    } while (token && pages.length < 10);
    stub.close();
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.reduce((n, p) => n + p.inputs, 0)).toBe(1200);
    expect(pages.reduce((n, p) => n + p.outputs, 0)).toBe(1200);
    const whole = await cluster.client.getJob(id);
    expect([whole.inputs.length, whole.outputs.length, whole.subtasks.length > 0, whole.next_list_page_token]).toEqual([1200, 1200, true, '']);
    expect(new Set(whole.outputs.map((o) => o.name)).size).toBe(1200);
  }, 60_000);
});

describe('refusals of out-of-range uint64 fields', () => {
  it('InputHeader.size: RESOURCE_EXHAUSTED naming the size sent, not a rounded one', async () => {
    for (const size of [MAX_U64, PAST_2_53]) {
      const err = await rawSubmit(cluster.address, [{ spec: { passthrough: {} } }, { input: { name: 'a.bin', size } }, { data: Buffer.from('abc') }, { input_end: { sha256: sha256(Buffer.from('abc')) } }]);
      expect(err?.code, err?.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // Was: "input a.bin: 18446744073709552000 bytes is over the per-file limit ..." (and 9007199254740992).
      expect(err?.details).toContain(`${size} bytes`);
    }
  });

  it('WatchJobRequest.after_seq and DownloadOutputRequest.offset: OUT_OF_RANGE naming the value sent', async () => {
    const data = Buffer.from('hello');
    const c = rawJobService(cluster.address);
    const id = await new Promise<string>((resolve, reject) => {
      const call = c.SubmitJob((err, job) => (err ? reject(err) : resolve(job!.id!)));
      call.write({ spec: { passthrough: {} } });
      call.write({ input: { name: 'a.bin', size: data.length } });
      call.write({ data });
      call.write({ input_end: { sha256: sha256(data) } });
      call.end();
    });
    await cluster.client.wait(id);
    const watch = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      const call = c.WatchJob({ job_id: id, after_seq: MAX_U64 }, { deadline: Date.now() + 5000 });
      call.on('data', () => undefined);
      call.on('error', (err: grpc.ServiceError) => resolve(err));
      call.on('end', () => resolve(undefined));
    });
    c.close();
    expect(watch?.code, watch?.details).toBe(grpc.status.OUT_OF_RANGE);
    // Was: "after_seq 18446744073709552000 is past the last event of job ..."
    expect(watch?.details).toContain(`after_seq ${MAX_U64} `);
    // rawDownload asks from offset 0: this one by hand.
    const d = rawJobService(cluster.address);
    const dl = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      const call = d.DownloadOutput({ job_id: id, name: 'a.bin', offset: MAX_U64 }, { deadline: Date.now() + 5000 });
      call.on('data', () => undefined);
      call.on('error', (err: grpc.ServiceError) => resolve(err));
      call.on('end', () => resolve(undefined));
    });
    d.close();
    expect(dl?.code, dl?.details).toBe(grpc.status.OUT_OF_RANGE);
    // Was: "offset 18446744073709552000 is past the end of a.bin (5 bytes)"
    expect(dl?.details).toContain(`offset ${MAX_U64} `);
    expect((await rawDownload(cluster.address, id, 'a.bin')).data?.toString()).toBe('hello');
  });
});

describe('list_page_token', () => {
  it('that is no token this coordinator gave, or another job\'s, is INVALID_ARGUMENT naming the field', async () => {
    const a = (await cluster.client.submit({ passthrough: { work_ms: 0 } }, [])).id;
    const c = ownStub();
    const ask = (token: string): Promise<Ended> => new Promise((resolve) => c.GetJob({ job_id: a, list_page_token: token }, { deadline: Date.now() + 5000 }, (err) => resolve(ended(err))));
    try {
      expect(await ask('not-a-token')).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^list_page_token: not a next_list_page_token/) });
      const other = Buffer.from(JSON.stringify(['some-other-job', 'lists', 0, 0, 0, 0])).toString('base64url');
      expect(await ask(other)).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: `list_page_token: made for job some-other-job, asked with job ${a}` });
      // A subtask page's token is no list token.
      const subtaskToken = Buffer.from(JSON.stringify([a, 0])).toString('base64url');
      expect((await ask(subtaskToken)).code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      c.close();
    }
  });
});

// A failed job's message joined every error: 9,000 of them made it 2.8 MB beside the lists' page (review K25).
describe('a failed job of many errors, to a client with the default 4 MiB receive limit', () => {
  it('GetJob (without subtasks) answers rather than RESOURCE_EXHAUSTED: the message does not carry every error again past the lists\' 2 MiB', async () => {
    // 9,000 files by reference that are no image (each refused at submission, an error each), and
    // one JPEG whose header reads but whose data is cut short (it fails on the worker): no output,
    // so the job fails and its message joins all 9,001 errors.
    const files: string[] = [];
    for (let i = 0; i < 9000; i++) {
      const f = path.join(shared, `${String(i).padStart(5, '0')}-${'n'.repeat(180)}.jpg`);
      await writeFile(f, 'x');
      files.push(f);
    }
    const jpeg = await sharp({ create: { width: 128, height: 128, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg().toBuffer();
    const cut = path.join(shared, 'cut-short.jpg');
    await writeFile(cut, jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    files.push(cut);
    const job = await cluster.client.submit({ image: { width: 10 } }, files, { shared: true });
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_FAILED');
    expect(done.errors).toHaveLength(9001);

    const c = ownStub();
    const got = await new Promise<{ code: number; details: string; message?: string; next?: string }>((resolve) =>
      c.GetJob({ job_id: job.id, include_subtasks: false }, { deadline: Date.now() + 10_000 }, (err, j) => resolve({ code: err?.code ?? grpc.status.OK, details: err?.details ?? '', ...(j && { message: j.message, next: j.next_list_page_token }) })),
    );
    c.close();
    // Was: RESOURCE_EXHAUSTED "Received message larger than max (4813502 vs 4194304)": the lists'
    // 2 MiB page plus a 2.8 MB message.
    expect(got.code, got.details).toBe(grpc.status.OK);
    expect(got.next).not.toBe('');
    // The message says the first errors and how many more there are; the library read them all.
    expect(got.message).toMatch(/; and \d+ more error\(s\) \(see the job's errors\)$/);
    expect(Buffer.byteLength(got.message ?? '')).toBeLessThan(17 * 1024);
  }, 90_000);
});
