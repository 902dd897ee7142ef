/**
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
 * The same capture with a 3 s dropout is right (test/audio-mpegts-dropout-trim.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { crossingsPerSecond, decodeFloat, peak, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
let src: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ts-long-dropout-'));
  // 10 s of sound whose tone is 200 Hz in its first second, 100 Hz higher each second after; from
  // its 3rd second on it comes 12 s later (the file: sound 0..3 s, nothing 3..15 s, sound 15..22 s).
  src = path.join(dir, 'capture.ts');
  await runFfmpeg([
    '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=5:d=22', '-f', 'lavfi', '-i', "aevalsrc='0.5*sin(2*PI*(200+100*floor(t))*t)':s=48000:d=10",
    '-filter_complex', "[1]asetpts='if(gte(PTS*TB,3),PTS+12/TB,PTS)'[a]", '-map', '0', '-map', '[a]', '-c:v', 'libx264', '-c:a', 'mp2', '-y', src,
  ]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('audio job trimming an MPEG-TS capture whose sound drops out for 12 s', () => {
  test.each([180, 2])('a trim 16..19 keeps what ffmpeg -ss 16 -to 19 keeps (segment_seconds %i)', async (segment_seconds) => {
    const ref = path.join(dir, `ref-${segment_seconds}.wav`);
    await runFfmpeg(['-ss', '16', '-to', '19', '-i', src, '-vn', '-c:a', 'pcm_f32le', '-y', ref]);
    const want = await decodeFloat(ref, dir);
    expect(crossingsPerSecond(want.samples, want.channels, 48000)).toBeCloseTo(1400, -2);

    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 16, end: 19 }, segment_seconds }, [src], path.join(dir, `job-${segment_seconds}`));
    // Observed: INVALID_ARGUMENT "capture.ts: no audio to encode in the trimmed range: the decoded file has no samples"
    // (segment_seconds 2: "capture.ts: no audio to encode in the trimmed range: trim.start 16 s is past the end of the 10.01 s decoded").
    expect(r.errors).toEqual([]);
    const got = await decodeFloat(r.outputs.find((o) => o.name === 'capture.wav')!.path, dir);
    expect(crossingsPerSecond(got.samples, got.channels, 48000)).toBeCloseTo(1400, -2);
  }, 30_000);

  test('a trim 4..5, inside the dropout, is silence', async () => {
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 4, end: 5 } }, [src], path.join(dir, 'gap'));
    expect(r.errors).toEqual([]);
    const got = await decodeFloat(r.outputs.find((o) => o.name === 'capture.wav')!.path, dir);
    // Observed: a full-scale tone (peak 0.5, the file's 16..17 s: 600 Hz).
    expect(peak(got.samples)).toBeLessThan(0.01);
  }, 30_000);
});
