/**
 * Tiled huge-image path, in-process: the real planner, worker processor and merger on generated
 * images, compared pixel by pixel with the same pipeline run on the whole image in one sharp call.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TileImageParams } from '../shared/media/tile-pipeline.js';
import type { TileConfig } from '../shared/media/tile-config.js';
import { applyEncoding, applyPipeline, renderImage } from '../shared/media/image-pipeline.js';
import { IMAGE_FITS } from '../shared/kinds/image-params.js';
import { encodeTiled } from '../shared/media/tile-stitch.js';
import type { SpoolFile, SubtaskPlan } from '../shared/job-kind.js';
import type { TilePlan } from '../shared/media/tile-plan.js';
import { tileConfig } from '../shared/media/tile-config.js';
import { allTiles, needsTiling, outputPixels, outputSize, planTiledInputs, planTiles } from '../coordinator/kinds/image-tiles.js';
import { comparePixels, imageParams, makeSource, runTiledInProcess, runWhole } from './tiles-helpers.js';
import { greyIcc, withIcc } from './helpers/icc.js';

let dir: string;
let src: string;
let run = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiles-'));
  // Odd sizes: no tile size used below divides them.
  src = await makeSource(path.join(dir, 'source.png'), 1501, 1097);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Strips read by each worker straight from the source (the default). */
const FROM_SOURCE = { stripRead: 'source' } as const;
/** Strips cut from the source decoded once on the coordinator (`TESSERA_TILE_STRIP_READ=intermediate`). */
const DECODED = { stripRead: 'intermediate' } as const;

async function tiledVsWhole(params: TileImageParams, slots = 2, config: Partial<TileConfig> = {}) {
  const d = path.join(dir, `run-${run++}`);
  const tiled = await runTiledInProcess(src, params, d, { slots, config });
  const whole = await runWhole(src, params, path.join(d, 'whole.png'));
  return { ...(await comparePixels(tiled.output, whole)), tiles: tiled.plans.length, plans: tiled.plans };
}

describe('tiled vs whole image, pixel-exact', () => {
  it.each([128, 300, 512])('blur(3) + sharpen with %i px tiles', async (tile) => {
    const r = await tiledVsWhole(imageParams({ blur: 3, sharpen: true, tile_size: tile }));
    expect(r.tiles).toBe(Math.ceil(1501 / tile) * Math.ceil(1097 / tile));
    expect([r.width, r.height, r.channels]).toEqual([1501, 1097, 3]);
    expect(r.maxDiff).toBe(0);
  });

  it('wide halo: blur(7.5) + sharpen on 200 px tiles', async () => {
    const r = await tiledVsWhole(imageParams({ blur: 7.5, sharpen: true, tile_size: 200 }));
    expect(r.plans[0]!.cut.w - r.plans[0]!.coreInCut.w).toBeGreaterThanOrEqual(14);
    expect(r.maxDiff).toBe(0);
  });

  it('rotate 90 + flop + blur + modulate: tiles land transposed and mirrored', async () => {
    const r = await tiledVsWhole(imageParams({ rotate: 90, flop: true, blur: 2, brightness: 1.2, saturation: 0.8, hue: 30, tile_size: 256 }));
    expect([r.width, r.height]).toEqual([1097, 1501]);
    expect(r.maxDiff).toBe(0);
  });

  it('rotate 270 + flip + greyscale + blur + sharpen', async () => {
    const r = await tiledVsWhole(imageParams({ rotate: 270, flip: true, grayscale: true, blur: 1.2, sharpen: true, tile_size: 320 }));
    expect([r.width, r.height]).toEqual([1097, 1501]);
    expect(r.maxDiff).toBe(0);
  });

  it('rotate 180 + crop (extract) + blur: the crop edge is the image border', async () => {
    const r = await tiledVsWhole(
      imageParams({ rotate: 180, crop: { left: 101, top: 57, width: 999, height: 777 }, blur: 1.5, sharpen: true, tile_size: 256 }),
    );
    expect([r.width, r.height]).toEqual([999, 777]);
    expect(r.maxDiff).toBe(0);
  });

  it.each(['cover', 'contain'] as const)('resize to a %s box + rotate 90: the batch path (geometry first) makes the same image, the box turned', async (fit) => {
    const params = imageParams({ width: 700, height: 400, fit, rotate: 90, blur: 1.5, tile_size: 256 });
    const d = path.join(dir, `run-${run++}`);
    const tiled = await runTiledInProcess(src, params, d);
    const batch = path.join(d, 'batch.png');
    await renderImage(src, params, batch, { format: 'png', animated: false, samples: {}, workDir: d, signal: new AbortController().signal });
    const r = await comparePixels(tiled.output, batch);
    expect([r.width, r.height]).toEqual([400, 700]);
    expect(r.maxDiff).toBe(0);
  });

  it('resize (non-integer scale) + blur is exact: resize runs in the decode pass', async () => {
    const r = await tiledVsWhole(imageParams({ width: 1013, blur: 2.5, sharpen: true, tile_size: 256 }));
    expect([r.width, r.height]).toEqual([1013, Math.round((1097 * 1013) / 1501)]);
    expect(r.maxDiff).toBe(0);
  });
});

