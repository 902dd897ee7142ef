/**
 * Sources whose decoded layout or rate changes part-way (reviews K16, K17).
 *
 * ffmpeg's command line builds its filter graph afresh where the decoded format changes, and the
 * whole-file chain's counters (the trim's sample numbers, the timeline's `N`) started again from 0
 * there: a broadcast capture whose AC-3 turns from stereo to 5.1 at 10 s was refused, "cannot decode
 * audio (truncated or corrupt file): ... Non-monotonous DTS in output stream", while the same file in
 * segments converted; two MP3s of 44.1 and 48 kHz joined end to end were refused whole or in
 * segments (the MP3 demuxer's times run backwards across the change, which a WAV muxer refuses under
 * -xerror). Such a source is now decoded by a process of its own, in its first frame's layout and
 * rate, before the chain (or into the segments' WAV). Then (K17):
 *  - a change inside ffprobe's first seconds: the probe says the later layout (its parser keeps the
 *    last frame's), and the output was 5.1 where ffmpeg writes the stereo the sound starts with;
 *  - a trimmed capture's dropout right at the change was closed up (the decoding side's gap filler
 *    starts again there), or a trim in the part after it refused as holding no audio;
 *  - a short clip of a long capture waited for the decoding process to decode all of it.
 * And (review A): sources joined with ffmpeg's concat demuxer and stream-copied (one header for
 * both parts: an MP3 refused as corrupt by its Xing frame's length, a FLAC failing on times that
 * run back), and a capture whose stereo turns 5.1 mixed down hot, clipped where ffmpeg normalises.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatMayChange } from '../../coordinator/kinds/audio-plan.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { probeAudio } from '../../shared/media/audio-probe.js';
import { audioReport, crossingsPerSecond, decodeFloat, peak, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;

/** Joins files byte for byte (`cat a b > out`). */
async function cat(out: string, parts: string[]): Promise<string> {
  await writeFile(out, Buffer.concat(await Promise.all(parts.map((p) => readFile(p)))));
  return out;
}

/** A part of a capture: `seconds` of an AC-3 tone of `hz`, in `layout`, starting at `at` s on the capture's clock. */
interface Part {
  seconds: number;
  hz: number;
  layout: 'stereo' | '5.1';
  at: number;
}

/** An MPEG-TS capture of one AC-3 stream made of `parts` (each its own encode, its times going on), joined with `cat`. */
async function capture(name: string, parts: Part[]): Promise<string> {
  const pan = { stereo: 'pan=stereo|c0=c0|c1=0.5*c0', '5.1': 'pan=5.1|c0=c0|c1=c0|c2=c0|c3=0.1*c0|c4=c0|c5=c0' };
  const files = await Promise.all(parts.map(async (p, i) => {
    const file = path.join(dir, `${name}-${i}.ts`);
    await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=${p.hz}:r=48000:d=${p.seconds}`, '-af', pan[p.layout], '-c:a', 'ac3', ...(p.at > 0 ? ['-output_ts_offset', String(p.at)] : []), '-f', 'mpegts', '-y', file]);
    return file;
  }));
  return cat(path.join(dir, `${name}.ts`), files);
}

/** 10 s of stereo 440 Hz, then 10 s of 5.1 660 Hz. */
let broadcast: string;
/** 1 s of stereo, then 3 s of 5.1: the change inside ffprobe's window. */
let early: string;
/** Stereo 440 Hz 0..8 s, nothing 8..11 s, 5.1 660 Hz 11..14 s. */
let dropout: string;
/** 5 s of MP3 at 44.1 kHz (440 Hz) and 5 s at 48 kHz (660 Hz), the bytes of one after the other's. */
let joined: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-format-change-'));
  const mp3s = Promise.all([[44100, 440], [48000, 660]].map(async ([rate, f]) => {
    const p = path.join(dir, `${rate}.mp3`);
    await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=${f}:r=${rate}:d=5`, '-c:a', 'libmp3lame', '-write_xing', '0', '-id3v2_version', '0', '-y', p]);
    return p;
  }));
  [broadcast, early, dropout] = await Promise.all([
    capture('broadcast', [{ seconds: 10, hz: 440, layout: 'stereo', at: 0 }, { seconds: 10, hz: 660, layout: '5.1', at: 10 }]),
    capture('early', [{ seconds: 1, hz: 440, layout: 'stereo', at: 0 }, { seconds: 3, hz: 660, layout: '5.1', at: 1 }]),
    capture('dropout', [{ seconds: 8, hz: 440, layout: 'stereo', at: 0 }, { seconds: 3, hz: 660, layout: '5.1', at: 11 }]),
  ]);
  joined = await cat(path.join(dir, 'joined.mp3'), await mp3s);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The job's WAV of `src`: its samples and channels, seconds, and the tone in Hz of the second from `s` s. */
