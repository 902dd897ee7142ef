/**
 * The video kind with an output picture smaller than the chosen encoder can make: SVT-AV1 (the
 * first AV1 encoder picked) takes no edge under 64 px, x265 none under 16 px. Such a size (asked
 * for, or derived from the source's shape) must be refused at submission/planning as
 * INVALID_ARGUMENT naming the size, or encoded by an encoder that can make it (libaom-av1) — not
 * sent to the workers to fail every segment as a retryable DATA_LOSS with ffmpeg's
 * "bad parameter (0x80001005)" (in process: real planner, processors and merge). The same holds
 * for SVT-AV1's frame-rate limit (240 fps) of a source kept at its own rate.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { probeMedia } from '../../shared/media/probe.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { makeVideo, runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
let src: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-min-size-'));
  src = await makeVideo(dir, 'clip.mp4', { duration: 2, width: 320, height: 240, fps: 25, gop: 25 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: output sizes under the encoder minimum', () => {
  it.each([
    // libaom-av1 makes what SVT-AV1 cannot; x265 is the only HEVC encoder.
    ['av1 --width 80 (80x60; SVT-AV1 needs 64 px an edge)', { codec: 'av1', width: 80, crf: 50 }, 'av1', 80, 60, 'made'],
    ['av1 --height 48 (64x48)', { codec: 'av1', height: 48, crf: 50 }, 'av1', 64, 48, 'made'],
    ['h265 --width 16 (16x12; x265 needs 16 px an edge)', { codec: 'h265', width: 16 }, 'hevc', 16, 12, 'refused'],
  ] as const)('%s: made, or refused up front as INVALID_ARGUMENT naming the size', async (_what, params, codecName, width, height, verdict) => {
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', audio_codec: 'none', ...params }), [src], { dir });
    expect(run.outputs.length === 1 ? 'made' : 'refused').toBe(verdict);
    if (run.outputs.length === 1) {
      const v = (await probeMedia(run.outputs[0]!.path)).video!;
      expect([v.codec, v.width, v.height]).toEqual([codecName, width, height]);
      return;
    }
    // Refused: at planning (no segment sent to a worker), as the input's fault, naming the size.
    expect(run.errors.map((e) => e.code)).toEqual(['INVALID_ARGUMENT']);
    expect(run.errors[0]!.message).toMatch(new RegExp(`${width}x${height}|width|height`));
    expect(run.outcomes).toEqual([]);
  });

  it('av1 of a 300 fps source (SVT-AV1 takes at most 240 fps): made, or refused up front as INVALID_ARGUMENT naming the rate', async () => {
    const fast = await makeVideo(dir, 'fast.mp4', { duration: 0.5, width: 160, height: 120, fps: 300, gop: 75 });
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', audio_codec: 'none', codec: 'av1', crf: 50 }), [fast], { dir });
    // By libaom-av1.
    expect(run.errors).toEqual([]);
    if (run.outputs.length === 1) {
      const v = (await probeMedia(run.outputs[0]!.path, { countPackets: true })).video!;
      expect([v.codec, v.packets]).toEqual(['av1', 150]);
      return;
    }
    expect(run.errors.map((e) => e.code)).toEqual(['INVALID_ARGUMENT']);
    expect(run.errors[0]!.message).toMatch(/fps|frame rate|300/);
    expect(run.outcomes).toEqual([]);
  });
});
