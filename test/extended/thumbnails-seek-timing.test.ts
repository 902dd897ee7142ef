/**
 * Thumbnails of sources whose seeking or frame times are tricky, each picked as the first frame at
 * or after its time (as `ffmpeg -ss` takes it), read back by a flat grey level per frame (reviews
 * THOPT and K13).
 *
 * An MPEG-TS of a low frame rate with B-frames (a timelapse, a camera's 1-5 fps recording): its
 * frames are decoded up to two frames before they are shown, so a keyframe's decoding time lies
 * 0.4 s (5 fps) to 2 s (1 fps) before its presentation time. The planner's decode point (the
 * keyframe's presentation time less 0.1 s, or `-ss 0` at the file's start) then lands after the
 * keyframe in the stream: the first thumbnail is a frame of the next GOP, and at 1-2 fps a seek
 * past the first GOP gives no frame at all, failing the input DATA_LOSS.
 *
 * Two MPEG-TS recordings joined end to end (`cat a.ts b.ts`: the clock restarts at the join) play
 * for the length of both, and the video kind plays them straight on across the jump, with a
 * warning (README, "Timing"). The thumbnails kind plans by the clock as it is: `--every 1` of 3 s +
 * 3 s made 3 thumbnails, all of the first recording, the second left out without a word.
 *
 * An open-GOP H.264 (x264 --open-gop, as x265's default CRA/RASL HEVC is) keeps B-frames after a
 * keyframe in decoding order that are shown before it. In MP4 a seek to a time among those frames
 * lands on the keyframe (the demuxer looks at decoding times), and they cannot be decoded from it:
 * the thumbnail is the keyframe, a frame or two after the first frame at or after its time, which
 * the README promises. The same stream remuxed into Matroska gets the right frame.
 *
 * A Y4M source (on the video allow-list) seeked to a time between two frames gives its first frame
 * after the seek the timestamp 0 rather than its distance past the time: the one decoding pass that
 * dense thumbnails take then measures every later frame that much early, and a time exactly on a
 * frame takes the frame after it. `ffmpeg -ss 2.8 -i in.y4m -frames:v 1` gives frame 70, as the
 * seeking path does.
 *
 * An MPEG-PS written as a DVD's VOB (MPEG-2 with B-frames; the muxer leaves many keyframes without a
 * PTS) asked for a thumbnail near its end: `--every 0.7` of a 5 s, 25 fps clip asks 0 ... 4.9 s, the
 * last one on the clip's last frame. That thumbnail comes out of no frame and the whole input fails
 * DATA_LOSS ("no frame came out for thumb-00008.jpg"), where a plain MPEG-PS (-f mpeg) of the same
 * frames makes all eight. (Before and after 9a7e775..e83e70c alike: not a regression of that range.)
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-seek-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Frame N of a source is flat grey at limited-range level 16 + 4 * (N mod 50): its number (mod 50) back from a thumbnail. */
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

describe('thumbnails of two MPEG-TS recordings joined with cat', () => {
  it('--every 1 of 3 s + 3 s makes 6 thumbnails, the last 3 of the second recording', async () => {
    const parts: Buffer[] = [];
    // The first recording's frames are at levels N mod 50 (0, 25, 0 at 0, 1, 2 s); the second's all at 49.
    for (const [name, lum] of [['a.ts', "16+mod(N\\,50)*4"], ['b.ts', '16+49*4']] as const) {
      const f = path.join(dir, name);
      await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `nullsrc=s=160x120:r=25:d=3,geq=lum='${lum}':cb=128:cr=128`, '-c:v', 'libx264', '-preset', 'veryfast', '-g', '25', '-f', 'mpegts', f]);
      parts.push(await readFile(f));
    }
    const joined = path.join(dir, 'joined.ts');
    await writeFile(joined, Buffer.concat(parts));
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 1, width: 32 }), [joined], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    // Observed: [0, 25, 0]: three thumbnails, none of the second recording, and no warning.
    expect(await Promise.all(thumbs.map((o) => frameOf(o.path)))).toEqual([0, 25, 0, 49, 49, 49]);
    // Said, as the video kind says it.
    expect(run.warnings.map((w) => w.message)).toEqual([expect.stringContaining('its clock jumps')]);
  });
});

