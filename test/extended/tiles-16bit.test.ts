/**
 * Tiled huge-image path on 16-bit sources: the tiles must see the same 16-bit samples as the
 * whole-image pipeline (which blurs and sharpens at 16 bits, then converts once at the end), so the
 * stitched result is pixel-identical to the one-process result.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyEncoding, applyPipeline } from '../../shared/media/image-pipeline.js';
import type { TileImageParams } from '../../shared/media/tile-pipeline.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { fromSamples16, samples16 } from '../helpers/sixteen.js';
import { tiffHeader, tiffIfd } from '../helpers/tiff.js';
import type { SpoolFile, SubtaskOutcome } from '../../shared/job-kind.js';
import { allTiles, mergeTiles, planTiles } from '../../coordinator/kinds/image-tiles.js';
import { processTile } from '../../worker/processors/image-tile.js';
import type { TilePlan } from '../../shared/media/tile-plan.js';
import { tileConfig, type TileConfig } from '../../shared/media/tile-config.js';
import { vipsHeader } from '../../shared/media/tile-vips-file.js';
import { comparePixels, imageParams, makeSource, runTiledInProcess, runWhole } from '../tiles-helpers.js';

let dir: string;
let src16: string;
let grey16: string;
let rgba16: string;
let px: Uint16Array;
let rgbaPx: Uint16Array;
let run = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiles16-'));
  const src8 = await makeSource(path.join(dir, 'source8.png'), 1031, 887);
  // 16-bit with detail below the 8-bit step: noise in the low byte, so that rounding to 8 bits
  // before the blur changes results.
  const rgb = await sharp(src8).toColourspace('rgb16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  const { width, height } = rgb.info;
  px = new Uint16Array(rgb.data.buffer, rgb.data.byteOffset, rgb.data.length / 2).slice();
  for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(65535, px[i]! + ((i * 7919) % 509) - 254));
  src16 = path.join(dir, 'source16.png');
  await fromSamples16(px, width, height, 3).png({ compressionLevel: 1 }).toFile(src16);
  grey16 = path.join(dir, 'grey16.png');
  await sharp(src16).toColourspace('grey16').png({ compressionLevel: 1 }).toFile(grey16);
  // With an alpha band that varies in its low byte as well.
  rgbaPx = new Uint16Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgbaPx.set(px.subarray(i * 3, i * 3 + 3), i * 4);
    rgbaPx[i * 4 + 3] = 20000 + ((i * 104729) % 45000);
  }
  rgba16 = path.join(dir, 'rgba16.png');
  await fromSamples16(rgbaPx, width, height, 4).png({ compressionLevel: 1 }).toFile(rgba16);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MODES: [string, Partial<TileConfig>, number][] = [
  ['strips read from the source', { stripRead: 'source' }, 0],
  ['decode-once strips', { stripRead: 'intermediate' }, 0],
  ['forced 300 px grid', {}, 300],
];

/** Where each mode's workers read their pixels. */
function readOf(config: Partial<TileConfig>, tile: number): string {
  return config.stripRead === 'source' && tile === 0 ? 'source' : 'intermediate';
}

const OPS = [
  ['blur(3) + sharpen', { blur: 3, sharpen: true }],
  ['blur(2.5)', { blur: 2.5 }],
  ['greyscale + modulate', { grayscale: true, brightness: 1.1, saturation: 0.9 }],
  ['rotate 90 + flop + blur + sharpen', { rotate: 90, flop: true, blur: 1.5, sharpen: true }],
  ['crop + rotate 180 + blur + sharpen', { crop: { left: 101, top: 57, width: 699, height: 577 }, rotate: 180, blur: 1.5, sharpen: true }],
] as const;

async function tiledVsWhole(source: string, params: TileImageParams, config: Partial<TileConfig>) {
  const d = path.join(dir, `run-${run++}`);
  const tiled = await runTiledInProcess(source, params, d, { slots: 3, config });
  const whole = await runWhole(source, params, path.join(d, 'whole.png'));
  const [t, w] = await Promise.all([sharp(tiled.output).metadata(), sharp(whole).metadata()]);
  return { ...(await comparePixels(tiled.output, whole)), depths: [t.depth, w.depth], tiles: tiled.plans.length, reads: new Set(tiled.plans.map((p) => p.read)) };
}

