/**
 * A phone's variable-frame-rate clip (frame times jittering a few milliseconds around 30 fps) with
 * its sound, into Matroska: a single `ffmpeg` run writes it, every frame where the source shows it.
 * The job must make it too, not fail its own check of the segment joins.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { fpsModeFlag, runFfmpeg } from '../shared/ffmpeg.js';
import { decodeCheck, probeVideoIndex } from '../shared/media/probe.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-vfr-mkv-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: a phone-like VFR clip with audio into Matroska', () => {
  it('is made with every frame at its source time, not failed as "errors at the segment joins: non monotonically increasing dts"', async () => {
    const src = path.join(dir, 'phone.mp4');
    await runFfmpeg([
      '-y', '-v', 'error',
      '-f', 'lavfi', '-i', "testsrc2=s=192x108:r=30:d=3,settb=1/90000,setpts='(N/30+0.003*sin(N*1.7))/TB'",
      '-f', 'lavfi', '-i', 'sine=d=3',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', fpsModeFlag(), 'vfr', '-enc_time_base:v', '-1', '-video_track_timescale', '90000',
      '-c:a', 'aac', src,
    ]);
    const srcIndex = await probeVideoIndex(src);
    expect(srcIndex.vfr).toBe(true);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, container: 'mkv' }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    const out = run.outputs[0]!.path;
    const [outIndex, decoded] = await Promise.all([probeVideoIndex(out), decodeCheck(out)]);
    expect(decoded.errors).toEqual([]);
    expect(outIndex.frameTimes).toHaveLength(srcIndex.frameTimes.length);
    // Matroska keeps milliseconds.
    outIndex.frameTimes.forEach((t, i) => expect(Math.abs(t - outIndex.frameTimes[0]! - (srcIndex.frameTimes[i]! - srcIndex.frameTimes[0]!))).toBeLessThan(0.0011));
  });
});
