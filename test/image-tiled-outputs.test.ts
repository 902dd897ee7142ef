/**
 * Tiled-path outputs, in-process (the real planner, worker processor and merger): pyramids of any
 * source format, the source's resolution kept, greyscale strips as three-band sRGB, the IIIF id,
 * which sources are read as strips straight from the file,
 * and a truncated source read as strips failing as the input's own INVALID_ARGUMENT.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpoolFile, SubtaskOutcome } from '../shared/job-kind.js';
import { allTiles, mergeTiles, planTiles } from '../coordinator/kinds/image-tiles.js';
import { processTile } from '../worker/processors/image-tile.js';
import { applyEncoding, applyPipeline } from '../shared/media/image-pipeline.js';
import { encodeTiled } from '../shared/media/tile-stitch.js';
import { tileConfig } from '../shared/media/tile-config.js';
import type { TilePlan } from '../shared/media/tile-plan.js';
import { comparePixels, imageParams, makeSource, runTiledInProcess } from './tiles-helpers.js';

let dir: string;
let run = 0;
const FROM_SOURCE = { stripRead: 'source' } as const;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-image-tiled-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const next = (): string => path.join(dir, `run-${run++}`);

/** A 300 dpi source (pHYs / JFIF density), noisy so that every placement error shows. */
async function dpiSource(name: string, format: 'png' | 'jpeg'): Promise<string> {
  const plain = await makeSource(path.join(dir, `plain-${name}`), 331, 257, format);
  const file = path.join(dir, name);
  await sharp(plain).withMetadata({ density: 300 }).toFormat(format).toFile(file);
  return file;
}

describe('the tiled path keeps the source resolution as the batch path does', () => {
  it.each([
    ['png output, --tile 64', 'png', { tile_size: 64, format: 'png' }, {}],
    ['png output, strips read from the source', 'png', { blur: 1, format: 'png' }, FROM_SOURCE],
    ['jpeg output with keep_metadata, --tile 64', 'jpeg', { tile_size: 64, format: 'jpeg', keep_metadata: true }, {}],
    ['jpeg output with keep_metadata, strips from the source', 'jpeg', { format: 'jpeg', keep_metadata: true }, FROM_SOURCE],
    ['png output, strips from the decoded intermediate', 'png', { format: 'png', sharpen: true }, { stripRead: 'intermediate' as const }],
    ['tiff output, --tile 64', 'png', { tile_size: 64, format: 'tiff' }, {}],
  ] as const)('%s', async (_label, srcFormat, p, config) => {
    const src = await dpiSource(`dpi-${run}.${srcFormat === 'png' ? 'png' : 'jpg'}`, srcFormat);
    const params = imageParams(p);
    const d = next();
    const tiled = await runTiledInProcess(src, params, d, { slots: 2, config });
    const batch = path.join(d, `batch.${params.format}`);
    await applyEncoding(applyPipeline(sharp(src), params), params, params.format || 'png', { density: (await sharp(src).metadata()).density }).toFile(batch);
    const [t, b] = [await sharp(tiled.output).metadata(), await sharp(batch).metadata()];
    expect(b.density).toBe(300);
    expect(t.density).toBe(b.density);
    // (A JPEG's Huffman tables differ, its pixels do not.)
    expect((await comparePixels(tiled.output, batch)).maxDiff).toBe(0);
  });

  it('a DeepZoom pyramid records the source resolution (vips-properties xres)', async () => {
    const src = await dpiSource('dpi-dz.png', 'png');
    const tiled = await runTiledInProcess(src, imageParams({ tiled_output: 'deepzoom', format: 'png' }), next());
    const zip = await readFile(tiled.output);
    // 300 dpi = 11.811 px/mm; libvips' default would say 1.
    expect(zip.toString('latin1')).toMatch(/<name>xres<\/name>\s*<value type="gdouble">11\.81/);
  });
});

