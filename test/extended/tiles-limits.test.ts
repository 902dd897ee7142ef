/**
 * The tiled path's limits as the README states them ("Memory": a worker holds one piece, at most
 * TESSERA_TILE_MAX_STRIP_PIXELS; limits are named in the error that hits them). A JPEG's strips
 * read from the source are cut taller at the top: counted as equal, the top one passed the limit.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpoolFile } from '../../shared/job-kind.js';
import type { TilePlan } from '../../shared/media/tile-plan.js';
import { tileConfig } from '../../shared/media/tile-config.js';
import { allTiles, planTiledInputs, planTiles } from '../../coordinator/kinds/image-tiles.js';
import { imageParams, makeSource } from '../tiles-helpers.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let jpeg: string;
const signal = new AbortController().signal;
const spool = (file: string): SpoolFile => ({ name: path.basename(file), path: file, size: 0, sha256: '' });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiles-limits-'));
  jpeg = await makeSource(path.join(dir, 'big.jpg'), 1024, 1024, 'jpeg');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('TESSERA_TILE_MAX_STRIP_PIXELS', () => {
  it('no strip read from a JPEG source is over the piece limit (balanced strips)', async () => {
    // 1024 x 1024 = 1,048,576 px; limit 131,072 px -> 8 strips of 128 rows if equal.
    // 300,000 px: 6 balanced strips fit (the top one 278 rows); 131,072 px: none of 8 do (the top
    // one of 8 is 246 rows, where 128 would be equal), and the strips come from the decoded copy.
    for (const [limit, read] of [[300_000, 'source'], [131_072, 'intermediate']] as const) {
      const config = { ...tileConfig({}), thresholdPixels: 1000, maxStripPixels: limit, stripRead: 'source' } as const;
      const p = await planTiles({ input: spool(jpeg), params: imageParams({}), workDir: path.join(dir, `run-strips-${limit}`), slots: 2, signal, config });
      const plans = (await allTiles(p)).map((s) => s.plan as TilePlan);
      expect(plans[0]!.read, String(limit)).toBe(read);
      const sizes = plans.map((t) => t.cut.w * t.cut.h);
      // Observed: the top strip of 8 was 246 rows = 251,904 px, nearly twice the 131,072 limit.
      expect(Math.max(...sizes), String(limit)).toBeLessThanOrEqual(limit);
    }
  });
});

describe('a forced tile size (--tile) against TESSERA_TILE_MAX_STRIP_PIXELS', () => {
  it('pieces over the limit are refused at planning, naming the size that fits; those within are cut', async () => {
    const config = { ...tileConfig({}), thresholdPixels: 1000, maxStripPixels: 300_000 } as const;
    // 1024 x 1024 tiles of the 1024 x 1024 JPEG: one piece of 1,048,576 px, 3.5 times the limit.
    // Observed before: one subtask of the whole image, whatever the limit.
    const over = await planTiledInputs([spool(jpeg)], imageParams({ tile_size: 1024 }), { workDir: path.join(dir, 'run-forced-over'), slots: 2, signal, config });
    expect(over.subtasks).toHaveLength(0);
    expect(over.errors).toHaveLength(1);
    expect(over.errors[0]!.code).toBe('INVALID_ARGUMENT');
    expect(over.errors[0]!.message).toBe('big.jpg: image.tile_size 1024 makes pieces of 1.05 Mpx with their 0 px halo, more than the 0.30 Mpx a worker holds at once (TESSERA_TILE_MAX_STRIP_PIXELS); at most 547 fits, or leave tile_size at 0 for strips');
    // The halo counts: blur(4) needs 12 px on each side, so 547 no longer fits.
    const blurred = await planTiledInputs([spool(jpeg)], imageParams({ tile_size: 547, blur: 4 }), { workDir: path.join(dir, 'run-forced-halo'), slots: 2, signal, config });
    expect(blurred.errors[0]?.message).toMatch(/image\.tile_size 547 .* with their \d+ px halo.*; at most \d+ fits/);
    const within = await planTiledInputs([spool(jpeg)], imageParams({ tile_size: 512 }), { workDir: path.join(dir, 'run-forced-within'), slots: 2, signal, config });
    expect(within.errors).toHaveLength(0);
    const plans = within.subtasks.map((s) => s.plan as TilePlan);
    expect(plans).toHaveLength(4);
    for (const t of plans) expect(t.cut.w * t.cut.h).toBeLessThanOrEqual(300_000);
  });
});

describe('a source libvips decodes only whole', () => {
  it('above TESSERA_TILE_MAX_STRIP_PIXELS: left to the batch path where tiling was not asked for; refused RESOURCE_EXHAUSTED, named, where it was (the coordinator would hold all of it decoded)', async () => {
    const progressive = path.join(dir, 'prog.jpg');
    const interlaced = path.join(dir, 'inter.png');
    await sharp(jpeg).jpeg({ progressive: true }).toFile(progressive);
    await sharp(jpeg).png({ progressive: true }).toFile(interlaced);
    const config = { ...tileConfig({}), thresholdPixels: 1000, maxStripPixels: 500_000 } as const;
    for (const [file, what] of [[progressive, 'a progressive JPEG'], [interlaced, 'an interlaced PNG']] as const) {
      // Over the threshold only: one worker makes it whole, as it would a smaller image (it was refused).
      const auto = await planTiledInputs([spool(file)], imageParams({ blur: 1 }), { workDir: path.join(dir, `run-whole-auto-${what.length}`), slots: 2, signal, config });
      expect([...auto.tiled, ...auto.errors.map((e) => e.message)]).toEqual([]);
      const forced = await planTiledInputs([spool(file)], imageParams({ blur: 1, tile_size: 256 }), { workDir: path.join(dir, `run-whole-${what.length}`), slots: 2, signal, config });
      expect(forced.subtasks).toHaveLength(0);
      expect(forced.errors.map((e) => [e.code, e.message])).toEqual([
        ['RESOURCE_EXHAUSTED', `${path.basename(file)}: ${what} of 1024x1024 decodes only whole, and 1 Mpx is more than a decode may hold (1 Mpx, TESSERA_TILE_MAX_STRIP_PIXELS): save it as a baseline JPEG, a non-interlaced PNG or a TIFF, or leave image.tile_size at 0 (one worker then makes it whole)`],
      ]);
      // A pyramid is made only tiled: no other way out.
      const pyramid = await planTiledInputs([spool(file)], imageParams({ tiled_output: 'deepzoom' }), { workDir: path.join(dir, `run-whole-dz-${what.length}`), slots: 2, signal, config });
      expect(pyramid.errors.map((e) => e.message)).toEqual([expect.stringMatching(/decodes only whole.*: save it as a baseline JPEG, a non-interlaced PNG or a TIFF$/)]);
    }
    // The same pixels baseline-encoded are cut as they decode.
    const ok = await planTiledInputs([spool(jpeg)], imageParams({ blur: 1 }), { workDir: path.join(dir, 'run-whole-baseline'), slots: 2, signal, config });
    expect(ok.errors).toEqual([]);
    expect([...ok.tiled]).toEqual(['big.jpg']);
  });
});

describe('TESSERA_TILE_LIMIT_INPUT_PIXELS', () => {
  it('a source over the limit (its result under it) is refused RESOURCE_EXHAUSTED naming the limit, not INVALID_ARGUMENT', async () => {
    // The source is 1,048,576 px, over a limit of 500,000; the result (resized to 256 px) is 65,536 px.
    const config = { ...tileConfig({}), thresholdPixels: 1000, limitInputPixels: 500_000 } as const;
    const r = await planTiledInputs([spool(jpeg)], imageParams({ tile_size: 128, width: 256 }), { workDir: path.join(dir, 'run-limit'), slots: 2, signal, config });
    expect(r.subtasks).toHaveLength(0);
    expect(r.errors).toHaveLength(1);
    // Observed: INVALID_ARGUMENT "big.jpg: cannot decode image for tiling: Input image exceeds pixel limit".
    expect(r.errors[0]!.code).toBe('RESOURCE_EXHAUSTED');
    expect(r.errors[0]!.message).toContain('TESSERA_TILE_LIMIT_INPUT_PIXELS');
  });
});

function clusterWith(env: Record<string, string>): () => TestCluster {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ workers: 2, slots: 1, env: { TESSERA_TILE_THRESHOLD_PIXELS: '1000', ...env } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  return () => cluster;
}

describe('on a real cluster, TESSERA_TILE_MAX_STRIP_PIXELS=300000', () => {
  const cluster = clusterWith({ TESSERA_TILE_MAX_STRIP_PIXELS: '300000' });
  it('every strip a worker is handed is within TESSERA_TILE_MAX_STRIP_PIXELS', async () => {
    const r = await cluster().runCli(['submit', 'image', '--format', 'jpeg', jpeg, '-o', path.join(dir, 'out-strips'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { subtasks: { label: string }[] };
    const sizes = job.subtasks.map((s) => {
      const m = / (\d+)x(\d+) from the source/.exec(s.label);
      return Number(m![1]) * Number(m![2]);
    });
    // Observed: 4 strips, the top one 1024x347 (355,328 px).
    expect(sizes.length).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(300_000);
  });

  it('a portrait photo over it (EXIF orientation 6, which libvips applies only to a whole decode) is made whole by one worker, upright, not refused', async () => {
    // A phone's portrait photo, in small: stored 1024 x 768 on its side, 786,432 px, over the limit.
    const photo = path.join(dir, 'portrait.jpg');
    await sharp(jpeg).resize(1024, 768, { fit: 'fill' }).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toFile(photo);
    const out = path.join(dir, 'out-portrait');
    const r = await cluster().runCli(['submit', 'image', '--format', 'png', photo, '-o', out, '--json']);
    // Observed before: RESOURCE_EXHAUSTED "portrait.jpg: an image turned by its EXIF orientation 6 ... save it upright".
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { errors: unknown[]; subtasks: { label: string }[] };
    expect(job.errors).toEqual([]);
    expect(job.subtasks.map((s) => s.label)).toEqual([expect.not.stringMatching(/from the source|strip|tile/)]);
    const made = await sharp(path.join(out, 'portrait.png')).raw().toBuffer({ resolveWithObject: true });
    expect([made.info.width, made.info.height]).toEqual([768, 1024]);
    const upright = await sharp(photo).rotate().raw().toBuffer();
    expect(made.data.equals(upright)).toBe(true);
  });
});

describe('on a real cluster, TESSERA_TILE_LIMIT_INPUT_PIXELS=500000', () => {
  const cluster = clusterWith({ TESSERA_TILE_LIMIT_INPUT_PIXELS: '500000' });
  it('a source over TESSERA_TILE_LIMIT_INPUT_PIXELS fails RESOURCE_EXHAUSTED naming the limit', async () => {
    const r = await cluster().runCli(['submit', 'image', '--tile', '128', '--width', '256', jpeg, '-o', path.join(dir, 'out-limit'), '--json']);
    const job = JSON.parse(r.stdout) as { errors: { code: string; message: string }[] };
    // Observed: INVALID_ARGUMENT "big.jpg: cannot decode image for tiling: Input image exceeds pixel limit".
    expect(job.errors.map((e) => e.code)).toEqual(['RESOURCE_EXHAUSTED']);
    expect(job.errors[0]!.message).toContain('TESSERA_TILE_LIMIT_INPUT_PIXELS');
  });
});
