/**
 * A 16-bit source with its own ICC profile, metadata not kept (the default): the output is written
 * without a profile, so its samples must be sRGB, as they are for the same image at 8 bits. sharp
 * skips the conversion for 16-bit input (RGB16 is taken to a Display P3 working space, GREY16 is
 * not converted at all): a Display P3 16-bit PNG (what Lightroom and Photoshop export) came out
 * visibly desaturated, a grey one with a linear profile about 60 levels too dark, on the batch path
 * and the tiled ones (review IC).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../coordinator/kinds/image.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { imageProcessor } from '../worker/processors/image.js';
import { runKindInProcess } from './helpers/media.js';
import { greyIcc, withPngIcc } from './helpers/icc.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-16bit-icc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
});

const imageSpec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;

/** The same flat image at 8 and 16 bits a sample, both tagged with `icc`. */
async function pair(name: string, raw: Buffer, channels: 1 | 3, icc: Buffer): Promise<{ eight: string; sixteen: string }> {
  const eight8 = await sharp(raw, { raw: { width: 128, height: 96, channels } }).toColourspace(channels === 1 ? 'b-w' : 'srgb').png().toBuffer();
  const sixteen16 = await sharp(eight8).toColourspace(channels === 1 ? 'grey16' : 'rgb16').png().toBuffer();
  const eight = path.join(dir, `${name}-8.png`);
  const sixteen = path.join(dir, `${name}-16.png`);
  await writeFile(eight, withPngIcc(eight8, icc));
  await writeFile(sixteen, withPngIcc(sixteen16, icc));
  expect((await sharp(sixteen).metadata()).depth).toBe('ushort');
  return { eight, sixteen };
}

/**
 * Mean sample of each band of the output, read as it is stored (it carries no profile), on the
 * 8-bit scale: a 16-bit PNG (a 16-bit RGB source's, converted to sRGB at 16 bits) over 257.
 */
async function means(file: string): Promise<number[]> {
  const m = await sharp(file).metadata();
  expect(m.icc, 'metadata not kept: no profile in the output').toBeUndefined();
  const scale = m.depth === 'ushort' ? 257 : 1;
  return (await sharp(file).stats()).channels.slice(0, 3).map((c) => Math.round(c.mean / scale));
}

/** Sample format of the last output {@link run} made. */
let lastDepth: string | undefined;

async function run(file: string, params: Record<string, unknown>): Promise<number[]> {
  // `strips`: tiled from the source itself (each worker reads it), as an image past the tiling threshold is.
  const { strips, ...rest } = params;
  if (strips) process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
  else delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
  const r = await runKindInProcess(imageKind, imageProcessor, imageSpec(rest), [file], { dir, slots: 2 });
  expect(r.errors).toEqual([]);
  lastDepth = (await sharp(r.outputs[0]!.path).metadata()).depth;
  return means(r.outputs[0]!.path);
}

const CASES = [{ format: 'jpeg' }, { format: 'png' }, { format: 'jpeg', width: 64 }, { format: 'jpeg', tile_size: 64 }, { format: 'jpeg', strips: true }];

describe('a 16-bit source with an embedded ICC profile, metadata stripped (default)', () => {
  it('Display P3, RGB: its colours are converted to sRGB as at 8 bits, not written as P3 numbers untagged', async () => {
    const p3 = (await sharp(await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }).withIccProfile('p3').png().toBuffer()).metadata()).icc!;
    const raw = Buffer.alloc(128 * 96 * 3);
    for (let i = 0; i < raw.length; i += 3) [raw[i], raw[i + 1], raw[i + 2]] = [200, 60, 40];
    const { eight, sixteen } = await pair('p3', raw, 3, p3);
    const seen: string[] = [];
    for (const params of CASES) {
      const expected = await run(eight, params); // about 217,42,24: P3 (200,60,40) in sRGB
      const got = await run(sixteen, params);
      // Converted to sRGB into a 16-bit copy, it stays 16-bit in a PNG.
      expect(lastDepth).toBe(params.format === 'png' ? 'ushort' : 'uchar');
      seen.push(`${JSON.stringify(params)}: 8-bit source gives ${expected}, 16-bit source gives ${got}`);
    }
    // Observed: every 16-bit case gives 200/201,60,40 (the P3 numbers, untagged) against 217,42,24.
    for (const line of seen) {
      const [e, g] = [...line.matchAll(/gives ([\d,]+)/g)].map((m) => m[1]!.split(',').map(Number));
      for (let b = 0; b < 3; b++) expect(Math.abs(g![b]! - e![b]!), seen.join('\n')).toBeLessThanOrEqual(3);
    }
  });

  it('grey with a linear (gamma 1.0) profile: its tones are converted as at 8 bits', async () => {
    const { eight, sixteen } = await pair('grey', Buffer.alloc(128 * 96, 120), 1, greyIcc(1.0));
    const seen: string[] = [];
    for (const params of CASES) {
      const expected = await run(eight, params); // about 182: linear 120 shown in sRGB
      const got = await run(sixteen, params);
      // Grey is converted through its profile at 8 bits (the only way libvips converts it): 8-bit.
      expect(lastDepth).toBe('uchar');
      seen.push(`${JSON.stringify(params)}: 8-bit source gives ${expected[0]}, 16-bit source gives ${got[0]}`);
    }
    // Observed: 182 for the 8-bit source, 120 for the 16-bit one (the linear samples read as sRGB).
    for (const line of seen) {
      const [e, g] = [...line.matchAll(/gives (\d+)/g)].map((m) => Number(m[1]));
      expect(Math.abs(g! - e!), seen.join('\n')).toBeLessThanOrEqual(3);
    }
  });
});
