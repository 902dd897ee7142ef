/**
 * SHA-256 on every stream (README, "Fault tolerance": corrupted bytes). Real coordinator objects
 * over real gRPC on loopback; the client's side is the real client library, the workers' side a
 * real Worker or one written by hand on real Connect / UploadTaskOutput streams.
 *
 * - An upload (SubmitJob) whose input_end.sha256 is not its bytes' fails with DATA_LOSS naming the
 *   input, and leaves nothing of the submission in the coordinator's spool.
 * - A worker's output whose bytes are not the checksum it reports (in its upload's trailer, in its
 *   result, or inline) is refused; the subtask is retried, and the job succeeds with the right bytes.
 * - A published output changed on the coordinator's disk is refused by the client's download
 *   (DATA_LOSS) and leaves no file under the output's name, nor its `.part`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { filesUnder, startSpoolCoordinator } from './helpers/spool-coordinator.js';
import type { CoordinatorOptions } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';
import { loadTesseraProto } from '../shared/proto.js';
import type { CoordinatorMessage__Output } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import type { UploadTaskOutputRequest } from '../shared/proto/generated/tessera/v1/UploadTaskOutputRequest.js';
import type { WorkerMessage } from '../shared/proto/generated/tessera/v1/WorkerMessage.js';
import { Worker } from '../worker/worker.js';
import { expectSameBytes } from './helpers/bytes.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const startCoordinator = (extra: Partial<CoordinatorOptions> = {}) => startSpoolCoordinator(cleanups, extra);

describe('SubmitJob: an input whose bytes are not its input_end.sha256', () => {
  it('fails with DATA_LOSS naming the input, and nothing of the submission stays in the spool', async () => {
    const { address, spoolJobs, client } = await startCoordinator();
    const good = randomBytes(100_000);
    const sent = randomBytes(200_000);
    // The checksum of other bytes than those sent (one byte differs).
    const claimed = Buffer.from(sent);
    claimed[1234] = claimed[1234]! ^ 0xff;

    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    cleanups.push(async () => stub.close());
    let result: grpc.ServiceError | null | undefined;
    let sending: unknown;
    const ended = new Promise<void>((resolve) => {
      const call = stub.SubmitJob((err) => {
        result = err;
        resolve();
      });
      (async () => {
        call.write({ spec: { passthrough: {} } });
        // A first input, intact: it is received into the spool...
        call.write({ input: { name: 'a.bin', size: String(good.length) } });
        call.write({ data: good });
        call.write({ input_end: { sha256: sha(good) } });
        for (let i = 0; i < 500 && !(await filesUnder(spoolJobs)).some((f) => f.endsWith(path.join('in', 'a.bin'))); i++) await sleep(10);
        expect(await filesUnder(spoolJobs), 'the intact input is in the spool before the bad one is sent').toEqual([expect.stringMatching(/^[^/]+\/in\/a\.bin$/)]);
        // ...then one whose trailer is not its bytes' checksum.
        call.write({ input: { name: 'b.bin', size: String(sent.length) } });
        call.write({ data: sent.subarray(0, 150_000) });
        call.write({ data: sent.subarray(150_000) });
        call.write({ input_end: { sha256: sha(claimed) } });
        call.end();
      })().catch((err: unknown) => {
        sending = err;
        call.cancel();
      });
    });
    await ended;
    if (sending) throw sending;
    expect(result?.code, result?.details).toBe(grpc.status.DATA_LOSS);
    expect(result!.details).toContain('input b.bin');
    expect(result!.details).toContain('checksum mismatch');
    expect(result!.details).toContain(sha(claimed));
    // The submission made no job, and its folder (with the intact input in it) is gone: no file, no temp file.
    expect(await client.listJobs()).toEqual([]);
    expect(await readdir(spoolJobs)).toEqual([]);
  });
});

describe('SubmitJob: the framing of an upload', () => {
  /** Sends `messages` on a raw SubmitJob call (then half-closes) and returns how it ended. */
  async function submitRaw(address: string, messages: object[]): Promise<grpc.ServiceError | null> {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    cleanups.push(async () => stub.close());
    return new Promise((resolve) => {
      const call = stub.SubmitJob((err) => resolve(err));
      for (const m of messages) call.write(m);
      call.end();
    });
  }

  it('refuses an upload that ends, or gives way to the next input, before its input_end (a cut-short file would pass for whole)', async () => {
    const { address, spoolJobs, client } = await startCoordinator();
    const part = randomBytes(64 * 1024);
    const ended = await submitRaw(address, [{ spec: { passthrough: {} } }, { input: { name: 'cut.bin' } }, { data: part }]);
    expect(ended?.code, ended?.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(ended!.details).toMatch(/^input cut\.bin: the submission ended before its input_end/);
    const next = await submitRaw(address, [{ spec: { passthrough: {} } }, { input: { name: 'a.bin' } }, { data: part }, { input: { name: 'b.bin' } }, { data: part }, { input_end: {} }]);
    expect(next?.code, next?.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(next!.details).toMatch(/^input a\.bin: the next input header came before its input_end/);
    expect(await client.listJobs()).toEqual([]);
    expect(await readdir(spoolJobs)).toEqual([]);
    // With its input_end (no checksum: "") the same upload is a job.
    expect(await submitRaw(address, [{ spec: { passthrough: {} } }, { input: { name: 'cut.bin' } }, { data: part }, { input_end: {} }])).toBeNull();
    expect((await client.listJobs()).map((j) => j.input_count)).toEqual([1]);
  });

  it('refuses a spec with two job kinds (both decode; one would be dropped unseen)', async () => {
    const { address, client } = await startCoordinator();
    const err = await submitRaw(address, [{ spec: { image: { width: 10 }, passthrough: {} } }]);
    expect(err?.code, err?.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err!.details).toBe('spec.params: image and passthrough are both set; a job has one kind');
    expect(await client.listJobs()).toEqual([]);
  });

  it('refuses an input_end.sha256 that is not a hex digest as INVALID_ARGUMENT, not as a checksum mismatch', async () => {
    const { address } = await startCoordinator();
    const bytes = randomBytes(1000);
    const err = await submitRaw(address, [{ spec: { passthrough: {} } }, { input: { name: 'z.bin' } }, { data: bytes }, { input_end: { sha256: 'zz' } }]);
    expect(err?.code, err?.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err!.details).toBe('input z.bin: input_end.sha256 "zz" is not a SHA-256 hex digest (64 hex digits, or "" for none)');
    // Upper-case hex is the same digest.
    expect(await submitRaw(address, [{ spec: { passthrough: {} } }, { input: { name: 'z.bin' } }, { data: bytes }, { input_end: { sha256: sha(bytes).toUpperCase() } }])).toBeNull();
  });
});