describe('greyscale strips', () => {
  it('a greyscale JPEG read as strips from the source is the whole-image JPEG byte for byte, three-band sRGB', async () => {
    const src = await makeSource(path.join(dir, 'grey-src.jpg'), 401, 333, 'jpeg');
    const params = imageParams({ grayscale: true, format: 'jpeg', quality: 80 });
    const d = next();
    const tiled = await runTiledInProcess(src, params, d, { slots: 2, config: FROM_SOURCE });
    expect(tiled.plans.map((p) => [p.read, p.deliver])).toEqual([
      ['source', 'jpeg'],
      ['source', 'jpeg'],
    ]);
    const same = path.join(d, 'same.jpg');
    await encodeTiled(applyPipeline(sharp(src), params), 'jpeg', 'image', 80, 401, 333, 3).toFile(same);
    expect((await sharp(tiled.output).metadata()).channels).toBe(3);
    expect((await readFile(tiled.output)).equals(await readFile(same))).toBe(true);
  });

  it('a greyscale PNG stitched from raw strips has three bands like the batch output, same pixels', async () => {
    const src = await makeSource(path.join(dir, 'grey-src.png'), 301, 211);
    const params = imageParams({ grayscale: true, blur: 1, format: 'png' });
    const d = next();
    const tiled = await runTiledInProcess(src, params, d, { slots: 2, config: FROM_SOURCE });
    const batch = path.join(d, 'batch.png');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'png').toFile(batch);
    expect((await sharp(batch).metadata()).channels).toBe(3);
    expect((await sharp(tiled.output).metadata()).channels).toBe(3);
    expect((await comparePixels(tiled.output, batch)).maxDiff).toBe(0);
  });

  it('a greyscale PNG with alpha keeps its alpha, tiled as untiled (strips from the intermediate, whose prefix does the greyscale)', async () => {
    const [w, h] = [301, 211];
    const rgba = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([(i * 7) % 256, (i >> 5) % 256, 90, i % w < 60 ? 0 : i % w < 150 ? 128 : 255], i * 4);
    const src = path.join(dir, 'grey-alpha.png');
    await sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toFile(src);
    const params = imageParams({ grayscale: true, format: 'png' });
    const d = next();
    const tiled = await runTiledInProcess(src, params, d, { slots: 2, config: FROM_SOURCE });
    expect(tiled.plans.every((p) => p.read !== 'source'), "sharp's raw output of a greyscale pipeline keeps one band, not the alpha").toBe(true);
    const batch = path.join(d, 'batch.png');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'png').toFile(batch);
    expect((await sharp(tiled.output).metadata()).hasAlpha).toBe(true);
    expect((await comparePixels(tiled.output, batch)).maxDiff).toBe(0);
  });
});

describe('animations', () => {
  it('an animated GIF gives its first frame tiled as untiled, in a pyramid too; one that would keep its frames is refused, naming why', async () => {
    const frames = await Promise.all([0, 1, 2].map((i) => sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 80 * i, g: 100, b: 50 } } }).raw().toBuffer()));
    const src = path.join(dir, 'anim.gif');
    await sharp(Buffer.concat(frames), { raw: { width: 300, height: 600, channels: 3, pageHeight: 200 } }).gif({ loop: 0, delay: [100, 100, 100] }).toFile(src);
    expect((await sharp(src).metadata()).pages).toBe(3);
    const params = imageParams({ format: 'png', tile_size: 128 });
    const tiled = await runTiledInProcess(src, params, next());
    const batch = path.join(dir, 'anim-batch.png');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'png').toFile(batch);
    expect(await comparePixels(tiled.output, batch)).toMatchObject({ width: 300, height: 200, maxDiff: 0 });
    const zip = await readFile((await runTiledInProcess(src, imageParams({ tiled_output: 'deepzoom' }), next())).output);
    expect(zip.includes(Buffer.from('Width="300"'))).toBe(true);
    expect(zip.includes(Buffer.from('Height="200"'))).toBe(true);
    for (const keeps of [{ format: 'webp' }, {}] as const) {
      await expect(runTiledInProcess(src, imageParams({ ...keeps, tile_size: 128 }), next()), JSON.stringify(keeps)).rejects.toMatchObject({
        codeName: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/^anim\.gif: an animation keeps its frames only untiled/),
      });
    }
  });
});

describe('pyramids', () => {
  it('a TIFF source (its own format by default) gets JPEG tiles, an AVIF with alpha PNG tiles', async () => {
    const tif = path.join(dir, 'scan.tif');
    await sharp(await makeSource(path.join(dir, 'scan-src.png'), 300, 200)).tiff().toFile(tif);
    const z = await readFile((await runTiledInProcess(tif, imageParams({ tiled_output: 'deepzoom' }), next())).output);
    expect(z.includes(Buffer.from('.jpeg'))).toBe(true);
    expect(z.includes(Buffer.from('Format="jpeg"'))).toBe(true);
    const alpha = path.join(dir, 'alpha.avif');
    await sharp(Buffer.alloc(120 * 90 * 4, 0x80), { raw: { width: 120, height: 90, channels: 4 } }).avif({ effort: 0 }).toFile(alpha);
    expect((await sharp(alpha).metadata()).hasAlpha).toBe(true);
    const za = await readFile((await runTiledInProcess(alpha, imageParams({ tiled_output: 'deepzoom' }), next())).output);
    expect(za.includes(Buffer.from('Format="png"'))).toBe(true);
  });

  it('an IIIF pyramid takes its info.json id from iiif_id', async () => {
    const src = await makeSource(path.join(dir, 'iiif.png'), 200, 150);
    const out = await runTiledInProcess(src, imageParams({ tiled_output: 'iiif', iiif_id: 'https://images.example.org/iiif/' }), next());
    const zip = (await readFile(out.output)).toString('latin1');
    expect(zip).toContain('"id": "https://images.example.org/iiif/iiif"');
    expect(zip).not.toContain('example.com');
  });

  it("an IIIF pyramid's id and folder are a URI path segment whatever the input's name: a space or '#' becomes '_'", async () => {
    const named = await makeSource(path.join(dir, 'scan #2 v1%.png'), 200, 150);
    const out = await runTiledInProcess(named, imageParams({ tiled_output: 'iiif', iiif_id: 'https://images.example.org/iiif' }), next());
    expect(path.basename(out.output)).toBe('scan #2 v1%.zip');
    const zip = (await readFile(out.output)).toString('latin1');
    // Raw, '#' would end the path and a viewer would ask for tiles of "scan "; encoded, the id would
    // not name the folder a static server finds the tiles in.
    const id = /"id": "([^"]*)"/.exec(zip)?.[1];
    expect(id).toBe('https://images.example.org/iiif/scan__2_v1_');
    expect(new URL(id!).pathname).toBe('/iiif/scan__2_v1_');
    expect(zip).toContain('scan__2_v1_/info.json');
  });
});

