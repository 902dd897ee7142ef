import { describe, expect, it } from 'vitest';
import type { VideoIndex, VideoPacket } from '../../shared/media/probe.js';
import { planDecodableSegments, planSegments, segmentCount } from './video-segments.js';

/** 100 frames at 25 fps, keyframe every 25 frames; `openAt` keyframes are followed by two leading B-frames. */
function index(openAt: number[] = []): VideoIndex {
  const packets: VideoPacket[] = [];
  const t = (i: number): number => i * 0.04;
  for (let i = 0; i < 100; i++) {
    if (openAt.includes(i)) continue; // placed after the keyframe below
    if (i % 25 === 0 && openAt.includes(i + 2)) continue;
    packets.push({ pts: t(i), duration: 0.04, keyframe: i % 25 === 0 });
  }
  // Decode order for an open GOP at keyframe k (frame k+2 displayed after leading k, k+1): I(k+2), B(k), B(k+1).
  for (const k of openAt) {
    const at = packets.findIndex((p) => p.pts > t(k + 2) - 1e-9);
    packets.splice(at, 0, { pts: t(k + 2), duration: 0.04, keyframe: true }, { pts: t(k), duration: 0.04, keyframe: false });
  }
  const frameTimes = packets.map((p) => p.pts).sort((a, b) => a - b);
  return { packets, frameTimes, cleanKeyframes: [], openKeyframes: [], end: 4, vfr: false, nonNegative: true };
}

describe('planSegments', () => {
  it('covers every frame exactly once and snaps boundaries to nearby keyframes', () => {
    const layout = planSegments(index(), { count: 4, snapTolerance: 0.1 });
    expect(layout.segments.map((s) => [s.from, s.to])).toEqual([[0, 25], [25, 50], [50, 75], [75, 100]]);
    expect(layout.cutTimes.map((x) => +x.toFixed(2))).toEqual([1, 2, 3]);
    expect(layout.segments.map((s) => [s.firstChunk, s.lastChunk])).toEqual([[0, 0], [1, 1], [2, 2], [3, 3]]);
  });

  it('cuts between keyframes when none is near, decoding from the previous keyframe', () => {
    const layout = planSegments(index(), { count: 3, snapTolerance: 0.01 });
    expect(layout.segments.map((s) => s.to - s.from)).toEqual([34, 33, 33]);
    // Segment 2 (frames 34-66) decodes from the keyframe at 1.0 s (chunk 1) and reads on into chunk 2,
    // which starts at the keyframe (2.0 s) segment 3 decodes from.
    expect(layout.cutTimes.map((x) => +x.toFixed(2))).toEqual([1, 2]);
    expect(layout.segments[1]).toMatchObject({ from: 34, start: 1.36, firstChunk: 1, lastChunk: 2 });
    expect(layout.segments[1]!.lo).toBeCloseTo(1.34, 6);
    expect(layout.segments[1]!.hi).toBeCloseTo(2.66, 6);
  });

  it('gives a range the next chunk when its last frames are leading B-frames of an open GOP', () => {
    const layout = planSegments(index([25]), { count: 4, snapTolerance: 0.1 });
    // Keyframe at frame 27 (1.08 s) has frames 25 and 26 after it in decode order.
    expect(layout.segments[0]).toMatchObject({ from: 0, to: 27, firstChunk: 0, lastChunk: 1 });
    expect(layout.segments[1]).toMatchObject({ from: 27, firstChunk: 1 });
  });
});

describe('segmentCount', () => {
  it('uses two segments per slot between 2 s and 60 s long, or the requested length', () => {
    expect(segmentCount(60, 2, 0)).toBe(4);
    expect(segmentCount(3, 2, 0)).toBe(2);
    expect(segmentCount(1, 8, 0)).toBe(1);
    expect(segmentCount(3600, 2, 0)).toBe(60);
    expect(segmentCount(60, 2, 10)).toBe(6);
  });
});

describe('planDecodableSegments', () => {
  const opts = { count: 4, snapTolerance: 0.1 };
  const rounded = (xs: number[]): number[] => xs.map((x) => +x.toFixed(2));

  it('keeps the plan when a decode can begin at every cut, asking once', async () => {
    const asked: number[][] = [];
    const layout = await planDecodableSegments(index(), opts, async (cuts) => {
      asked.push(rounded(cuts));
      return cuts.map(() => true);
    });
    expect(layout).toEqual(planSegments(index(), opts));
    expect(asked).toEqual([[1, 2, 3]]);
  });

  it('plans again around a cut where a decode cannot begin: its range decodes from the keyframe before', async () => {
    // The keyframe at 2 s is a recovery point (an intra-refresh stream with IDRs at 1 and 3 s).
    const layout = await planDecodableSegments(index(), opts, async (cuts) => cuts.map((t) => Math.abs(t - 2) > 1e-6));
    expect(rounded(layout.cutTimes)).toEqual([1, 3]);
    expect(layout.segments.map((s) => [s.from, s.to])).toEqual([[0, 25], [25, 50], [50, 75], [75, 100]]);
    // Frames 50-74 decode from 1 s (chunk 1).
    expect(layout.segments[2]).toMatchObject({ firstChunk: 1, lastChunk: 1 });
  });

  it('is one segment when no cut can begin a decode (a stream whose only IDR is its first frame)', async () => {
    const layout = await planDecodableSegments(index(), opts, async (cuts) => cuts.map(() => false));
    expect(layout.cutTimes).toEqual([]);
    expect(layout.segments.map((s) => [s.from, s.to])).toEqual([[0, 100]]);
  });

  it('asks again, seeking half-way to the next keyframe, where the first seek could not tell', async () => {
    const asked: Array<[number[], number[] | undefined]> = [];
    const layout = await planDecodableSegments(index(), opts, async (cuts, seekTo) => {
      asked.push([rounded(cuts), seekTo && rounded(seekTo)]);
      // The first seek lands elsewhere for the cut at 2 s; the later one lands on it.
      return cuts.map((t) => (!seekTo && Math.abs(t - 2) < 1e-6 ? undefined : true));
    });
    expect(rounded(layout.cutTimes)).toEqual([1, 2, 3]);
    expect(asked).toEqual([[[1, 2, 3], undefined], [[2], [2.5]]]);
  });

  it('refuses a cut that still cannot tell after the second seek', async () => {
    const layout = await planDecodableSegments(index(), opts, async (cuts) => cuts.map((t) => (Math.abs(t - 2) < 1e-6 ? undefined : true)));
    expect(rounded(layout.cutTimes)).toEqual([1, 3]);
  });
});
