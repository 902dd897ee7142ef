/**
 * A phone video whose display matrix mirrors the picture (a front camera's selfie video: the matrix
 * flips it, alone or with a quarter turn), through the video kind in-process, against what one
 * `ffmpeg` command gives (its autorotate) and what Tessera's own thumbnails show.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { thumbnailsKind } from '../coordinator/kinds/thumbnails.js';
import { ffmpegBinaries, runFfmpeg } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { thumbnailsProcessor } from '../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-display-flip-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A 1 s white clip with a black block in its stored picture's top-left corner, its first track's display matrix set to [a b; c d]. */
async function withMatrix(name: string, [a, b, c, d]: [number, number, number, number]): Promise<string> {
  const plain = path.join(dir, `plain-${name}`);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'color=white:size=64x48:rate=25:duration=1,drawbox=x=0:y=0:w=16:h=12:color=black:t=fill', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', plain]);
  const buf = await readFile(plain);
  const tkhd = buf.indexOf('tkhd');
  expect(buf[tkhd + 4], 'a version 0 tkhd').toBe(0);
  // tkhd v0: version/flags 4, times and track id and duration 20, reserved 8, layer..reserved 8, then the 3x3 matrix.
  const m = tkhd + 4 + 4 + 20 + 8 + 8;
  const fixed = (v: number): number => Math.round(v * 65536);
  [fixed(a), fixed(b), 0, fixed(c), fixed(d), 0, a < 0 || c < 0 ? fixed(64) : 0, b < 0 || d < 0 ? fixed(48) : 0, 1 << 30].forEach((v, k) => buf.writeInt32BE(v, m + 4 * k));
  const file = path.join(dir, name);
  await writeFile(file, buf);
  return file;
}

/** Which corner of a file's first picture is the dark block: 'TL', 'TR', 'BL' or 'BR'. */
async function darkCorner(file: string): Promise<string> {
  const probe = await promisify(execFile)(ffmpegBinaries().ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', file]);
  const [w, h] = probe.stdout.trim().split(',').map(Number) as [number, number];
  // -noautorotate: the file as it is stored (an output of ffmpeg or Tessera carries no display matrix).
  const { stdout } = await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-noautorotate', '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'], { encoding: 'buffer', maxBuffer: 1 << 24 });
  const at = (x: number, y: number): number => stdout[Math.floor(y) * w + Math.floor(x)]!;
  const corners = { TL: at(2, 2), TR: at(w - 3, 2), BL: at(2, h - 3), BR: at(w - 3, h - 3) };
  return Object.entries(corners).sort((p, q) => p[1] - q[1])[0]![0];
}

describe('video kind: a display matrix that mirrors the picture', () => {
  it.each([
    ['mirrored (front camera, no turn)', 'mirror.mp4', [-1, 0, 0, 1]],
    ['mirrored and turned a quarter', 'turn-mirror.mp4', [0, -1, -1, 0]],
  ] as const)('%s comes out as `ffmpeg -i in.mp4 out.mp4` and the thumbnails show it', async (_, name, matrix) => {
    const src = await withMatrix(name, [...matrix]);
    const single = path.join(dir, `single-${name}`);
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', single]);
    const expected = await darkCorner(single);

    const thumbs = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 1, width: 64 }), [src], { dir });
    expect(thumbs.errors).toEqual([]);
    expect(await darkCorner(thumbs.outputs[0]!.path), 'thumbnail').toBe(expected);

    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir });
    expect(run.errors).toEqual([]);
    // It came out turned upside down (the mirror read as a half turn: hflip and vflip), or, for the
    // mirrored quarter turn, turned the other way: neither as ffmpeg nor as the job's thumbnails show it.
    expect(await darkCorner(run.outputs[0]!.path), 'video').toBe(expected);
  }, 60_000);
});
