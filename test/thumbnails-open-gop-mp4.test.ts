/**
 * An open-GOP H.264 (x264 --open-gop, as x265's default CRA/RASL HEVC is) keeps B-frames after a
 * keyframe in decoding order that are shown before it. In MP4 a seek to a time among those frames
 * lands on the keyframe (the demuxer looks at decoding times), and they cannot be decoded from it:
 * the thumbnail is the keyframe, a frame or two after the first frame at or after its time, which
 * the README promises. The same stream remuxed into Matroska gets the right frame.
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-opengop-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Frame N of the source is flat grey at limited-range level 16 + 4 * (N mod 50): its number back from a thumbnail's mean. */
async function frameOf(file: string): Promise<number> {
  const { channels } = await sharp(file).greyscale().stats();
  return Math.round(channels[0]!.mean / ((4 * 255) / 219));
}

describe('thumbnails of an open-GOP MP4 at a time among the leading B-frames of a keyframe', () => {
  it('--every 2.1 s of a 25 fps clip (keyframe at 2.16 s, B-frames at 2.08 and 2.12 s after it) takes the frame at 2.12 s', async () => {
    const mp4 = path.join(dir, 'opengop.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', "nullsrc=s=160x120:r=25:d=3,geq=lum='16+mod(N\\,50)*4':cb=128:cr=128,noise=alls=6:allf=t",
      '-c:v', 'libx264', '-preset', 'veryfast', '-x264-params', 'open-gop=1:keyint=27:min-keyint=27:scenecut=0:bframes=3:b-adapt=0', mp4]);
    const mkv = path.join(dir, 'opengop.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-i', mp4, '-c', 'copy', mkv]);
    // Times 0 and 2.1 s: the second thumbnail should be frame 53 (2.12 s), the first at or after 2.1 s.
    const picked: Record<string, number> = {};
    for (const src of [mkv, mp4]) {
      const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 2.1, width: 32 }), [src], { dir });
      expect(run.errors).toEqual([]);
      picked[path.basename(src)] = (await frameOf(run.outputs.find((o) => o.name === 'thumb-00002.jpg')!.path)) + 50;
    }
    // Observed: { 'opengop.mkv': 53, 'opengop.mp4': 54 }: the MP4's is the keyframe at 2.16 s.
    expect(picked).toEqual({ 'opengop.mkv': 53, 'opengop.mp4': 53 });
  });
});
