/**
 * `--audio-codec copy` of a FLAC track into MP4 (the default container). The video kind lists FLAC
 * among the codecs MP4 takes by stream copy (CONTAINER_COPY_AUDIO), but the ffmpeg it runs (5.1,
 * Debian's, the Docker image's) writes FLAC into MP4 only with `-strict experimental`: the job was
 * accepted, then failed at the stitch ("flac in MP4 support is experimental").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-copy-flac-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('video --audio-codec copy of a FLAC track into mp4 keeps the FLAC track', async () => {
  const src = path.join(dir, 'flac.mkv');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=25:d=2', '-f', 'lavfi', '-i', 'sine=d=2', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-pix_fmt', 'yuv420p', '-c:a', 'flac', '-shortest', src]);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, audio_codec: 'copy' }), [src], { dir });
  expect(run.errors).toEqual([]);
  const probe = await runFfprobe<{ streams: { codec_name: string }[] }>(['-show_entries', 'stream=codec_name', run.outputs[0]!.path]);
  expect(probe.streams.map((s) => s.codec_name)).toEqual(['h264', 'flac']);
});