type Corruption = 'upload trailer' | 'no trailer' | 'header size 0' | 'result reference' | 'inline';

/**
 * A worker written by hand on a real Connect stream: on attempt 1 of each subtask it sends `a.bin`'s
 * bytes with one byte changed, claiming the checksum of the right ones (where `how` says); from
 * attempt 2 on it behaves (uploads the right bytes with their checksum).
 */
function corruptingWorker(address: string, good: Buffer, how: Corruption, spoolJobs: string) {
  const { proto } = loadTesseraProto();
  type Stub = grpc.Client & {
    Connect(md: grpc.Metadata): grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output>;
    UploadTaskOutput(md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: { size: string; sha256: string }) => void): grpc.ClientWritableStream<UploadTaskOutputRequest>;
  };
  const stub = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure()) as unknown as Stub;
  const call = stub.Connect(new grpc.Metadata());
  const bad = Buffer.from(good);
  bad[good.length >> 1] = bad[good.length >> 1]! ^ 0x01;
  let workerId = '';
  let heartbeat: NodeJS.Timeout | undefined;
  const attempts: number[] = [];
  const uploadErrors: { code: number; details: string }[] = [];
  /** Files under the job's subtask folders right after a refused upload came back. */
  const spoolAfterRefusal: string[][] = [];
  const failures: unknown[] = [];

  const upload = (subtaskId: string, attempt: number, data: Buffer, trailer: string | undefined, size = data.length): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      md.set('x-tessera-worker-id', workerId);
      const up = stub.UploadTaskOutput(md, (err) => resolve(err));
      up.write({ header: { subtask_id: subtaskId, attempt, name: 'a.bin', size: String(size) } });
      for (let i = 0; i < data.length; i += 64 * 1024) up.write({ data: data.subarray(i, i + 64 * 1024) });
      if (trailer !== undefined) up.write({ sha256: trailer });
      up.end();
    });

  call.on('data', (m: CoordinatorMessage__Output) => {
    if (m.registered) {
      workerId = m.registered.worker_id;
      heartbeat = setInterval(() => call.write({ heartbeat: { load: 0 } }), 300);
    }
    for (const a of m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])) {
      attempts.push(a.attempt);
      void (async () => {
        const base = { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, item_errors: [], result_json: '', duration_ms: '1' };
        const ref = { name: 'a.bin', size: String(good.length), sha256: sha(good), source: 'a.bin' };
        if (a.attempt >= 2) {
          const err = await upload(a.subtask_id, a.attempt, good, sha(good));
          if (err) throw err;
          call.write({ result: { ...base, outputs: [ref] } });
        } else if (how === 'upload trailer' || how === 'no trailer' || how === 'header size 0') {
          // The trailer is the right bytes' checksum, the data are not those bytes; or the upload has
          // no trailer to check them against; or its header states no size (and the trailer is the bad bytes').
          const err =
            how === 'upload trailer'
              ? await upload(a.subtask_id, a.attempt, bad, sha(good))
              : how === 'no trailer'
                ? await upload(a.subtask_id, a.attempt, bad, undefined)
                : await upload(a.subtask_id, a.attempt, bad, sha(bad), 0);
          uploadErrors.push({ code: err?.code ?? 0, details: err?.details ?? '' });
          spoolAfterRefusal.push((await filesUnder(spoolJobs)).filter((f) => f.includes('/st/')));
          // And it claims success anyway, naming the refused upload.
          call.write({ result: { ...base, outputs: [ref] } });
        } else if (how === 'result reference') {
          // An upload consistent with itself (so it is taken), announced with the right bytes' checksum.
          const err = await upload(a.subtask_id, a.attempt, bad, sha(bad));
          uploadErrors.push({ code: err?.code ?? 0, details: err?.details ?? '' });
          call.write({ result: { ...base, outputs: [ref] } });
        } else {
          call.write({ result: { ...base, outputs: [{ ...ref, inline: true, inline_data: bad }] } });
        }
      })().catch((err: unknown) => failures.push(err));
    }
  });
  call.on('error', () => undefined);
  call.write({ register: { name: 'by-hand', slots: 1, instance_id: 'by-hand-1', capabilities: { kinds: ['passthrough'], encoders: [], cpu_count: 1, labels: {} } } });
  return {
    attempts,
    uploadErrors,
    spoolAfterRefusal,
    failures,
    close(): void {
      clearInterval(heartbeat);
      call.cancel();
      stub.close();
    },
  };
}

