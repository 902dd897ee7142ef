/**
 * README, "Colour and metadata": a 16-bit RGB or grey source written as PNG or TIFF keeps 16 bits a
 * sample (its bands as at 8 bits), on the batch path and the tiled one, through a real cluster;
 * JPEG, WebP and AVIF hold 8 (a GIF is only ever written from a GIF), and greyscale makes 8-bit grey. Before, every result was 8-bit:
 * sharp converts to 8-bit sRGB at the very end unless told a 16-bit space, and a 16-bit scan or
 * camera export lost the low byte of every sample.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../../coordinator/kinds/image.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { imageProcessor } from '../../worker/processors/image.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { greyIcc, withPngIcc } from '../helpers/icc.js';
import { runKindInProcess } from '../helpers/media.js';
import { fromSamples16, samples16 } from '../helpers/sixteen.js';
import { tiff16 } from '../helpers/tiff16.js';
import { isPlanErrors, WORKER_FEATURES, type SpoolFile } from '../../shared/job-kind.js';
import { IMAGE_16BIT_FEATURE } from '../../shared/media/tile-plan.js';
import { createLogger } from '../../shared/logger.js';
import { resolveLimits } from '../../shared/limits.js';

const W = 320;
const H = 240;
let dir: string;
let rgb16: string;
let grey16: string;
let cluster: TestCluster | undefined;

/** 16-bit samples whose low byte carries detail (a gradient plus noise below the 8-bit step). */
function sixteenBitRaw(channels: number): Uint16Array {
  const raw = new Uint16Array(W * H * channels);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < channels; c++) {
        const i = (y * W + x) * channels + c;
        raw[i] = Math.min(65535, x * 190 + y * 37 * (c + 1) + ((i * 7919) % 251));
      }
    }
  }
  return raw;
}

async function write16(file: string, channels: 1 | 3, icc?: Buffer): Promise<string> {
  const png = await fromSamples16(sixteenBitRaw(channels), W, H, channels).png({ compressionLevel: 1 }).toBuffer();
  await writeFile(file, icc ? withPngIcc(png, icc) : png);
  return file;
}

/** How many samples are not a multiple of 257 (an 8-bit value widened): 0 for an 8-bit image in 16-bit clothes. */
function lowByteDetail(s: Uint16Array): number {
  let n = 0;
  for (const v of s) if (v % 257 !== 0) n++;
  return n;
}

const spec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;

async function run(file: string, params: Record<string, unknown>, tiled = false): Promise<string> {
  if (tiled) process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
  else delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
  const r = await runKindInProcess(imageKind, imageProcessor, spec(params), [file], { dir, slots: 2 });
  expect(r.errors).toEqual([]);
  return r.outputs[0]!.path;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-16bit-out-'));
  rgb16 = await write16(path.join(dir, 'scan.png'), 3);
  grey16 = await write16(path.join(dir, 'xray.png'), 1);
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
  delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
});