async function converted(src: string, raw: Record<string, unknown>, tag: string): Promise<{ samples: Float32Array; channels: number; seconds: number; hz: (s: number) => number }> {
  const r = await runAudioInProcess({ codec: 'wav', ...raw }, [src], path.join(dir, tag));
  expect(r.errors).toEqual([]);
  const out = r.outputs.find((o) => o.name === `${path.basename(src, path.extname(src))}.wav`)!;
  const { samples, channels } = await decodeFloat(out.path, dir);
  const rate = src.endsWith('.mp3') ? 44100 : 48000;
  const hz = (s: number): number => Math.round(crossingsPerSecond(samples.subarray(Math.round(s * rate) * channels, Math.round((s + 1) * rate) * channels), channels, rate) / 2 / 10) * 10;
  return { samples, channels, seconds: samples.length / channels / rate, hz };
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
    for (const out of [whole, segmented]) {
      expect(out.seconds).toBeCloseTo(seconds, 1);
      expect(out.channels).toBe(2);
      expect([out.hz(seconds / 4), out.hz((seconds * 3) / 4)]).toEqual([440, 660]);
    }
  }, 60_000);

  test.each([180, 2])("two MP3s of 44.1 and 48 kHz joined end to end convert at the first one's rate (segment_seconds %i)", async (segment_seconds) => {
    // Observed (both ways): INVALID_ARGUMENT "joined.mp3: cannot decode audio (truncated or corrupt
    // file): ... [wav] Non-monotonous DTS in output stream 0:0; previous: 241998, current: 223488; aborting."
    const out = await converted(joined, { trim: { start: 1, end: 9 }, segment_seconds }, `joined-${segment_seconds}`);
    expect(out.seconds).toBeCloseTo(8, 1);
    expect([out.hz(2), out.hz(6)]).toEqual([440, 660]);
  }, 60_000);

  test.each([180, 2])('a capture turning 5.1 within its first second converts in the stereo it starts with, as ffmpeg does (segment_seconds %i)', async (segment_seconds) => {
    const reference = path.join(dir, `ffmpeg-early-${segment_seconds}.wav`);
    await runFfmpeg(['-i', early, '-c:a', 'pcm_f32le', '-y', reference]);
    expect((await probeAudio(reference, 'reference')).channels).toBe(2);
    // Observed: 6 channels, 5.1(side): the first second's stereo upmixed with four silent channels.
    const out = await converted(early, { segment_seconds }, `early-${segment_seconds}`);
    expect(out.channels).toBe(2);
    expect(out.seconds).toBeCloseTo(4, 1);
  }, 60_000);

  test.each([180, 2])('a trim across a dropout at the change keeps the dropout as silence (segment_seconds %i)', async (segment_seconds) => {
    // Trim 7..13: 1 s of stereo, the 3 s dropout, 2 s of 5.1. Observed: 4.01 s, 660 Hz from 1 s on (the dropout closed up).
    const out = await converted(dropout, { trim: { start: 7, end: 13 }, segment_seconds }, `dropout-${segment_seconds}`);
    expect(out.seconds).toBeCloseTo(6, 1);
    expect(peak(out.samples.subarray(2 * 48000 * out.channels, 2.5 * 48000 * out.channels))).toBeLessThan(0.001);
    expect(out.hz(4.5)).toBe(660);
    // Inside the part after the change. Observed: "no audio to encode in the trimmed range: the decoded file has no samples".
    expect((await converted(dropout, { trim: { start: 12, end: 14 } }, 'dropout-late')).seconds).toBeCloseTo(2, 1);
  }, 60_000);
});