describe('strips read straight from the source', () => {
  it('are for JPEG, PNG and TIFF only: libvips decodes a WebP whole, so each worker would hold the image', async () => {
    const png = await makeSource(path.join(dir, 'strip-src.png'), 640, 480);
    const cases = [
      ['photo.webp', (s: sharp.Sharp) => s.webp({ lossless: true }), 'intermediate'],
      ['photo.tiff', (s: sharp.Sharp) => s.tiff({ compression: 'lzw' }), 'source'],
      ['photo.png', (s: sharp.Sharp) => s.png(), 'source'],
    ] as const;
    for (const [name, encode, read] of cases) {
      const file = path.join(dir, name);
      await encode(sharp(png)).toFile(file);
      const input: SpoolFile = { name, path: file, size: 0, sha256: '' };
      const config = { ...tileConfig({}), thresholdPixels: 1, ...FROM_SOURCE };
      const subtasks = await allTiles(await planTiles({ input, params: imageParams({ blur: 1, format: 'png' }), workDir: path.join(next(), 'job'), slots: 2, signal: new AbortController().signal, config }));
      expect(subtasks.length, name).toBeGreaterThan(1);
      expect(new Set(subtasks.map((s) => (s.plan as TilePlan).read)), name).toEqual(new Set([read]));
    }
  });
});

describe('a truncated source read as strips', () => {
  it('fails as INVALID_ARGUMENT naming the input (not retried), and the merge reports that error, not a DATA_LOSS', async () => {
    const whole = await makeSource(path.join(dir, 'whole.jpg'), 640, 640, 'jpeg');
    const bytes = await readFile(whole);
    const trunc = path.join(dir, 'bigtrunc.jpg');
    await writeFile(trunc, bytes.subarray(0, Math.floor(bytes.length * 0.4)));
    const signal = new AbortController().signal;
    const input: SpoolFile = { name: 'bigtrunc.jpg', path: trunc, size: 0, sha256: '' };
    const d = next();
    const subtasks = await allTiles(await planTiles({ input, params: imageParams({}), workDir: path.join(d, 'job'), slots: 2, signal, config: { ...tileConfig({}), ...FROM_SOURCE } }));
    expect(subtasks.map((s) => (s.plan as TilePlan).read)).toEqual(['source', 'source']);
    const outcomes: SubtaskOutcome[] = [];
    for (const [index, sub] of subtasks.entries()) {
      const workDir = path.join(d, `sub-${index}`);
      await mkdir(workDir, { recursive: true });
      const inputs = sub.inputs.map((f) => ({ name: f.name, path: f.path, size: f.size }));
      const base = { index, phase: 0, label: sub.label, plan: sub.plan, items: sub.items, itemErrors: [], worker: 'in-process' };
      try {
        const r = await processTile({ plan: sub.plan as TilePlan, inputs, workDir, signal });
        outcomes.push({ ...base, ok: true, outputs: r.outputs.map((o) => ({ name: o.name, path: o.path, size: 0, sha256: '' })), result: r.result });
      } catch (err) {
        const e = err as { codeName?: string; retryable?: boolean; message: string; input?: string };
        expect(e).toMatchObject({ codeName: 'INVALID_ARGUMENT', retryable: false, input: 'bigtrunc.jpg' });
        expect(e.message).toMatch(/^bigtrunc\.jpg: cannot decode image for tiling: not a decodable image \(/);
        outcomes.push({ ...base, ok: false, outputs: [], result: undefined, error: { input: 'bigtrunc.jpg', code: e.codeName!, message: e.message } });
      }
    }
    const failed = outcomes.filter((o) => !o.ok);
    expect(failed.length).toBeGreaterThan(0);
    const outDir = path.join(d, 'out');
    await mkdir(outDir, { recursive: true });
    const merged = await mergeTiles(outcomes, outDir, signal, path.join(d, 'job'));
    expect(merged.outputs).toEqual([]);
    expect(merged.errors).toEqual([failed[0]!.error]);
  });
});
