/**
 * Videos whose display matrix turns or mirrors the picture, through the video kind in-process,
 * against what one `ffmpeg` command gives (its autorotate) and what Tessera's thumbnails show.
 *  - A front camera's mirror (alone, or with a quarter turn): the video kind read the matrix as a bare
 *    angle, the mirror as a half turn (upside down), the mirrored quarter turn the other way (review VWILD).
 *  - A palette source (PNG in MOV), whose segments are cut as FFV1 chunks: the cut re-encoded them
 *    turned by ffmpeg's autorotate and the segments turned them again, a quarter turn coming out as
 *    a half turn, squeezed (review K20).
 *  - An angle that is no quarter turn (an editor's "straighten"): rounded to the nearest quarter, 60
 *    degrees came out portrait; ffmpeg turns it within the frame (review K20). Read from ffprobe's
 *    `rotation` (cut toward zero), a 30 degree turn was turned by 29, and a 90.6 one transposed
 *    where ffmpeg (and so the job's thumbnails, in a box sized for a quarter turn) tilts it by 91
 *    (review K21). A matrix of zeros (which maps nothing) was turned by 8 degrees: ffprobe's `rotation`
 *    for it, -9223372036854775808, was read as an angle (review K22).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { videoKind } from '../../coordinator/kinds/video.js';
import { ffmpegBinaries, runFfmpeg } from '../../shared/ffmpeg.js';
import { probeMedia } from '../../shared/media/probe.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-display-matrix-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * A 1 s 64x48 white clip with a black block in its stored picture's top-left corner (H.264, or PNG
 * in pal8), its track's display matrix set to [a b; c d].
 */
async function withMatrix(name: string, [a, b, c, d]: readonly number[], codec: 'h264' | 'png' = 'h264'): Promise<string> {
  const plain = path.join(dir, `plain-${name}`);
  const encode = codec === 'png' ? ['-c:v', 'png', '-pix_fmt', 'pal8'] : ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'color=white:size=64x48:rate=25:duration=1,drawbox=x=0:y=0:w=16:h=12:color=black:t=fill', ...encode, '-movflags', '+faststart', plain]);
  const buf = await readFile(plain);
  const tkhd = buf.indexOf('tkhd');
  expect(buf[tkhd + 4], 'a version 0 tkhd').toBe(0);
  // tkhd v0: version/flags 4, times and track id and duration 20, reserved 8, layer..reserved 8, then the 3x3 matrix.
  const m = tkhd + 4 + 4 + 20 + 8 + 8;
  const fixed = (v: number): number => Math.round(v * 65536);
  [fixed(a!), fixed(b!), 0, fixed(c!), fixed(d!), 0, 0, 0, 1 << 30].forEach((v, k) => buf.writeInt32BE(v, m + 4 * k));
  const file = path.join(dir, name);
  await writeFile(file, buf);
  return file;
}

/** Size, sample aspect ratio and the dark corner ('TL', 'TR', 'BL', 'BR') of a file's first picture as stored. */
async function picture(file: string): Promise<{ size: string; sar: string; dark: string }> {
  const probe = await promisify(execFile)(ffmpegBinaries().ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,sample_aspect_ratio', '-of', 'csv=p=0', file]);
  const [w, h, sar] = probe.stdout.trim().split(',') as [string, string, string];
  const [W, H] = [Number(w), Number(h)];
  // -noautorotate: the file as it is stored (an output of ffmpeg or Tessera carries no display matrix).
  const { stdout } = await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-noautorotate', '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'], { encoding: 'buffer', maxBuffer: 1 << 24 });
  const at = (x: number, y: number): number => stdout[y * W + x]!;
  const corners = { TL: at(2, 2), TR: at(W - 3, 2), BL: at(2, H - 3), BR: at(W - 3, H - 3) };
  return { size: `${W}x${H}`, sar: sar === '0:1' || sar === 'N/A' ? '1:1' : sar, dark: Object.entries(corners).sort((p, q) => p[1] - q[1])[0]![0] };
}

/** The display matrix of a turn by `deg` clockwise as shown. */
function turn(deg: number): number[] {
  const r = (deg * Math.PI) / 180;
  return [Math.cos(r), Math.sin(r), -Math.sin(r), Math.cos(r)];
}

/** Mean absolute difference (0-255) of two files' first pictures, both as stored, at 64x48 grey. */
async function difference(a: string, b: string): Promise<number> {
  const grey = async (f: string): Promise<Buffer> =>
    (await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-noautorotate', '-i', f, '-frames:v', '1', '-vf', 'scale=64:48', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'], { encoding: 'buffer', maxBuffer: 1 << 24 })).stdout;
  const [x, y] = [await grey(a), await grey(b)];
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.abs(x[i]! - y[i]!);
  return sum / x.length;
}