describe('16-bit sources keep 16 bits in PNG and TIFF', () => {
  it('the fixtures hold the 16-bit samples they were made of, every one', async () => {
    for (const [file, channels] of [[rgb16, 3], [grey16, 1]] as const) {
      const want = sixteenBitRaw(channels);
      expect(Buffer.from((await samples16(file)).buffer).equals(Buffer.from(want.buffer)), file).toBe(true);
    }
  });

  it.each([
    ['png', {}],
    ['tiff', {}],
    ['png', { width: 200, blur: 1.2, sharpen: true }],
    ['tiff', { width: 200, sharpen: true, hue: 30, brightness: 1.1 }],
    ['png', { rotate: 90, flop: true, crop: { left: 10, top: 20, width: 200, height: 150 } }],
  ])('%s %j: 16-bit, the same samples as the same sharp pipeline at 16 bits', async (format, ops) => {
    const out = await run(rgb16, { format, ...ops });
    const m = await sharp(out).metadata();
    expect([m.format, m.depth, m.space, m.channels]).toEqual([format, 'ushort', 'rgb16', 3]);
    const s = await samples16(out);
    expect(lowByteDetail(s)).toBeGreaterThan(s.length / 2);
    // Without operations, the source's own samples, every one of them.
    if (Object.keys(ops).length === 0) expect(Buffer.from(s.buffer, s.byteOffset, s.byteLength).equals(Buffer.from((await samples16(rgb16)).buffer))).toBe(true);
  });

  it.each(['jpeg', 'webp', 'avif'])('%s holds 8 bits: written at 8', async (format) => {
    const m = await sharp(await run(rgb16, { format, width: 100 })).metadata();
    expect([m.format === 'heif' ? 'avif' : m.format, m.depth]).toEqual([format, 'uchar']);
  });

  it('a 16-bit source with alpha padded (a contain box, a turn off the right angles) stays 8-bit: its padding opaque', async () => {
    const rgba = new Uint16Array(W * H * 4);
    for (let i = 0; i < W * H; i++) rgba.set([(i * 37) % 65536, (i * 101) % 65536, (i * 7) % 65536, 20000 + ((i * 13) % 45000)], i * 4);
    const src = path.join(dir, 'rgba16.png');
    await fromSamples16(rgba, W, H, 4).png().toFile(src);
    for (const ops of [{ width: 200, height: 200, fit: 'contain' }, { rotate: 30 }]) {
      const out = await run(src, { format: 'png', ...ops });
      const m = await sharp(out).metadata();
      expect([m.depth, m.channels], JSON.stringify(ops)).toEqual(['uchar', 4]);
      // sharp pads 16-bit alpha with 65280 of 65535; at 8 bits the corner is opaque black.
      expect([...(await sharp(out).raw().toBuffer()).subarray(0, 4)]).toEqual([0, 0, 0, 255]);
    }
    // Not padded: 16-bit, the alpha's low byte kept.
    const plain = await run(src, { format: 'png', width: 200 });
    expect((await sharp(plain).metadata()).depth).toBe('ushort');
  });

  it('a 16-bit CMYK source sharpened into TIFF is written at 8 bits, not as a float TIFF that reads back white', async () => {
    const cmyk = new Uint16Array(64 * 32 * 4);
    for (let i = 0; i < cmyk.length; i++) cmyk[i] = (i * 997) % 65536;
    const src = path.join(dir, 'cmyk16.tif');
    await writeFile(src, tiff16(64, 32, 4, 5, cmyk, [[332, 3, 1, [1]]]));
    expect((await sharp(src).metadata()).space).toBe('cmyk');
    const plain = await run(src, { format: 'tiff' });
    const sharpened = await run(src, { format: 'tiff', sharpen: true });
    const m = await sharp(sharpened).metadata();
    expect([m.depth, m.space]).toEqual(['uchar', 'srgb']);
    // Observed: a 32-bit float TIFF of 0..255 values, its mean read back 224.8 against 90 unsharpened.
    const mean = async (f: string): Promise<number> => (await sharp(f).stats()).channels.slice(0, 3).reduce((n, c) => n + c.mean, 0) / 3;
    expect(Math.abs((await mean(sharpened)) - (await mean(plain)))).toBeLessThan(5);
  });

  it('greyscale is 8-bit grey, as sharp makes it', async () => {
    const m = await sharp(await run(rgb16, { format: 'png', grayscale: true })).metadata();
    expect(m.depth).toBe('uchar');
  });

  it('a 16-bit grey source is written as 16-bit RGB, as an 8-bit grey one is written as 8-bit RGB', async () => {
    const m = await sharp(await run(grey16, { format: 'tiff', blur: 0.8 })).metadata();
    expect([m.depth, m.space, m.channels]).toEqual(['ushort', 'rgb16', 3]);
    const s = await samples16(await run(grey16, { format: 'png' }));
    const g = await samples16(grey16);
    // Each pixel's three bands are the grey sample.
    for (let i = 0; i < g.length; i += 97) expect([s[i * 3], s[i * 3 + 1], s[i * 3 + 2]]).toEqual([g[i], g[i], g[i]]);
  });

  it('with --keep-metadata: a Display P3 source keeps its profile and its unconverted 16-bit samples; a grey one its profile in one 16-bit band', async () => {
    const p3 = (await sharp(await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }).withIccProfile('p3').png().toBuffer()).metadata()).icc!;
    const tagged = await write16(path.join(dir, 'p3.png'), 3, p3);
    const out = await run(tagged, { format: 'tiff', keep_metadata: true });
    const m = await sharp(out).metadata();
    expect([m.depth, m.space, m.channels, m.icc?.equals(p3)]).toEqual(['ushort', 'rgb16', 3, true]);
    const s = await samples16(out);
    expect(Buffer.from(s.buffer, s.byteOffset, s.byteLength).equals(Buffer.from((await samples16(rgb16)).buffer))).toBe(true);

    const grey = await write16(path.join(dir, 'grey-gamma.png'), 1, greyIcc(1.8));
    const g = await sharp(await run(grey, { format: 'png', keep_metadata: true, width: 160 })).metadata();
    expect([g.depth, g.space, g.channels, Boolean(g.icc)]).toEqual(['ushort', 'grey16', 1, true]);
  });

  it('without --keep-metadata, a Display P3 source is converted to sRGB at 16 bits', async () => {
    const p3 = (await sharp(await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }).withIccProfile('p3').png().toBuffer()).metadata()).icc!;
    const out = await run(await write16(path.join(dir, 'p3-default.png'), 3, p3), { format: 'png' });
    const m = await sharp(out).metadata();
    expect([m.depth, m.icc]).toEqual(['ushort', undefined]);
    const s = await samples16(out);
    expect(lowByteDetail(s)).toBeGreaterThan(s.length / 2);
    // Converted: not the P3 numbers (a P3 red is a more saturated sRGB red).
    expect(Buffer.from(s.buffer, s.byteOffset, s.byteLength).equals(Buffer.from((await samples16(rgb16)).buffer))).toBe(false);
  });

  it('a 16-bit multi-page TIFF keeps its pages, each at 16 bits', async () => {
    const pages = path.join(dir, 'pages.tif');
    const frame = sixteenBitRaw(3);
    const stack = new Uint16Array(frame.length * 3);
    for (let k = 0; k < 3; k++) stack.set(frame, k * frame.length);
    await fromSamples16(stack, W, H * 3, 3, H).tiff({ compression: 'lzw' }).toFile(pages);
    expect((await sharp(pages).metadata()).pages).toBe(3);
    const m = await sharp(await run(pages, { format: 'tiff', width: 160 })).metadata();
    expect([m.pages, m.depth, m.width]).toEqual([3, 'ushort', 160]);
  });

  it('tiled (past the threshold): 16-bit, sample for sample the batch path\'s PNG and TIFF; a pyramid\'s tiles stay 8-bit', async () => {
    for (const format of ['png', 'tiff']) {
      const params = { format, blur: 1.5, sharpen: true, tile_size: 96 };
      const whole = await run(rgb16, params);
      const tiled = await run(rgb16, params, true);
      expect((await sharp(tiled).metadata()).depth).toBe('ushort');
      expect(Buffer.from((await samples16(tiled)).buffer).equals(Buffer.from((await samples16(whole)).buffer)), format).toBe(true);
    }
    const zip = await run(rgb16, { format: 'png', tiled_output: 'deepzoom' }, true);
    const unzipped = path.join(dir, 'dz');
    const { execFile } = await import('node:child_process');
    await new Promise<void>((resolve, reject) => execFile('python3', ['-m', 'zipfile', '-e', zip, unzipped], (err) => (err ? reject(err) : resolve())));
    const find = async (d: string): Promise<string[]> =>
      (await readdir(d, { withFileTypes: true })).flatMap((e) => (e.isDirectory() ? [] : [path.join(d, e.name)])).concat(
        ...(await Promise.all((await readdir(d, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => find(path.join(d, e.name))))),
      );
    const tiles = (await find(unzipped)).filter((f) => f.endsWith('.png'));
    expect(tiles.length).toBeGreaterThan(1);
    for (const t of tiles.slice(0, 5)) expect((await sharp(t).metadata()).depth).toBe('uchar');
  });

  it('only where every image worker writes 16 bits: with an older worker in the cluster, 8 bits on both paths; 16-bit subtasks require the feature', async () => {
    const older = WORKER_FEATURES.filter((f) => f !== IMAGE_16BIT_FEATURE);
    const inputs: SpoolFile[] = [{ name: 'scan.png', path: rgb16, size: 1, sha256: '' }];
    for (const [features, depth] of [[older, 'uchar'], [WORKER_FEATURES, 'ushort']] as const) {
      for (const tiled of [false, true]) {
        const params = { format: 'png', ...(tiled ? { tile_size: 96 } : {}) };
        const r = await runKindInProcess(imageKind, imageProcessor, spec(params), [rgb16], { dir, slots: 2, features });
        expect(r.errors).toEqual([]);
        expect((await sharp(r.outputs[0]!.path).metadata()).depth, `${features.length} features, tiled ${tiled}`).toBe(depth);
        // Said, where 16 bits were possible and not made.
        expect(r.warnings.map((w) => w.message)).toEqual(depth === 'uchar' ? [expect.stringMatching(/^written at 8 bits a sample: no worker that writes 16-bit results \(feature image-16bit\)/)] : []);
        // What the plan asks of the workers: nothing of an older cluster's, the feature of this one's.
        const planned = await imageKind.plan({
          jobId: 'j', params: imageKind.validate(params as never, spec(params)), spec: spec(params), inputs,
          cluster: { workers: 2, slots: 2, encoders: new Set(), encoderSets: [], features: new Set(features) },
          workDir: await mkdtemp(path.join(dir, 'plan-')), signal: new AbortController().signal, log: createLogger('test', 'silent'), warn: () => undefined, limits: resolveLimits(),
        });
        const all = [...planned.subtasks];
        if (planned.later) for await (const s of planned.later) if (!isPlanErrors(s)) all.push(...(Array.isArray(s) ? s : [s]));
        expect(all.length).toBeGreaterThan(tiled ? 1 : 0);
        for (const s of all) {
          expect(s.requires?.features ?? [], s.label).toEqual(depth === 'ushort' ? [IMAGE_16BIT_FEATURE] : []);
          expect((s.plan as { sixteenBit?: boolean }).sixteenBit, s.label).toBe(depth === 'ushort' ? true : undefined);
        }
      }
    }
  });

  it('bit_depth 8 writes every result at 8 bits, batch and tiled; 16 is the default; others are refused naming the field', async () => {
    for (const params of [{ format: 'png', bit_depth: 8 }, { format: 'tiff', bit_depth: 8, tile_size: 96 }]) {
      expect((await sharp(await run(rgb16, params, 'tile_size' in params)).metadata()).depth, JSON.stringify(params)).toBe('uchar');
    }
    expect((await sharp(await run(rgb16, { format: 'png', bit_depth: 16 })).metadata()).depth).toBe('ushort');
    // Asked for, 8 bits are not warned of; nor are they where no worker was there to make 16.
    const asked = await runKindInProcess(imageKind, imageProcessor, spec({ format: 'png', bit_depth: 8 }), [rgb16], { dir, slots: 2, features: [] });
    expect(asked.warnings).toEqual([]);
    const none = await runKindInProcess(imageKind, imageProcessor, spec({ format: 'png' }), [rgb16], { dir, slots: 2, features: [] });
    expect(none.warnings.map((w) => [w.input, w.message.slice(0, 27)])).toEqual([['scan.png', 'written at 8 bits a sample:']]);
    for (const bad of [1, 12, 32]) {
      expect(() => imageKind.validate({ bit_depth: bad } as never, spec({ bit_depth: bad }))).toThrow(`image.bit_depth: ${bad} is not 8 or 16`);
    }
  });

  it('through a real cluster: `tessera submit image --format tiff` of a 16-bit PNG downloads a 16-bit TIFF, `--bit-depth 8` an 8-bit one', async () => {
    cluster = await startCluster({ workers: 1 });
    const out = path.join(dir, 'cluster-out');
    const r = await cluster.runCli(['submit', 'image', '--format', 'tiff', '--width', '200', rgb16, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const m = await sharp(path.join(out, 'scan.tif')).metadata();
    expect([m.format, m.depth, m.width]).toEqual(['tiff', 'ushort', 200]);
    const s = await samples16(path.join(out, 'scan.tif'));
    expect(lowByteDetail(s)).toBeGreaterThan(s.length / 2);
    const eight = path.join(dir, 'cluster-out-8');
    const r8 = await cluster.runCli(['submit', 'image', '--format', 'png', '--bit-depth', '8', rgb16, '-o', eight]);
    expect(r8.code, r8.stderr).toBe(0);
    expect((await sharp(path.join(eight, 'scan.png')).metadata()).depth).toBe('uchar');
    const wrong = await cluster.runCli(['submit', 'image', '--bit-depth', '12', rgb16, '-o', eight]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("'12' is invalid");
  });
});
