/**
 * Loudness normalisation of a film's 7.1 AAC track to AAC (in process: the real planner, worker
 * processor and merge): the output must land within 0.5 LU of the target, as ffmpeg's ebur128 reads
 * it, or the job must say it missed (README: a lossy output that misses by more than 0.3 LU is
 * encoded again, corrected by the miss).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { audioReport, ebur128, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-71-aac-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a 7.1 AAC track of an MP4 normalised to -16 LUFS as AAC lands within 0.5 LU, or the job warns', async () => {
  const src = path.join(dir, 'film.mp4');
  await runFfmpeg([
    '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=4', '-f', 'lavfi', '-i', 'anoisesrc=r=48000:d=4:c=pink:a=0.2:s=3',
    '-filter_complex', '[1]pan=7.1|c0=c0|c1=0.9*c0|c2=0.8*c0|c3=0.1*c0|c4=0.7*c0|c5=0.6*c0|c6=0.5*c0|c7=0.4*c0[a]',
    '-map', '0', '-map', '[a]', '-c:v', 'libx264', '-c:a', 'aac', '-y', src,
  ]);
  const r = await runAudioInProcess({ codec: 'aac', normalize: true }, [src], dir);
  expect(r.errors).toEqual([]);
  const out = r.outputs.find((o) => o.name === 'film.m4a')!;
  const measured = await ebur128(out.path);
  const rep = (await audioReport(r))[0]!;
  // Observed: -16.6 LUFS (report: outputLoudness -16.6, codecCorrectionDb 0.8), and no warning.
  if (r.warnings.length === 0) expect(Math.abs(measured.integrated - -16)).toBeLessThanOrEqual(0.5);
  expect(rep.outputLoudness).toBeCloseTo(measured.integrated, 0);
}, 30_000);
