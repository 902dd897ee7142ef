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
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { crossingsPerSecond, decodeFloat, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
let src: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ts-dropout-'));
  // 10 s of sound whose tone is 200 Hz in its first second, 100 Hz higher each second after; from
  // its 3rd second on it comes 3 s later (the file: sound 0..3 s, nothing 3..6 s, sound 6..13 s).
  src = path.join(dir, 'capture.ts');
  await runFfmpeg([
    '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=13', '-f', 'lavfi', '-i', "aevalsrc='0.5*sin(2*PI*(200+100*floor(t))*t)':s=48000:d=10",
    '-filter_complex', "[1]asetpts='if(gte(PTS*TB,3),PTS+3/TB,PTS)'[a]", '-map', '0', '-map', '[a]', '-c:v', 'libx264', '-c:a', 'mp2', '-y', src,
  ]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('audio job trimming an MPEG-TS capture whose sound drops out for 3 s', () => {
  test.each([180, 2])('a trim 7..8 keeps what ffmpeg -ss 7 -to 8 keeps (segment_seconds %i)', async (segment_seconds) => {
    const ref = path.join(dir, `ref-${segment_seconds}.wav`);
    await runFfmpeg(['-ss', '7', '-to', '8', '-i', src, '-vn', '-c:a', 'pcm_f32le', '-y', ref]);
    const want = await decodeFloat(ref, dir);
    expect(crossingsPerSecond(want.samples, want.channels, 48000)).toBeCloseTo(1200, -2);

    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 7, end: 8 }, segment_seconds }, [src], path.join(dir, `job-${segment_seconds}`));
    expect(r.errors).toEqual([]);
    const got = await decodeFloat(r.outputs.find((o) => o.name === 'capture.wav')!.path, dir);
    // Observed: about 1800 crossings a second (900 Hz: the file's 10..11 s).
    expect(crossingsPerSecond(got.samples, got.channels, 48000)).toBeCloseTo(1200, -2);
  }, 30_000);

  test('a trim 11..12, inside the file and its sound, is converted', async () => {
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 11, end: 12 } }, [src], path.join(dir, 'late'));
    // Observed: INVALID_ARGUMENT "capture.ts: no audio to encode in the trimmed range: the decoded file has no samples".
    expect(r.errors).toEqual([]);
    expect(r.outputs.map((o) => o.name)).toContain('capture.wav');
  }, 30_000);
});
