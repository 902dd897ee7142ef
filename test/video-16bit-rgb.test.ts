/**
 * A 16-bit RGB source (PNG or raw 48-bit RGB in a MOV, as motion-graphics tools export "trillions of
 * colours", or a 16-bit TIFF/PNG sequence's decode) is a deep source: through h265 it keeps 10 bits,
 * as `ffmpeg -c:v libx265` keeps them, like the 10/12/16-bit YUV and planar RGB formats already do.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { deepPixels } from '../shared/media/video-plan.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-rgb48-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function pixFmtOf(file: string): Promise<string> {
  const r = await runFfprobe<{ streams: Array<{ pix_fmt: string }> }>(['-select_streams', 'v:0', '-show_entries', 'stream=pix_fmt', '-i', file]);
  return r.streams[0]!.pix_fmt;
}

describe('video kind: a 16-bit RGB source', () => {
  it('deepPixels counts the packed 16-bit RGB formats (rgb48, bgr48, rgba64, bgra64) as deep', () => {
    // Observed: false for each (the regex wants the depth right before le/be: "48le" and "64le" are not 9/10/12/14/16).
    expect(['rgb48be', 'rgb48le', 'bgr48le', 'rgba64be', 'bgra64le'].filter((f) => !deepPixels(f))).toEqual([]);
  });

  it('a 16-bit PNG MOV through h265 keeps 10 bits, as a plain ffmpeg conversion does', async () => {
    const src = path.join(dir, 'export.mov');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=1', '-c:v', 'png', '-pix_fmt', 'rgb48be', src]);
    expect(await pixFmtOf(src)).toBe('rgb48be');
    const plain = path.join(dir, 'plain.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', plain]);
    // ffmpeg itself keeps more than 8 bits (libx265's nearest format to rgb48).
    expect(await pixFmtOf(plain)).not.toBe('yuv420p');
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h265' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Observed: 'yuv420p' (8 bits, no warning).
    expect(await pixFmtOf(run.outputs[0]!.path)).toBe('yuv420p10le');
  }, 60_000);
});
