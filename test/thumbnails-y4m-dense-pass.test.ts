/**
 * A Y4M source (on the video allow-list) seeked to a time between two frames gives its first frame
 * after the seek the timestamp 0 rather than its distance past the time: the one decoding pass that
 * dense thumbnails take then measures every later frame that much early, and a time exactly on a
 * frame takes the frame after it. `ffmpeg -ss 2.8 -i in.y4m -frames:v 1` gives frame 70, as the
 * seeking path does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-y4m-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Frame N of the source is flat grey at limited-range level 16 + 4 * (N mod 50): its number (mod 50) back from a thumbnail. */
async function frameOf(file: string): Promise<number> {
  const { channels } = await sharp(file).greyscale().stats();
  return Math.round(channels[0]!.mean / ((4 * 255) / 219));
}

describe('dense thumbnails of a Y4M source', () => {
  it('--every 0.7 of 3 s at 25 fps: the thumbnail at 2.8 s is frame 70, not 71', async () => {
    const src = path.join(dir, 'clip.y4m');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', "nullsrc=s=64x48:r=25:d=3,geq=lum='16+mod(N\\,50)*4':cb=128:cr=128", src]);
    // Two subtasks (0, 0.7, 1.4 s and 2.1, 2.8 s), each one pass; the second seeks to 2.1 s, between frames 52 and 53.
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.7, width: 32 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    // Frames 0, 18 (0.72 s), 35, 53 (2.12 s), 70, mod 50. Observed: [0, 18, 35, 3, 21].
    expect(await Promise.all(thumbs.map((o) => frameOf(o.path)))).toEqual([0, 18, 35, 3, 20]);
  });
});