describe('a short clip of a long capture', () => {
  test('takes about as long as one of a short capture: the decoding process stops with the chain', async () => {
    // 20 s of AC-3 stereo, and the same looped to 80 minutes (its times going on).
    const short = path.join(dir, 'short.ts');
    const long = path.join(dir, 'long.ts');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=20', '-ac', '2', '-c:a', 'ac3', '-b:a', '64k', '-f', 'mpegts', '-y', short]);
    await runFfmpeg(['-stream_loop', '239', '-i', short, '-c', 'copy', '-f', 'mpegts', '-y', long]);
    // The CPU time of this process's ended children (ffprobe, ffmpeg), in ms: what the clip cost,
    // whatever else the machine runs (wall time on a loaded CI machine varies by more than the bound).
    const childrenCpuMs = (): number => {
      const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
      return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
    };
    const clip = async (src: string): Promise<number> => {
      const c0 = childrenCpuMs();
      const r = await runAudioInProcess({ codec: 'wav', trim: { start: 1, end: 3 } }, [src], path.join(dir, `clip-${path.basename(src)}`));
      expect(r.errors).toEqual([]);
      expect(r.subtasks).toHaveLength(1);
      return childrenCpuMs() - c0;
    };
    const fromShort = await clip(short);
    const fromLong = await clip(long);
    process.stdout.write(`[short clip] ffmpeg CPU: ${fromShort} ms from the short capture, ${fromLong} ms from the long one\n`);
    // Observed: ~0.5 s from the short file, ~10 s from the long one (the decoder ran to its end).
    expect(fromLong).toBeLessThan(3 * fromShort + 1000);
  }, 120_000);
});

/** `parts` (lavfi graphs, each encoded with `codec`) joined with the concat demuxer into `name`, stream-copied. */
async function concatJoined(name: string, parts: string[], codec: string[]): Promise<string> {
  const files = await Promise.all(parts.map(async (graph, i) => {
    const file = path.join(dir, `${name}-part${i}${path.extname(name) === '.mka' ? '.flac' : path.extname(name)}`);
    await runFfmpeg(['-f', 'lavfi', '-i', graph, ...codec, '-y', file]);
    return file;
  }));
  const list = path.join(dir, `${name}.txt`);
  await writeFile(list, files.map((f) => `file '${f}'\n`).join(''));
  const out = path.join(dir, name);
  await runFfmpeg(['-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-y', out]);
  return out;
}

/** Frames `ffmpeg -i file out.wav` writes. */
async function ffmpegFrames(file: string): Promise<number> {
  const d = await decodeFloat(file, dir);
  return d.samples.length / d.channels;
}

/** The job's frames for `src` whole and in 2 s segments, or its error messages. */
async function framesOrErrors(src: string): Promise<Array<number | string>> {
  return Promise.all([{ codec: 'wav' }, { codec: 'wav', segment_seconds: 2 }].map(async (raw) => {
    const r = await runAudioInProcess(raw, [src], path.join(dir, `run-${path.basename(src)}-${JSON.stringify(raw).replace(/\W/g, '')}`));
    return r.errors.length > 0 ? r.errors.map((e) => e.message).join('; ') : (await audioReport(r))[0]!.frames;
  }));
}

