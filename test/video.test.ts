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

  it.each([
    ['open GOP with B-frames (mkv)', 'opengop.mkv', { duration: 4, openGop: true, gop: 12, audioChannels: 2 }],
    ['VFR 24/60 fps (mkv)', 'vfr.mkv', { duration: 4, vfr: true }],
    ['odd dimensions, no audio', 'odd.mp4', { duration: 3, width: 161, height: 91 }],
    ['5.1 audio (mov)', 'surround.mov', { duration: 3, audioChannels: 6 }],
    ['MPEG-TS with a 1.4 s start offset', 'offset.ts', { duration: 4, audioChannels: 2, openGop: true, gop: 25 }],
    ['webm (vp9 + opus) input', 'input.webm', { duration: 3, audioChannels: 2 }],
  ] as const)('keeps every frame: %s', async (_what, name, fixture) => {
    const r = await transcode(name, fixture as VideoFixture, { segment_seconds: 1 });
    expect(r.run.outcomes.filter((o) => (o.plan as { type: string }).type === 'segment').length).toBeGreaterThan(1);
    expect(r.decoded.errors).toEqual([]);
    expect(r.decoded.frames).toBe(r.srcIndex.frameTimes.length);
    // Presentation times survive (VFR passthrough): same intervals as the source, within mkv's 1 ms rounding.
    const rel = (ts: number[]) => ts.map((t) => t - ts[0]!);
    const a = rel(r.srcIndex.frameTimes);
    const b = rel(r.outIndex.frameTimes);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(0.0021);
    expect(r.outInfo.video!.width % 2).toBe(0);
    expect(r.outInfo.video!.height % 2).toBe(0);
    const srcInfo = await probeMedia(r.src);
    expect(r.outInfo.audio.length).toBe(srcInfo.audio.length > 0 ? 1 : 0);
    if (srcInfo.audio.length > 0) {
      expect(r.outInfo.audio[0]!.channels).toBe(srcInfo.audio[0]!.channels);
      expect(Math.abs(r.outInfo.audio[0]!.duration - r.outInfo.video!.duration)).toBeLessThan(0.05);
    }
  });
});

