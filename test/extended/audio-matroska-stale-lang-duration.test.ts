/**
 * Regression review K15 of 17be2c6 (audio: a Matroska track's length is also read from a DURATION
 * tag with a language, `DURATION-eng`, as older mkvmerge writes its statistics tags).
 *
 * ffmpeg drops a source's `DURATION` tag when it writes Matroska (it writes its own), but copies a
 * `DURATION-eng` one as any other stream tag: an mkvmerge file cut with `ffmpeg -t 3 -c copy` has
 * both, the stale `DURATION-eng` (the source's 6 s) first and ffmpeg's true `DURATION` (3 s) after.
 * The probe takes the first key matching /^duration(-xx)?$/, the stale one: the intact 3 s file is
 * refused as truncated ("decoded 3.07 s of the 6.00 s it announces"). Before 17be2c6 it was converted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-stale-tag-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('audio job of a Matroska cut by ffmpeg from an mkvmerge file (stale DURATION-eng tag)', () => {
  test.each([180, 2])('is converted whole, its own DURATION tag taken (segment_seconds %i)', async (segment_seconds) => {
    // The mkvmerge-like source: 6 s, its statistics tags with a language.
    const src = path.join(dir, 'source.mkv');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=6', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=6',
      '-c:v', 'mpeg4', '-c:a', 'flac', '-metadata:s:v:0', 'DURATION-eng=00:00:06.000000000', '-metadata:s:a:0', 'DURATION-eng=00:00:06.000000000', '-y', src,
    ]);
    // A user's 3 s excerpt of it: ffmpeg copies the stale DURATION-eng, and writes its own DURATION.
    const clip = path.join(dir, 'clip.mkv');
    await runFfmpeg(['-i', src, '-t', '3', '-c', 'copy', '-y', clip]);
    const p = await runFfprobe<{ streams: Array<{ codec_type: string; tags: Record<string, string> }> }>(['-show_streams', '-i', clip]);
    const tags = p.streams.find((s) => s.codec_type === 'audio')!.tags;
    expect(tags['DURATION-eng']).toBe('00:00:06.000000000');
    expect(tags['DURATION']).toMatch(/^00:00:03\./);

    const r = await runAudioInProcess({ codec: 'flac', segment_seconds }, [clip], path.join(dir, `job-${segment_seconds}`));
    // Observed: INVALID_ARGUMENT "clip.mkv: truncated file: decoded 3.07 s of the 6.00 s it announces".
    expect(r.errors).toEqual([]);
    expect(r.outputs.map((o) => o.name)).toContain('clip.flac');
  }, 30_000);
});