/** Peak of the first and of the last `seconds` of a file (interleaved, `rate`), skipping 0.5 s round the middle. */
async function peaks(file: string, rate: number): Promise<[number, number]> {
  const { samples, channels } = await decodeFloat(file, dir);
  const mid = Math.floor(samples.length / channels / 2);
  const pad = Math.round(0.5 * rate);
  return [peak(samples.subarray(0, (mid - pad) * channels)), peak(samples.subarray((mid + pad) * channels))];
}

describe('a source joined with the concat demuxer whose parts differ in rate or channels', () => {
  // Joined with the concat demuxer and stream-copied (`ffmpeg -f concat -i list.txt -c copy`, the usual
  // way to join files without re-encoding): one header for the whole, an MP3's Xing frame counting the
  // frames of both parts, a FLAC's STREAMINFO the first part's (review A).
  test('MP3: 3 s at 44.1 kHz mono, then 3 s at 48 kHz stereo (its Xing frame counts all frames) converts as ffmpeg converts it', async () => {
    const src = await concatJoined('podcast.mp3', ['sine=f=440:r=44100:d=3', 'sine=f=660:r=48000:d=3,pan=stereo|c0=c0|c1=c0'], ['-c:a', 'libmp3lame', '-b:a', '128k']);
    const want = await ffmpegFrames(src);
    expect(Math.abs(want / 44100 - 6)).toBeLessThan(0.05);
    // Observed: "podcast.mp3: corrupt file: decoded 6.02 s of the 6.32 s it states: 0.30 s could not be
    // decoded": the stated length is the frame count at the first part's 1152/44100 s a frame.
    for (const got of await framesOrErrors(src)) {
      expect(typeof got, String(got)).toBe('number');
      expect(Math.abs((got as number) - want)).toBeLessThanOrEqual(1152);
    }
  });

  test('FLAC: 3 s at 44.1 kHz, then 3 s at 48 kHz (native FLAC and FLAC in Matroska) converts as ffmpeg converts it', async () => {
    const parts = ['sine=f=440:r=44100:d=3', 'sine=f=660:r=48000:d=3'];
    for (const name of ['album.flac', 'album.mka']) {
      const src = await concatJoined(name, parts, ['-c:a', 'flac']);
      const want = await ffmpegFrames(src);
      expect(want, name).toBe(6 * 44100);
      // Observed: "cannot decode audio (truncated or corrupt file): ffmpeg failed: ...; [wav]
      // Non-monotonous DTS in output stream 0:0; previous: 129024, current: 0; aborting." (whole; the
      // Matroska one converted in segments).
      expect(await framesOrErrors(src), name).toEqual([want, want]);
    }
  });

  test('FLAC of two rates whose audio is not the first stream (a picture track first) converts too (review K)', async () => {
    const parts = await Promise.all([44100, 48000].map(async (rate) => {
      const f = path.join(dir, `part-${rate}.mkv`);
      await runFfmpeg(['-f', 'lavfi', '-i', 'color=c=red:s=32x32:r=5:d=3', '-f', 'lavfi', '-i', `sine=f=440:r=${rate}:d=3`, '-c:v', 'ffv1', '-c:a', 'flac', '-y', f]);
      return f;
    }));
    const list = path.join(dir, 'list-concert.txt');
    await writeFile(list, parts.map((f) => `file '${f}'\n`).join(''));
    const src = path.join(dir, 'concert.mkv');
    await runFfmpeg(['-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-y', src]);
    // ffmpeg converts it whole, at the first part's rate.
    const { samples, channels } = await decodeFloat(src, dir, ['-vn']);
    expect(samples.length / channels).toBe(6 * 44100);
    // Observed: "concert.mkv: cannot decode audio (truncated or corrupt file): ... Non-monotonous DTS in output stream 0:0 ..."
    expect(await framesOrErrors(src)).toEqual([6 * 44100, 6 * 44100]);
  }, 120_000);

  test("MP3 of a 1 s 44.1 kHz jingle and an 8 s 48 kHz episode converts too: its probe states the later part's rate (review K)", async () => {
    const parts = await Promise.all([['sine=f=440:r=44100:d=1', 'jingle'], ['sine=f=660:r=48000:d=8', 'episode']].map(async ([graph, name]) => {
      const f = path.join(dir, `${name}.mp3`);
      await runFfmpeg(['-f', 'lavfi', '-i', graph!, '-c:a', 'libmp3lame', '-b:a', '128k', '-y', f]);
      return f;
    }));
    const list = path.join(dir, 'list-jingle.txt');
    await writeFile(list, parts.map((f) => `file '${f}'\n`).join(''));
    const src = path.join(dir, 'jingle-podcast.mp3');
    await runFfmpeg(['-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-y', src]);
    // Observed: "podcast.mp3: corrupt file: decoded 9.0x s of the 9.80 s it states": the Xing count at
    // 1152/44100 s a frame, the frames counted at 1152/48000 (ffprobe's rate is the last its parser saw).
    for (const got of await framesOrErrors(src)) {
      expect(typeof got, String(got)).toBe('number');
      expect(Math.abs((got as number) / 48000 - 9)).toBeLessThan(0.1);
    }
  }, 120_000);
});

