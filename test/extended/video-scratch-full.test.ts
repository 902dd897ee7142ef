/**
 * A worker whose scratch folder (TMPDIR) fills while ffmpeg encodes a video segment. ffmpeg's run
 * says so (shared/ffmpeg.ts: UNAVAILABLE "ffmpeg failed on this machine (its disk is full), not
 * because of the input"), as the image, audio and thumbnail processors pass on; the video
 * processor rewraps every encode failure as DATA_LOSS ("encode failed"), the code the README
 * keeps for bytes that do not match their SHA-256, so the job's error says the input's data was
 * lost when only the worker's disk was full.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';
import { makeVideo } from '../helpers/media.js';
import { generateAudio } from '../helpers/audio-media.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

/** A coordinator (max_attempts 1) and one worker whose TMPDIR is a 128 KiB tmpfs `small` (the tests run as root). */
async function clusterWithSmallScratch(dir: string): Promise<TesseraClient> {
  const small = path.join(dir, 'small');
  await mkdir(small);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', small]);
  cleanups.push(() => void execFileSync('umount', ['-l', small]));
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', maxAttempts: 1 });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const client = new TesseraClient({ address });
  cleanups.push(() => client.close());
  // The worker's temp root is taken from TMPDIR when it is made.
  const old = process.env.TMPDIR;
  process.env.TMPDIR = small;
  const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w' });
  if (old === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = old;
  worker.start();
  cleanups.push(() => worker.close());
  await worker.registered;
  return client;
}

describe("a worker's scratch disk full during an encode", () => {
  // Waited out for as long as the coordinator waits out its own (10 minutes by default), then failed.
  beforeEach(() => void (process.env['TESSERA_FULL_DISK_WAIT_MS'] = '1500'));
  afterEach(() => void delete process.env['TESSERA_FULL_DISK_WAIT_MS']);

  it('fails a video segment as the worker\'s trouble (UNAVAILABLE, disk full), not as DATA_LOSS of the input', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-scratch-full-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const client = await clusterWithSmallScratch(dir);
    const src = await makeVideo(dir, 'v.mp4', { duration: 4, width: 320, height: 240 });
    const job = await client.wait((await client.submit({ video: { lossless: true, audio_codec: 'none', segment_seconds: 100 } }, [src])).id);
    expect(job.state).toBe('JOB_STATE_FAILED');
    const [err] = job.errors;
    expect(err!.message).toMatch(/its disk is full/);
    // What told it, not the encoder's last lines ("[libx264] kb/s:1370.60").
    expect(err!.message).toMatch(/not because of the input: (.*No space left on device|no room left in \/)/);
    expect(err!.message).not.toMatch(/libx264/);
    expect(err!.code).toBe('UNAVAILABLE');
    // The segment named once (it read "segment 1: encode failed: segment 1: ffmpeg failed ...").
    expect(err!.message.match(/segment 1:/g)).toHaveLength(1);
  }, 60_000);

  it('(for comparison) fails an audio file the same way as UNAVAILABLE', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-scratch-full-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const client = await clusterWithSmallScratch(dir);
    const src = await generateAudio(path.join(dir, 'a.flac'), { source: 'noise', seconds: 5, rate: 48000, layout: 'stereo', ext: 'flac' });
    const job = await client.wait((await client.submit({ audio: { codec: 'wav' } }, [src])).id);
    expect(job.state).toBe('JOB_STATE_FAILED');
    const [err] = job.errors;
    console.log('MSG', err!.message);
    expect(err!.message).toMatch(/its disk is full/);
    expect(err!.code).toBe('UNAVAILABLE');
  }, 60_000);

  it('uses up no attempt while it lasts: room made on the one worker, the job (max_attempts 1) succeeds', async () => {
    process.env['TESSERA_FULL_DISK_WAIT_MS'] = '600000';
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-scratch-full-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const client = await clusterWithSmallScratch(dir);
    const src = await generateAudio(path.join(dir, 'a.flac'), { source: 'noise', seconds: 5, rate: 48000, layout: 'stereo', ext: 'flac' });
    const job = await client.submit({ audio: { codec: 'wav' } }, [src]);
    const setbacks: string[] = [];
    const done = client.wait(job.id, (e) => {
      const m = e.message ?? '';
      if (/retrying \(not counted against max_attempts/.test(m) && setbacks.push(m) === 1) {
        // The disk is given room after its first failure: the retry (2 s later) finds it.
        execFileSync('mount', ['-o', 'remount,size=64m', path.join(dir, 'small')]);
      }
    });
    const final = await done;
    // Was: failed at once, its one attempt used up by the worker's full disk.
    expect(final.state, JSON.stringify(final.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(setbacks[0]).toMatch(/^attempt 1 failed \(UNAVAILABLE: a\.flac: ffmpeg failed on this machine \(its disk is full\), not because of the input: .*; retrying \(not counted against max_attempts: the worker's own trouble, not the subtask's\)$/);
  }, 60_000);
});
