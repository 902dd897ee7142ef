/**
 * An MPEG-TS of a low frame rate with B-frames (a timelapse, a camera's 1-5 fps recording): its
 * frames are decoded up to two frames before they are shown, so a keyframe's decoding time lies
 * 0.4 s (5 fps) to 2 s (1 fps) before its presentation time. The planner's decode point (the
 * keyframe's presentation time less 0.1 s, or `-ss 0` at the file's start) then lands after the
 * keyframe in the stream: the first thumbnail is a frame of the next GOP, and at 1-2 fps a seek
 * past the first GOP gives no frame at all, failing the input DATA_LOSS.
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-tslowfps-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Frame N of the source is flat grey at limited-range level 16 + 4 * (N mod 50): its number (mod 50) back from a thumbnail. */
async function frameOf(file: string): Promise<number> {
  const { channels } = await sharp(file).greyscale().stats();
  return Math.round(channels[0]!.mean / ((4 * 255) / 219));
}

/** An MPEG-TS of `fps` frames a second with x264's default B-frames and a keyframe every `gop` frames. */
async function lowFpsTs(name: string, fps: number, seconds: number, gop: number): Promise<string> {
  const src = path.join(dir, name);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `nullsrc=s=160x120:r=${fps}:d=${seconds},geq=lum='16+mod(N\\,50)*4':cb=128:cr=128`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-g', String(gop), '-f', 'mpegts', src]);
  return src;
}

describe('thumbnails of a low frame rate MPEG-TS with B-frames', () => {
  it('--every 3 of a 5 fps capture: thumbnail 1 (0 s) is the first frame, not the second GOP\'s keyframe', async () => {
    const src = await lowFpsTs('five.ts', 5, 12, 15);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 3, width: 32 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    const picked = await Promise.all(thumbs.map((o) => frameOf(o.path)));
    // Times 0, 3, 6, 9 s: frames 0, 15, 30, 45. Observed: [15, 15, 30, 45].
    expect(picked).toEqual([0, 15, 30, 45]);
  });

  it('--every 3 of a 1 fps capture makes its thumbnails rather than failing DATA_LOSS', async () => {
    const src = await lowFpsTs('one.ts', 1, 20, 10);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 3, width: 32 }), [src], { dir });
    // Observed: [{ code: 'DATA_LOSS', message: 'one.ts: no frame came out for thumb-00005.jpg' }].
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    // Times 0, 3, ... 18 s: frames 0, 3, ... 18.
    expect(await Promise.all(thumbs.map((o) => frameOf(o.path)))).toEqual([0, 3, 6, 9, 12, 15, 18]);
  });
});
