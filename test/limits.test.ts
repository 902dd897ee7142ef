/**
 * The coordinator's submission limits (README, "Security" > "Limits"): `--max-inputs`,
 * `--max-job-bytes` (the sum of a job's inputs) and `--max-file-bytes` (one input). A submission
 * over one is refused with RESOURCE_EXHAUSTED whose message names the input that crossed it and the
 * flag that sets it; nothing of it stays in the spool (DATA_DIR/spool/jobs) and no job is made.
 * A job right at the limits is accepted and runs.
 *
 * A real Coordinator (in-process, real gRPC on loopback) with small limits, the real client
 * library, a raw SubmitJob stream for a client that under-declares a size, and a real in-process
 * Worker to run the job that fits.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';
import { loadTesseraProto } from '../shared/proto.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import { Worker } from '../worker/worker.js';

const log = createLogger('test', 'silent', 'json');

const MAX_INPUTS = 3;
const MAX_JOB_BYTES = 400_000;
const MAX_FILE_BYTES = 200_000;

let dir: string;
let spoolJobs: string;
let address: string;
let coordinator: Coordinator;
let client: TesseraClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-limits-'));
  spoolJobs = path.join(dir, 'data', 'spool', 'jobs');
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', maxInputs: MAX_INPUTS, maxJobBytes: MAX_JOB_BYTES, maxFileBytes: MAX_FILE_BYTES });
  address = await coordinator.start();
  client = new TesseraClient({ address });
});

afterAll(async () => {
  client?.close();
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Writes `bytes` to DIR/name and returns its path. */
async function file(name: string, bytes: Buffer): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, bytes);
  return p;
}

