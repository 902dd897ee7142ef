/**
 * The audio kind on MP3s as they occur in the wild (in process: the real planner, worker processor
 * and merge), whole and in segments, against what `ffmpeg -i in.mp3 out.wav` decodes.
 *
 * MP3 is decoded without -xerror (review AWILD): two MP3s joined with `cat` (the second one's ID3v2
 * tag and LAME Info frame mid-stream) and an MP3 with padding after its last frame were refused as
 * "truncated or corrupt" where every player plays them. Then the decoder skips damage too, so an MP3
 * is held to the frame count its Info frame states (review K18: 8 KB of garbage over the middle
 * converted 0.5 s short without a word), allowing what that count holds beyond the decoded sound
 * (review K19): the encoder's delay, which the decoder skips (the stream's start time), its padding,
 * and frames a stream-copied cut cannot decode (an allowance of a fixed 60 ms refused every clean LAME
 * MP3 at 8-16 kHz, whose frames are 576 samples, and clips cut with `ffmpeg -ss N -c copy`).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { audioReport, decodeFloat, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mp3-wild-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A LAME MP3 of `source` (a lavfi graph), with ffmpeg's ID3v2 tag and Xing/Info frame. */
async function mp3(name: string, source: string, args: string[] = ['-b:a', '128k']): Promise<string> {
  const file = path.join(dir, name);
  await runFfmpeg(['-f', 'lavfi', '-i', source, ...args, '-c:a', 'libmp3lame', '-y', file]);
  return file;
}

/** Frames `ffmpeg -i file out.wav` writes. */
async function ffmpegFrames(file: string): Promise<number> {
  const d = await decodeFloat(file, dir);
  return d.samples.length / d.channels;
}

/** Runs `src` whole and in segments (and normalised, whole): the job's frames each way, or its errors. */
async function converted(src: string, normalize = false): Promise<Array<number | string>> {
  const runs = [{ codec: 'wav' }, { codec: 'wav', segment_seconds: 2 }, ...(normalize ? [{ codec: 'wav', normalize: true }] : [])];
  return Promise.all(runs.map(async (raw) => {
    const r = await runAudioInProcess(raw, [src], path.join(dir, `run-${path.basename(src)}-${JSON.stringify(raw).replace(/\W/g, '')}`));
    return r.errors.length > 0 ? r.errors.map((e) => e.message).join('; ') : (await audioReport(r))[0]!.frames;
  }));
}

/** Each of `got` within one MP3 frame of `want` frames. */
function expectFrames(got: Array<number | string>, want: number): void {
  for (const g of got) {
    expect(typeof g, String(g)).toBe('number');
    expect(Math.abs((g as number) - want)).toBeLessThanOrEqual(1152);
  }
}

