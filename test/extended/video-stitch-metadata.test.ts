/**
 * What the stitch (stream copy of the encoded segments, metadata mapped from the source) writes
 * about the picture, against one `ffmpeg` command with the same request (review V): the encoder that
 * made it, and the picture as the default track.
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-wild3-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Stream = { codec_name: string; disposition: { default: number }; tags?: Record<string, string> };
async function video(file: string): Promise<Stream> {
  const r = await runFfprobe<{ streams: Stream[] }>(['-select_streams', 'v:0', '-show_entries', 'stream=codec_name:stream_disposition=default:stream_tags', '-i', file]);
  return r.streams[0]!;
}
const encoderTag = (s: Stream): string | undefined => s.tags?.['encoder'] ?? s.tags?.['ENCODER'];

describe('video kind: the picture as the stitched file describes it', () => {
  it('names the encoder that made the picture, not the source\'s (an H.264 phone clip made H.265 is not tagged libx264)', async () => {
    const src = path.join(dir, 'phone.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', src]);
    expect(encoderTag(await video(src))).toMatch(/libx264$/);
    const single = path.join(dir, 'single-h265.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', single]);
    expect(encoderTag(await video(single))).toMatch(/libx265$/);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h265', segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const out = await video(run.outputs[0]!.path);
    expect(out.codec_name).toBe('hevc');
    // Before: "Lavc59.37.100 libx264", the source's stream tag, mapped over the segment's own.
    expect(encoderTag(out)).toMatch(/libx265$/);
  }, 60_000);

  it.each(['mkv', 'webm'] as const)('keeps the picture the default track of a %s made from an MP4, as `ffmpeg -i in.mp4 out.<container>` does', async (container) => {
    const src = path.join(dir, `default-${container}.mp4`);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2', '-f', 'lavfi', '-i', 'sine=sample_rate=48000:duration=2',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', src]);
    expect((await video(src)).disposition.default).toBe(1);
    const single = path.join(dir, `single-default.${container}`);
    await runFfmpeg(['-y', '-v', 'error', '-i', src, ...(container === 'webm' ? ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-c:a', 'libopus'] : ['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac']), single]);
    expect((await video(single)).disposition.default).toBe(1);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container, segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    // Before: 0, Matroska's FlagDefault off on the only video track (the audio's kept on).
    expect((await video(run.outputs[0]!.path)).disposition.default).toBe(1);
  }, 60_000);
});
