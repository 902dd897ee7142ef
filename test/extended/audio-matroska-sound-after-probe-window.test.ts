/**
 * Regression review K15 of c384cb0 / 17be2c6 (audio: a trim is on the file's timeline, the track's
 * start (AudioProbe.startOffset) subtracted; a Matroska track's length is its DURATION tag less its
 * start, so a sound that starts after the picture is not refused as truncated).
 *
 * Both take the track's start from ffprobe's stream start_time. ffprobe only knows it from the
 * packets it read while probing (about 5 s of the file): for a Matroska/WebM track whose first packet
 * comes later, it fills in the file's start (0) and the file's duration for the track, the tag
 * unread. A video whose sound starts at 6 s (a screen recording whose microphone came on late, a film
 * with a silent opening not encoded):
 *  - the whole file is refused, "truncated file: decoded 8.00 s of the 14.00 s it announces";
 *  - a trim 7..8 (what `ffmpeg -ss 7 -to 8` keeps: the sound's second second, 300 Hz here) keeps
 *    the sound's 7..8 s (the file's 13..14 s, 900 Hz), succeeding without a word.
 * The same files with the sound starting at 3 s (seen by the probe) are right.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { crossingsPerSecond, decodeFloat, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-late-sound-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** 14 s of picture; 8 s of sound from 6 s, its tone 200 Hz in its first second, 100 Hz higher each second after. */
async function lateSound(ext: 'mkv' | 'webm'): Promise<string> {
  const src = path.join(dir, `late.${ext}`);
  await runFfmpeg([
    '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=5:d=14', '-itsoffset', '6', '-f', 'lavfi', '-i', "aevalsrc='0.5*sin(2*PI*(200+100*floor(t))*t)':s=48000:d=8",
    '-map', '0', '-map', '1', ...(ext === 'mkv' ? ['-c:v', 'libx264', '-c:a', 'flac'] : ['-c:v', 'libvpx', '-c:a', 'libopus']), '-y', src,
  ]);
  return src;
}

describe('audio job of a Matroska/WebM video whose sound starts 6 s after its picture', () => {
  test.each(['mkv', 'webm'] as const)('%s: converted whole, not refused as truncated', async (ext) => {
    const src = await lateSound(ext);
    const r = await runAudioInProcess({ codec: 'wav' }, [src], path.join(dir, `whole-${ext}`));
    // Observed: INVALID_ARGUMENT "late.mkv: truncated file: decoded 8.00 s of the 14.00 s it announces".
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name === 'late.wav');
    expect(out).toBeDefined();
  }, 30_000);

  test.each(['mkv', 'webm'] as const)('%s: a trim 7..8 keeps what ffmpeg -ss 7 -to 8 keeps', async (ext) => {
    const src = await lateSound(ext);
    const ref = path.join(dir, `ref-${ext}.wav`);
    await runFfmpeg(['-ss', '7', '-to', '8', '-i', src, '-vn', '-c:a', 'pcm_f32le', '-y', ref]);
    const want = await decodeFloat(ref, dir);
    expect(crossingsPerSecond(want.samples, want.channels, 48000)).toBeCloseTo(600, -2);

    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 7, end: 8 } }, [src], path.join(dir, `trim-${ext}`));
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name === 'late.wav');
    expect(out).toBeDefined();
    const got = await decodeFloat(out!.path, dir);
    // Observed (mkv): about 1800 crossings a second, the 900 Hz of the file's 13th second.
    expect(crossingsPerSecond(got.samples, got.channels, 48000)).toBeCloseTo(600, -2);
  }, 30_000);
});
