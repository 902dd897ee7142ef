/**
 * Regression review K15 of c384cb0 (audio: an MPEG-TS's timestamp span is not taken for a stated
 * length, so a capture with a dropout in its sound is converted, not refused as truncated; a trim
 * is on the file's timeline, "as ffmpeg -ss/-to does").
 *
 * The trim is placed by counting samples from the track's first one (AudioProbe.startOffset
 * subtracted), which is the file's timeline only where the sound has no gap. In a capture whose
 * sound drops out for 3 s at 3 s, `--trim 7,8` (what `ffmpeg -ss 7 -to 8` keeps: the sound's 5th
 * second, 600 Hz here) keeps the 8th second of the samples, the file's 10..11 s (900 Hz), and the
 * job succeeds without a word; a trim that lies in the last 3 s of the file fails, "no audio to
 * encode in the trimmed range". Before c384cb0 such a file was refused whole; now it is accepted
 * and its trims are silently off by the dropout.
 *
 * Regression review K16 of bb6b8ff (audio: a trimmed MPEG-TS/PS keeps its dropouts as silence,
 * `aresample=async=1` before the trim, "so that the trim's seconds are the file's").
 *
 * The gap is filled from the timestamps ffmpeg's command line hands the filter, and for an MPEG-TS
 * or -PS (a format with timestamp discontinuities) the command line first closes any forward jump
 * of more than its `-dts_delta_threshold` (10 s) itself: there is no gap left to fill. A capture
 * whose sound drops out for 12 s (a signal lost for a quarter of a minute) is decoded as its 10 s
 * of sound back to back, as before bb6b8ff:
 *  - `--trim 16,19` (inside the file and inside its sound: what `ffmpeg -ss 16 -to 19` keeps is the
 *    sound's 5th to 7th seconds, 600, 700 and 800 Hz here) fails, "no audio to encode in the trimmed
 *    range" (rendered whole) or "trim.start 16 s is past the end of the 10.01 s decoded" (in segments);
 *  - `--trim 4,5` (inside the dropout: silence) keeps the file's 16..17 s of sound, without a word.
 * The same capture with a 3 s dropout is right (test/extended/audio-mpegts-dropout-trim.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { crossingsPerSecond, decodeFloat, peak, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
/** Captures whose sound drops out for 3 s and for 12 s. */
let short: string;
let long: string;

/**
 * 10 s of sound whose tone is 200 Hz in its first second, 100 Hz higher each second after; from its
 * 3rd second on it comes `gap` s later (the file: sound 0..3 s, nothing for `gap` s, then the rest).
 */
async function capture(name: string, gap: number): Promise<string> {
  const src = path.join(dir, name);
  await runFfmpeg([
    '-f', 'lavfi', '-i', `testsrc=s=64x48:r=5:d=${10 + gap}`, '-f', 'lavfi', '-i', "aevalsrc='0.5*sin(2*PI*(200+100*floor(t))*t)':s=48000:d=10",
    '-filter_complex', `[1]asetpts='if(gte(PTS*TB,3),PTS+${gap}/TB,PTS)'[a]`, '-map', '0', '-map', '[a]', '-c:v', 'libx264', '-c:a', 'mp2', '-y', src,
  ]);
  return src;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ts-dropout-'));
  [short, long] = await Promise.all([capture('capture.ts', 3), capture('long.ts', 12)]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Zero crossings a second of what `ffmpeg -ss START -to END` keeps of `src`, and of the job's trim of it. */
async function trimmed(src: string, start: number, end: number, segment_seconds: number): Promise<{ want: number; got: number }> {
  const tag = `${path.basename(src, '.ts')}-${start}-${segment_seconds}`;
  const ref = path.join(dir, `ref-${tag}.wav`);
  await runFfmpeg(['-ss', String(start), '-to', String(end), '-i', src, '-vn', '-c:a', 'pcm_f32le', '-y', ref]);
  const want = await decodeFloat(ref, dir);
  const r = await runAudioInProcess({ codec: 'wav', trim: { start, end }, segment_seconds }, [src], path.join(dir, `job-${tag}`));
  expect(r.errors).toEqual([]);
  const got = await decodeFloat(r.outputs.find((o) => o.name === `${path.basename(src, '.ts')}.wav`)!.path, dir);
  return { want: crossingsPerSecond(want.samples, want.channels, 48000), got: crossingsPerSecond(got.samples, got.channels, 48000) };
}

describe('audio job trimming an MPEG-TS capture whose sound drops out for 3 s', () => {
  test.each([180, 2])('a trim 7..8 keeps what ffmpeg -ss 7 -to 8 keeps (segment_seconds %i)', async (segment_seconds) => {
    const { want, got } = await trimmed(short, 7, 8, segment_seconds);
    expect(want).toBeCloseTo(1200, -2);
    // Observed: about 1800 crossings a second (900 Hz: the file's 10..11 s).
    expect(got).toBeCloseTo(1200, -2);
  }, 30_000);

  test('a trim 11..12, inside the file and its sound, is converted', async () => {
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 11, end: 12 } }, [short], path.join(dir, 'late'));
    // Observed: INVALID_ARGUMENT "capture.ts: no audio to encode in the trimmed range: the decoded file has no samples".
    expect(r.errors).toEqual([]);
    expect(r.outputs.map((o) => o.name)).toContain('capture.wav');
  }, 30_000);
});

describe('audio job trimming an MPEG-TS capture whose sound drops out for 12 s', () => {
  test.each([180, 2])('a trim 16..19 keeps what ffmpeg -ss 16 -to 19 keeps (segment_seconds %i)', async (segment_seconds) => {
    // Observed: INVALID_ARGUMENT "no audio to encode in the trimmed range: the decoded file has no samples"
    // (segment_seconds 2: "trim.start 16 s is past the end of the 10.01 s decoded").
    const { want, got } = await trimmed(long, 16, 19, segment_seconds);
    expect(want).toBeCloseTo(1400, -2);
    expect(got).toBeCloseTo(1400, -2);
  }, 30_000);

  test('a trim 4..5, inside the dropout, is silence', async () => {
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 4, end: 5 } }, [long], path.join(dir, 'gap'));
    expect(r.errors).toEqual([]);
    const got = await decodeFloat(r.outputs.find((o) => o.name === 'long.wav')!.path, dir);
    // Observed: a full-scale tone (peak 0.5, the file's 16..17 s: 600 Hz).
    expect(peak(got.samples)).toBeLessThan(0.01);
  }, 30_000);
});
