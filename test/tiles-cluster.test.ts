/** Tiled huge-image path on a real cluster: tiles spread over two workers, stitched pixel-exact. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import sharp from 'sharp';
import { applyEncoding, applyPipeline } from '../shared/media/image-pipeline.js';
import { comparePixels, imageParams, makeSource, runWhole } from './tiles-helpers.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiles-cluster-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type JobJson = { outputs: { path: string }[]; subtasks: { worker: string; label: string }[] };

/** Submits an auto-tiled blur + sharpen JPEG job; checks its strips' labels, workers and pixels against the whole-image pipeline. */
async function autoTiledJpeg(cluster: TestCluster, name: string, labels: RegExp): Promise<void> {
  const src = await makeSource(path.join(dir, `${name}.jpg`), 1237, 911, 'jpeg');
  const r = await cluster.runCli(['submit', 'image', '--blur', '3', '--sharpen', '--format', 'jpeg', src, '-o', path.join(dir, `out-${name}`), '--json']);
  expect(r.code, r.stderr).toBe(0);
  const job = JSON.parse(r.stdout) as JobJson;
  expect(job.subtasks.map((s) => s.label)).toEqual([expect.stringMatching(labels), expect.stringMatching(labels)]);
  expect(new Set(job.subtasks.map((s) => s.worker))).toEqual(new Set(['worker-1', 'worker-2']));
  const params = imageParams({ blur: 3, sharpen: true, format: 'jpeg' });
  const whole = path.join(dir, `whole-${name}.jpg`);
  await applyEncoding(applyPipeline(sharp(src), params), params, 'jpeg').toFile(whole);
  const cmp = await comparePixels(job.outputs[0]!.path, whole);
  expect([cmp.width, cmp.height]).toEqual([1237, 911]);
  expect(cmp.maxDiff).toBe(0);
}

describe('tiled image job on two workers (default strip read)', () => {
  let cluster: TestCluster;
  // A low automatic threshold, so that a small image takes the strip path a huge one would.
  beforeAll(async () => {
    cluster = await startCluster({ workers: 2, slots: 1, env: { TESSERA_TILE_THRESHOLD_PIXELS: '500000' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('blur + sharpen + rotate with forced 256 px tiles equals the whole-image pipeline, tiles on both workers', async () => {
    const src = await makeSource(path.join(dir, 'big.png'), 1237, 911);
    const r = await cluster.runCli(['submit', 'image', '--tile', '256', '--blur', '2.5', '--sharpen', '--rotate', '90', '--format', 'png', src, '-o', path.join(dir, 'out'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as JobJson;
    expect(job.outputs).toHaveLength(1);
    // ceil(911/256) x ceil(1237/256) tiles, rotated: the grid is laid on the output image.
    expect(job.subtasks.length).toBe(Math.ceil(911 / 256) * Math.ceil(1237 / 256));
    expect(new Set(job.subtasks.map((s) => s.worker))).toEqual(new Set(['worker-1', 'worker-2']));
    const whole = await runWhole(src, imageParams({ blur: 2.5, sharpen: true, rotate: 90, format: 'png' }), path.join(dir, 'whole.png'));
    const cmp = await comparePixels(job.outputs[0]!.path, whole);
    expect([cmp.width, cmp.height]).toEqual([911, 1237]);
    expect(cmp.maxDiff).toBe(0);
  });

  it('an auto-tiled JPEG is read as strips from the source on both workers and joined pixel-exact', async () => {
    await autoTiledJpeg(cluster, 'auto', /strip \d\/2 .*from the source/);
  });
});

describe('tiled image job on two workers (TESSERA_TILE_STRIP_READ=intermediate)', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ workers: 2, slots: 1, env: { TESSERA_TILE_THRESHOLD_PIXELS: '500000', TESSERA_TILE_STRIP_READ: 'intermediate' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('an auto-tiled JPEG is decoded once, its strips handed to both workers as they are cut (PlanResult.later) and joined pixel-exact', async () => {
    await autoTiledJpeg(cluster, 'decoded', /strip \d\/2 .*from the decoded intermediate/);
  });
});
