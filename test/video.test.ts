import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { decodeCheck, probeMedia, probeVideoIndex } from '../shared/media/probe.js';
import { videoProcessor } from '../worker/processors/video.js';
import { makeVideo, runKindInProcess, specOf, type VideoFixture } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Transcodes a generated clip in-process and returns what a user would look at. */
async function transcode(name: string, fixture: VideoFixture, params: Record<string, unknown>, slots = 2) {
  const src = await makeVideo(dir, name, fixture);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', ...params }), [src], { dir, slots });
  expect(run.errors).toEqual([]);
  expect(run.outputs).toHaveLength(1);
  const out = run.outputs[0]!;
  const [srcIndex, outInfo, outIndex, decoded] = await Promise.all([probeVideoIndex(src), probeMedia(out.path), probeVideoIndex(out.path), decodeCheck(out.path)]);
  return { src, run, out, srcIndex, outInfo, outIndex, decoded };
}

describe('video kind (plan -> process -> merge in-process)', () => {
  it('stitches segments into one file with the source frame count, duration and audio', async () => {
    const r = await transcode('plain.mp4', { duration: 4, audioChannels: 2 }, {});
    expect(r.out.name).toBe('plain.mp4');
    const segs = r.run.outcomes.filter((o) => (o.plan as { type: string }).type === 'segment');
    expect(segs.length).toBeGreaterThan(1);
    expect(r.decoded.errors).toEqual([]);
    expect(r.decoded.frames).toBe(r.srcIndex.frameTimes.length);
    expect(r.outInfo.video!.codec).toBe('h264');
    expect(Math.abs(r.outIndex.end - r.outIndex.frameTimes[0]! - (r.srcIndex.end - r.srcIndex.frameTimes[0]!))).toBeLessThan(0.041);
    expect(r.outInfo.audio).toHaveLength(1);
    expect(Math.abs(r.outInfo.audio[0]!.duration - r.outInfo.video!.duration)).toBeLessThan(0.05);
  });
});
