/**
 * An MP4 trimmed by stream copy (`ffmpeg -ss 0.5 -i in.mp4 -c copy out.mp4`, LosslessCut: an edit
 * list whose media starts a little before the first shown frame) with few keyframes, so that its
 * plan has a single cut, at its second keyframe. ffprobe's seek to that cut lands one keyframe early,
 * on the first (a packet the edit list discards, whose frame is dropped): the intra-refresh check
 * (any frame from a decode begun at the cuts) counts none and takes the ordinary file for an
 * intra-refresh stream: one segment, where the untrimmed original and the same file before the check
 * were split into four.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-trimmed-long-gop-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: a long-GOP MP4 trimmed by stream copy', () => {
  it('is split into segments like its untrimmed original, not taken for intra refresh', async () => {
    // 10 s, a keyframe every 4 s, B-frames (x264 medium): keyframes at 0, 4, 8 s.
    const plain = path.join(dir, 'plain.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=10', '-c:v', 'libx264', '-preset', 'medium', '-g', '100', plain]);
    // Keyframes at -0.52 (discarded by the edit list), 3.48 and 7.48 s.
    const trimmed = path.join(dir, 'trimmed.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-ss', '0.5', '-i', plain, '-c', 'copy', trimmed]);
    const segments = async (f: string): Promise<number> => {
      // Two slots: four segments asked for; the keyframe at 4 s (3.48 s) is the only cut.
      const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h264' }), [f], { dir, slots: 2 });
      expect(run.errors).toEqual([]);
      expect(run.outputs).toHaveLength(1);
      return run.outcomes.map((o) => o.plan as unknown as { type?: string }).filter((p) => p?.type === 'segment').length;
    };
    expect(await segments(plain)).toBe(4);
    // It was: 1 (the whole 9.5 s encoded by one worker).
    expect(await segments(trimmed)).toBe(4);
  }, 60_000);
});