/** Everything under the spool's jobs folder (files and folders, relative); none when it does not exist. */
async function spoolEntries(): Promise<string[]> {
  const entries = await readdir(spoolJobs, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}

/** The submission's error (it must fail). */
async function refused(spec: Parameters<TesseraClient['submit']>[0], files: string[]): Promise<grpc.ServiceError> {
  const err = await client.submit(spec, files).then(
    (job) => {
      throw new Error(`the submission was accepted as job ${job.id}`);
    },
    (e: unknown) => e as grpc.ServiceError,
  );
  return err;
}

/** What every refusal leaves: no job, and nothing in the spool. */
async function expectNothingLeft(): Promise<void> {
  expect(await client.listJobs(), 'no job was made').toEqual([]);
  expect(await spoolEntries(), 'nothing of the submission is left in DATA_DIR/spool/jobs').toEqual([]);
}

describe('submission limits', () => {
  it(`--max-inputs: a job with one input more than the limit (${MAX_INPUTS + 1}) is refused with RESOURCE_EXHAUSTED naming the count and --max-inputs, as its spec announces it`, async () => {
    const files = await Promise.all(['in-1.bin', 'in-2.bin', 'in-3.bin', 'in-4.bin'].map((n) => file(n, randomBytes(1000))));
    const err = await refused({ passthrough: {} }, files);
    expect(err.code, err.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // The client announces its inputs (spec.input_count): refused at the spec.
    expect(err.details).toBe(`spec.input_count: ${MAX_INPUTS + 1} inputs, and a job may have at most ${MAX_INPUTS} (the coordinator's --max-inputs); nothing of it was kept`);
    await expectNothingLeft();
  });

  it('--max-inputs: a spec announcing more inputs than the limit is answered before any input is sent', async () => {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    try {
      // The stream stays open: the answer cannot be waiting for its end.
      let call!: grpc.ClientWritableStream<object>;
      const err = await new Promise<grpc.ServiceError | null>((resolve) => {
        call = stub.SubmitJob((e) => resolve(e)) as unknown as grpc.ClientWritableStream<object>;
        call.write({ spec: { passthrough: {}, input_count: 10_000 } });
      });
      expect(err?.code, err?.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err?.details).toBe(`spec.input_count: 10000 inputs, and a job may have at most ${MAX_INPUTS} (the coordinator's --max-inputs); nothing of it was kept`);
      await expectNothingLeft();
    } finally {
      stub.close();
    }
  });

  it('--max-inputs: a stub that does not announce its count is refused at the input past the limit, named', async () => {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) => {
        const call = stub.SubmitJob((e) => resolve(e));
        call.write({ spec: { passthrough: {} } });
        for (const name of ['in-1.bin', 'in-2.bin', 'in-3.bin', 'in-4.bin']) {
          const data = randomBytes(1000);
          call.write({ input: { name, size: String(data.length) } });
          call.write({ data });
          call.write({ input_end: { sha256: sha(data) } });
        }
        call.end();
      });
      expect(err?.code, err?.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err?.details).toBe(`input in-4.bin: a job may have at most ${MAX_INPUTS} inputs (the coordinator's --max-inputs)`);
      await expectNothingLeft();
    } finally {
      stub.close();
    }
  });

  it('--max-job-bytes: inputs that each fit but together pass the limit are refused with RESOURCE_EXHAUSTED naming the input that crossed it and --max-job-bytes', async () => {
    // 150,000 + 150,000 fit; the third takes the job to 450,000 > 400,000.
    const files = await Promise.all(['job-a.bin', 'job-b.bin', 'job-c.bin'].map((n) => file(n, randomBytes(150_000))));
    const err = await refused({ passthrough: {} }, files);
    expect(err.code, err.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect.soft(err.details, 'the message names the limit flag').toContain('--max-job-bytes');
    expect.soft(err.details, 'the message names the limit').toContain(String(MAX_JOB_BYTES));
    expect.soft(err.details, 'the message names the input that crossed it').toContain('job-c.bin');
    expect.soft(err.details, 'not blamed on an input that fitted').not.toMatch(/job-[ab]\.bin/);
    await expectNothingLeft();
  });

  it('--max-job-bytes: an input whose header declares a size past the limit is refused at its header, before any of its bytes', async () => {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    try {
      const first = randomBytes(150_000);
      const err = await new Promise<grpc.ServiceError | null>((resolve) => {
        const call = stub.SubmitJob((e) => resolve(e));
        call.write({ spec: { passthrough: {} } });
        for (const name of ['first.bin', 'second.bin']) {
          call.write({ input: { name, size: String(first.length) } });
          call.write({ data: first });
          call.write({ input_end: { sha256: sha(first) } });
        }
        // Fits the per-file limit (200,000), not the job's (400,000) with the two; no byte of it sent.
        call.write({ input: { name: 'declared.bin', size: '200000' } });
        call.end();
      });
      // Was: INVALID_ARGUMENT "the submission ended before its input_end": the header let through,
      // its bytes uploaded up to the limit before the refusal.
      expect(err?.code, err?.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err?.details).toBe(`input declared.bin: the job's inputs are over the per-job limit of ${MAX_JOB_BYTES} bytes (the coordinator's --max-job-bytes)`);
      await expectNothingLeft();
    } finally {
      stub.close();
    }
  });

  it('--max-file-bytes: one input over the limit (declared in its header) is refused with RESOURCE_EXHAUSTED naming it and --max-file-bytes', async () => {
    const small = await file('fits.bin', randomBytes(1000));
    const big = await file('too-big.bin', randomBytes(MAX_FILE_BYTES + 1));
    const err = await refused({ passthrough: {} }, [small, big]);
    expect(err.code, err.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect.soft(err.details, 'the message names the limit flag').toContain('--max-file-bytes');
    expect.soft(err.details, 'the message names the limit').toContain(String(MAX_FILE_BYTES));
    expect.soft(err.details, 'the message names the input').toContain('too-big.bin');
    expect.soft(err.details).not.toContain('fits.bin');
    // The library gives the input refused as `input`, from the trailer, as its own errors have it.
    expect((err as grpc.ServiceError & { input?: string }).input).toBe('too-big.bin');
    await expectNothingLeft();
  });

  it('--max-file-bytes: an input whose header declares no size is stopped once its bytes pass the limit; the inputs already received are removed too', async () => {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    try {
      const first = randomBytes(50_000);
      const big = randomBytes(MAX_FILE_BYTES + 50_000);
      let sending: unknown;
      const err = await new Promise<grpc.ServiceError | null>((resolve) => {
        const call = stub.SubmitJob((e) => resolve(e));
        (async () => {
          call.write({ spec: { passthrough: {} } });
          call.write({ input: { name: 'first.bin', size: String(first.length) } });
          call.write({ data: first });
          call.write({ input_end: { sha256: sha(first) } });
          // The first input is in the spool before the one over the limit comes.
          for (let i = 0; i < 500 && !(await spoolEntries()).some((e) => e.endsWith(path.join('in', 'first.bin'))); i++) await sleep(10);
          expect(await spoolEntries(), 'the intact input reached the spool').toContainEqual(expect.stringMatching(/in\/first\.bin$/));
          call.write({ input: { name: 'streamed.bin', size: '0' } });
          for (let i = 0; i < big.length; i += 64 * 1024) call.write({ data: big.subarray(i, i + 64 * 1024) });
          call.write({ input_end: { sha256: sha(big) } });
          call.end();
        })().catch((e: unknown) => {
          sending = e;
          call.cancel();
        });
      });
      if (sending) throw sending;
      expect(err?.code, err?.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect.soft(err!.details).toContain('--max-file-bytes');
      expect.soft(err!.details).toContain(String(MAX_FILE_BYTES));
      expect.soft(err!.details).toContain('streamed.bin');
      await expectNothingLeft();
    } finally {
      stub.close();
    }
  });

  it('a submission that goes quiet half-way is given up with DEADLINE_EXCEEDED, whatever its own deadline, and leaves nothing', async () => {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    process.env['TESSERA_UPLOAD_IDLE_MS'] = '1000';
    try {
      const started = Date.now();
      const err = await new Promise<grpc.ServiceError | null>((resolve) => {
        // Its own deadline is a day away: the coordinator does not wait for it.
        const call = stub.SubmitJob({ deadline: Date.now() + 86_400_000 }, (e) => resolve(e));
        call.write({ spec: { passthrough: {} } });
        call.write({ input: { name: 'quiet.bin', size: '100000' } });
        call.write({ data: randomBytes(10_000) });
      });
      expect(err?.code, err?.details).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(err?.details).toBe('the submission sent only 10000 bytes in 1 s: the coordinator gave up on it; nothing of it was kept');
      expect(Date.now() - started).toBeLessThan(10_000);
      await expectNothingLeft();

      // A byte every 100 ms never goes quiet, and is given up on all the same.
      const trickled = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const trickle = await new Promise<grpc.ServiceError | null>((resolve) => {
        const call = stub.SubmitJob({ deadline: Date.now() + 86_400_000 }, (e) => resolve(e));
        call.write({ spec: { passthrough: {} } });
        call.write({ input: { name: 'trickle.bin', size: '100000' } });
        timer = setInterval(() => call.write({ data: Buffer.from('x') }), 100);
      }).finally(() => clearInterval(timer));
      expect(trickle?.code, trickle?.details).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(trickle?.details).toMatch(/^the submission sent only \d+ bytes? in 1 s: the coordinator gave up on it; nothing of it was kept$/);
      expect(Date.now() - trickled).toBeLessThan(10_000);
      await expectNothingLeft();
    } finally {
      delete process.env['TESSERA_UPLOAD_IDLE_MS'];
      stub.close();
    }
  });

  it('a job right at every limit (3 inputs, 400,000 bytes, largest 200,000) is accepted after the refusals and runs to success', async () => {
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'limits-w' });
    worker.start();
    try {
      await worker.registered;
      const contents = [randomBytes(MAX_FILE_BYTES), randomBytes(MAX_JOB_BYTES - MAX_FILE_BYTES - 10), randomBytes(10)];
      expect(contents.reduce((n, b) => n + b.length, 0)).toBe(MAX_JOB_BYTES);
      const files = await Promise.all(contents.map((b, i) => file(`fits-${i}.bin`, b)));
      const job = await client.submit({ passthrough: {} }, files);
      const out = path.join(dir, 'out');
      const { job: done, paths } = await client.collect(job.id, out);
      expect(done.state).toBe('JOB_STATE_SUCCEEDED');
      expect(done.errors).toEqual([]);
      expect([...paths.keys()].sort()).toEqual(['fits-0.bin', 'fits-1.bin', 'fits-2.bin']);
      for (const [i, b] of contents.entries()) expect((await readFile(path.join(out, `fits-${i}.bin`))).equals(b), `fits-${i}.bin comes back byte for byte`).toBe(true);
      expect((await client.listJobs()).map((j) => j.id)).toEqual([job.id]);
    } finally {
      await worker.close();
    }
  });
});
