import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeFloat, ebur128, generateAudio } from '../../test/helpers/audio-media.js';
import { channelWeights, energyToLufs, integratedLoudness, KWeightedMeter, kWeightingFilters, lufsToEnergy, measureIntegrated, type SubBlocks } from './loudness.js';

function sine(freq: number, amplitude: number, rate: number, seconds: number, channels = 1): Float32Array {
  const n = Math.round(rate * seconds);
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) out[i * channels] = amplitude * Math.sin((2 * Math.PI * freq * i) / rate);
  return out;
}

/** Sub-blocks of constant loudness `lufs` (per 100 ms at 48 kHz). */
function constant(lufs: number, seconds: number): SubBlocks {
  const n = seconds * 10;
  return { energy: Array<number>(n).fill(lufsToEnergy(lufs) * 4800), samples: Array<number>(n).fill(4800) };
}

function concat(...parts: SubBlocks[]): SubBlocks {
  return { energy: parts.flatMap((p) => p.energy), samples: parts.flatMap((p) => p.samples) };
}

describe('BS.1770 loudness', () => {
  test('K-weighting at 48 kHz has the coefficients tabled in BS.1770', () => {
    const [shelf, hp] = kWeightingFilters(48000);
    expect(shelf.b0).toBeCloseTo(1.53512485958697, 10);
    expect(shelf.b1).toBeCloseTo(-2.69169618940638, 10);
    expect(shelf.b2).toBeCloseTo(1.19839281085285, 10);
    expect(shelf.a1).toBeCloseTo(-1.69065929318241, 10);
    expect(shelf.a2).toBeCloseTo(0.73248077421585, 10);
    expect(hp.a1).toBeCloseTo(-1.99004745483398, 10);
    expect(hp.a2).toBeCloseTo(0.99007225036621, 10);
  });

  test('a 997 Hz sine at -20 dBFS peak in one channel reads -23.0 LUFS at 48 and 44.1 kHz', () => {
    for (const rate of [48000, 44100]) {
      expect(measureIntegrated(sine(997, 0.1, rate, 5), rate, 1).lufs).toBeCloseTo(-23.01, 1);
    }
  });

  test('at rates whose band ends under the shelf (1 and 2 kHz sensor logs) a 200 Hz sine reads as at 48 kHz', () => {
    // Observed: NaN (the shelf designed past the band is unstable), which a segment's statistics lost as DATA_LOSS.
    const at48 = measureIntegrated(sine(200, 0.1, 48000, 5), 48000, 1).lufs;
    for (const rate of [2000, 1000]) {
      const lufs = measureIntegrated(sine(200, 0.1, rate, 5), rate, 1).lufs;
      expect(Math.abs(lufs - at48)).toBeLessThan(0.1);
    }
  });

  test('constant loudness integrates to itself; silence is gated out entirely', () => {
    expect(integratedLoudness(constant(-18.5, 10)).lufs).toBeCloseTo(-18.5, 9);
    const silent = integratedLoudness(constant(-80, 10));
    expect(silent.lufs).toBe(-Infinity);
    expect(silent.gatedBlocks).toBe(0);
  });

  test('blocks under the relative gate do not count; blocks under the absolute gate do not move the gate', () => {
    const loud = constant(-20, 20);
    // -35 LUFS is 15 LU under: below the relative gate (about -30), so only the transition blocks can count.
    const withQuiet = integratedLoudness(concat(loud, constant(-35, 20)));
    expect(withQuiet.lufs).toBeLessThan(-20);
    expect(withQuiet.lufs).toBeGreaterThan(-20.3);
    // Silence under -70 LUFS leaves the result exactly as the loud part alone.
    const withSilence = integratedLoudness(concat(constant(-90, 10), loud, constant(-90, 10)));
    const deeperSilence = integratedLoudness(concat(constant(-200, 10), loud, constant(-200, 10)));
    expect(withSilence.blocks).toBe(397);
    // How quiet the gated-out silence is cannot matter (only the edge blocks' tiny share of it does).
    expect(withSilence.lufs).toBeCloseTo(deeperSilence.lufs, 6);
    expect(withSilence.lufs).toBeLessThan(-20);
    // 3 blocks at each loud/silence edge hold 3/4, 1/2, 1/4 of the energy: all above the relative gate.
    expect(withSilence.gatedBlocks).toBe(197 + 2 * 3);
  });

  test('energy and LUFS conversions are inverse; 5.1 weights exclude LFE and lift the surrounds', () => {
    expect(energyToLufs(lufsToEnergy(-16))).toBeCloseTo(-16, 12);
    expect(channelWeights(6, '5.1')).toEqual([1, 1, 1, 0, 1.41, 1.41]);
    expect(channelWeights(7, '6.1')).toEqual([1, 1, 1, 0, 1.41, 1.41, 1.41]);
    expect(channelWeights(7)).toEqual([1, 1, 1, 0, 1.41, 1.41, 1.41]);
    expect(channelWeights(2)).toEqual([1, 1]);
    // Layouts beyond the common ones, as ffprobe names them: each channel by its own name, not as
    // the default layout of its count (a 3.1 weighed as quad counted its centre and LFE as backs).
    expect(channelWeights(4, '3.1')).toEqual([1, 1, 1, 0]);
    expect(channelWeights(5, '4.1')).toEqual([1, 1, 1, 0, 1.41]);
    expect(channelWeights(6, 'hexagonal')).toEqual([1, 1, 1, 1.41, 1.41, 1.41]);
    expect(channelWeights(7, '7.0')).toEqual([1, 1, 1, 1.41, 1.41, 1.41, 1.41]);
    expect(channelWeights(8, '7.1(wide)')).toEqual([1, 1, 1, 0, 1.41, 1.41, 1, 1]);
    expect(channelWeights(4, '4 channels (FL+FR+LFE+BC)')).toEqual([1, 1, 0, 1.41]);
    // No layout: ffmpeg's default for the count, 4.0 (FL FR FC BC) for 4, as it writes the output.
    expect(channelWeights(4, 'unknown')).toEqual([1, 1, 1, 1.41]);
  });

  test('metering in whole-second pieces with a pre-roll joins to the same sub-blocks as one pass', () => {
    const rate = 44100;
    const x = sine(180, 0.3, rate, 6, 2).map((v, i) => v + 0.05 * Math.sin(i * 0.37));
    const whole = new KWeightedMeter(rate, 2);
    whole.push(x);
    const joined: SubBlocks = { energy: [], samples: [] };
    for (const [from, to] of [[0, 2], [2, 5], [5, 6]] as const) {
      const m = new KWeightedMeter(rate, 2);
      const pre = Math.min(from, 1);
      m.push(x.subarray((from - pre) * rate * 2, from * rate * 2), false);
      m.push(x.subarray(from * rate * 2, to * rate * 2));
      joined.energy.push(...m.subBlocks().energy);
      joined.samples.push(...m.subBlocks().samples);
    }
    const w = whole.subBlocks();
    expect(joined.samples).toEqual(w.samples);
    // A 1 s pre-roll settles the 38 Hz high-pass: each join's first sub-block agrees to 1e-6 relative.
    for (let i = 0; i < w.energy.length; i++) expect(Math.abs(joined.energy[i]! - w.energy[i]!) / w.energy[i]!).toBeLessThan(1e-6);
    expect(integratedLoudness(joined).lufs).toBeCloseTo(integratedLoudness(w).lufs, 6);
  });
});

describe('against ffmpeg ebur128', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-loudness-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // Low rates too (8 kHz telephony, 5 kHz), which ffmpeg measures at 48 kHz: a high-pass scaled
  // to the 48 kHz pass band there read 0.2-0.5 LU low (review K18).
  for (const c of [
    { source: 'speech', rate: 44100, layout: '5.1' },
    { source: 'noise', rate: 48000, layout: 'stereo' },
    { source: 'noise', rate: 8000, layout: 'mono' },
    { source: 'speech', rate: 8000, layout: 'mono' },
    { source: 'noise', rate: 5000, layout: 'mono' },
    { source: 'speech', rate: 5000, layout: 'mono' },
  ] as const) {
    test(`${c.source}, ${c.layout} at ${c.rate} Hz: within 0.1 LU of ffmpeg`, async () => {
      const file = await generateAudio(path.join(dir, `${c.source}-${c.rate}.wav`), { ...c, seconds: 8, ext: 'wav' });
      const { samples, channels } = await decodeFloat(file, dir);
      const ours = measureIntegrated(samples, c.rate, channels, c.layout);
      const ref = await ebur128(file);
      expect(Math.abs(ours.lufs - ref.integrated)).toBeLessThanOrEqual(0.1);
    });
  }
});
