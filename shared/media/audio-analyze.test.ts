import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runFfmpeg } from '../ffmpeg.js';
import { ebur128 } from '../../test/helpers/audio-media.js';
import { analyzePiece } from './audio-analyze.js';
import { readWavInfo } from './audio-wav.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-analyze-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('true peak finds inter-sample peaks (fs/4 sine at 45 degrees: samples 3 dB under the waveform) like ffmpeg', async () => {
  const file = path.join(dir, 'isp.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', 'aevalsrc=0.5*sin(2*PI*11025*t+PI/4):s=44100:d=2', '-c:a', 'pcm_f32le', '-y', file]);
  const info = await readWavInfo(file);
  const s = await analyzePiece(file, { preRoll: 0, body: info.frames });
  expect(20 * Math.log10(s.samplePeak)).toBeCloseTo(20 * Math.log10(0.5 * Math.SQRT1_2), 1);
  // The waveform's peak is 0.5 (-6.02 dBFS). ffmpeg's ebur128 reads this signal about 0.6 dB high
  // (its 192 kHz resampler rings); ours is within 0.2 dB of the truth and never above ffmpeg.
  const ref = await ebur128(file);
  const ours = 20 * Math.log10(s.truePeak);
  expect(Math.abs(ours - 20 * Math.log10(0.5))).toBeLessThanOrEqual(0.2);
  expect(ours).toBeLessThanOrEqual(ref.truePeak + 0.1);
  expect(20 * Math.log10(s.truePeak)).toBeGreaterThan(20 * Math.log10(s.samplePeak) + 2.5);
});

test('pre-roll and post-roll are analysed but not counted; the body is written sample for sample', async () => {
  const file = path.join(dir, 'steps.wav');
  // 1 s quiet, 2 s loud, 1 s quiet: the body is the loud middle only.
  await runFfmpeg(['-f', 'lavfi', '-i', "aevalsrc='if(between(t,1,3-1/48000),0.8,0.01)*sin(2*PI*440*t)':s=48000:d=4", '-c:a', 'pcm_s16le', '-y', file]);
  const body = path.join(dir, 'body.wav');
  const s = await analyzePiece(file, { preRoll: 48000, body: 96000, writeBodyTo: body, waveformSpp: 4800 });
  expect(s.frames).toBe(96000);
  expect(s.subBlocks.energy.length).toBe(20);
  expect(s.samplePeak).toBeGreaterThan(0.75);
  expect(s.waveform!.max.length).toBe(20);
  expect(Math.min(...s.waveform!.max)).toBeGreaterThan(0.7);
  const written = await readWavInfo(body);
  expect(written.frames).toBe(96000);
  expect(written.format).toBe('s16');
});
