/**
 * Image outputs on a real cluster (coordinator + 2 worker processes, CLI): a pyramid asked for is
 * made at any size, pyramid formats are decided at submission, output names are decided once from
 * the inputs' content and made unique, and a truncated huge JPEG on the strip path is one
 * INVALID_ARGUMENT of its own.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { makeSource } from '../tiles-helpers.js';

let cluster: TestCluster;
let dir: string;
let run = 0;

type JobJson = { state: string; outputs: { name: string; path: string; source: string }[]; errors: { input: string; code: string; message: string }[]; subtasks: { label: string }[] };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-image-outputs-'));
  // Above 300,000 px an image takes the automatic strip path, as a huge one would.
  cluster = await startCluster({ workers: 2, slots: 1, env: { TESSERA_TILE_THRESHOLD_PIXELS: '300000' } });
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function submit(args: string[], files: string[]): Promise<{ code: number; job: JobJson; stderr: string }> {
  const r = await cluster.runCli(['submit', 'image', ...args, ...files, '-o', path.join(dir, `out-${run++}`), '--json']);
  return { code: r.code ?? -1, job: (r.stdout.trim() ? JSON.parse(r.stdout) : {}) as JobJson, stderr: r.stderr };
}

const names = (job: JobJson): string[] => job.outputs.map((o) => o.name).sort();

describe('pyramids', () => {
  it('are made whatever the size: a small image, and one resized below the threshold', async () => {
    const small = await makeSource(path.join(dir, 'small.jpg'), 300, 200, 'jpeg');
    const iiif = await submit(['--pyramid', 'iiif'], [small]);
    expect(iiif.code, iiif.stderr).toBe(0);
    expect(names(iiif.job)).toEqual(['small.zip']);
    expect((await readFile(iiif.job.outputs[0]!.path)).includes(Buffer.from('info.json'))).toBe(true);
    const big = await makeSource(path.join(dir, 'big.jpg'), 700, 500, 'jpeg');
    const dz = await submit(['--width', '200', '--pyramid', 'deepzoom'], [big]);
    expect(dz.code, dz.stderr).toBe(0);
    expect(names(dz.job)).toEqual(['big.zip']);
    expect((await readFile(dz.job.outputs[0]!.path)).includes(Buffer.from('Width="200"'))).toBe(true);
  });

  it('refuse --format tiff or avif at submission, naming the field and the tile formats; a TIFF source gets JPEG tiles', async () => {
    const small = await makeSource(path.join(dir, 'refused.png'), 64, 64);
    for (const format of ['tiff', 'avif']) {
      const r = await submit(['--format', format, '--pyramid', 'deepzoom'], [small]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/INVALID_ARGUMENT.*image\.format: .*jpeg, png, webp tiles/);
    }
    const tif = path.join(dir, 'scan.tif');
    await sharp(small).tiff().toFile(tif);
    const good = await makeSource(path.join(dir, 'good.png'), 80, 60);
    const r = await submit(['--pyramid', 'deepzoom'], [tif, good]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.job.state).toBe('succeeded');
    expect(names(r.job)).toEqual(['good.zip', 'scan.zip']);
  });
});

describe('output names', () => {
  it('two inputs of one stem as pyramids get two distinct zips (the second its whole name), the job succeeds', async () => {
    const a = await makeSource(path.join(dir, 'noise.jpg'), 120, 90, 'jpeg');
    const b = await makeSource(path.join(dir, 'noise.png'), 120, 90);
    const r = await submit(['--pyramid', 'deepzoom'], [a, b]);
    expect(r.code, r.stderr).toBe(0);
    expect(names(r.job)).toEqual(['noise.png.zip', 'noise.zip']);
    expect(r.job.outputs.find((o) => o.name === 'noise.zip')?.source).toBe('noise.jpg');
  });

  it('are decided from the content: a PNG named a.jpg beside a.jpg.png, and a PNG without extension', async () => {
    const sub = path.join(dir, 'named');
    await rm(sub, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(sub));
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#884422' } }).png().toBuffer();
    await writeFile(path.join(sub, 'a.jpg'), png);
    await writeFile(path.join(sub, 'a.jpg.png'), png);
    await writeFile(path.join(sub, 'noext'), png);
    const r = await submit(['--width', '20'], ['a.jpg', 'a.jpg.png', 'noext'].map((f) => path.join(sub, f)));
    expect(r.code, r.stderr).toBe(0);
    expect(names(r.job)).toEqual(['a.jpg.png', 'a.png', 'noext.png']);
    for (const o of r.job.outputs) expect((await sharp(o.path).metadata()).format).toBe('png');
  });
});

describe('a truncated huge JPEG on the strip path', () => {
  it('is one INVALID_ARGUMENT naming the input, no DATA_LOSS, beside a good input that succeeds', async () => {
    const whole = await makeSource(path.join(dir, 'whole.jpg'), 800, 800, 'jpeg');
    const bytes = await readFile(whole);
    const trunc = path.join(dir, 'bigtrunc.jpg');
    await writeFile(trunc, bytes.subarray(0, Math.floor(bytes.length * 0.4)));
    const good = await makeSource(path.join(dir, 'fine.jpg'), 100, 80, 'jpeg');
    const r = await submit([], [trunc, good]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.job.subtasks.some((s) => /bigtrunc\.jpg strip .* from the source/.test(s.label))).toBe(true);
    expect(names(r.job)).toEqual(['fine.jpg']);
    expect(r.job.errors).toEqual([
      { input: 'bigtrunc.jpg', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^bigtrunc\.jpg: cannot decode image for tiling: not a decodable image \(/) },
    ]);
  });
});

describe('TIFF inputs and outputs (review I)', () => {
  it('a pyramidal TIFF is one image: resized in the default format (TIFF) and into WebP', async () => {
    // The image, then the same at half and quarter size, each marked a reduced-resolution version.
    const pyramid = path.join(dir, 'scan.tif');
    await sharp({ create: { width: 1024, height: 768, channels: 3, background: { r: 180, g: 120, b: 60 } } })
      .tiff({ pyramid: true, tile: true, tileWidth: 256, tileHeight: 256 })
      .toFile(pyramid);
    for (const format of [[], ['--format', 'webp']]) {
      const r = await submit(['--width', '500', ...format], [pyramid]);
      // Before: "scan.tif: its 3 pages are not all alike (page 2 is 512x384 ...)".
      expect(r.code, r.stderr).toBe(0);
      const m = await sharp(r.job.outputs[0]!.path, { animated: true }).metadata();
      expect([m.format, m.width, m.pageHeight ?? m.height, m.pages ?? 1]).toEqual([format.length ? 'webp' : 'tiff', 500, 375, 1]);
    }
  });

  it('--keep-metadata into TIFF says that the EXIF is not kept (libvips writes none there); into JPEG it is kept, without a word', async () => {
    const photo = path.join(dir, 'camera.jpg');
    await sharp({ create: { width: 320, height: 240, channels: 3, background: '#468' } })
      .withExif({ IFD0: { Make: 'Tessera Optics', Model: 'T-1', Copyright: 'review I' } })
      .jpeg()
      .toFile(photo);
    const tiff = await submit(['--keep-metadata', '--format', 'tiff'], [photo]);
    expect(tiff.code, tiff.stderr).toBe(0);
    // Before: the job succeeded without a word, the camera, time and GPS gone.
    expect((tiff.job as JobJson & { warnings: { input: string; message: string }[] }).warnings).toEqual([
      { input: 'camera.jpg', message: expect.stringContaining('its EXIF (camera, time, GPS) is not kept in a TIFF output') },
    ]);
    expect((await sharp(tiff.job.outputs[0]!.path).metadata()).exif).toBeUndefined();
    const jpeg = await submit(['--keep-metadata', '--format', 'jpeg'], [photo]);
    expect(jpeg.code, jpeg.stderr).toBe(0);
    expect((jpeg.job as JobJson & { warnings: unknown[] }).warnings).toEqual([]);
    expect((await sharp(jpeg.job.outputs[0]!.path).metadata()).exif?.includes(Buffer.from('Tessera Optics'))).toBe(true);
  });
});
