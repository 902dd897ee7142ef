/**
 * A video of a few frames with a much longer sound (a song with its cover as a single frame, as
 * `ffmpeg -i cover.jpg -i song.flac -c:v libx264 song.mkv` makes it) into Matroska or WebM: a single
 * `ffmpeg` run writes it, and so must the job.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { probeVideoIndex } from '../shared/media/probe.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-short-picture-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: a picture of a few frames beside a long sound', () => {
  it.each([1, 5])('%i frame(s) and 3 s of audio into mkv is made, as ffmpeg makes it, not failed as "video lasts 3.041 s, expected 0.040 s"', async (frames) => {
    const container = 'mkv';
    const src = path.join(dir, `cover-${frames}.mp4`);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `testsrc2=s=160x120:r=25,trim=end_frame=${frames}`, '-f', 'lavfi', '-i', 'sine=d=3', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    expect((await probeVideoIndex(run.outputs[0]!.path)).frameTimes).toHaveLength(frames);
  });
});
