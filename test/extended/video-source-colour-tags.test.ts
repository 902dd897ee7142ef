/**
 * Colour description a source carries in its container rather than in its bitstream (VP9 in WebM:
 * primaries and transfer, HDR10's PQ; FFV1 in Matroska: all of it, range too) through the video
 * kind in-process, against what one `ffmpeg` command with the same request gives.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-colour-tags-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Colour = { color_range?: string; color_space?: string; color_primaries?: string; color_transfer?: string };

async function colourOf(file: string): Promise<Colour> {
  const r = await runFfprobe<{ streams: Colour[] }>(['-select_streams', 'v:0', '-show_entries', 'stream=color_range,color_space,color_primaries,color_transfer', '-i', file]);
  const s = r.streams[0]!;
  return { color_range: s.color_range, color_space: s.color_space, color_primaries: s.color_primaries, color_transfer: s.color_transfer };
}

describe('video kind: a source whose colour description is in its container', () => {
  it.each([
    ['VP9 in WebM tagged BT.709', 'bt709.webm', ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-pix_fmt', 'yuv420p', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-colorspace', 'bt709'], 'h264', 'libx264'],
    ['HDR10 VP9 (profile 2, BT.2020 / PQ) in WebM', 'hdr10.webm', ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-pix_fmt', 'yuv420p10le', '-color_primaries', 'bt2020', '-color_trc', 'smpte2084', '-colorspace', 'bt2020nc'], 'h265', 'libx265'],
    ['FFV1 in Matroska tagged BT.709, full range', 'ffv1.mkv', ['-c:v', 'ffv1', '-pix_fmt', 'yuv420p', '-color_range', 'pc', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-colorspace', 'bt709'], 'h264', 'libx264'],
  ] as const)('%s keeps its primaries, transfer, matrix and range as `ffmpeg` does', async (_, name, args, codec, encoder) => {
    const src = path.join(dir, name);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=1', ...args, src]);
    const single = path.join(dir, `single-${name}.mp4`);
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', encoder, '-preset', 'ultrafast', ...(encoder === 'libx265' ? ['-x265-params', 'log-level=error'] : []), single]);
    const expected = await colourOf(single);
    // The single run carries what the source says (not a fixture that says nothing).
    expect(expected.color_primaries).toBe((await colourOf(src)).color_primaries);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Was: primaries and transfer (FFV1: all four) missing from the output: a PQ picture shown as SDR,
    // full-range levels shown as limited.
    expect(await colourOf(run.outputs[0]!.path)).toEqual(expected);
  }, 60_000);
});

describe('video kind: H.264 whose colour description is in its container only', () => {
  it.each(['mkv', 'mp4'])('H.264 in %s tagged BT.709 by its container keeps the tags as `ffmpeg` does', async (ext) => {
    // A bitstream with no colour in its VUI, remuxed with the container's tags.
    const raw = path.join(dir, `raw-${ext}.mkv`);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=1', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', raw]);
    const src = path.join(dir, `tagged.${ext}`);
    await runFfmpeg(['-y', '-v', 'error', '-i', raw, '-c', 'copy', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-colorspace', 'bt709', '-color_range', 'tv', src]);
    expect((await colourOf(src)).color_primaries).toBe('bt709');
    const single = path.join(dir, `single-${ext}.mp4`);
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', single]);
    const expected = await colourOf(single);
    expect(expected.color_primaries).toBe('bt709');
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h264' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Observed: all four 'unknown' (primaries, transfer, matrix and range lost with the container).
    expect(await colourOf(run.outputs[0]!.path)).toEqual(expected);
  }, 60_000);
});
