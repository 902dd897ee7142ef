/**
 * Review K16: a source whose decoded layout or rate changes part-way, rendered whole.
 *
 * ffmpeg's command line builds its filter graph afresh where the decoded format changes, and the
 * whole-file chain's counters (the trim's sample numbers, the timeline's `N`) started again from 0
 * there: a broadcast capture whose AC-3 turns from stereo to 5.1 at 10 s was refused, "cannot decode
 * audio (truncated or corrupt file): ... Non-monotonous DTS in output stream", while the same file
 * in segments converted; two MP3s of 44.1 and 48 kHz joined end to end were refused the same way,
 * whole or in segments (the MP3 demuxer's times run backwards across the change, which a WAV muxer
 * refuses under -xerror). Such a source is now decoded by a process of its own, in its first layout
 * and rate, as bare samples, before the chain (or into the segments' WAV).
 */
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { formatMayChange } from '../coordinator/kinds/audio-plan.js';
import { crossingsPerSecond, decodeFloat, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
/** MPEG-TS: 10 s of AC-3 stereo (440 Hz), then 10 s of AC-3 5.1 (660 Hz), one stream, times running on. */
let broadcast: string;
/** 5 s of MP3 at 44.1 kHz (440 Hz) and 5 s at 48 kHz (660 Hz), the bytes of one after the other's. */
let joined: string;

/** Joins files byte for byte (`cat a b > out`). */
async function cat(out: string, parts: string[]): Promise<string> {
  await writeFile(out, Buffer.concat(await Promise.all(parts.map((p) => readFile(p)))));
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-format-change-'));
  const stereo = path.join(dir, 'a.ts');
  const surround = path.join(dir, 'b.ts');
  await Promise.all([
    runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=10', '-af', 'pan=stereo|c0=c0|c1=0.5*c0', '-c:a', 'ac3', '-f', 'mpegts', '-y', stereo]),
    runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=660:r=48000:d=10', '-af', 'pan=5.1|c0=c0|c1=c0|c2=c0|c3=0.1*c0|c4=c0|c5=c0', '-c:a', 'ac3', '-output_ts_offset', '10', '-f', 'mpegts', '-y', surround]),
  ]);
  broadcast = await cat(path.join(dir, 'broadcast.ts'), [stereo, surround]);
  const parts = await Promise.all([[44100, 440], [48000, 660]].map(async ([rate, f]) => {
    const p = path.join(dir, `${rate}.mp3`);
    await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=${f}:r=${rate}:d=5`, '-c:a', 'libmp3lame', '-write_xing', '0', '-id3v2_version', '0', '-y', p]);
    return p;
  }));
  joined = await cat(path.join(dir, 'joined.mp3'), parts);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The job's WAV of `src` (seconds, channels, tone in Hz of a second a quarter and three quarters in). */
async function converted(src: string, raw: Record<string, unknown>, tag: string): Promise<{ seconds: number; channels: number; first: number; last: number }> {
  const r = await runAudioInProcess({ codec: 'wav', ...raw }, [src], path.join(dir, tag));
  expect(r.errors).toEqual([]);
  const out = r.outputs.find((o) => o.name === `${path.basename(src, path.extname(src))}.wav`)!;
  const { samples, channels } = await decodeFloat(out.path, dir);
  const rate = Number(/(\d+)/.exec(String(raw.sample_rate ?? (src.endsWith('.mp3') ? 44100 : 48000)))![1]);
  const frames = samples.length / channels;
  const second = (at: number): number => crossingsPerSecond(samples.subarray(at * channels, (at + rate) * channels), channels, rate) / 2;
  return { seconds: frames / rate, channels, first: second(Math.round(frames / 4)), last: second(Math.round((frames * 3) / 4) - rate) };
}

describe('a source whose layout or rate changes part-way', () => {
  test('such sources are the ones decoded apart; a file whose format its header fixes is not', () => {
    expect(formatMayChange({ container: 'mpegts', codec: 'ac3' })).toBe(true);
    expect(formatMayChange({ container: 'mp3', codec: 'mp3' })).toBe(true);
    expect(formatMayChange({ container: 'matroska,webm', codec: 'ac3' })).toBe(true);
    expect(formatMayChange({ container: 'wav', codec: 'pcm_s16le' })).toBe(false);
    expect(formatMayChange({ container: 'flac', codec: 'flac' })).toBe(false);
    expect(formatMayChange({ container: 'mov,mp4,m4a,3gp,3g2,mj2', codec: 'aac' })).toBe(false);
  });

  test.each([undefined, { start: 2, end: 15 }])('a broadcast turning from stereo to 5.1, trim %j, converts whole as it does in segments', async (trim) => {
    // Observed whole: INVALID_ARGUMENT "broadcast.ts: cannot decode audio (truncated or corrupt file): ...
    // [wav] Non-monotonous DTS in output stream 0:0; previous: 479232, current: 0; aborting."
    const raw = trim ? { trim } : {};
    const [whole, segmented] = await Promise.all([
      converted(broadcast, { ...raw, segment_seconds: 180 }, `whole-${trim ? 'trim' : 'all'}`),
      converted(broadcast, { ...raw, segment_seconds: 2 }, `segmented-${trim ? 'trim' : 'all'}`),
    ]);
    const seconds = trim ? 13 : 20;
    expect(whole.seconds).toBeCloseTo(seconds, 1);
    expect(whole).toEqual({ ...segmented, seconds: whole.seconds });
    expect(segmented.seconds).toBeCloseTo(seconds, 1);
    expect(whole.channels).toBe(2);
    expect([whole.first, whole.last]).toEqual([expect.closeTo(440, -1), expect.closeTo(660, -1)]);
  }, 60_000);

  test.each([180, 2])('two MP3s of 44.1 and 48 kHz joined end to end convert at the first one\'s rate (segment_seconds %i)', async (segment_seconds) => {
    // Observed (both ways): INVALID_ARGUMENT "joined.mp3: cannot decode audio (truncated or corrupt
    // file): ... [wav] Non-monotonous DTS in output stream 0:0; previous: 241998, current: 223488; aborting."
    const out = await converted(joined, { trim: { start: 1, end: 9 }, segment_seconds }, `joined-${segment_seconds}`);
    expect(out.seconds).toBeCloseTo(8, 1);
    expect([out.first, out.last]).toEqual([expect.closeTo(440, -1), expect.closeTo(660, -1)]);
  }, 60_000);
});