const STRIP_CASES = [
  ['blur(3) + sharpen, 3 strips', { blur: 3, sharpen: true }, 3],
  ['rotate 90 + flop + blur + modulate: vertical strips in the output', { rotate: 90, flop: true, blur: 2, brightness: 1.2, saturation: 0.8, hue: 30 }, 2],
  ['rotate 180 + flip + crop + greyscale + blur + sharpen', { rotate: 180, flip: true, crop: { left: 101, top: 57, width: 999, height: 777 }, grayscale: true, blur: 1.5, sharpen: true }, 4],
  ['rotate 270 + wide halo', { rotate: 270, blur: 7.5, sharpen: true }, 2],
] as const;

describe('strips cut from the intermediate decoded once (TESSERA_TILE_STRIP_READ=intermediate), pixel-exact', () => {
  it.each(STRIP_CASES)('%s', async (_name, params, slots) => {
    const r = await tiledVsWhole(imageParams(params as never), slots, DECODED);
    expect(r.plans.every((p) => p.read === 'intermediate')).toBe(true);
    expect(r.tiles).toBe(slots);
    // Whole-width bands of the intermediate, each with its halo (none at the image border).
    const across = r.plans[0]!.orientation.angle % 180 !== 0;
    expect(r.plans.every((p) => p.cut.x === 0 && (across ? p.out.h === r.height : p.out.w === r.width))).toBe(true);
    expect(r.maxDiff).toBe(0);
  });

  it.each([2, 4])('a %i-band PNG with alpha (PNG out) keeps its bands through the strips', async (bands) => {
    const alpha = path.join(dir, `alpha-${bands}.png`);
    const img = sharp(src).ensureAlpha(0.6);
    await (bands === 2 ? img.toColourspace('b-w') : img).png({ compressionLevel: 1 }).toFile(alpha);
    const d = path.join(dir, `run-${run++}`);
    const params = imageParams({ blur: 2, sharpen: true, format: 'png' });
    const tiled = await runTiledInProcess(alpha, params, d, { slots: 2, config: DECODED });
    expect(tiled.plans.every((p) => p.read === 'intermediate' && p.deliver === 'raw')).toBe(true);
    const r = await comparePixels(tiled.output, await runWhole(alpha, params, path.join(d, 'whole.png')));
    expect(r.maxDiff).toBe(0);
  });

  it('a resize runs in the decode pass and its result is cut into strips', async () => {
    // Even by default: a resize needs the whole image, so the source read cannot take it.
    const r = await tiledVsWhole(imageParams({ width: 1013, blur: 2.5, sharpen: true }), 3);
    expect(r.plans.every((p) => p.read === 'intermediate' && p.cut.x === 0)).toBe(true);
    expect([r.width, r.height, r.tiles]).toEqual([1013, Math.round((1097 * 1013) / 1501), 3]);
    expect(r.maxDiff).toBe(0);
  });
});

