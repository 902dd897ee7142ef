/**
 * A variable-rate MP4 with B-frames whose last frames lie far apart (a capture that dropped frames
 * at its end): MP4's muxer states the video track's length from decode times, short by the gap
 * (19.467 s for frames up to 19.867 s; the source's own header says as much). The stitched file's
 * check compared that header with the frames' span and failed the whole job DATA_LOSS, where one
 * `ffmpeg -fps_mode passthrough` run makes the file (review vid).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-vfr-tail-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ptsOf = async (file: string): Promise<number[]> =>
  ((await runFfprobe<{ packets?: Array<{ pts_time?: string }> }>(['-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-i', file])).packets ?? []).map((p) => Number(p.pts_time)).sort((a, b) => a - b);

it('is made, every frame at its own time, though its MP4 header states the track short', async () => {
  const src = path.join(dir, 'dropped.mp4');
  // 30 fps with frames dropped in bursts (in 40..60 of every 90, only every 7th kept), to 20 s: the last frames are 0.23 s apart.
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', "testsrc2=s=160x120:r=30,select='not(between(mod(n\\,90)\\,40\\,60))+eq(mod(n\\,7)\\,0)',trim=duration=20",
    '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '3', '-fps_mode', 'vfr', '-enc_time_base', '1/90000', src]);
  const want = await ptsOf(src);
  const header = await runFfprobe<{ streams?: Array<{ duration?: string }> }>(['-select_streams', 'v:0', '-show_entries', 'stream=duration', '-i', src]);
  // The source's own header is short of its last frame's time: what makes the case.
  expect(Number(header.streams?.[0]?.duration)).toBeLessThan(want.at(-1)!);
  // Encoded with B-frames (veryfast has them, ultrafast none), as the output's track is stated from its decode times.
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'veryfast', segment_seconds: 5 }), [src], { dir, slots: 2 });
  // Observed: DATA_LOSS "dropped.mp4: stitched output failed verification: video lasts 19.467 s, expected 19.867 s".
  expect(run.errors).toEqual([]);
  const got = await ptsOf(run.outputs[0]!.path);
  expect(got.length).toBe(want.length);
  expect(got.map((t) => t - got[0]!).every((t, i) => Math.abs(t - (want[i]! - want[0]!)) < 0.002)).toBe(true);
}, 90_000);
