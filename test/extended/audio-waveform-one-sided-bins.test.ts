/**
 * The waveform JSON (audiowaveform format: a min and a max per pixel) must give each pixel's real
 * extremes. A bin whose samples are all above zero (a DC offset, or a bass note whose half-period
 * is longer than the 10 ms bin) has a positive minimum, not 0 (it had 0: review AU3).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-waveform-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("a waveform bin whose samples are all positive keeps its real minimum (not 0), whole and segmented", async () => {
  // Every sample in 0.2..0.8: no pixel of this file reaches down to 0.
  const src = path.join(dir, 'offset.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', 'aevalsrc=0.5+0.3*sin(2*PI*440*t):s=44100:d=5', '-c:a', 'pcm_s16le', '-y', src]);
  for (const segment_seconds of [0, 2]) {
    const r = await runAudioInProcess({ codec: 'flac', waveform: true, ...(segment_seconds && { segment_seconds }) }, [src], path.join(dir, `out-${segment_seconds}`));
    expect(r.errors).toEqual([]);
    const doc = JSON.parse(await readFile(r.outputs.find((o) => o.name === 'offset.waveform.json')!.path, 'utf8')) as { length: number; data: number[] };
    const mins = doc.data.filter((_, i) => i % 2 === 0);
    const maxs = doc.data.filter((_, i) => i % 2 === 1);
    expect(mins.length).toBe(doc.length);
    // max is right (about 0.8 x 32767); min must be about 0.2 x 32767, as the samples are.
    expect(Math.min(...maxs)).toBeGreaterThan(0.75 * 32767);
    expect(Math.max(...mins), `segment_seconds ${segment_seconds}: largest pixel minimum`).toBeGreaterThan(0.15 * 32767);
    expect(Math.min(...mins), `segment_seconds ${segment_seconds}: smallest pixel minimum`).toBeGreaterThan(0.15 * 32767);
  }
});