describe('decode-once strips are handed out as they are cut (PlanResult.later)', () => {
  const signal = new AbortController().signal;
  const spool = (file: string): SpoolFile => ({ name: path.basename(file), path: file, size: 0, sha256: '' });
  /** A JPEG whose data stops at `fraction` of its bytes (header intact): libvips fails when the decode reaches the cut. */
  async function truncatedJpeg(name: string, fraction: number): Promise<string> {
    const whole = await readFile(await makeSource(path.join(dir, `${name}-whole.jpg`), 1501, 1097, 'jpeg'));
    const file = path.join(dir, name);
    await writeFile(file, whole.subarray(0, Math.round(whole.length * fraction)));
    return file;
  }
  const auto = { ...tileConfig({}), thresholdPixels: 1000, stripRead: 'intermediate' } as const;

  it('the plan holds the first strip; the others come later, each complete, and together they tile the image', async () => {
    const p = await planTiles({ input: spool(src), params: imageParams({ blur: 2 }), workDir: path.join(dir, `run-${run++}`), slots: 3, signal, config: auto });
    expect(p.subtasks).toHaveLength(1);
    expect(p.later).toBeDefined();
    const later: SubtaskPlan[] = [];
    for await (const s of p.later!) later.push(s);
    expect(later).toHaveLength(2);
    const plans = [...p.subtasks, ...later].map((s) => s.plan as TilePlan);
    // Cut top to bottom, so handed out in order here; together the cores cover every row once.
    expect(plans.map((t) => [t.index, t.out.y, t.out.h])).toEqual([
      [0, 0, 368],
      [1, 368, 368],
      [2, 736, 361],
    ]);
    for (const s of [...p.subtasks, ...later]) {
      const f = s.inputs[0]!;
      const bytes = await readFile(f.path);
      expect([bytes.length, createHash('sha256').update(bytes).digest('hex')]).toEqual([f.size, f.sha256]);
    }
  });

  it('a source that fails to decode before the first strip is an error of that input alone', async () => {
    const bad = await truncatedJpeg('early.jpg', 0.2);
    const r = await planTiledInputs([spool(bad), spool(src)], imageParams({ blur: 2 }), { workDir: path.join(dir, `run-${run++}`), slots: 2, signal, config: auto });
    expect(r.errors).toEqual([{ input: 'early.jpg', code: 'INVALID_ARGUMENT', message: expect.stringContaining('early.jpg: cannot decode image for tiling') }]);
    expect([...r.tiled].sort()).toEqual(['early.jpg', 'source.png']);
    const good = [...r.subtasks, ...(r.later ? await allTiles({ subtasks: [], later: r.later }) : [])];
    expect(good.map((s) => (s.plan as TilePlan).source)).toEqual(['source.png', 'source.png']);
  });

  it('an earlier input failing half-way is still its own error; the last one failing after its first strip fails the stream', async () => {
    const bad = await truncatedJpeg('late.jpg', 0.85);
    const params = imageParams({ blur: 2 });
    const first = await planTiledInputs([spool(bad), spool(src)], params, { workDir: path.join(dir, `run-${run++}`), slots: 2, signal, config: auto });
    expect(first.errors.map((e) => [e.input, e.code])).toEqual([['late.jpg', 'INVALID_ARGUMENT']]);
    expect(first.subtasks.every((s) => (s.plan as TilePlan).source === 'source.png')).toBe(true);
    await allTiles({ subtasks: [], later: first.later });

    const last = await planTiledInputs([spool(src), spool(bad)], params, { workDir: path.join(dir, `run-${run++}`), slots: 2, signal, config: auto });
    expect(last.errors).toEqual([]);
    // source.png in full, then the first strip of late.jpg; its second strip never comes.
    expect(last.subtasks.map((s) => (s.plan as TilePlan).source)).toEqual(['source.png', 'source.png', 'late.jpg']);
    await expect(allTiles({ subtasks: [], later: last.later })).rejects.toMatchObject({ codeName: 'INVALID_ARGUMENT', input: 'late.jpg' });
  });
});

