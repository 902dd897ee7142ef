/**
 * Uncompressed sources as capture tools, old Windows software and QuickTime exports write them
 * (raw BGR24 and 8-bit palette video in AVI, palette video in MOV), through the video kind
 * in-process, against what one `ffmpeg` command with the same request gives: the same picture.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-raw-sources-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The lowest per-frame PSNR (dB) of `file`'s pictures against `src`'s, and how many frames were compared. */
async function psnr(file: string, src: string): Promise<{ min: number; frames: number }> {
  const stats = path.join(dir, `psnr-${path.basename(file)}.txt`);
  await runFfmpeg(['-y', '-v', 'error', '-i', file, '-i', src, '-lavfi', `[0:v]format=yuv420p[a];[1:v]format=yuv420p[b];[a][b]psnr=stats_file=${stats}`, '-f', 'null', '-']);
  const vals = [...(await readFile(stats, 'utf8')).matchAll(/psnr_avg:(\S+)/g)].map((m) => (m[1] === 'inf' ? 99 : Number(m[1])));
  return { min: Math.min(...vals), frames: vals.length };
}

describe('video kind: uncompressed RGB and palette sources', () => {
  it.each([
    ['raw BGR24 in AVI (bottom-up DIB)', 'bgr24.avi', 'format=bgr24'],
    ['raw 8-bit palette video in AVI', 'pal8.avi', 'format=pal8'],
    ['raw 8-bit palette video in MOV', 'pal8.mov', 'format=pal8'],
  ] as const)('%s comes out as the picture `ffmpeg` makes of it', async (_, name, format) => {
    const src = path.join(dir, name);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=96x64:rate=25:duration=2,${format}`, '-c:v', 'rawvideo', src]);
    const single = path.join(dir, `single-${name}.mp4`);
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', single]);
    const want = await psnr(single, src);
    expect(want.min).toBeGreaterThan(30);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir, slots: 2 });
    // Was: pal8.avi failed every segment as DATA_LOSS "encode failed: ... cpb: bitrate maxavg: 0..."
    // (its NUT chunks read as 16 bits a pixel); bgr24.avi and pal8.mov were made, every frame garbage
    // (the chunks read as rgb555le) or black (the MOV chunks after the first hold no palette).
    expect(run.errors).toEqual([]);
    const got = await psnr(run.outputs[0]!.path, src);
    expect(got.frames).toBe(50);
    expect(got.min).toBeGreaterThan(30);
  }, 60_000);
});
