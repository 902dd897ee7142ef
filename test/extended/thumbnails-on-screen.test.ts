/**
 * Each thumbnail shows the picture on screen at its time, as a player seeking there shows it (the
 * last frame at or before the time), so that every cue of the VTT previews what plays during it.
 * The frame at or after each time was taken, as `ffmpeg -ss` takes it: `--count 10` of a 10-frame
 * clip showed frames 1-9 and 9 again (frame 0 never, and no warning), and a screen capture's cues
 * from 1 to 4 s the picture that only came at 4 s (review thumb).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-on-screen-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Frame N of the sources below is grey 16 + 20 N. */
const GREY = "geq=lum='16+N*20':cb=128:cr=128";
async function frameOf(file: string): Promise<number> {
  const { channels } = await sharp(file).greyscale().stats();
  // Decoded to full range: grey (Y - 16) * 255 / 219.
  return Math.round((channels[0]!.mean * 219) / 255 / 20);
}

async function shown(src: string, params: Record<string, unknown>): Promise<number[]> {
  const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { width: 32, ...params }), [src], { dir });
  expect(run.errors).toEqual([]);
  const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-')).sort((a, b) => a.name.localeCompare(b.name));
  return Promise.all(thumbs.map((t) => frameOf(t.path)));
}

describe('thumbnails show the picture on screen at their times', () => {
  it('--count 10 of a 10-frame clip (1 fps) shows each frame once, in order', async () => {
    const src = path.join(dir, 'slides.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `nullsrc=s=64x48:r=1:d=10,${GREY}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0', '-pix_fmt', 'yuv420p', src]);
    // Observed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 9].
    expect(await shown(src, { count: 10 })).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await shown(src, { count: 3 })).toEqual([1, 5, 8]);
  });

  it('--every 1 of a screen capture whose frames come at 0, 4 and 8 s: each cue shows what plays during it', async () => {
    const src = path.join(dir, 'capture.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `nullsrc=s=64x48:r=1:d=3,${GREY},setpts=N*4/TB`, '-fps_mode', 'passthrough', '-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0', '-pix_fmt', 'yuv420p', src]);
    // Observed: [0, 1, 1, 1, 1, 2, 2, 2, 2, ...]: the cues from 1 to 5 s showed the picture of 4 s.
    expect((await shown(src, { every: 1 })).slice(0, 9)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2]);
  });
});
