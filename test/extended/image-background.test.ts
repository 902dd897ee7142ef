/**
 * `image.background` (CLI `--background`): the colour of a `contain` box's bars, of the corners a
 * turn off the right angles leaves, and, in JPEG, of what transparent pixels are laid on, as sharp's
 * `resize({ background })`, `rotate(angle, { background })` and `flatten({ background })` make
 * them; the same on the batch and the tiled path. Without it: opaque black bars, transparency laid
 * on black in JPEG (libvips' writer), as before.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../../coordinator/kinds/image.js';
import { isPlanErrors, WORKER_FEATURES, type SpoolFile } from '../../shared/job-kind.js';
import { validateImageParams } from '../../shared/kinds/image-params.js';
import { resolveLimits } from '../../shared/limits.js';
import { createLogger } from '../../shared/logger.js';
import { IMAGE_BACKGROUND_FEATURE } from '../../shared/media/tile-plan.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { imageProcessor } from '../../worker/processors/image.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { runKindInProcess } from '../helpers/media.js';
import { makeSource } from '../tiles-helpers.js';

let dir: string;
let photo: string;
let logo: string;
let cluster: TestCluster | undefined;

const spec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;

/** Runs the image kind in this process; tiled: every input down the tiled path. */
async function run(file: string, params: Record<string, unknown>, tiled = false): Promise<{ data: Buffer; info: sharp.OutputInfo; path: string }> {
  if (tiled) process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
  else delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
  try {
    const r = await runKindInProcess(imageKind, imageProcessor, spec(params), [file], { dir, slots: 2 });
    expect(r.errors).toEqual([]);
    const out = r.outputs[0]!.path;
    return { ...(await sharp(out).raw().toBuffer({ resolveWithObject: true })), path: out };
  } finally {
    delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
  }
}