describe('16-bit sources, tiled vs whole image, pixel-exact', () => {
  it('the fixtures really are 16-bit: every sample what it was made of, the low byte too', async () => {
    const m = await sharp(src16).metadata();
    expect([m.width, m.height, m.depth, m.channels]).toEqual([1031, 887, 'ushort', 3]);
    expect(Buffer.from((await samples16(src16)).buffer).equals(Buffer.from(px.buffer))).toBe(true);
    expect(Buffer.from((await samples16(rgba16)).buffer).equals(Buffer.from(rgbaPx.buffer))).toBe(true);
  });

  for (const [mode, config, tile] of MODES) {
    it.each(OPS)(`${mode}: %s (PNG out)`, async (_name, ops) => {
      const r = await tiledVsWhole(src16, imageParams({ ...ops, format: 'png', tile_size: tile }), config);
      expect(r.tiles).toBeGreaterThan(1);
      expect([...r.reads]).toEqual([readOf(config, tile)]);
      // The output has the whole-image pipeline's bit depth: 16 bits in PNG, unless made grey
      // (sharp's greyscale is 8-bit), compared sample for sample at that depth.
      expect(r.depths[0]).toBe(r.depths[1]);
      expect(r.depths[0]).toBe('grayscale' in ops ? 'uchar' : 'ushort');
      expect(r.depth).toBe('grayscale' in ops ? 8 : 16);
      expect(r.maxDiff).toBe(0);
    });
  }

  it.each(MODES)('%s: 16-bit grey, blur + sharpen', async (_mode, config, tile) => {
    const r = await tiledVsWhole(grey16, imageParams({ blur: 2, sharpen: true, format: 'png', tile_size: tile }), config);
    expect(r.depths).toEqual(['ushort', 'ushort']);
    expect(r.depth).toBe(16);
    expect([...r.reads]).toEqual([readOf(config, tile)]);
    expect(r.maxDiff).toBe(0);
  });

  it('resize (in the decode pass) + blur + sharpen: the resize also runs at 16 bits', async () => {
    const r = await tiledVsWhole(src16, imageParams({ width: 1013, blur: 2.5, sharpen: true, format: 'png' }), { stripRead: 'source' });
    expect([...r.reads]).toEqual(['intermediate']);
    expect(r.depth).toBe(16);
    expect(r.maxDiff).toBe(0);
  });

  it.each([
    ['16-bit multiband', 2, 0, 'ushort', 'multiband'],
    ['signed 16-bit LAB', 3, 21, 'short', 'labs'],
  ] as const)('a %s source is refused with INVALID_ARGUMENT naming it (its tiles would not be exact)', async (_name, format, type, depth, space) => {
    // A .v file by hand: sharp cannot write these, but libvips reads them.
    const w = 301;
    const h = 203;
    const head = vipsHeader(w, h, 3);
    head.writeUInt32LE(16, 16);
    head.writeUInt32LE(format, 20);
    head.writeUInt32LE(type, 28);
    const px = Buffer.alloc(w * h * 3 * 2);
    for (let i = 0; i < px.length / 2; i++) px.writeUInt16LE((i * 7919) % 30000, i * 2);
    const file = path.join(dir, `odd-${depth}.v`);
    await writeFile(file, Buffer.concat([head, px]));
    expect((await sharp(file).metadata()).depth).toBe(depth);
    const params = imageParams({ blur: 2, sharpen: true, format: 'png', tile_size: 128 });
    await expect(runTiledInProcess(file, params, path.join(dir, `run-${run++}`), { slots: 2 })).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      input: `odd-${depth}.v`,
      message: expect.stringContaining(`odd-${depth}.v: tiled processing is pixel-exact for 8-bit, 16-bit RGB or grey and float scRGB images, this one has ${depth} samples in ${space}`),
    });
  });

  it.each([8, 16] as const)('a %i-bit TIFF of five bands (RGB, alpha and a saved selection) is refused with INVALID_ARGUMENT naming it, not failed as INTERNAL', async (bits) => {
    const file = path.join(dir, `five-${bits}.tif`);
    const band = (v: number): Promise<Buffer> => sharp({ create: { width: 260, height: 190, channels: 3, background: { r: v, g: v, b: v } } }).extractChannel(0).raw().toBuffer();
    const rgb = bits === 8 ? await sharp(src16).resize(260, 190, { fit: 'fill' }).toColourspace('srgb').png().toBuffer() : src16;
    const five = sharp(rgb).resize(260, 190, { fit: 'fill' }).joinChannel([await band(200), await band(90)], { raw: { width: 260, height: 190, channels: 1 } });
    await (bits === 16 ? five.toColourspace('rgb16') : five).tiff({ compression: 'lzw' }).toFile(file);
    const m = await sharp(file).metadata();
    expect([m.channels, m.depth]).toEqual([5, bits === 16 ? 'ushort' : 'uchar']);
    await expect(runTiledInProcess(file, imageParams({ width: 200, format: 'png', tile_size: 64 }), path.join(dir, `run-${run++}`), { slots: 2 })).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      input: `five-${bits}.tif`,
      message: expect.stringContaining(`five-${bits}.tif: tiled processing takes RGB images of 3 band(s) and an alpha channel at most, this one has 5`),
    });
  });

  it('counts the bands by colour space: CMYK with alpha (five) is tiled as the batch path makes it, grey with alpha and one more (three) is refused naming it', async () => {
    // TIFFs of 8-bit bands with the first extra one alpha (ExtraSamples 2, unassociated), the rest
    // unspecified: what a print file or a saved selection is. sharp writes neither.
    const cmyka = path.join(dir, 'cmyka.tif');
    await writeFile(cmyka, tiffOf(300, 200, [20, 128, 200, 10, 99], 5));
    const grey3 = path.join(dir, 'grey3.tif');
    await writeFile(grey3, tiffOf(300, 200, [20, 128, 200], 1));
    expect(await Promise.all([cmyka, grey3].map(async (f) => { const m = await sharp(f).metadata(); return [m.channels, m.space, m.hasAlpha]; }))).toEqual([[5, 'cmyk', true], [3, 'b-w', true]]);
    const params = imageParams({ width: 240, format: 'png', tile_size: 64 });
    const r = await tiledVsWhole(cmyka, params, {});
    expect(r.maxDiff).toBe(0);
    await expect(runTiledInProcess(grey3, params, path.join(dir, `run-${run++}`), { slots: 2 })).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      input: 'grey3.tif',
      message: expect.stringContaining('grey3.tif: tiled processing takes grey images of 1 band(s) and an alpha channel at most, this one has 3'),
    });
  });

  it('a float scRGB (linear light) source is exact through geometry, and refused with blur, sharpen or colour steps, naming it', async () => {
    // libvips' own sRGB -> scRGB conversion: 32-bit float, linear light, 0..1, real content (an
    // earlier fixture fed 0..1 floats as 0..255 sRGB and came out all black: it could not fail).
    const file = path.join(dir, 'linear.tif');
    await sharp(src16).resize(331).toColourspace('scrgb').tiff({ compression: 'lzw' }).toFile(file);
    const m = await sharp(file).metadata();
    expect([m.depth, m.space]).toEqual(['float', 'scrgb']);
    expect(Math.max(...(await sharp(await sharp(file).png().toBuffer()).stats()).channels.map((c) => c.max))).toBeGreaterThan(100);
    for (const tile of [0, 64]) {
      const r = await tiledVsWhole(file, imageParams({ rotate: 90, flop: true, width: 300, format: 'png', tile_size: tile }), { stripRead: 'source' });
      expect(r.maxDiff).toBe(0);
    }
    // The whole image blurs (and modulates) in linear light, the tiles an 8-bit sRGB intermediate: up to 44 levels apart.
    for (const p of [{ blur: 2, tile_size: 64 }, { sharpen: true }, { saturation: 1.3 }]) {
      await expect(runTiledInProcess(file, imageParams({ ...p, format: 'png' }), path.join(dir, `run-${run++}`), { slots: 2, config: { stripRead: 'source' } })).rejects.toMatchObject({
        codeName: 'INVALID_ARGUMENT',
        input: 'linear.tif',
        message: expect.stringContaining('linear.tif: tiled processing of a float scRGB (linear light) image is pixel-exact only for geometry (resize, crop, rotate, flip), not '),
      });
    }
  });

  it.each(MODES)('%s: TIFF out of a 16-bit RGBA source is 16-bit, its alpha too, sample for sample the batch path\'s TIFF', async (_mode, config, tile) => {
    const d = path.join(dir, `run-${run++}`);
    const params = imageParams({ blur: 2, sharpen: true, rotate: 270, format: 'tiff', tile_size: tile });
    const tiled = await runTiledInProcess(rgba16, params, d, { slots: 3, config });
    expect(tiled.plans.length).toBeGreaterThan(1);
    const whole = path.join(d, 'whole.tif');
    await applyEncoding(applyPipeline(sharp(rgba16), params), params, 'tiff', { sixteenBit: 'rgb16' }).toFile(whole);
    const [t, w] = await Promise.all([sharp(tiled.output).metadata(), sharp(whole).metadata()]);
    expect([t.format, t.depth, t.channels, t.hasAlpha]).toEqual(['tiff', 'ushort', 4, true]);
    expect([w.depth, w.channels]).toEqual(['ushort', 4]);
    const r = await comparePixels(tiled.output, whole);
    expect(r.depth).toBe(16);
    expect(r.maxDiff).toBe(0);
  });

  it('a tile that comes back 8-bit among 16-bit ones (a worker of an older version) fails the input as DATA_LOSS, not a dark stripe', async () => {
    const d = path.join(dir, `run-${run++}`);
    const signal = new AbortController().signal;
    const input: SpoolFile = { name: 'source16.png', path: src16, size: 0, sha256: '' };
    const subtasks = await allTiles(await planTiles({ input, params: imageParams({ blur: 1, format: 'png' }), workDir: path.join(d, 'job'), slots: 2, signal, config: { ...tileConfig({}), thresholdPixels: 1, stripRead: 'source' }, sixteenBit: true }));
    expect(subtasks.length).toBe(2);
    const outcomes: SubtaskOutcome[] = [];
    for (const [index, sub] of subtasks.entries()) {
      const workDir = path.join(d, `sub-${index}`);
      await mkdir(workDir, { recursive: true });
      const r = await processTile({ plan: sub.plan as TilePlan, inputs: sub.inputs.map((f) => ({ name: f.name, path: f.path, size: f.size })), workDir, signal });
      let out = r.outputs[0]!.path;
      expect((await sharp(out).metadata()).depth).toBe('ushort');
      if (index === 1) {
        // What a worker that writes every tile at 8 bits sends: the same tile, 8-bit sRGB.
        const eight = path.join(workDir, 'eight.v');
        await sharp(out).toFile(eight);
        expect((await sharp(eight).metadata()).depth).toBe('uchar');
        out = eight;
      }
      outcomes.push({ index, phase: 0, label: sub.label, plan: sub.plan, items: sub.items, ok: true, outputs: [{ name: 'tile.v', path: out, size: 0, sha256: '' }], itemErrors: [], result: r.result, worker: 'in-process' });
    }
    const outDir = path.join(d, 'out');
    await mkdir(outDir, { recursive: true });
    const merged = await mergeTiles(outcomes, outDir, signal, path.join(d, 'job'));
    expect(merged.outputs).toEqual([]);
    expect(merged.errors).toEqual([{ input: 'source16.png', code: 'DATA_LOSS', message: 'source16.png: tile 2 came back with samples of band format 0, the others 2' }]);
  });

  it.each(MODES)('%s: JPEG out decodes to the whole-image JPEG pixels', async (_mode, config, tile) => {
    const d = path.join(dir, `run-${run++}`);
    const params = imageParams({ blur: 3, sharpen: true, format: 'jpeg', quality: 90, tile_size: tile });
    const tiled = await runTiledInProcess(src16, params, d, { slots: 3, config });
    expect(tiled.plans.every((p) => p.read === readOf(config, tile))).toBe(true);
    const whole = path.join(d, 'whole.jpg');
    await applyEncoding(applyPipeline(sharp(src16), params), params, 'jpeg').toFile(whole);
    const r = await comparePixels(tiled.output, whole);
    expect(r.maxDiff).toBe(0);
  });
});

