/**
 * "Unknown encoder" is classified as the machine's lack (UNAVAILABLE, retryable) by a match anywhere
 * in ffmpeg's stderr (shared/ffmpeg.ts runProcess). Worker runs are at ffmpeg's info level, which
 * prints the input's own metadata: a damaged input whose title says "Unknown encoder '...'" is then
 * not the input's fault any more. It is retried on every worker, each failure counting towards
 * their quarantine, and the user is told the machine lacks an encoder.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { TesseraError } from '../../shared/errors.js';
import { LocalCluster } from '../helpers/cluster.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-unknown-encoder-meta-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** 4 s of MP3 with `title`, its second half's frames overwritten with garbage. */
async function damagedMp3(name: string, title: string): Promise<string> {
  const good = path.join(dir, `good-${name}`);
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:d=4', '-metadata', `title=${title}`, '-c:a', 'libmp3lame', '-y', good]);
  const d = await readFile(good);
  for (let i = d.length >> 1; i < (d.length >> 1) + 3000; i++) d[i] = (d[i]! * 7 + 13) & 255;
  const out = path.join(dir, name);
  await writeFile(out, d);
  return out;
}

describe('an input whose metadata mentions an unknown encoder', () => {
  it('a decode that fails on the input is still the input\'s fault (INVALID_ARGUMENT, not retried)', async () => {
    const src = await damagedMp3('tagged.mp3', "Unknown encoder 'libfoo'");
    // The worker's own decode (renderStageA's arguments).
    const err = await runFfmpeg(['-xerror', '-i', src, '-map', '0:a:0', '-vn', '-c:a', 'pcm_f32le', '-f', 'wav', '-y', path.join(dir, 'out.wav')], { input: 'tagged.mp3' }).then(
      () => undefined,
      (e: unknown) => e as TesseraError,
    );
    expect(err).toBeInstanceOf(TesseraError);
    // Observed: UNAVAILABLE "tagged.mp3: ffmpeg on this machine has no encoder libfoo, not because of the input", retryable.
    expect({ code: err!.codeName, retryable: err!.retryable, message: err!.message }).toEqual({ code: 'INVALID_ARGUMENT', retryable: false, message: expect.not.stringMatching(/no encoder/) });
  });

  it('an audio job of such a file fails as bad input, like the same file without the title', async () => {
    const plain = await damagedMp3('plain.mp3', 'a song');
    const tagged = await damagedMp3('tagged2.mp3', "Unknown encoder 'libfoo'");
    const c = await new LocalCluster({ workers: 2, slots: 1 }).start();
    try {
      const codes: Record<string, string[]> = {};
      for (const src of [plain, tagged]) {
        const job = await c.client.submit({ audio: { codec: 'wav' } }, [src]);
        const done = await c.client.wait(job.id);
        codes[path.basename(src)] = done.errors.map((e) => `${e.code}: ${e.message}`);
      }
      // Observed: plain.mp3 INVALID_ARGUMENT; tagged2.mp3 UNAVAILABLE ("ffmpeg on this machine has
      // no encoder libfoo"), after an attempt on each worker.
      expect(codes['tagged2.mp3']!.map((e) => e.split(':')[0])).toEqual(codes['plain.mp3']!.map((e) => e.split(':')[0]));
      expect(codes['tagged2.mp3']![0]).toMatch(/^INVALID_ARGUMENT/);
    } finally {
      await c.stop();
    }
  }, 60_000);
});