describe("a worker's output whose bytes are not the checksum it reports", () => {
  it.each<Corruption>(['upload trailer', 'no trailer', 'header size 0', 'result reference', 'inline'])('(%s) is refused, the subtask retried, and the job ends with the right bytes', async (how) => {
    const { dir, client, spoolJobs, address } = await startCoordinator({ retryBaseMs: 10 });
    const good = randomBytes(300_000);
    const input = path.join(dir, 'a.bin');
    await writeFile(input, good);
    const w = corruptingWorker(address, good, how, spoolJobs);
    cleanups.push(async () => w.close());
    while ((await client.listWorkers()).length < 1) await sleep(20);

    const job = await client.submit({ passthrough: {} }, [input]);
    const messages: string[] = [];
    const done = await client.wait(job.id, (e) => messages.push(e.message));
    expect(w.failures).toEqual([]);
    expect(done.state, `${done.message} ${JSON.stringify(done.errors)}\n${messages.join('\n')}`).toBe('JOB_STATE_SUCCEEDED');
    // The bad attempt was not taken: the one subtask needed a second attempt, and got no third.
    expect(w.attempts).toEqual([1, 2]);
    expect(done.subtasks.map((s) => s.attempt)).toEqual([2]);
    if (how === 'upload trailer' || how === 'no trailer' || how === 'header size 0') {
      // UploadTaskOutput itself refused the bytes, and kept none of them (no file, no temp file).
      const refusal = {
        'upload trailer': [grpc.status.DATA_LOSS, /output a\.bin of subtask .*: checksum mismatch/],
        'no trailer': [grpc.status.INVALID_ARGUMENT, /output a\.bin of subtask .*: the upload ended without its sha256 trailer/],
        'header size 0': [grpc.status.DATA_LOSS, /output a\.bin of subtask .*: the header said 0 bytes but 300000 arrived/],
      }[how] as [number, RegExp];
      expect(w.uploadErrors).toEqual([{ code: refusal[0], details: expect.stringMatching(refusal[1]) }]);
      expect(w.spoolAfterRefusal).toEqual([[]]);
      expect(messages.some((m) => /a\.bin .*was announced but never uploaded/.test(m)), messages.join('\n')).toBe(true);
    } else {
      if (how === 'result reference') expect(w.uploadErrors).toEqual([{ code: 0, details: '' }]);
      expect(messages.some((m) => /output a\.bin of subtask .*: checksum mismatch/.test(m)), messages.join('\n')).toBe(true);
    }
    // What is published and downloaded are the right bytes.
    expect(done.outputs.map((o) => [o.name, o.sha256])).toEqual([['a.bin', sha(good)]]);
    const paths = await client.download(job.id, path.join(dir, 'down'));
    expect(sha(await readFile(paths.get('a.bin')!))).toBe(sha(good));
  });
});