const pixel = (r: { data: Buffer; info: sharp.OutputInfo }, x: number, y: number): number[] => {
  const i = (y * r.info.width + x) * r.info.channels;
  return [...r.data.subarray(i, i + r.info.channels)];
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-background-'));
  photo = await makeSource(path.join(dir, 'photo.png'), 300, 150);
  // A logo: an opaque red square on a transparent field.
  logo = path.join(dir, 'logo.png');
  await sharp({ create: { width: 200, height: 200, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
    .composite([{ input: { create: { width: 100, height: 100, channels: 4, background: { r: 220, g: 20, b: 20, alpha: 1 } } }, left: 50, top: 50 }])
    .png()
    .toFile(logo);
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('image background', () => {
  it('is read as sharp reads a colour, and refused naming the field where it is none', () => {
    expect(validateImageParams({ background: 'white' }).background).toBe('#FFFFFFFF');
    expect(validateImageParams({ background: ' rgba(0, 0, 0, 0.5) ' }).background).toBe('#00000080');
    expect(validateImageParams({ background: 'transparent' }).background).toBe('#00000000');
    expect(validateImageParams({}).background).toBe('');
    for (const bad of ['whit', '#12', 'rgb(1,2)', 'x'.repeat(150)]) {
      expect(() => validateImageParams({ background: bad }), bad).toThrow(/^image\.background: .*(is not a colour)/);
    }
  });

  it('colours the bars of contain, on the batch and the tiled path alike (PNG: pixel for pixel)', async () => {
    const p = { width: 200, height: 200, fit: 'contain', background: '#ffffff', format: 'png' };
    const batch = await run(photo, p);
    expect([batch.info.width, batch.info.height, batch.info.channels]).toEqual([200, 200, 3]);
    // 300 x 150 in a 200 x 200 box: 200 x 100, bars of 50 rows above and below.
    expect(pixel(batch, 100, 10)).toEqual([255, 255, 255]);
    expect(pixel(batch, 100, 190)).toEqual([255, 255, 255]);
    expect(pixel(batch, 100, 100)).not.toEqual([255, 255, 255]);
    const tiled = await run(photo, { ...p, tile_size: 64 }, true);
    expect(tiled.info).toMatchObject({ width: 200, height: 200, channels: 3 });
    expect(tiled.data.equals(batch.data)).toBe(true);
    // Without a background, black bars, as before.
    expect(pixel(await run(photo, { ...p, background: '' }), 100, 10)).toEqual([0, 0, 0]);
  });

  it('in colour on a grey source too, batch and tiled: the picture grey, the bars the colour asked (were grey 54 for red)', async () => {
    const grey = path.join(dir, 'grey.png');
    await sharp(photo).toColourspace('b-w').png().toFile(grey);
    expect((await sharp(grey).metadata()).channels).toBe(1);
    const p = { width: 200, height: 200, fit: 'contain', background: '#ff0000', format: 'png' };
    const batch = await run(grey, p);
    expect(pixel(batch, 100, 10)).toEqual([255, 0, 0]);
    const [r, g, b] = pixel(batch, 100, 100);
    expect(r).toBe(g);
    expect(g).toBe(b);
    const tiled = await run(grey, { ...p, tile_size: 64 }, true);
    expect(tiled.info.channels).toBe(batch.info.channels);
    expect(tiled.data.equals(batch.data)).toBe(true);
    // A grey logo with transparency, laid on blue in JPEG (was black).
    const greyLogo = path.join(dir, 'grey-logo.png');
    await sharp(logo).toColourspace('b-w').png().toFile(greyLogo);
    expect((await sharp(greyLogo).metadata()).channels).toBe(2);
    for (const tiledToo of [false, true]) {
      const laid = await run(greyLogo, { format: 'jpeg', quality: 95, background: '#0000ff', ...(tiledToo ? { tile_size: 64 } : {}) }, tiledToo);
      const [lr, lg, lb] = pixel(laid, 10, 10);
      expect(lb, `tiled ${tiledToo}`).toBeGreaterThan(240);
      expect(lr! + lg!, `tiled ${tiledToo}`).toBeLessThan(20);
    }
  });

  it('a translucent background adds an alpha band to the bars only', async () => {
    const r = await run(photo, { width: 200, height: 200, fit: 'contain', background: '#00ff0080', format: 'png' });
    expect(r.info.channels).toBe(4);
    expect(pixel(r, 100, 10)).toEqual([0, 255, 0, 128]);
    expect(pixel(r, 100, 100)[3]).toBe(255);
  });

  it('a 16-bit source boxed in a colour is written at 8 bits, its bars that colour (sharp scales a background to 16 bits by 256: white was 65280)', async () => {
    const scan = path.join(dir, 'scan16.png');
    await sharp(photo).toColourspace('rgb16').png().toFile(scan);
    expect((await sharp(scan).metadata()).depth).toBe('ushort');
    const boxed = await run(scan, { width: 200, height: 200, fit: 'contain', background: 'white', format: 'png' });
    expect((await sharp(boxed.path).metadata()).depth).toBe('uchar');
    expect(pixel(boxed, 100, 10)).toEqual([255, 255, 255]);
    // Black bars (no background given) stay 16-bit, as before.
    expect((await sharp((await run(scan, { width: 200, height: 200, fit: 'contain', format: 'png' })).path).metadata()).depth).toBe('ushort');
  });

  it('fills the corners of a turn off the right angles', async () => {
    const r = await run(photo, { rotate: 30, background: 'red', format: 'png' });
    expect(pixel(r, 0, 0)).toEqual([255, 0, 0]);
    const plain = await run(photo, { rotate: 30, format: 'png' });
    expect(pixel(plain, 0, 0)).toEqual([0, 0, 0]);
  });

  it('in JPEG, lays what is transparent on it (opaque, its alpha ignored), batch and tiled; in PNG keeps the transparency', async () => {
    // Batch; tiled in squares cut from the decode; tiled in strips (which the workers would read
    // from the source, were it not laid on the background first).
    for (const [how, tiled, extra] of [['batch', false, {}], ['squares', true, { tile_size: 64 }], ['strips', true, {}]] as const) {
      const white = await run(logo, { format: 'jpeg', quality: 95, background: '#ffffff80', ...extra }, tiled);
      expect(white.info.channels).toBe(3);
      for (const [c, v] of pixel(white, 10, 10).entries()) expect(v, `${how} band ${c}`).toBeGreaterThan(250);
      const [r, g, b] = pixel(white, 100, 100);
      expect(r, how).toBeGreaterThan(200);
      expect(g! + b!, how).toBeLessThan(80);
      // Without one, libvips' writer lays it on black.
      const black = await run(logo, { format: 'jpeg', quality: 95, ...extra }, tiled);
      for (const v of pixel(black, 10, 10)) expect(v, how).toBeLessThan(5);
    }
    // With contain, the bars and the transparent field are the same white.
    const boxed = await run(logo, { format: 'jpeg', quality: 95, width: 400, height: 200, fit: 'contain', background: 'white' });
    for (const v of [...pixel(boxed, 10, 100), ...pixel(boxed, 120, 10)]) expect(v).toBeGreaterThan(250);
    const png = await run(logo, { format: 'png', background: 'white' });
    expect(pixel(png, 10, 10)).toEqual([0, 0, 0, 0]);
  });

  it('a batch with a background requires workers that apply it (an older one would make black bars); a tiled image does not', async () => {
    const inputs: SpoolFile[] = [{ name: 'photo.png', path: photo, size: 1, sha256: '' }];
    // Required where the background shows (a contain box, JPEG), not where it has no effect (a cover resize into PNG).
    for (const [background, extra, shows] of [['', {}, false], ['white', {}, true], ['white', { fit: 'cover', format: 'png' }, false], ['white', { fit: 'cover', format: 'jpeg' }, true]] as const) {
      const params = { width: 100, fit: 'contain', background, ...extra };
      const planned = await imageKind.plan({
        jobId: 'j', params: imageKind.validate(params as never, spec(params)), spec: spec(params), inputs,
        cluster: { workers: 1, slots: 1, encoders: new Set(), encoderSets: [], features: new Set(WORKER_FEATURES) },
        workDir: await mkdtemp(path.join(dir, 'plan-')), signal: new AbortController().signal, log: createLogger('test', 'silent'), warn: () => undefined, limits: resolveLimits(),
      });
      const all = [...planned.subtasks];
      if (planned.later) for await (const s of planned.later) if (!isPlanErrors(s)) all.push(...(Array.isArray(s) ? s : [s]));
      expect(all.length).toBeGreaterThan(0);
      for (const s of all) expect(s.requires?.features?.includes(IMAGE_BACKGROUND_FEATURE) ?? false, JSON.stringify(params)).toBe(shows);
    }
    // A tiled image's transparency is laid on the background by the coordinator's decode: its
    // strips are cut from that, not read from the source by workers that might not know of it.
    process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
    try {
      for (const background of ['', 'white']) {
        const params = { format: 'jpeg', background };
        const planned = await imageKind.plan({
          jobId: 'j', params: imageKind.validate(params as never, spec(params)), spec: spec(params), inputs: [{ name: 'logo.png', path: logo, size: 1, sha256: '' }],
          cluster: { workers: 1, slots: 2, encoders: new Set(), encoderSets: [], features: new Set(WORKER_FEATURES) },
          workDir: await mkdtemp(path.join(dir, 'plan-')), signal: new AbortController().signal, log: createLogger('test', 'silent'), warn: () => undefined, limits: resolveLimits(),
        });
        const all = [...planned.subtasks];
        if (planned.later) for await (const s of planned.later) if (!isPlanErrors(s)) all.push(...(Array.isArray(s) ? s : [s]));
        expect(all.length).toBeGreaterThan(1);
        for (const s of all) {
          expect((s.plan as { read?: string }).read, background).toBe(background ? 'intermediate' : 'source');
          expect(s.requires?.features?.includes(IMAGE_BACKGROUND_FEATURE) ?? false).toBe(false);
        }
      }
    } finally {
      delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
    }
  });

  it('through a real cluster: `--background white --fit contain`, and a colour that is none refused before any upload', async () => {
    cluster = await startCluster({ workers: 1 });
    const out = path.join(dir, 'cluster-out');
    const r = await cluster.runCli(['submit', 'image', '--width', '200', '--height', '200', '--fit', 'contain', '--background', 'white', '--format', 'png', photo, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { outputs: { path: string }[] };
    const img = await sharp(job.outputs[0]!.path).raw().toBuffer({ resolveWithObject: true });
    expect(pixel(img, 100, 10)).toEqual([255, 255, 255]);
    const bad = await cluster.runCli(['submit', 'image', '--fit', 'contain', '--background', 'whit', photo, '-o', path.join(dir, 'bad')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT.*image\.background: "whit" is not a colour/);
  });
});
