/**
 * The audio kind on MP3s as they occur in the wild (in process: the real planner, worker processor
 * and merge): two MP3s joined with `cat` (the second one's ID3v2 tag and LAME Info frame then sit
 * mid-stream), and an MP3 with padding after its last frame. Every player plays them, and `ffmpeg -i
 * in out.wav` converts them in full (it skips the bytes that are not frames, with a warning): they
 * must not be refused as "truncated or corrupt".
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { audioReport, decodeFloat, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-wild-mp3-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A LAME MP3 of a tone, with ffmpeg's ID3v2 tag and Xing/Info frame. */
async function mp3(file: string, freq: number, seconds: number): Promise<string> {
  await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=${freq}:r=44100:d=${seconds}`, '-c:a', 'libmp3lame', '-b:a', '128k', '-metadata', `title=tone ${freq}`, '-y', file]);
  return file;
}

/** Frames `ffmpeg -i file out.wav` writes. */
async function ffmpegFrames(file: string): Promise<number> {
  const ref = path.join(dir, `${path.basename(file)}.ref.wav`);
  await runFfmpeg(['-i', file, '-map', '0:a:0', '-c:a', 'pcm_f32le', '-y', ref]);
  const d = await decodeFloat(ref, dir);
  return d.samples.length / d.channels;
}

async function expectConvertedLikeFfmpeg(src: string): Promise<void> {
  const want = await ffmpegFrames(src);
  for (const raw of [{ codec: 'wav' }, { codec: 'wav', normalize: true }, { codec: 'wav', segment_seconds: 2 }]) {
    const r = await runAudioInProcess(raw, [src], path.join(dir, `run-${JSON.stringify(raw).replace(/\W/g, '')}`));
    expect(r.errors, JSON.stringify(raw)).toEqual([]);
    const rep = (await audioReport(r))[0]!;
    // Within one MP3 frame of what ffmpeg decodes.
    expect(Math.abs(rep.frames - want), JSON.stringify(raw)).toBeLessThanOrEqual(1152);
  }
}

describe('MP3s from the wild', () => {
  test('two MP3s joined with cat (ID3v2 tag and Info frame mid-stream) convert in full, whole and segmented', async () => {
    const a = await readFile(await mp3(path.join(dir, 'a.mp3'), 440, 2));
    const b = await readFile(await mp3(path.join(dir, 'b.mp3'), 660, 2));
    const joined = path.join(dir, 'joined.mp3');
    await writeFile(joined, Buffer.concat([a, b]));
    await expectConvertedLikeFfmpeg(joined);
  });

  test('an MP3 with zero padding after its last frame converts in full, whole and segmented', async () => {
    const a = await readFile(await mp3(path.join(dir, 'a.mp3'), 440, 3));
    const padded = path.join(dir, 'padded.mp3');
    await writeFile(padded, Buffer.concat([a, Buffer.alloc(1000)]));
    await expectConvertedLikeFfmpeg(padded);
  });
});
