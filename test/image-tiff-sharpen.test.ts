/**
 * `--sharpen --format tiff`: the batch path (the worker's image processor, one sharp call) and
 * the tiled path must give the same image. sharp's sharpen leaves the image in float, and
 * libvips' TIFF writer (LZW, as applyEncoding asks) writes it as it is: a 32-bit float TIFF that
 * libvips reads back as scRGB holding 0..255 values (every pixel decodes as white) and that
 * ffmpeg cannot decode at all. The tiled path writes the expected 8-bit sRGB TIFF.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runImageBatch } from './helpers/image-batch.js';
import { comparePixels, imageParams, makeSource, runTiledInProcess } from './tiles-helpers.js';

let dir: string;
let src: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiff-sharpen-'));
  src = await makeSource(path.join(dir, 'photo.png'), 201, 133);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sharpen with TIFF output', () => {
  it('the batch path writes an 8-bit sRGB TIFF with the same pixels as the tiled path', async () => {
    const p = { sharpen: true, format: 'tiff' };
    const batch = await runImageBatch(dir, { 'photo.png': await readFile(src) }, p);
    expect(batch.itemErrors).toEqual([]);
    const out = batch.outputs[0]!.path;

    const tiled = await runTiledInProcess(src, imageParams({ ...p, tile_size: 64 }), path.join(dir, 'tiled'), { slots: 2 });
    const t = await sharp(tiled.output).metadata();
    expect([t.format, t.depth, t.space]).toEqual(['tiff', 'uchar', 'srgb']);

    const b = await sharp(out).metadata();
    // Observed: 'float', 'scrgb' (32 bits a sample, values 0..255 where scRGB means 0..1).
    expect([b.format, b.depth, b.space]).toEqual(['tiff', 'uchar', 'srgb']);
    expect((await comparePixels(out, tiled.output)).maxDiff).toBe(0);
  });

  it('with keep_metadata too: 8-bit samples, tagged sRGB, the pixels of the same request written as PNG', async () => {
    const p = { sharpen: true, keep_metadata: true };
    await mkdir(path.join(dir, 'keep'));
    await mkdir(path.join(dir, 'keep-png'));
    const tiff = await runImageBatch(path.join(dir, 'keep'), { 'photo.png': await readFile(src) }, { ...p, format: 'tiff' });
    const png = await runImageBatch(path.join(dir, 'keep-png'), { 'photo.png': await readFile(src) }, { ...p, format: 'png' });
    expect([tiff.itemErrors, png.itemErrors]).toEqual([[], []]);
    const m = await sharp(tiff.outputs[0]!.path).metadata();
    expect([m.format, m.depth, m.space]).toEqual(['tiff', 'uchar', 'srgb']);
    expect((await comparePixels(tiff.outputs[0]!.path, png.outputs[0]!.path)).maxDiff).toBe(0);
  });

  it('of a 16-bit RGB source (a scanner\'s or a raw converter\'s): the pixels of the same request as PNG, and of the tiled path', async () => {
    // The cast for 8-bit sources, run for this one too, converted its colours (up to 118 levels off).
    const src16 = path.join(dir, 'photo16.png');
    await sharp(src).toColourspace('rgb16').png().toFile(src16);
    expect((await sharp(src16).metadata()).depth).toBe('ushort');
    const bytes = { 'photo16.png': await readFile(src16) };
    await Promise.all(['tiff16', 'png16'].map((f) => mkdir(path.join(dir, f))));
    const tiff = await runImageBatch(path.join(dir, 'tiff16'), bytes, { sharpen: true, format: 'tiff' });
    const png = await runImageBatch(path.join(dir, 'png16'), bytes, { sharpen: true, format: 'png' });
    expect([tiff.itemErrors, png.itemErrors]).toEqual([[], []]);
    const tiled = await runTiledInProcess(src16, imageParams({ sharpen: true, format: 'tiff', tile_size: 64 }), path.join(dir, 'tiled16'), { slots: 2 });
    expect((await comparePixels(png.outputs[0]!.path, tiled.output)).maxDiff).toBe(0);
    expect((await comparePixels(tiff.outputs[0]!.path, png.outputs[0]!.path)).maxDiff).toBe(0);
  });
});