describe('strips read straight from the source (auto tiling, the default), pixel-exact', () => {
  it.each(STRIP_CASES)('%s', async (_name, params, slots) => {
    // No config: the default strip read.
    const r = await tiledVsWhole(imageParams(params as never), slots);
    expect(r.plans.every((p) => p.read === 'source')).toBe(true);
    expect(r.tiles).toBe(slots);
    expect(r.maxDiff).toBe(0);
  });

  it('a resize or a forced tile size goes through the decoded intermediate instead', async () => {
    const resized = await tiledVsWhole(imageParams({ width: 1013, blur: 2.5 }), 2, FROM_SOURCE);
    expect(resized.plans.every((p) => p.read === 'intermediate')).toBe(true);
    expect(resized.maxDiff).toBe(0);
    const forced = await tiledVsWhole(imageParams({ blur: 2.5, tile_size: 512 }), 2, FROM_SOURCE);
    expect(forced.plans.every((p) => p.read === 'intermediate')).toBe(true);
  });

  it('a progressive source goes through the decoded intermediate (it only decodes as a whole)', async () => {
    const prog = path.join(dir, 'progressive.jpg');
    await sharp(src).jpeg({ progressive: true, quality: 90 }).toFile(prog);
    const d = path.join(dir, `run-${run++}`);
    const params = imageParams({ blur: 2, format: 'png' });
    const tiled = await runTiledInProcess(prog, params, d, { slots: 2, config: FROM_SOURCE });
    expect(tiled.plans.every((p) => p.read === 'intermediate')).toBe(true);
    expect((await comparePixels(tiled.output, await runWhole(prog, params, path.join(d, 'whole.png')))).maxDiff).toBe(0);
  });

  it.each([DECODED, FROM_SOURCE])('a crop outside the image is INVALID_ARGUMENT naming the input (%o)', async (config) => {
    await expect(runTiledInProcess(src, imageParams({ crop: { left: 1000, top: 0, width: 600, height: 100 } }), path.join(dir, `run-${run++}`), { config })).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      input: 'source.png',
      message: expect.stringContaining('crop: 600x100 at 1000,0 does not fit'),
    });
  });
});

