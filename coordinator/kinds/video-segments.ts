/**
 * Pure segment planning for the video kind: where to split one video stream into frame ranges, and
 * which keyframe-aligned chunks (cut by stream copy) each range needs to be decoded.
 *
 * Segment boundaries snap to a keyframe when one is near the ideal position (so workers decode no
 * extra frames); where keyframes are too sparse a boundary falls on an exact frame and the worker
 * decodes from the previous keyframe, dropping the frames before its range. A range whose frames
 * have packets in the next chunk (open-GOP leading B-frames) also gets that chunk.
 */
import type { VideoIndex } from '../../shared/media/probe.js';

export interface SegmentRange {
  /** Index of the first frame (in presentation order) and one past the last. */
  from: number;
  to: number;
  /** Presentation time of the first frame, and of the first frame of the next range (video end for the last). */
  start: number;
  end: number;
  /** Frame-time bounds half-way between frames: [lo, hi), hi null for the last range. */
  lo: number;
  hi: number | null;
  /** Chunks [firstChunk, lastChunk] (inclusive) that hold every packet needed to decode the range. */
  firstChunk: number;
  lastChunk: number;
}

export interface SegmentLayout {
  /** Keyframe times where chunk 1, 2, ... start (chunk 0 starts at the beginning of the file). */
  cutTimes: number[];
  segments: SegmentRange[];
}

export interface SegmentOptions {
  /** Number of segments wanted (at least 1; fewer come back when the video has fewer frames). */
  count: number;
  /** How far (seconds) a boundary may move to land on a keyframe. */
  snapTolerance: number;
}

/** Number of segments for a video of `duration` seconds on `slots` slots, or of `segmentSeconds` each. */
export function segmentCount(duration: number, slots: number, segmentSeconds: number): number {
  if (segmentSeconds > 0) return Math.max(1, Math.min(500, Math.round(duration / segmentSeconds)));
  // Two segments per slot balance uneven workers without paying much per-segment start-up; segments
  // stay between 2 s (encoder start-up and IDR cost) and 60 s (retry cost, progress granularity).
  const bySlots = 2 * Math.max(1, slots);
  const length = Math.min(60, Math.max(2, duration / bySlots));
  return Math.max(1, Math.min(500, Math.round(duration / length)));
}

/** Splits the video of `index` into about `count` frame ranges and the chunks they need. */
export function planSegments(index: VideoIndex, opts: SegmentOptions): SegmentLayout {
  const times = index.frameTimes;
  const n = times.length;
  const count = Math.max(1, Math.min(opts.count, n));
  const first = times[0]!;
  const span = index.end - first;
  const keyTimes = index.packets.filter((p) => p.keyframe).map((p) => p.pts);

  // Boundaries as frame indexes, strictly increasing.
  const bounds: number[] = [0];
  for (let j = 1; j < count; j++) {
    const ideal = first + (span * j) / count;
    let t = nearest(keyTimes, ideal);
    if (t === undefined || Math.abs(t - ideal) > opts.snapTolerance) t = times[lowerBound(times, ideal)] ?? ideal;
    const at = Math.min(n - 1, lowerBound(times, t - 1e-9));
    if (at > bounds[bounds.length - 1]!) bounds.push(at);
  }
  bounds.push(n);

  // Each range decodes from the last keyframe (decode order) presenting at or before its first frame.
  const decodeStarts = new Set<number>();
  const startPacket: number[] = [];
  for (let s = 0; s + 1 < bounds.length; s++) {
    const t = times[bounds[s]!]!;
    let k = 0;
    for (let i = 0; i < index.packets.length; i++) if (index.packets[i]!.keyframe && index.packets[i]!.pts <= t + 1e-9) k = i;
    startPacket.push(s === 0 ? 0 : k);
    if (s > 0 && k > 0) decodeStarts.add(k);
  }
  const cutPackets = [...decodeStarts].sort((a, b) => a - b);
  const cutTimes = cutPackets.map((i) => index.packets[i]!.pts);
  const chunkOfPacket = (i: number): number => upperBound(cutPackets, i);

  const segments: SegmentRange[] = [];
  for (let s = 0; s + 1 < bounds.length; s++) {
    const from = bounds[s]!;
    const to = bounds[s + 1]!;
    const start = times[from]!;
    const end = to < n ? times[to]! : index.end;
    // Half a frame before the first frame: undecodable leading frames of an open first GOP stay out.
    const lo = from === 0 ? start - (n > 1 ? (times[1]! - start) / 2 : 0.001) : (times[from - 1]! + start) / 2;
    const hi = to < n ? (times[to - 1]! + times[to]!) / 2 : null;
    let lastChunk = chunkOfPacket(startPacket[s]!);
    let keysPast = 0;
    for (let i = startPacket[s]!; i < index.packets.length; i++) {
      const p = index.packets[i]!;
      if (p.pts >= lo && (hi === null || p.pts < hi)) lastChunk = Math.max(lastChunk, chunkOfPacket(i));
      // Leading frames follow their keyframe directly: two keyframes past the range end, none remain.
      if (hi !== null && p.keyframe && p.pts >= hi && ++keysPast >= 2) break;
    }
    segments.push({ from, to, start, end, lo, hi, firstChunk: chunkOfPacket(startPacket[s]!), lastChunk });
  }
  return { cutTimes, segments };
}