describe('thumbnails of an open-GOP MP4 at a time among the leading B-frames of a keyframe', () => {
  it('--every 2.1 s of a 25 fps clip (keyframe at 2.16 s, B-frames at 2.08 and 2.12 s after it) takes the frame on screen, at 2.08 s', async () => {
    const mp4 = path.join(dir, 'opengop.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', "nullsrc=s=160x120:r=25:d=3,geq=lum='16+mod(N\\,50)*4':cb=128:cr=128,noise=alls=6:allf=t",
      '-c:v', 'libx264', '-preset', 'veryfast', '-x264-params', 'open-gop=1:keyint=27:min-keyint=27:scenecut=0:bframes=3:b-adapt=0', mp4]);
    const mkv = path.join(dir, 'opengop.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-i', mp4, '-c', 'copy', mkv]);
    // Times 0 and 2.1 s: the second thumbnail should be frame 52 (2.08 s, a B-frame decoded after the keyframe at 2.16 s), on screen at 2.1 s.
    const picked: Record<string, number> = {};
    for (const src of [mkv, mp4]) {
      const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 2.1, width: 32 }), [src], { dir });
      expect(run.errors).toEqual([]);
      picked[path.basename(src)] = (await frameOf(run.outputs.find((o) => o.name === 'thumb-00002.jpg')!.path)) + 50;
    }
    // Observed (when the frame at or after 2.1 s was wanted): { 'opengop.mkv': 53, 'opengop.mp4': 54 }: the MP4's was the keyframe at 2.16 s.
    expect(picked).toEqual({ 'opengop.mkv': 52, 'opengop.mp4': 52 });
  });
});

describe('dense thumbnails of a Y4M source', () => {
  it('--every 0.7 of 3 s at 25 fps: the thumbnail at 2.8 s is frame 70, not 71 (and at 2.1 s frame 52, on screen then)', async () => {
    const src = path.join(dir, 'clip.y4m');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', "nullsrc=s=64x48:r=25:d=3,geq=lum='16+mod(N\\,50)*4':cb=128:cr=128", src]);
    // Two subtasks (0, 0.7, 1.4 s and 2.1, 2.8 s), each one pass; the second seeks to 2.1 s, between frames 52 and 53.
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.7, width: 32 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    // Frames on screen: 0, 17 (0.68 s), 35, 52 (2.08 s), 70, mod 50. Observed (the frame at or after each time wanted): [0, 18, 35, 3, 21].
    expect(await Promise.all(thumbs.map((o) => frameOf(o.path)))).toEqual([0, 17, 35, 2, 20]);
  });
});

describe('thumbnails of a VOB (MPEG-PS, MPEG-2 with B-frames)', () => {
  it('--every 0.7 of a 5 s clip: all eight thumbnails, each the frame on screen at its time', async () => {
    const src = path.join(dir, 'clip.vob');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', "nullsrc=s=160x120:r=25:d=5,geq=lum='16+mod(N\\,50)*4':cb=128:cr=128",
      '-c:v', 'mpeg2video', '-bf', '2', '-g', '12', '-f', 'vob', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.7, width: 32 }), [src], { dir });
    // Observed: [{ code: 'DATA_LOSS', message: 'clip.vob: no frame came out for thumb-00008.jpg' }], no thumbnails.
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    // Times 0, 0.7, ... 4.9 s: the frames on screen then, 0, 17, 35, 52, 70, 87, 105, 122 (mod 50).
    expect(await Promise.all(thumbs.map((o) => frameOf(o.path)))).toEqual([0, 17, 35, 2, 20, 37, 5, 22]);
  }, 60_000);
});