describe('tiled outputs and refusals', () => {
  it('JPEG output decodes to the same pixels as the whole-image JPEG', async () => {
    const params = imageParams({ blur: 2, format: 'jpeg', quality: 85, tile_size: 400 });
    const d = path.join(dir, `run-${run++}`);
    const tiled = await runTiledInProcess(src, params, d);
    const whole = path.join(d, 'whole.jpg');
    // The batch path's pipeline and encoder (with Huffman optimisation, which only changes the entropy coding).
    await applyEncoding(applyPipeline(sharp(src), params), params, 'jpeg').toFile(whole);
    expect((await sharp(tiled.output).metadata()).format).toBe('jpeg');
    const r = await comparePixels(tiled.output, whole);
    expect(r.maxDiff).toBe(0);
  });

  it.each([
    ['intermediate', DECODED],
    ['source', FROM_SOURCE],
  ] as const)('auto-tiled JPEG (strips from the %s): strips come back encoded and are joined into the whole-image JPEG, byte for byte', async (read, config) => {
    const params = imageParams({ blur: 2, sharpen: true, format: 'jpeg', quality: 85 });
    const d = path.join(dir, `run-${run++}`);
    const tiled = await runTiledInProcess(src, params, d, { slots: 3, config });
    expect(tiled.plans.map((p) => [p.read, p.deliver])).toEqual(Array(3).fill([read, 'jpeg']));
    // The tiled path's encoder (standard Huffman tables) on the whole image writes the same file.
    const same = path.join(d, 'same-encoder.jpg');
    await encodeTiled(applyPipeline(sharp(src), params), 'jpeg', 'image', 85, 1501, 1097, 3).toFile(same);
    expect((await readFile(tiled.output)).equals(await readFile(same))).toBe(true);
    // And the batch path's JPEG (Huffman-optimised) decodes to the same pixels.
    const whole = path.join(d, 'whole.jpg');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'jpeg').toFile(whole);
    expect((await comparePixels(tiled.output, whole)).maxDiff).toBe(0);
  });

  it.each([{ flip: true }, { rotate: 180, flop: true }])('auto-tiled JPEG upside down (%o), from the source: balanced strips joined pixel-exact', async (o) => {
    const params = imageParams({ ...o, blur: 1.5, sharpen: true, format: 'jpeg' });
    const d = path.join(dir, `run-${run++}`);
    const tiled = await runTiledInProcess(src, params, d, { slots: 3, config: FROM_SOURCE });
    expect(tiled.plans.every((p) => p.deliver === 'jpeg')).toBe(true);
    // Upside down, the source's top strip (the cheapest to decode, so the tallest) is the output's last.
    const heights = tiled.plans.map((p) => p.out.h);
    expect(heights[2]).toBeGreaterThan(heights[0]!);
    const whole = path.join(d, 'whole.jpg');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'jpeg').toFile(whole);
    expect((await comparePixels(tiled.output, whole)).maxDiff).toBe(0);
  });

  it('auto-tiled JPEG upside down from the intermediate: equal strips joined pixel-exact', async () => {
    const params = imageParams({ flip: true, blur: 1.5, sharpen: true, format: 'jpeg' });
    const d = path.join(dir, `run-${run++}`);
    const tiled = await runTiledInProcess(src, params, d, { slots: 3, config: DECODED });
    expect(tiled.plans.every((p) => p.read === 'intermediate' && p.deliver === 'jpeg')).toBe(true);
    // 1097 rows in 3 strips on 16-row boundaries: 368, 368, 361.
    expect(tiled.plans.map((p) => p.out.h)).toEqual([368, 368, 361]);
    const whole = path.join(d, 'whole.jpg');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'jpeg').toFile(whole);
    expect((await comparePixels(tiled.output, whole)).maxDiff).toBe(0);
  });

  it.each([
    ['intermediate', DECODED],
    ['source', FROM_SOURCE],
  ] as const)('auto-tiled JPEG rotated by 90 (strips from the %s): vertical strips go through the raw stitch', async (read, config) => {
    const params = imageParams({ blur: 2, rotate: 90, format: 'jpeg' });
    const d = path.join(dir, `run-${run++}`);
    const tiled = await runTiledInProcess(src, params, d, { slots: 2, config });
    expect(tiled.plans.every((p) => p.read === read && p.deliver === 'raw')).toBe(true);
    const whole = path.join(d, 'whole.jpg');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'jpeg').toFile(whole);
    expect((await comparePixels(tiled.output, whole)).maxDiff).toBe(0);
  });

  it.each([
    ['forced 64 px tiles', 6, 'intermediate', { tile_size: 64 }, {}],
    ['auto strips', 1, 'source', {}, FROM_SOURCE],
    ['auto strips', 6, 'intermediate', {}, DECODED],
  ] as const)('keep_metadata (%s, EXIF %i, read from the %s): the stitched JPEG keeps the source P3 profile and EXIF, its samples unconverted, as the batch path', async (_, orientation, read, tiling, config) => {
    const d = path.join(dir, `run-${run++}`);
    // 300 x 200; stored sideways (EXIF 6) it is upright 200 x 300, its orientation reset to 1.
    const p3 = path.join(dir, `p3-${run}.jpg`);
    await sharp({ create: { width: 300, height: 200, channels: 3, background: '#c8402a' } })
      .composite([{ input: { create: { width: 60, height: 60, channels: 3, background: '#2080f0' } }, left: 0, top: 0 }])
      .withIccProfile('p3')
      .withExif({ IFD0: { Artist: 'Ada Lovelace' } })
      .withMetadata({ orientation })
      .jpeg({ quality: 95 })
      .toFile(p3);
    const params = imageParams({ ...tiling, keep_metadata: true, format: 'jpeg', sharpen: true });
    const tiled = await runTiledInProcess(p3, params, d, { slots: 2, config });
    // Raw tiles through the stitch, which attaches the metadata (never the JPEG splice).
    expect(tiled.plans.length).toBeGreaterThan(1);
    expect(tiled.plans.every((p) => p.read === read && p.deliver === 'raw')).toBe(true);
    const batch = path.join(d, 'batch.jpg');
    await applyEncoding(applyPipeline(sharp(p3), params), params, 'jpeg').toFile(batch);
    const [source, got, want] = (await Promise.all([p3, tiled.output, batch].map((f) => sharp(f).metadata()))) as [sharp.Metadata, sharp.Metadata, sharp.Metadata];
    expect([got.width, got.height, got.orientation]).toEqual([...(orientation === 6 ? [200, 300] : [300, 200]), 1]);
    expect(got.icc?.equals(source.icc!)).toBe(true);
    expect(got.exif?.includes('Ada Lovelace')).toBe(true);
    expect([want.orientation, want.icc?.equals(source.icc!), want.exif?.includes('Ada Lovelace')]).toEqual([1, true, true]);
    // The same (P3) samples as the batch path's: neither converted them to sRGB.
    const samples = (f: string): Promise<Buffer> => sharp(f, { ignoreIcc: true }).raw().toBuffer();
    expect((await samples(tiled.output)).equals(await samples(batch))).toBe(true);
  });

  it.each(['deepzoom', 'iiif'] as const)('keep_metadata into a %s pyramid: its tiles keep the source P3 profile and EXIF, their samples unconverted, as the batch path', async (layout) => {
    const d = path.join(dir, `run-${run++}`);
    const p3 = path.join(dir, `p3-pyramid-${run}.jpg`);
    // A photo's noise, converted to Display P3 as it is written.
    const noise = await sharp({ create: { width: 600, height: 400, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 120, sigma: 40 } } }).jpeg({ quality: 90 }).toBuffer();
    await sharp(noise).withIccProfile('p3').withExif({ IFD0: { Artist: 'Ada Lovelace' } }).jpeg({ quality: 92 }).toFile(p3);
    const params = imageParams({ keep_metadata: true, format: 'png', tiled_output: layout });
    const tiled = await runTiledInProcess(p3, params, d, { slots: 2, config: FROM_SOURCE });
    const unzipped = path.join(d, 'unzipped');
    const py = spawnSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', tiled.output, unzipped], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const name = path.basename(tiled.output, '.zip');
    // The full-size tile at the top left: DeepZoom's top level, IIIF's full region at full size.
    const tile =
      layout === 'deepzoom'
        ? path.join(unzipped, `${name}_files`, String(Math.max(...(await readdir(path.join(unzipped, `${name}_files`))).filter((n) => /^\d+$/.test(n)).map(Number))), '0_0.png')
        : path.join(unzipped, name, '0,0,256,256', '256,256', '0', 'default.png');
    const [source, got] = await Promise.all([sharp(p3).metadata(), sharp(tile).metadata()]);
    expect([got.width, got.height, got.orientation ?? 1]).toEqual([256, 256, 1]);
    expect(got.icc?.equals(source.icc!), 'the P3 profile kept').toBe(true);
    expect(got.exif?.includes('Ada Lovelace')).toBe(true);
    const batch = path.join(d, 'batch.png');
    const flat = imageParams({ keep_metadata: true, format: 'png' });
    await applyEncoding(applyPipeline(sharp(p3), flat), flat, 'png').toFile(batch);
    const samples = (img: sharp.Sharp): Promise<Buffer> => img.removeAlpha().raw().toBuffer();
    expect((await samples(sharp(tile, { ignoreIcc: true }))).equals(await samples(sharp(batch, { ignoreIcc: true }).extract({ left: 0, top: 0, width: 256, height: 256 }))), 'samples as the batch path keeps them').toBe(true);
  });

  it('keep_metadata into a pyramid of a grey source with its own profile: one grey band with that profile, as the batch path', async () => {
    // Its tiles were three bands tagged sRGB with the grey samples unconverted: darker than the source.
    const d = path.join(dir, `run-${run++}`);
    const grey = path.join(dir, `grey-pyramid-${run}.jpg`);
    const plain = await sharp({ create: { width: 600, height: 400, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 120, sigma: 40 } } }).toColourspace('b-w').jpeg({ quality: 92 }).toBuffer();
    await writeFile(grey, withIcc(plain, greyIcc(1.8)));
    const params = imageParams({ keep_metadata: true, format: 'png', tiled_output: 'deepzoom' });
    const tiled = await runTiledInProcess(grey, params, d, { slots: 2, config: FROM_SOURCE });
    const unzipped = path.join(d, 'unzipped');
    const py = spawnSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', tiled.output, unzipped], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const levels = path.join(unzipped, `${path.basename(tiled.output, '.zip')}_files`);
    const tile = path.join(levels, String(Math.max(...(await readdir(levels)).filter((n) => /^\d+$/.test(n)).map(Number))), '0_0.png');
    const [source, got] = await Promise.all([sharp(grey).metadata(), sharp(tile).metadata()]);
    expect([got.channels, got.icc?.equals(source.icc!)]).toEqual([1, true]);
    const batch = path.join(d, 'batch.png');
    const flat = imageParams({ keep_metadata: true, format: 'png' });
    await applyEncoding(applyPipeline(sharp(grey), flat), flat, 'png', { greyWithProfile: true }).toFile(batch);
    expect((await sharp(batch).metadata()).channels).toBe(1);
    const samples = (img: sharp.Sharp): Promise<Buffer> => img.extractChannel(0).raw().toBuffer();
    expect((await samples(sharp(tile, { ignoreIcc: true }))).equals(await samples(sharp(batch, { ignoreIcc: true }).extract({ left: 0, top: 0, width: 256, height: 256 }))), 'samples as the batch path keeps them').toBe(true);
  });

  it('deepzoom output is a zip pyramid of the stitched image', async () => {
    const d = path.join(dir, `run-${run++}`);
    const tiled = await runTiledInProcess(src, imageParams({ blur: 1, tile_size: 512, tiled_output: 'deepzoom', format: 'png' }), d);
    expect(tiled.output.endsWith('.zip')).toBe(true);
    const { readFile } = await import('node:fs/promises');
    const zip = await readFile(tiled.output);
    // A DeepZoom descriptor names the full size.
    expect(zip.includes(Buffer.from('Width="1501"'))).toBe(true);
    expect(zip.includes(Buffer.from('Height="1097"'))).toBe(true);
  });

  it('refuses an arbitrary rotation with a message naming the field', async () => {
    await expect(runTiledInProcess(src, imageParams({ rotate: 45, tile_size: 256 }), path.join(dir, `run-${run++}`))).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^rotate: tiled processing supports multiples of 90 degrees/),
    });
  });

  it('refuses WebP beyond its 16383 px limit, naming the input', async () => {
    const p = imageParams({ width: 17000, height: 100, fit: 'fill', format: 'webp', tile_size: 4096 });
    await expect(runTiledInProcess(src, p, path.join(dir, `run-${run++}`))).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      input: 'source.png',
      message: expect.stringContaining('webp holds at most 16383'),
    });
    // Auto-tiled (strips cut while the intermediate decodes): refused from the header, before a
    // pixel is decoded. A file where the job's folder would be: anything written first fails otherwise.
    const d = path.join(dir, `run-${run++}`);
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(d, { recursive: true });
    await writeFile(path.join(d, 'job'), 'in the way');
    await expect(runTiledInProcess(src, imageParams({ width: 24_000, format: 'webp' }), d)).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^format: webp holds at most 16383 x 16383 pixels, the result would be 24000 x \d+;/),
    });
  });

  it('a corrupt input fails with INVALID_ARGUMENT naming it', async () => {
    const bad = path.join(dir, 'broken.png');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(bad, Buffer.from('\x89PNG\r\n\x1a\nnot really a png'));
    await expect(runTiledInProcess(bad, imageParams({ tile_size: 256 }), path.join(dir, `run-${run++}`))).rejects.toMatchObject({
      codeName: 'INVALID_ARGUMENT',
      message: expect.stringContaining('broken.png'),
    });
  });
});