/** What `ffmpeg -i src out.mp4` shows of `src`. */
async function ffmpegShows(src: string): Promise<{ size: string; sar: string; dark: string; file: string }> {
  const single = path.join(dir, `single-${path.basename(src)}.mp4`);
  await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', single]);
  return { ...(await picture(single)), file: single };
}

/** What the video kind makes of `src`. */
async function videoShows(src: string): Promise<{ size: string; sar: string; dark: string; file: string }> {
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir });
  expect(run.errors).toEqual([]);
  return { ...(await picture(run.outputs[0]!.path)), file: run.outputs[0]!.path };
}

describe('video kind: a display matrix', () => {
  it.each([
    ['mirrored (front camera, no turn)', 'mirror.mp4', [-1, 0, 0, 1]],
    ['mirrored and turned a quarter', 'turn-mirror.mp4', [0, -1, -1, 0]],
  ] as const)('%s comes out as `ffmpeg -i in.mp4 out.mp4` and the thumbnails show it', async (_, name, matrix) => {
    const src = await withMatrix(name, matrix);
    const expected = await ffmpegShows(src);
    const thumbs = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 1, width: 64 }), [src], { dir });
    expect(thumbs.errors).toEqual([]);
    expect((await picture(thumbs.outputs[0]!.path)).dark, 'thumbnail').toBe(expected.dark);
    // It came out upside down (the mirror read as a half turn), or, for the mirrored quarter turn, turned the other way.
    expect((await videoShows(src)).dark, 'video').toBe(expected.dark);
  }, 60_000);

  it.each([
    ['turned a quarter clockwise', 'pal-turned.mov', [0, 1, -1, 0]],
    ['mirrored (front camera)', 'pal-mirrored.mov', [-1, 0, 0, 1]],
  ] as const)('on a palette source cut into FFV1 chunks, %s comes out as ffmpeg shows it, turned once', async (_, name, matrix) => {
    const src = await withMatrix(name, matrix, 'png');
    // Observed: the quarter turn turned twice (dark corner BR, not TR) at SAR 16:9; the mirror mirrored twice.
    const [got, want] = await Promise.all([videoShows(src), ffmpegShows(src)]);
    expect({ ...got, file: '' }).toEqual({ ...want, file: '' });
  }, 60_000);

  it('turned by 60 degrees, or 30 the other way, is turned within its frame by the same angle as ffmpeg', async () => {
    for (const deg of [60, -30]) {
      const src = await withMatrix(`turned${deg}.mp4`, turn(deg));
      const expected = await ffmpegShows(src);
      expect(expected.size, "ffmpeg's autorotate: the rotate filter, the frame's own size").toBe('64x48');
      // Observed: 60 came out 48x64 (turned a full quarter); -30 turned by 29 (a difference of 1.79, not 0).
      const got = await videoShows(src);
      expect(got.size).toBe(expected.size);
      expect(await difference(got.file, expected.file), `${deg} degrees`).toBeLessThan(0.5);
    }
  }, 60_000);

  it('a portrait video straightened by 0.6 degrees: the video and its thumbnails have the shape ffmpeg shows', async () => {
    const src = await withMatrix('cw90.6.mp4', turn(90.6));
    expect((await ffmpegShows(src)).size, 'ffmpeg: rotate=91 within the frame').toBe('64x48');
    const thumbs = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 1, width: 64 }), [src], { dir });
    expect(thumbs.errors).toEqual([]);
    // Observed: 64x86, ffmpeg's 64x48 picture stretched into a box sized for a quarter turn.
    expect((await picture(thumbs.outputs[0]!.path)).size, 'thumbnail').toBe('64x48');
    // Observed: 48x64 (transposed, a quarter turn).
    expect((await videoShows(src)).size, 'video').toBe('64x48');
  }, 60_000);

  it('of zeros is no turn, as ffmpeg takes it', async () => {
    const src = await withMatrix('zero-matrix.mp4', [0, 0, 0, 0]);
    const expected = await ffmpegShows(src);
    expect(expected.size).toBe('64x48');
    const video = (await probeMedia(src)).video!;
    expect([video.rotation, video.tilt]).toEqual([0, undefined]);
    // Observed: turned by 8 degrees within its frame (black corners).
    expect(await difference((await videoShows(src)).file, expected.file)).toBeLessThan(1);
  }, 60_000);
});