/**
 * {@link planSegments}, cut only where a decoder can start: `check` tells for each cut time whether
 * a decode begun there gives its frame (true), none (false), or cannot tell (undefined: the seek
 * landed elsewhere; asked once more seeking half-way to the next keyframe, at most 1 s on). A cut
 * that fails is no keyframe to the plan any more, and the video is planned again around it (its
 * range then decodes from the keyframe before); three rounds at most. A video left with no cut,
 * where every segment would decode it from its start, is one segment.
 */
export async function planDecodableSegments(
  index: VideoIndex,
  opts: SegmentOptions,
  check: (cuts: number[], seekTo?: number[]) => Promise<Array<boolean | undefined>>,
): Promise<SegmentLayout> {
  const keyTimes = index.packets.filter((p) => p.keyframe).map((p) => p.pts).sort((a, b) => a - b);
  const refused = new Set<number>();
  let layout = planSegments(index, opts);
  for (let round = 0; round < 3 && layout.cutTimes.length > 0; round++) {
    const cuts = layout.cutTimes;
    const verdicts = await check(cuts);
    const unsure = cuts.flatMap((_, i) => (verdicts[i] === undefined ? [i] : []));
    if (unsure.length > 0) {
      const later = unsure.map((i) => {
        const next = keyTimes[upperBound(keyTimes, cuts[i]! + 1e-6)] ?? index.end;
        return cuts[i]! + Math.min(1, (next - cuts[i]!) / 2);
      });
      const again = await check(unsure.map((i) => cuts[i]!), later);
      unsure.forEach((i, k) => (verdicts[i] = again[k]));
    }
    const bad = cuts.filter((_, i) => verdicts[i] !== true);
    if (bad.length === 0) return layout;
    for (const t of bad) refused.add(t);
    layout = planSegments({ ...index, packets: index.packets.map((p) => (p.keyframe && refused.has(p.pts) ? { ...p, keyframe: false } : p)) }, opts);
  }
  // Left unchecked after three rounds, or with no cut at all: one segment.
  return refused.size === 0 ? layout : planSegments(index, { ...opts, count: 1 });
}

/** First index i with xs[i] >= x (xs sorted). */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Number of elements <= x (xs sorted). */
function upperBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function nearest(xs: readonly number[], x: number): number | undefined {
  let best: number | undefined;
  for (const v of xs) if (best === undefined || Math.abs(v - x) < Math.abs(best - x)) best = v;
  return best;
}