describe('which inputs are tiled', () => {
  const config = tileConfig({});
  const file = (width: number, height: number, orientation = 1): SpoolFile => ({ name: 'x.jpg', path: '/nonexistent/x.jpg', size: 1, sha256: '', dims: { width, height, orientation } });

  it('goes by the pixels the pipeline makes, not the source: a 48 Mpx photo resized to 800 px is a batch job', async () => {
    expect(await needsTiling(file(8000, 6000), imageParams({}), config)).toBe(true);
    expect(await needsTiling(file(8000, 6000), imageParams({ width: 800 }), config)).toBe(false);
    // Any angle is fine on the batch path once the image is small.
    expect(await needsTiling(file(8000, 6000), imageParams({ width: 800, rotate: 45 }), config)).toBe(false);
    expect(await needsTiling(file(8000, 6000), imageParams({ crop: { left: 0, top: 0, width: 4000, height: 4000 } }), config)).toBe(false);
    // An upscale past the threshold is tiled; without enlargement it stays the source's size.
    expect(await needsTiling(file(5000, 6000), imageParams({ width: 20_000 }), config)).toBe(true);
    expect(await needsTiling(file(5000, 6000), imageParams({ width: 20_000, no_enlarge: true }), config)).toBe(false);
    // 8000 x 6000 filled into 16000 x 2000 without enlargement is 8000 x 2000: 16 Mpx.
    expect(await needsTiling(file(8000, 6000), imageParams({ width: 16_000, height: 2000, fit: 'fill', no_enlarge: true }), config)).toBe(false);
    // A source the batch path may not open at all (over TESSERA_MAX_INPUT_PIXELS) is tiled whatever its output.
    expect(await needsTiling(file(40_000, 40_000), imageParams({ width: 800 }), config)).toBe(true);
    expect(await needsTiling(file(100, 100), imageParams({ tile_size: 256 }), config)).toBe(true);
    // A turn off the right angles, which tiles cannot make exactly: one worker turns it, however big
    // the canvas (a 30 Mpx photo straightened by 10 degrees is 40 Mpx; it was refused), unless tiles
    // were asked for or the batch path may not open the source.
    expect(await needsTiling(file(6700, 4470), imageParams({ rotate: 10 }), config)).toBe(false);
    expect(await needsTiling(file(8000, 6000), imageParams({ rotate: -3 }), config)).toBe(false);
    expect(await needsTiling(file(8000, 6000), imageParams({ rotate: 90 }), config)).toBe(true);
    expect(await needsTiling(file(6700, 4470), imageParams({ rotate: 10, tile_size: 512 }), config)).toBe(true);
    expect(await needsTiling(file(40_000, 40_000), imageParams({ rotate: 10 }), config)).toBe(true);
  });

  it("computes the output size as sharp makes it (orientation, crop, fit, enlargement, rotation)", async () => {
    // A 300 x 200 JPEG stored sideways (EXIF orientation 6): auto-orient makes it 200 x 300.
    const src = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#468' } }).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    const dims = { width: 300, height: 200, orientation: 6 };
    const cases = [
      {},
      { width: 120 },
      { height: 90 },
      { width: 100, height: 100, fit: 'inside' },
      { width: 100, height: 100, fit: 'outside' },
      { width: 100, height: 50, fit: 'cover' },
      { width: 100, height: 50, fit: 'contain' },
      { width: 100, height: 50, fit: 'fill' },
      { width: 1000, no_enlarge: true },
      // Without enlargement each axis is clamped on its own; contain still pads to its box.
      { width: 400, height: 100, fit: 'fill', no_enlarge: true },
      { width: 400, height: 100, fit: 'cover', no_enlarge: true },
      { width: 400, height: 100, fit: 'contain', no_enlarge: true },
      { width: 400, height: 100, fit: 'inside', no_enlarge: true },
      { width: 400, height: 100, fit: 'outside', no_enlarge: true },
      // One side given: contain pads to it even when it may not enlarge.
      { width: 1000, fit: 'contain', no_enlarge: true },
      { height: 900, fit: 'contain', no_enlarge: true },
      { crop: { left: 10, top: 20, width: 150, height: 80 }, width: 75 },
      { width: 120, rotate: 30 },
      { auto_orient: false, width: 150 },
    ] as const;
    for (const c of cases) {
      const p = imageParams(c as Parameters<typeof imageParams>[0]);
      const { info } = await applyPipeline(sharp(src), p).raw().toBuffer({ resolveWithObject: true });
      const real = info.width * info.height;
      expect(Math.abs(outputPixels(dims, p) - real) / real, JSON.stringify(c)).toBeLessThan(0.03);
    }
  });

  it('computes the size of a resize then a quarter turn as the batch path makes it (the box is turned too)', async () => {
    const file = path.join(dir, 'sideways.jpg');
    await sharp({ create: { width: 400, height: 200, channels: 3, background: '#468' } }).withMetadata({ orientation: 6 }).jpeg().toFile(file);
    const dims = { width: 400, height: 200, orientation: 6 };
    for (const upright of [true, false]) {
      for (const fit of IMAGE_FITS) {
        for (const box of [{ width: 100 }, { height: 60 }, { width: 100, height: 80 }, { width: 80, height: 100 }]) {
          for (const rotate of [90, -90, 270]) {
            const p = imageParams({ ...box, fit, rotate, no_auto_orient: !upright, format: 'png' });
            const out = path.join(dir, `sideways-${run++}.png`);
            const info = await renderImage(file, p, out, { format: 'png', animated: false, samples: {}, workDir: dir, signal: new AbortController().signal });
            const want = outputSize(dims, p);
            expect([info.width, info.height], JSON.stringify({ upright, fit, box, rotate })).toEqual([want.width, want.height]);
          }
        }
      }
    }
  });
});