/** Offsets of the MPEG-1 Layer III frames of a CBR MP3 (its ID3v2 tag skipped). */
function mp3Frames(b: Buffer): number[] {
  const rates = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
  const srs = [44100, 48000, 32000];
  let pos = b.toString('latin1', 0, 3) === 'ID3' ? 10 + (((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f)) : 0;
  const frames: number[] = [];
  while (pos + 4 <= b.length) {
    const br = rates[b[pos + 2]! >> 4];
    const sr = srs[(b[pos + 2]! >> 2) & 3];
    if (b[pos] !== 0xff || (b[pos + 1]! & 0xe0) !== 0xe0 || !br || !sr) {
      pos++;
      continue;
    }
    frames.push(pos);
    pos += Math.floor((144000 * br) / sr) + ((b[pos + 2]! >> 1) & 1);
  }
  return frames;
}

describe('MP3s from the wild convert as ffmpeg converts them', () => {
  test('two MP3s joined with cat (ID3v2 tag and Info frame mid-stream)', async () => {
    const [a, b] = await Promise.all([mp3('a.mp3', 'sine=f=440:r=44100:d=2'), mp3('b.mp3', 'sine=f=660:r=44100:d=2')]);
    const joined = path.join(dir, 'joined.mp3');
    await writeFile(joined, Buffer.concat([await readFile(a), await readFile(b)]));
    // Observed: "cannot decode audio (truncated or corrupt file): ... [mp3float] Header missing".
    expectFrames(await converted(joined, true), await ffmpegFrames(joined));
  });

  test('an MP3 with zero padding after its last frame', async () => {
    const padded = path.join(dir, 'padded.mp3');
    await writeFile(padded, Buffer.concat([await readFile(await mp3('p.mp3', 'sine=f=440:r=44100:d=3')), Buffer.alloc(1000)]));
    // Observed: "cannot decode audio (truncated or corrupt file): ffmpeg failed: Metadata:; encoder : Lavc59.37.100 pcm_f32le".
    expectFrames(await converted(padded, true), await ffmpegFrames(padded));
  });

  test('an MP3 cut with ffmpeg -ss 1.5 -c copy', async () => {
    const episode = await mp3('episode.mp3', 'anoisesrc=r=44100:d=6:c=pink:a=0.3', ['-ac', '2', '-q:a', '2']);
    const clip = path.join(dir, 'clip.mp3');
    await runFfmpeg(['-ss', '1.5', '-i', episode, '-c', 'copy', '-y', clip]);
    // Observed: "clip.mp3: corrupt file: decoded 4.42 s of the 4.52 s it states: 0.10 s could not be decoded".
    expectFrames(await converted(clip), await ffmpegFrames(clip));
  });

  test.each([
    { rate: 8000, seconds: 3, args: ['-ac', '1', '-q:a', '5'] },
    { rate: 16000, seconds: 3, args: ['-ac', '1', '-q:a', '5'] },
    { rate: 32000, seconds: 3.1, args: ['-ac', '2', '-b:a', '128k'] },
  ])('a clean LAME MP3 at $rate Hz (speech, telephony), to the sample', async ({ rate, seconds, args }) => {
    const speech = await mp3(`speech-${rate}.mp3`, `sine=f=300:r=${rate}:d=${seconds}`, args);
    // Observed: "speech-8000.mp3: corrupt file: decoded 3.00 s of the 3.17 s it states: 0.17 s could not be decoded".
    expect(await converted(speech)).toEqual([Math.round(seconds * rate), Math.round(seconds * rate)]);
  });
});

describe('a corrupt MP3', () => {
  test('8 KB of garbage over the middle of a 6 s MP3 is refused, not converted 0.5 s short in silence', async () => {
    const clean = await readFile(await mp3('clean.mp3', 'sine=f=440:r=44100:d=6'));
    const garbage = Buffer.alloc(8000);
    for (let i = 0; i < garbage.length; i++) garbage[i] = ((i * 7919 + 13) & 0xff) ^ (i >> 3);
    const mid = Math.floor(clean.length / 2);
    const damaged = path.join(dir, 'damaged.mp3');
    await writeFile(damaged, Buffer.concat([clean.subarray(0, mid), garbage, clean.subarray(mid + garbage.length)]));
    // Observed (review K18): converted to 5.46 s of 6.03, no error, no warning.
    for (const got of await converted(damaged)) expect(got).toMatch(/^damaged\.mp3: corrupt file: decoded 5\.\d\d s of the 6\.\d\d s it states: 0\.\d\d s could not be decoded/);
  });

  test('damage inside 100 frames whose headers are intact is refused, not converted 0.29 s short (review K)', async () => {
    // Every frame's packet is there, so counting them (for sources joined with the concat demuxer,
    // audio-format-change.test.ts) passed it: the decoder drops the frames it cannot decode.
    const clean = path.join(dir, 'clean-20s.mp3');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=44100:d=20', '-ac', '2', '-c:a', 'libmp3lame', '-b:a', '128k', '-y', clean]);
    const b = await readFile(clean);
    const frames = mp3Frames(b);
    // The side information (32 bytes after the header) of 100 frames from 7 s on overwritten.
    let seed = 1;
    for (const at of frames.slice(300, 400)) {
      for (let j = 4; j < 36; j++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        b[at + j] = seed & 0xff;
      }
    }
    const damaged = path.join(dir, 'damaged-headers.mp3');
    await writeFile(damaged, b);
    // What ffmpeg decodes of it: frames its decoder could not decode are gone (not silence in their place).
    const { samples, channels } = await decodeFloat(damaged, dir);
    const lost = 20 * 44100 - samples.length / channels;
    expect(lost).toBeGreaterThan(5 * 1152);
    for (const got of await converted(damaged)) expect(String(got)).toMatch(/^damaged-headers\.mp3: corrupt file/);
  }, 120_000);
});
