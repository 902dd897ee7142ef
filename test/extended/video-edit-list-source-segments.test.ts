/**
 * An MP4 trimmed by stream copy (`ffmpeg -ss 0.5 -i in.mp4 -c copy out.mp4`: an edit list whose
 * media starts past the file's first keyframe) is split into segments like its untrimmed original.
 * A first check of its cuts (a frame of the cut's own time from a decode begun there) took every
 * cut for "not a decoder start", ffprobe's seek landing one GOP early in such a file: no chunks,
 * each segment decoding the source from its first frame (review K10). A cut where the seek lands
 * elsewhere is asked again, seeking half-way to the next keyframe, where it lands on the cut; with
 * one cut only (a long GOP), the first check alone made the file one segment (review K11).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { decoderStartsAt, probeVideoIndex } from '../../shared/media/probe.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-edit-list-cuts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sources(): Promise<{ plain: string; trimmed: string }> {
  const plain = path.join(dir, 'plain.mp4');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=8', '-c:v', 'libx264', '-preset', 'medium', '-g', '25', plain]);
  const trimmed = path.join(dir, 'trimmed.mp4');
  await runFfmpeg(['-y', '-v', 'error', '-ss', '0.5', '-i', plain, '-c', 'copy', trimmed]);
  return { plain, trimmed };
}

describe('video kind: an MP4 trimmed by stream copy (edit list)', () => {
  it('a decode begun at each keyframe of an ordinary H.264 trimmed by stream copy gives its frame', async () => {
    const { trimmed } = await sources();
    const index = await probeVideoIndex(trimmed, { genpts: true });
    const keys = index.packets.filter((p) => p.keyframe && !p.discard && p.pts > 0).map((p) => p.pts);
    expect(keys.length).toBeGreaterThan(4);
    // None refused: ffprobe's seek to each lands a keyframe early (0.1 s off here), which cannot tell
    // (undefined); seeking half a GOP later lands on each, and each gives its frame.
    expect(await decoderStartsAt(trimmed, keys, { genpts: true })).not.toContain(false);
    expect(await decoderStartsAt(trimmed, keys, { genpts: true, seekTo: keys.map((t) => t + 0.5) })).toEqual(keys.map(() => true));
  }, 30_000);

  it('is cut into chunks like its untrimmed original, not decoded from its start by every segment', async () => {
    const { plain, trimmed } = await sources();
    // Where the last of four segments starts decoding (its first chunk's start, source seconds).
    const lastDecodeStart = async (f: string): Promise<number> => {
      const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h264' }), [f], { dir, slots: 4 });
      expect(run.errors).toEqual([]);
      expect(run.outputs).toHaveLength(1);
      const segs = run.outcomes.map((o) => o.plan as unknown as { type?: string; segment?: number; chunkStarts?: number[] }).filter((p) => p?.type === 'segment');
      expect(segs).toHaveLength(4);
      const last = segs.find((p) => p.segment === 3)!;
      return last.chunkStarts?.[0] ?? Number.NaN;
    };
    expect(await lastDecodeStart(plain)).toBeGreaterThan(5);
    // With every cut refused: about -0.5 (the file's first keyframe), no chunks at all, and each of
    // the four segments decoding the source from its start (the last one all 8 s of it).
    expect(await lastDecodeStart(trimmed)).toBeGreaterThan(4);
  }, 60_000);

  it('with a long GOP (one cut, its seek landing on the discarded first keyframe) is split like its original', async () => {
    // 10 s, a keyframe every 4 s, B-frames (x264 medium): keyframes at 0, 4, 8 s; trimmed, at -0.52
    // (discarded by the edit list), 3.48 and 7.48 s.
    const plain = path.join(dir, 'long-gop.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=10', '-c:v', 'libx264', '-preset', 'medium', '-g', '100', plain]);
    const trimmed = path.join(dir, 'long-gop-trimmed.mp4');
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