describe('a capture whose stereo turns 5.1', () => {
  // The decoding process's float mix (FL + 0.707 FC + 0.707 BL, unnormalised) put loud 5.1 at +5 dBFS,
  // clipped in the output, where ffmpeg (and --channels) mix normalised (review A).
  test('is mixed to stereo as ffmpeg mixes it (normalised), not clipped, whole and in segments', async () => {
    const parts = [
      { graph: 'sine=f=440:r=48000:d=3,volume=5,pan=stereo|c0=c0|c1=c0', at: 0, br: '384k' },
      // A loud 5.1 programme: each channel at -2.5 dBFS.
      { graph: 'sine=f=660:r=48000:d=3,volume=6,pan=5.1|c0=c0|c1=c0|c2=c0|c3=0.1*c0|c4=c0|c5=c0', at: 3, br: '448k' },
    ];
    const files = await Promise.all(parts.map(async (p, i) => {
      const f = path.join(dir, `part${i}.ts`);
      await runFfmpeg(['-f', 'lavfi', '-i', p.graph, '-c:a', 'ac3', '-b:a', p.br, ...(p.at ? ['-output_ts_offset', String(p.at)] : []), '-f', 'mpegts', '-y', f]);
      return f;
    }));
    const capture = path.join(dir, 'capture.ts');
    await writeFile(capture, Buffer.concat(await Promise.all(files.map((f) => readFile(f)))));
    const ref = path.join(dir, 'ref.flac');
    await runFfmpeg(['-i', capture, '-y', ref]);
    const [refStereo, ref51] = await peaks(ref, 48000);
    expect(ref51).toBeLessThan(0.8);
    for (const segment_seconds of [180, 2]) {
      const r = await runAudioInProcess({ codec: 'flac', segment_seconds }, [capture], path.join(dir, `run-${segment_seconds}`));
      expect(r.errors).toEqual([]);
      // Observed: "its samples reach +5.18 dBFS, over full scale (a float source mixed hot): written as
      // flac integers they are clipped there", and 180,720 samples at full scale.
      expect(r.warnings, String(segment_seconds)).toEqual([]);
      const [stereo, fiveOne] = await peaks(r.outputs.find((o) => o.name === 'capture.flac')!.path, 48000);
      expect(Math.abs(20 * Math.log10(stereo / refStereo)), String(segment_seconds)).toBeLessThan(0.1);
      expect(Math.abs(20 * Math.log10(fiveOne / ref51)), `${segment_seconds}: 5.1 part ${fiveOne} against ffmpeg's ${ref51}`).toBeLessThan(0.1);
    }
  });
});
