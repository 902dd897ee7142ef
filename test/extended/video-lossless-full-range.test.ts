/**
 * `--lossless` of an 8-bit 4:2:0 source in full range (yuvj420p: phones' and webcams' H.264,
 * MJPEG-derived footage): README, "every decoded picture of an 8-bit 4:2:0 source comes out bit for
 * bit", as `ffmpeg -c:v libx264 -qp 0` gives it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { decodedPictureHashes, runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-lossless-full-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: lossless of a full-range 8-bit 4:2:0 source', () => {
  it('gives every decoded picture bit for bit, as `ffmpeg -c:v libx264 -qp 0` does', async () => {
    const src = path.join(dir, 'phone.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuvj420p', '-g', '25', src]);
    const source = await decodedPictureHashes(src);
    const single = path.join(dir, 'single.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0', single]);
    expect(await decodedPictureHashes(single)).toEqual(source);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', lossless: true, segment_seconds: 1 }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Was: 0 of 50 pictures equal: squeezed into limited range (format=yuv420p), its levels changed.
    const out = await decodedPictureHashes(run.outputs[0]!.path);
    expect(out.filter((h, i) => h === source[i]).length).toBe(source.length);
  }, 60_000);
});
