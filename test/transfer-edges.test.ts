/**
 * Moving bytes at the edges: DownloadOutput of a published output whose spool file is no longer
 * the bytes that were published (cut short: DATA_LOSS, not OK after a short stream; gone:
 * NOT_FOUND, not INTERNAL), and input names that are one file on macOS/Windows (final sigma).
 *
 * Real Coordinator and Worker objects over real gRPC on 127.0.0.1; the client side is the real
 * client library, or a raw grpc-js stub where the library's own checks would hide the server's answer.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { startSpoolCoordinator } from './helpers/spool-coordinator.js';
import { rawSubmit } from './helpers/raw-grpc.js';
import { rawJobService } from './helpers/raw-grpc.js';
import { TesseraError, checkInputFiles } from '../client/client.js';
import { createLogger } from '../shared/logger.js';
import { Worker } from '../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A raw DownloadOutput from offset 0: the bytes, how many chunks carried a sha256, and the status. */
function rawDownloadAll(address: string, jobId: string, name: string): Promise<{ bytes: number; digests: number; code: number; details: string }> {
  const stub = rawJobService(address);
  return new Promise((resolve) => {
    let bytes = 0;
    let digests = 0;
    const call = stub.DownloadOutput({ job_id: jobId, name, offset: 0 });
    call.on('data', (c: { data: Buffer; sha256: string }) => {
      bytes += c.data.length;
      if (c.sha256) digests++;
    });
    call.on('error', (err: grpc.ServiceError) => {
      stub.close();
      resolve({ bytes, digests, code: err.code, details: err.details });
    });
    call.on('end', () => {
      stub.close();
      resolve({ bytes, digests, code: grpc.status.OK, details: '' });
    });
  });
}

/** A coordinator, one worker, and a finished passthrough job over `sizes` (name -> bytes). */
async function finishedJob(sizes: Record<string, number>): Promise<{ address: string; jobId: string; out: (name: string) => string }> {
  const { dir, address, client, spoolJobs } = await startSpoolCoordinator(cleanups);
  const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w' });
  worker.start();
  cleanups.push(() => worker.close());
  await worker.registered;
  const files: string[] = [];
  for (const [name, size] of Object.entries(sizes)) {
    files.push(path.join(dir, name));
    await writeFile(files.at(-1)!, randomBytes(size));
  }
  const job = await client.submit({ passthrough: {} }, files);
  const done = await client.wait(job.id);
  expect(done.state).toBe('JOB_STATE_SUCCEEDED');
  return { address, jobId: job.id, out: (name) => path.join(spoolJobs, job.id, 'out', name) };
}

describe('DownloadOutput of a published output whose spool file is not what was published', () => {
  it('a file shorter than the output (cut short on the coordinator disk) fails the call with DATA_LOSS, not OK after a short stream', async () => {
    const { address, jobId, out } = await finishedJob({ 'cut.bin': 3 * 2 ** 20 });
    await truncate(out('cut.bin'), 2 ** 20);
    const r = await rawDownloadAll(address, jobId, 'cut.bin');
    // Today: status OK after 1 MiB of the 3 MiB that total_size announces, and no chunk carries the
    // output's sha256 ("the last chunk carries the SHA-256"): a contract client takes it for the end.
    expect({ code: r.code, bytes: r.bytes }, `${r.details}`).toEqual({ code: grpc.status.DATA_LOSS, bytes: expect.any(Number) });
    expect(r.details).toContain('cut.bin');
  });

  it('a file gone from the spool answers NOT_FOUND or DATA_LOSS naming the output, not INTERNAL', async () => {
    const { address, jobId, out } = await finishedJob({ 'gone.bin': 200_000 });
    await rm(out('gone.bin'));
    const r = await rawDownloadAll(address, jobId, 'gone.bin');
    // Today: INTERNAL "internal error (see the coordinator log)", the ENOENT of its open().
    expect([grpc.status.NOT_FOUND, grpc.status.DATA_LOSS], `${r.code} ${r.details}`).toContain(r.code);
    expect(r.details).toContain('gone.bin');
  });
});

describe('input names that differ only in case are one file on macOS and Windows', () => {
  // Greek capital sigma has two lower-case forms: σ, and ς at the end of a word. APFS folds ς to σ
  // (Unicode case folding) and NTFS upper-cases both to Σ, so ΟΔΟΣ.txt and οδος.txt, or xσ and xς,
  // are one file there. foldedName() lower-cases with JavaScript's context-sensitive rule (Σ before
  // ".txt" becomes σ, a final ς stays ς), so they fold apart.
  const pairs: [string, string][] = [
    ['ΟΔΟΣ.txt', 'οδος.txt'],
    ['xσ.bin', 'xς.bin'],
  ];

  it.each(pairs)('the coordinator refuses %s beside %s (INVALID_ARGUMENT), as it does a.bin beside A.BIN', async (a, b) => {
    const { address } = await startSpoolCoordinator(cleanups);
    const send = (x: string, y: string) =>
      rawSubmit(address, [{ spec: { passthrough: {}, input_count: 2 } }, { input: { name: x, size: 1 } }, { data: Buffer.from('1') }, { input_end: { sha256: '' } }, { input: { name: y, size: 1 } }, { data: Buffer.from('2') }, { input_end: { sha256: '' } }]);
    // The rule holds for Latin case...
    expect((await send('a.bin', 'A.BIN'))?.code).toBe(grpc.status.INVALID_ARGUMENT);
    // ...and not for Greek: today the job is made (no error).
    const err = await send(a, b);
    expect(err?.code, `${a} and ${b} were accepted as two inputs`).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it.each(pairs)('the client library refuses %s beside %s before sending anything', async (a, b) => {
    const { dir } = await startSpoolCoordinator(cleanups);
    await mkdir(path.join(dir, 'one'));
    await mkdir(path.join(dir, 'two'));
    const fa = path.join(dir, 'one', a);
    const fb = path.join(dir, 'two', b);
    await writeFile(fa, '1');
    await writeFile(fb, '2');
    const err = await checkInputFiles([fa, fb]).then(() => undefined, (e: unknown) => e as grpc.ServiceError);
    expect(err?.code, `${a} and ${b} passed the check`).toBe(grpc.status.INVALID_ARGUMENT);
  });
});

describe('the client library says every file it refuses at once', () => {
  it('names each bad file of a batch in one refusal, not the first one a run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-many-bad-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const good = path.join(dir, 'good.jpg');
    const colon = path.join(dir, '12:30:00.jpg');
    const device = path.join(dir, 'aux.png');
    await Promise.all([good, colon, device].map((f) => writeFile(f, 'x')));
    const missing = path.join(dir, 'gone.jpg');
    const err = await checkInputFiles([good, colon, device, missing]).then(() => undefined, (e: unknown) => e as TesseraError);
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.input).toBe(colon);
    expect(err?.message).toBe(
      `3 of the 4 files cannot be inputs as they are: input name of ${colon} "12:30:00.jpg" contains ":", which Windows does not allow in file names (none of < > : " | ? *); ` +
        `input name of ${device} "aux.png" is the device AUX on Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9, with any extension): rename it; ${missing}: no such file`,
    );
    // One bad file is said as before.
    await expect(checkInputFiles([good, missing])).rejects.toThrow(`${missing}: no such file`);
  });
});
