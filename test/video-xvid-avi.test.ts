/**
 * An Xvid/DivX-style AVI (MPEG-4 Part 2 with B-frames), the commonest AVI there is, through the video
 * kind in-process (real plan -> process -> merge), against one `ffmpeg` command: every frame.
 *
 * AVI stores decode times only (ffprobe shows no PTS on most packets). The stream-copy cut now
 * generates presentation times (+genpts, added for MPEG-PS), so such a source passes planning, where
 * it was refused before ("av_interleaved_write_frame(): Invalid argument"); but the planner's index
 * places a packet without a PTS at its decode time, while the cut's generated PTS are one B-frame
 * delay later (a frame after the chunk start the plan gives the worker): every segment but the last comes out
 * one frame short, and the job fails with DATA_LOSS (retryable: retried) after all of it was encoded.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
let src: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-xvid-avi-'));
  src = path.join(dir, 'movie.avi');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=4', '-c:v', 'mpeg4', '-vtag', 'XVID', '-bf', '1', '-g', '25', '-q:v', '4', src]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function frames(file: string): Promise<number> {
  const r = await runFfprobe<{ streams: Array<{ nb_read_packets: string }> }>(['-count_packets', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_packets', '-i', file]);
  return Number(r.streams[0]!.nb_read_packets);
}

describe('video kind: Xvid AVI with B-frames', () => {
  it.each([
    ['in one segment', 100],
    ['split into 1 s segments', 1],
  ])('keeps every frame %s', async (_, seconds) => {
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: seconds }), [src], { dir, slots: 2 });
    // Observed (split): [{ code: 'DATA_LOSS', message: 'segment 1: encoded 24 frames where 25 were planned' }]
    expect(run.errors).toEqual([]);
    expect(await frames(run.outputs[0]!.path)).toBe(100);
  }, 60_000);
});
