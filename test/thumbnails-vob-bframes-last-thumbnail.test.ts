/**
 * An MPEG-PS written as a DVD's VOB (MPEG-2 with B-frames; the muxer leaves many keyframes without a
 * PTS) asked for a thumbnail near its end: `--every 0.7` of a 5 s, 25 fps clip asks 0 ... 4.9 s, the
 * last one on the clip's last frame. That thumbnail comes out of no frame and the whole input fails
 * DATA_LOSS ("no frame came out for thumb-00008.jpg"), where a plain MPEG-PS (-f mpeg) of the same
 * frames makes all eight. (Before and after 9a7e775..e83e70c alike: not a regression of that range.)
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-vob-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Frame N of the source is flat grey at limited-range level 16 + 4 * (N mod 50): its number (mod 50) back from a thumbnail. */
async function frameOf(file: string): Promise<number> {
  const { channels } = await sharp(file).greyscale().stats();
  return Math.round(channels[0]!.mean / ((4 * 255) / 219));
}

describe('thumbnails of a VOB (MPEG-PS, MPEG-2 with B-frames)', () => {
  it('--every 0.7 of a 5 s clip: all eight thumbnails, each the frame at or after its time as ffmpeg -ss takes it', async () => {
    const src = path.join(dir, 'clip.vob');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', "nullsrc=s=160x120:r=25:d=5,geq=lum='16+mod(N\\,50)*4':cb=128:cr=128",
      '-c:v', 'mpeg2video', '-bf', '2', '-g', '12', '-f', 'vob', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.7, width: 32 }), [src], { dir });
    // Observed: [{ code: 'DATA_LOSS', message: 'clip.vob: no frame came out for thumb-00008.jpg' }], no thumbnails.
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    // Times 0, 0.7, ... 4.2 s: frames 0, 18, 35, 53, 70, 88, 105 (mod 50); at 4.9 s the frame
    // `ffmpeg -ss 4.9` takes (the README's reference), which in this VOB, whose late packets carry
    // no times, is the one 40 ms before (122, not 123).
    const ref = path.join(dir, 'ref.jpg');
    await runFfmpeg(['-y', '-v', 'error', '-ss', '4.9', '-i', src, '-frames:v', '1', '-vf', 'scale=32:-2', ref]);
    expect(await Promise.all(thumbs.map((o) => frameOf(o.path)))).toEqual([0, 18, 35, 3, 20, 38, 5, await frameOf(ref)]);
  }, 60_000);
});
