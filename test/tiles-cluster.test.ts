/** Tiled huge-image path on a real cluster: tiles spread over two workers, stitched pixel-exact. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import sharp from 'sharp';
import { applyEncoding, applyPipeline } from '../shared/media/image-pipeline.js';
import { comparePixels, imageParams, makeSource, runWhole } from './tiles-helpers.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiles-cluster-'));
  // A low automatic threshold, so that a small image takes the default strip path a huge one would.
  cluster = await startCluster({ workers: 2, slots: 1, env: { TESSERA_TILE_THRESHOLD_PIXELS: '500000' } });
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('tiled image job on two workers', () => {
  it('blur + sharpen + rotate with forced 256 px tiles equals the whole-image pipeline, tiles on both workers', async () => {
    const src = await makeSource(path.join(dir, 'big.png'), 1237, 911);
    const r = await cluster.runCli(['submit', 'image', '--tile', '256', '--blur', '2.5', '--sharpen', '--rotate', '90', '--format', 'png', src, '-o', path.join(dir, 'out'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { outputs: { path: string }[]; subtasks: { worker: string; label: string }[] };
    expect(job.outputs).toHaveLength(1);
    // ceil(911/256) x ceil(1237/256) tiles, rotated: the grid is laid on the output image.
    expect(job.subtasks.length).toBe(Math.ceil(911 / 256) * Math.ceil(1237 / 256));
    expect(new Set(job.subtasks.map((s) => s.worker))).toEqual(new Set(['worker-1', 'worker-2']));
    const whole = await runWhole(src, imageParams({ blur: 2.5, sharpen: true, rotate: 90, format: 'png' }), path.join(dir, 'whole.png'));
    const cmp = await comparePixels(job.outputs[0]!.path, whole);
    expect([cmp.width, cmp.height]).toEqual([911, 1237]);
    expect(cmp.maxDiff).toBe(0);
  });

  it('an auto-tiled JPEG is decoded once, cut into strips for both workers and joined pixel-exact', async () => {
    const src = await makeSource(path.join(dir, 'auto.jpg'), 1237, 911, 'jpeg');
    const r = await cluster.runCli(['submit', 'image', '--blur', '3', '--sharpen', '--format', 'jpeg', src, '-o', path.join(dir, 'out-auto'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { outputs: { path: string }[]; subtasks: { worker: string; label: string }[] };
    const strip = expect.stringMatching(/strip \d\/2 .*from the decoded intermediate/);
    expect(job.subtasks.map((s) => s.label)).toEqual([strip, strip]);
    expect(new Set(job.subtasks.map((s) => s.worker))).toEqual(new Set(['worker-1', 'worker-2']));
    const params = imageParams({ blur: 3, sharpen: true, format: 'jpeg' });
    const whole = path.join(dir, 'whole-auto.jpg');
    await applyEncoding(applyPipeline(sharp(src), params), params, 'jpeg').toFile(whole);
    const cmp = await comparePixels(job.outputs[0]!.path, whole);
    expect([cmp.width, cmp.height]).toEqual([1237, 911]);
    expect(cmp.maxDiff).toBe(0);
  });
});
