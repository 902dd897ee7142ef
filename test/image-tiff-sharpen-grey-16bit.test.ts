/**
 * `--sharpen --grayscale --format tiff` of a 16-bit RGB source (a scanner's or a raw converter's)
 * on the batch path. sharp leaves a sharpened image in float; `applyEncoding` casts it back for
 * 8-bit sources only ("a 16-bit one comes out 8-bit anyway"), which holds for sharpen alone
 * (image-tiff-sharpen.test.ts) but not with greyscale too: the TIFF written is 32-bit float scRGB
 * holding 0..271 values where scRGB means 0..1 (every pixel reads back as white, up to 254 levels
 * off the same request written as PNG). The tiled path (`--tile`) writes 8-bit sRGB.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runImageBatch } from './helpers/image-batch.js';
import { comparePixels, imageParams, makeSource, runTiledInProcess } from './tiles-helpers.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiff-sharpen-grey16-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sharpen and greyscale with TIFF output, 16-bit RGB source', () => {
  it('writes integer samples, with the pixels of the same request as PNG and of the tiled path', async () => {
    const src = await makeSource(path.join(dir, 'photo.png'), 90, 60);
    const src16 = path.join(dir, 'photo16.png');
    await sharp(src).toColourspace('rgb16').png().toFile(src16);
    expect((await sharp(src16).metadata()).depth).toBe('ushort');
    const bytes = { 'photo16.png': await readFile(src16) };
    await Promise.all(['tiff', 'png'].map((f) => mkdir(path.join(dir, f))));
    const p = { sharpen: true, grayscale: true };
    const tiff = await runImageBatch(path.join(dir, 'tiff'), bytes, { ...p, format: 'tiff' });
    const png = await runImageBatch(path.join(dir, 'png'), bytes, { ...p, format: 'png' });
    expect([tiff.itemErrors, png.itemErrors]).toEqual([[], []]);
    const m = await sharp(tiff.outputs[0]!.path).metadata();
    // Observed: 'float', 'scrgb'.
    expect({ depth: m.depth, space: m.space }).toEqual({ depth: 'uchar', space: 'srgb' });
    expect((await comparePixels(tiff.outputs[0]!.path, png.outputs[0]!.path)).maxDiff).toBeLessThanOrEqual(1);
    const tiled = await runTiledInProcess(src16, imageParams({ ...p, format: 'tiff', tile_size: 64 }), path.join(dir, 'tiled'), { slots: 2 });
    expect((await comparePixels(tiff.outputs[0]!.path, tiled.output)).maxDiff).toBeLessThanOrEqual(1);
  });
});
