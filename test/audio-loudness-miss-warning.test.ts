/**
 * The warning for a normalised output that misses its target (7d43158) names one of two causes: the
 * limiter, or "the encoder changed it more than it could be corrected", and always ends advising a
 * lower --loudness or a higher --true-peak. A quiet source brought up to a high target hits the
 * 60 dB cap on the gain (decideLoudness): a WAV of a -67 LUFS recording asked at -5 LUFS comes out
 * at -7.1 LUFS, peaking at -4.2 dBTP, no limiter. The warning blames an encoder a WAV does not have
 * and advises raising a ceiling the file is nowhere near.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { audioKind } from '../coordinator/kinds/audio.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { audioProcessor } from '../worker/processors/audio.js';
import { ebur128 } from './helpers/audio-media.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
let quiet: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-miss-warning-'));
  quiet = path.join(dir, 'quiet.wav');
  // A 997 Hz tone at -64 dBFS: about -67 LUFS, over the -70 LUFS gate.
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=f=997:r=48000:d=3,volume=0.005', '-c:a', 'pcm_s24le', quiet]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('a lossless output held back by the gain cap is not said to be the encoder\'s doing, nor fixed by a higher --true-peak', async () => {
  const run = await runKindInProcess(audioKind, audioProcessor, specOf('audio', { codec: 'wav', normalize: true, loudness: -5 }), [quiet], { dir });
  expect(run.errors).toEqual([]);
  const m = await ebur128(run.outputs.find((o) => o.name === 'quiet.wav')!.path);
  const seen = JSON.stringify({ m, warnings: run.warnings });
  expect(m.integrated, seen).toBeLessThan(-6); // the miss is real: the job should say so
  expect(m.truePeak, seen).toBeLessThan(-3); // far under the -1.5 dBTP ceiling
  expect(run.warnings, seen).toHaveLength(1);
  const message = run.warnings[0]!.message;
  // Observed: "normalised to -7.1 LUFS, not the -5 LUFS asked: the encoder changed it more than it
  // could be corrected; a lower --loudness or a higher --true-peak reaches its target".
  expect(message, seen).toMatch(/^normalised to -7\.\d LUFS, not the -5 LUFS asked/);
  expect(message, seen).not.toMatch(/encoder/);
  expect(message, seen).not.toMatch(/--true-peak/);
}, 30_000);