/**
 * A little-endian, uncompressed, one-strip TIFF of `width` x `height` 8-bit pixels, every one
 * `pixel` (its samples), of `photometric` (1 grey, 2 RGB, 5 CMYK); the samples beyond the colour
 * space's are extra: the first alpha (unassociated), the others unspecified.
 */
function tiffOf(width: number, height: number, pixel: number[], photometric: 1 | 2 | 5): Buffer {
  const spp = pixel.length;
  const extra = spp - (photometric === 5 ? 4 : photometric === 2 ? 3 : 1);
  const px = Buffer.alloc(width * height * spp);
  for (let i = 0; i < px.length; i++) px[i] = pixel[i % spp]!;
  const bpsAt = 8 + px.length;
  const extraAt = bpsAt + 2 * spp;
  const ifdAt = extraAt + 2 * extra + ((extraAt + 2 * extra) % 2);
  const ifd = tiffIfd([
    [256, 3, 1, width], [257, 3, 1, height], [258, 3, spp, bpsAt], [259, 3, 1, 1], [262, 3, 1, photometric],
    [273, 4, 1, 8], [277, 3, 1, spp], [278, 3, 1, height], [279, 4, 1, px.length], [284, 3, 1, 1],
    // Up to two extra samples in the entry itself: alpha, then unspecified.
    [338, 3, extra, extra <= 2 ? [2, 0] : extraAt],
  ]);
  const bps = Buffer.alloc(2 * spp);
  for (let k = 0; k < spp; k++) bps.writeUInt16LE(8, 2 * k);
  const extras = Buffer.alloc(2 * extra);
  for (let k = 0; k < extra; k++) extras.writeUInt16LE(k === 0 ? 2 : 0, 2 * k);
  const body = Buffer.concat([tiffHeader(ifdAt), px, bps, extras]);
  return Buffer.concat([body, Buffer.alloc(ifdAt - body.length), ifd]);
}
