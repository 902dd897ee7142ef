/**
 * A 32-bit float source whose samples go over full scale (a mix bounced in float, +0.5 dBFS) converted
 * to WAV or FLAC without normalisation. The output is written as 24-bit integers (losslessBits: every
 * source deeper than 16 bits), so the overs are cut flat at 0 dBFS, with no warning, while
 * `audio-report.json` states the output's true peak as the source's (+0.5 dBTP), a figure the file
 * does not hold. A lossless conversion should keep the samples (a float WAV stays float), or at least
 * say that it clipped them and report the peak the file has.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { audioReport, decodeFloat, ebur128, peak, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-float-overs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test.each(['wav', 'flac'])('a float source over full scale converted to %s is not clipped silently, and its report states the peak written', async (codec) => {
  const src = path.join(dir, 'bounce.wav');
  // A 997 Hz sine peaking at +0.5 dBFS (1.06 full scale), stored as float.
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=997:r=44100:d=1', '-af', 'volume=12', '-ac', '2', '-c:a', 'pcm_f32le', '-y', src]);
  const source = await decodeFloat(src, dir);
  expect(peak(source.samples)).toBeGreaterThan(1.05);

  const r = await runAudioInProcess({ codec }, [src], path.join(dir, codec));
  expect(r.errors).toEqual([]);
  const out = r.outputs.find((o) => o.name === `bounce.${codec}`)!.path;
  const [rep] = await audioReport(r);
  const written = await decodeFloat(out, dir);
  const measured = await ebur128(out);
  // The report's figure is the file's (0.2 dB: ebur128 reads tenths). Observed: +0.514 reported, +0.0 in the file.
  expect(Math.abs(rep!.outputTruePeak! - measured.truePeak), `reported ${rep!.outputTruePeak} dBTP, file ${measured.truePeak} dBTP`).toBeLessThanOrEqual(0.2);
  // Either the samples are kept, or the job says it clipped them. Observed: flat at 1.0, no warning.
  const clipped = peak(written.samples) <= 1;
  expect(clipped && r.warnings.length === 0, `output peak ${peak(written.samples)}, warnings ${JSON.stringify(r.warnings)}`).toBe(false);
});