describe('a published output changed on the coordinator disk', () => {
  // Gathered in memory (up to 256 KiB) and streamed through a part file (larger): both checked.
  it.each([200_000, 600_000])("of %i bytes is refused by the client's download and collect with DATA_LOSS, leaving no file under its name", async (size) => {
    const { dir, address, client, spoolJobs } = await startCoordinator();
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w' });
    worker.start();
    cleanups.push(() => worker.close());
    await worker.registered;
    const bytes = randomBytes(size);
    const input = path.join(dir, 'a.bin');
    await writeFile(input, bytes);
    const job = await client.submit({ passthrough: {} }, [input]);
    const done = await client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');

    // Intact, it downloads (both ways).
    const intact = await client.download(job.id, path.join(dir, 'intact'));
    expectSameBytes(await readFile(intact.get('a.bin')!), bytes);
    const collected = await client.collect(job.id, path.join(dir, 'intact-collect'));
    expectSameBytes(await readFile(collected.paths.get('a.bin')!), bytes);

    // One bit flipped in the published file, its size unchanged.
    const published = path.join(spoolJobs, job.id, 'out', 'a.bin');
    const tampered = await readFile(published);
    expectSameBytes(tampered, bytes);
    tampered[100_000] = tampered[100_000]! ^ 0x01;
    await writeFile(published, tampered);
    expect((await stat(published)).size).toBe(bytes.length);

    for (const [how, fetch] of [
      ['download', (d: string) => client.download(job.id, d)],
      // collect gets the bytes inside the output event (up to 1 MiB), checks them, then downloads.
      ['collect', (d: string) => client.collect(job.id, d)],
    ] as const) {
      const into = path.join(dir, `tampered-${how}`);
      const err = (await fetch(into).then(
        () => undefined,
        (e: unknown) => e,
      )) as grpc.ServiceError | undefined;
      expect(err, how).toBeDefined();
      expect(err!.code, `${how}: ${err!.message}`).toBe(grpc.status.DATA_LOSS);
      expect(err!.message, how).toMatch(/a\.bin: checksum mismatch after download/);
      // Neither the output's name nor its part file (.NAME.tessera-part) is left behind.
      expect(await readdir(into).catch(() => []), how).toEqual([]);
    }
  });
});
