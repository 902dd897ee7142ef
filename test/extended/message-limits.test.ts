/**
 * What one gRPC message can hold, on a real cluster. A subtask making hundreds of small outputs
 * used to send them all inside its result: over the 16 MiB message limit, grpc-js ended the
 * worker's control stream, the worker lost every subtask it ran, and the job failed after three
 * attempts. A client whose upload the coordinator refused mid-stream kept waiting for room to
 * write, holding the file open. And a name the limit allowed (255 characters) could be too long
 * for the file system once in bytes and with a temporary suffix.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES } from '../../shared/config.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

const MiB = 1024 * 1024;
// One worker with one slot: a thumbnails job is then cut into two subtasks.
let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-limits-'));
  cluster = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--max-file-bytes', String(24 * MiB), '--max-job-bytes', String(32 * MiB)] });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Descriptors of this process open on `file`. */
const openOn = (file: string): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  }).length;

describe('message limits', () => {
  it('a subtask with more small outputs than one message holds uploads the rest and keeps its worker connected', async () => {
    // Noisy all-intra frames: each 400 px thumbnail is a JPEG of about 55 KB, small enough to
    // ride inline, and 350 of them per subtask are well over one message.
    const src = path.join(dir, 'noise.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=448x252:rate=25:duration=12,noise=alls=40:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '1', src]);
    const out = path.join(dir, 'thumbs');
    const r = await cluster.runCli(['submit', 'thumbnails', src, '--count', '700', '--width', '400', '-o', out, '--json', '--no-progress'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { state: string; subtasks: { attempt: number }[] };
    expect(job.state).toBe('succeeded');
    // Each subtask ran once: the worker never lost its control stream.
    expect(job.subtasks).toHaveLength(2);
    expect(job.subtasks.map((s) => s.attempt)).toEqual([1, 1]);
    const names = (await readdir(out)).filter((n) => n.startsWith('thumb-')).sort();
    expect(names).toHaveLength(700);
    const sizes = await Promise.all(names.map(async (n) => (await stat(path.join(out, n))).size));
    // The case this test is about: inline-sized outputs, more of them per subtask than a message holds.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024);
    expect(sizes.slice(0, 350).reduce((a, b) => a + b, 0)).toBeGreaterThan(MAX_MESSAGE_BYTES);
    for (const n of [names[0]!, names[349]!, names[699]!]) expect(await sharp(path.join(out, n)).metadata()).toMatchObject({ format: 'jpeg', width: 400 });
  });

  it('a name of the longest allowed length in bytes goes through the spool, a worker and the download', async () => {
    // 200 bytes in UTF-8 (98 two-byte characters and ".bin"): with the spool's and the client's
    // temporary suffixes still within the file system's 255.
    const name = `${'é'.repeat(98)}.bin`;
    expect(Buffer.byteLength(name)).toBe(200);
    const file = path.join(dir, name);
    await writeFile(file, 'x'.repeat(100_000));
    const job = await cluster.client.submit({ label: 'long name', passthrough: {} }, [file]);
    const { job: done, paths } = await cluster.client.collect(job.id, path.join(dir, 'long'));
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect((await stat(paths.get(name)!)).size).toBe(100_000);

    // Outputs named after such an input grow a little (here .jpg -> .webp): still fine.
    const photo = path.join(dir, `${'é'.repeat(98)}.jpg`);
    await writeFile(photo, await sharp({ create: { width: 64, height: 48, channels: 3, background: '#a53' } }).jpeg().toBuffer());
    const img = await cluster.client.submit({ label: 'long name out', image: { width: 32, format: 'webp' } }, [photo]);
    const converted = await cluster.client.collect(img.id, path.join(dir, 'long-img'));
    expect(converted.job.state).toBe('JOB_STATE_SUCCEEDED');
    const out = `${'é'.repeat(98)}.webp`;
    expect(Buffer.byteLength(out)).toBe(201);
    expect(await sharp(converted.paths.get(out)!).metadata()).toMatchObject({ format: 'webp', width: 32 });
  });

  it('a client whose upload is refused mid-stream stops reading its file', async () => {
    const file = path.join(dir, 'too-big.bin');
    await writeFile(file, '');
    await truncate(file, 64 * MiB);
    const err = await cluster.client.submit({ label: 'too big', passthrough: {} }, [file]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 8 });
    expect((err as Error).message).toMatch(/input too-big\.bin: 67108864 bytes is over the per-file limit of 25165824 bytes \(the coordinator's --max-file-bytes\)/);
    // The upload loop ends with the call: nothing keeps the file open.
    for (let i = 0; i < 200 && openOn(file) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(openOn(file)).toBe(0);
  });

  it('a worker whose output upload is refused mid-stream stops reading it', async () => {
    // A noisy 4000 x 4000 JPEG (about 7 MB) made into a PNG of about 45 MB: past the 32 MiB the
    // coordinator takes for an output here, and far past what the stream's buffers hold.
    const src = path.join(dir, 'noise-4000.jpg');
    await sharp({ create: { width: 4000, height: 4000, channels: 3, background: '#777', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).jpeg({ quality: 40 }).toFile(src);
    const job = await cluster.client.submit({ label: 'output too big', max_attempts: 1, image: { format: 'png' } }, [src]);
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_FAILED');
    expect(JSON.stringify(done.errors)).toMatch(/RESOURCE_EXHAUSTED/);
    // The output, removed with its subtask's folder, is held open by nothing in the worker.
    const pid = cluster.workers[0]!.child.pid!;
    const deleted = (): string[] =>
      readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
        try {
          const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
          return target.includes('tessera-worker-') ? [target] : [];
        } catch {
          return [];
        }
      });
    for (let i = 0; i < 200 && deleted().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(deleted()).toEqual([]);
  });
});
