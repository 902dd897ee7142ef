/**
 * A cover or contain box with a flip or a half turn, through the tiled path (`--tile 64`), must be
 * the batch path's image: the README says flip and right-angle rotation are pixel-identical to the
 * same pipeline in one sharp call.
 *
 * In one sharp call the cover crop (centre) is taken after the flip / half turn; when the resized
 * image's overflow is odd (151 x 109 to cover 148 x 58: 107 rows, 49 to cut) the centred crop of
 * the flipped image is one row off that of the upright one. The tiled path crops in its decode pass
 * (tile-pipeline.ts `splitForTiles`: resize with its crop in the prefix) and flips the tiles after,
 * so its whole output is shifted by one row against the batch path's (a contain box's padding
 * likewise: its bars of 1 and 2 rows swap sides).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { comparePixels, imageParams, makeSource, runTiledInProcess } from './tiles-helpers.js';
import { runImageBatch } from './helpers/image-batch.js';

let dir: string;
let src: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiles-cover-flip-'));
  src = await makeSource(path.join(dir, 'photo.png'), 151, 109);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cover box and a flip or half turn, tiled as on the batch path', () => {
  it.each([
    ['cover 148x58 + flip', { width: 148, height: 58, fit: 'cover', flip: true }],
    ['cover 148x58 + rotate 180', { width: 148, height: 58, fit: 'cover', rotate: 180 }],
    // contain: 200 x 144 padded by 3 rows to 147, split 1 / 2: the bars swap sides.
    ['contain 200x147 + rotate 180', { width: 200, height: 147, fit: 'contain', rotate: 180 }],
  ])('%s', async (label, p) => {
    const tiled = await runTiledInProcess(src, imageParams({ ...p, tile_size: 64 }), path.join(dir, `t-${label.replace(/\W/g, '')}`));
    const batch = await runImageBatch(dir, { 'photo.png': await readFile(src) }, p);
    expect(batch.itemErrors).toEqual([]);
    // Same size; observed max difference 180-240 (every row shifted by one).
    const r = await comparePixels(tiled.output, batch.outputs[0]!.path);
    expect([r.width, r.height]).toEqual([p.width, p.height]);
    expect(r.maxDiff).toBe(0);
  });
});
