/**
 * A chained Ogg Vorbis file (two files concatenated, as stream rippers and `cat` make them) plays in
 * full in every player and `ffmpeg -i` converts all of it, but ffprobe states only the last link's
 * length. A trim into the second link is what `ffmpeg -i in -ss 4 -to 5 out` keeps: it must not be
 * refused as "past the end" on the stated length.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { checkInput } from '../coordinator/input-check.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { validateAudioParams } from '../shared/kinds/audio-params.js';
import { resolveLimits } from '../shared/limits.js';
import { audioReport, crossingsPerSecond, decodeFloat, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-wild-ogg-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function vorbis(file: string, freq: number): Promise<Buffer> {
  await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=${freq}:r=44100:d=3`, '-c:a', 'libvorbis', '-y', file]);
  return readFile(file);
}

describe('chained Ogg Vorbis', () => {
  test('a trim inside the second link keeps that second of it, as ffmpeg -ss/-to does', async () => {
    const chained = path.join(dir, 'chained.ogg');
    await writeFile(chained, Buffer.concat([await vorbis(path.join(dir, 'a.ogg'), 440), await vorbis(path.join(dir, 'b.ogg'), 660)]));
    // ffmpeg converts both links (6 s); the second second of the second link is its 660 Hz tone.
    const ref = path.join(dir, 'ref.wav');
    await runFfmpeg(['-i', chained, '-ss', '4', '-to', '5', '-c:a', 'pcm_f32le', '-y', ref]);
    const want = await decodeFloat(ref, dir);
    expect(want.samples.length).toBe(44100);
    // Observed at submission: INVALID_ARGUMENT "chained.ogg: trim.start 4 s is past the end (3.00 s)".
    const file = { name: 'chained.ogg', path: chained, size: (await stat(chained)).size, sha256: '' };
    expect(await checkInput('audio', file, resolveLimits(), undefined, undefined, validateAudioParams({ trim: { start: 4, end: 5 } }))).toBeUndefined();
    for (const segment_seconds of [180, 2]) {
      const r = await runAudioInProcess({ codec: 'wav', trim: { start: 4, end: 5 }, segment_seconds }, [chained], path.join(dir, `run-${segment_seconds}`));
      expect(r.errors, `segment_seconds ${segment_seconds}`).toEqual([]);
      const rep = (await audioReport(r))[0]!;
      expect(rep.frames).toBe(44100);
      const out = await decodeFloat(r.outputs.find((o) => o.name === 'chained.wav')!.path, dir);
      expect(crossingsPerSecond(out.samples, out.channels, 44100)).toBeCloseTo(1320, -1);
    }
  });
});
