/**
 * Waveform outputs: a JSON of min/max peaks in the BBC audiowaveform format (version 2, 16-bit, one
 * channel), which web players such as peaks.js and wavesurfer read, and a PNG drawn from the same peaks.
 */
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { WaveformBins } from './audio-analyze.js';

/** The audiowaveform JSON document. */
export interface WaveformJson {
  version: 2;
  channels: 1;
  sample_rate: number;
  samples_per_pixel: number;
  bits: 16;
  length: number;
  /** min0, max0, min1, max1, ... in -32768..32767. */
  data: number[];
}

/** Concatenates the bins of consecutive pieces (each piece starts on a bin boundary). */
export function joinBins(pieces: WaveformBins[]): WaveformBins {
  const spp = pieces[0]?.spp ?? 1;
  return { spp, min: pieces.flatMap((p) => p.min), max: pieces.flatMap((p) => p.max) };
}

/**
 * Peaks of the output: the pre-gain bins scaled by the gain and clipped at the limiter's level, which is
 * what the final encode does to them (within a fraction of a dB).
 */
export function waveformJson(bins: WaveformBins, sampleRate: number, gainDb: number, limit?: number): WaveformJson {
  const g = 10 ** (gainDb / 20);
  const ceil = limit ?? 1;
  const q = (v: number): number => Math.max(-32768, Math.min(32767, Math.round(Math.max(-ceil, Math.min(ceil, v * g)) * 32767)));
  const data: number[] = [];
  for (let i = 0; i < bins.min.length; i++) data.push(q(bins.min[i]!), q(bins.max[i]!));
  return { version: 2, channels: 1, sample_rate: sampleRate, samples_per_pixel: bins.spp, bits: 16, length: bins.min.length, data };
}

/** Draws the peaks as a PNG (transparent background, one column per pixel, min..max filled). */
export async function writeWaveformPng(doc: WaveformJson, file: string, width = 1800, height = 280): Promise<void> {
  const px = Buffer.alloc(width * height * 4);
  const n = doc.length;
  const mid = (height - 1) / 2;
  for (let x = 0; x < width; x++) {
    // Each column covers a range of bins; take the extremes so short peaks stay visible.
    const a = Math.floor((x * n) / width);
    const b = Math.max(a + 1, Math.floor(((x + 1) * n) / width));
    let lo = 0;
    let hi = 0;
    for (let i = a; i < b && i < n; i++) {
      lo = Math.min(lo, doc.data[2 * i]!);
      hi = Math.max(hi, doc.data[2 * i + 1]!);
    }
    const y0 = Math.round(mid - (hi / 32768) * mid);
    const y1 = Math.round(mid - (lo / 32768) * mid);
    for (let y = Math.max(0, y0); y <= Math.min(height - 1, y1); y++) {
      const o = (y * width + x) * 4;
      px[o] = 0x1f;
      px[o + 1] = 0x6f;
      px[o + 2] = 0xeb;
      px[o + 3] = 0xff;
    }
  }
  await sharp(px, { raw: { width, height, channels: 4 } }).png().toFile(file);
}

/** Writes `<stem>.waveform.json` and `<stem>.waveform.png` into `dir`; returns their names. */
export async function writeWaveform(dir: string, stem: string, doc: WaveformJson): Promise<{ json: string; png: string }> {
  const json = `${stem}.waveform.json`;
  const png = `${stem}.waveform.png`;
  await writeFile(`${dir}/${json}`, JSON.stringify(doc));
  await writeWaveformPng(doc, `${dir}/${png}`);
  return { json, png };
}
