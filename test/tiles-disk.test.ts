/**
 * The coordinator's disk while it tiles an image, in-process: what the decoded intermediate and the
 * pieces cut from it take is refused up front when it does not fit (counted in the bands libvips
 * really writes), and the intermediate does not stay once the pieces are cut.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SpoolFile } from '../shared/job-kind.js';
import { allTiles, planTiles } from '../coordinator/kinds/image-tiles.js';
import { tileConfig } from '../shared/media/tile-config.js';
import { imageParams, makeSource } from './tiles-helpers.js';

// The room the coordinator's disk reports, when a test sets one (the machine's own disk is far larger).
const disk = vi.hoisted(() => ({ room: undefined as undefined | { free: number; total: number } }));
vi.mock('../shared/disk-space.js', async (real) => {
  const mod = await real<typeof import('../shared/disk-space.js')>();
  return { ...mod, diskRoom: async (dir: string) => disk.room ?? mod.diskRoom(dir) };
});

let dir: string;
let run = 0;
const next = (): string => path.join(dir, `run-${run++}`, 'job');
const signal = new AbortController().signal;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiles-disk-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the coordinator's disk while it tiles", () => {
  it('a --tile grid removes the decoded intermediate once its tiles are cut', async () => {
    const src = await makeSource(path.join(dir, 'grid.png'), 301, 203);
    const input: SpoolFile = { name: 'grid.png', path: src, size: 0, sha256: '' };
    const job = next();
    const subtasks = await allTiles(await planTiles({ input, params: imageParams({ tile_size: 128, blur: 1 }), workDir: job, slots: 2, signal, config: tileConfig({}) }));
    expect(subtasks).toHaveLength(6);
    const [tiles] = await readdir(job);
    expect((await readdir(path.join(job, tiles!))).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `cut-${i}.v`).sort());
  });

  it('counts the bands libvips writes: a one-band grey source decodes to three-band sRGB, and is refused where it does not fit', async () => {
    const [w, h] = [400, 300];
    const rgb = await makeSource(path.join(dir, 'colour.png'), w, h);
    const grey = path.join(dir, 'grey.png');
    await sharp(rgb).toColourspace('b-w').png().toFile(grey);
    expect((await sharp(grey).metadata()).channels).toBe(1);
    const config = { ...tileConfig({}), stripRead: 'intermediate' as const };
    const plan = (name: string, file: string): Promise<unknown> =>
      planTiles({ input: { name, path: file, size: 0, sha256: '' }, params: imageParams({ blur: 1, format: 'png' }), workDir: next(), slots: 2, signal, config }).then(allTiles);
    // Room for twice one byte a pixel (what a one-band count gave) but not for three bands and their pieces.
    const total = 1e12;
    disk.room = { free: total / 20 + 4 * w * h, total };
    try {
      for (const [name, file] of [['colour.png', rgb], ['grey.png', grey]]) {
        await expect(plan(name!, file!), name).rejects.toMatchObject({ codeName: 'RESOURCE_EXHAUSTED', message: expect.stringContaining(`${name}: tiling it needs about`) });
      }
    } finally {
      disk.room = undefined;
    }
    // What it would have written is three bands.
    expect((await sharp(grey).toFile(path.join(dir, 'grey-decoded.v'))).channels).toBe(3);
    // With the disk's real room it is tiled.
    expect(await plan('grey.png', grey)).toHaveLength(2);
  });
});
