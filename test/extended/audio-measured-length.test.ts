/**
 * Files whose stated length is none or short, measured by their packets before planning (review
 * AWILD), whatever side data their packets and streams carry (review K19).
 *  - A FLAC written to a pipe states no sample count: it was taken for 0 s, never cut into segments,
 *    and several were grouped into one subtask as if empty.
 *  - A chained Ogg (files joined with `cat`, a radio rip) states its last link's length: a trim into
 *    an earlier link's time was refused as "past the end", at submission and at planning.
 *  - ffprobe's CSV puts side data on the same line: ReplayGain tags on the stream line (a tagged
 *    piped FLAC measured 0 s), a chained link's skip samples on its first and last packets (each
 *    Opus link 25 ms short).
 *  - ADTS AAC and an MP3 without a Xing header state a length ffmpeg guessed from their first
 *    frames' bitrate: 7.1 s of 10 s where the sound starts loud, 302 s of 10 s where it starts
 *    quiet. Trims past the guess were refused, at submission and at planning, fades warned of
 *    wrongly, and --max-media-seconds 60 refused a 10 s file (a review's).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkInput } from '../../coordinator/input-check.js';
import { ffmpegBinaries, runFfmpeg } from '../../shared/ffmpeg.js';
import { validateAudioParams } from '../../shared/kinds/audio-params.js';
import { resolveLimits } from '../../shared/limits.js';
import { durationIsEstimate, packetLength, probeAudio } from '../../shared/media/audio-probe.js';
import { audioReport, crossingsPerSecond, decodeFloat, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-measured-length-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const REPLAYGAIN = ['-metadata', 'REPLAYGAIN_TRACK_GAIN=-3.50 dB', '-metadata', 'REPLAYGAIN_TRACK_PEAK=0.500000'];

/** A FLAC of `seconds` of tone written to a pipe (its STREAMINFO states no length), ReplayGain-tagged or not. */
function pipedFlac(name: string, seconds: number, tags: string[] = []): string {
  const file = path.join(dir, name);
  const fd = openSync(file, 'w');
  try {
    const r = spawnSync(ffmpegBinaries().ffmpeg, ['-hide_banner', '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', `sine=f=440:r=44100:d=${seconds}`, ...tags, '-c:a', 'flac', '-f', 'flac', 'pipe:1'], { stdio: ['ignore', fd, 'pipe'] });
    if (r.status !== 0) throw new Error(`ffmpeg failed: ${String(r.stderr)}`);
  } finally {
    closeSync(fd);
  }
  return file;
}

/** Ogg files of 1 tone each (`hz`, `seconds` s), joined with `cat`. */
async function chained(name: string, codec: 'libvorbis' | 'libopus', links: Array<{ hz: number; seconds: number }>, tags: string[] = []): Promise<string> {
  const parts = await Promise.all(links.map(async ({ hz, seconds }, i) => {
    const p = path.join(dir, `${name}-${i}.ogg`);
    await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=${hz}:r=48000:d=${seconds}`, ...tags, '-c:a', codec, '-y', p]);
    return readFile(p);
  }));
  const out = path.join(dir, name);
  await writeFile(out, Buffer.concat(parts));
  return out;
}

describe('a FLAC written to a pipe (no sample count in its STREAMINFO)', () => {
  test.each([['untagged', []], ['ReplayGain-tagged', REPLAYGAIN]] as const)('%s, longer than segment_seconds, is segmented like any other long file', async (tag, tags) => {
    const src = pipedFlac(`live-${tag}.flac`, 6, [...tags]);
    expect((await probeAudio(src, 'live.flac')).duration).toBe(0);
    // Observed tagged: 0 (the stream line `stream,1/44100,side_data,` read as no time base).
    expect(await packetLength(src, 0, 'live.flac')).toBeCloseTo(6, 2);
    const r = await runAudioInProcess({ codec: 'flac', segment_seconds: 2 }, [src], path.join(dir, `run-${tag}`));
    expect(r.errors).toEqual([]);
    const rep = (await audioReport(r))[0]!;
    expect(rep.frames).toBe(6 * 44100);
    // Observed: 1 (rendered whole).
    expect(rep.pieces).toBe(3);
  });

  test('several are spread over subtasks as files of their real length are', async () => {
    const files = [1, 2, 3].map((i) => pipedFlac(`spread-${i}.flac`, 5));
    const r = await runAudioInProcess({ codec: 'flac' }, files, path.join(dir, 'spread'));
    expect(r.errors).toEqual([]);
    // 15 s over 2 slots: files of a stated 5 s each get a subtask each. Observed: 1.
    expect(r.subtasks.length).toBe(3);
  });
});

describe('a chained Ogg', () => {
  test.each([['untagged', []], ['ReplayGain-tagged', REPLAYGAIN]] as const)('%s Vorbis: a trim inside the second link keeps that second of it, as ffmpeg -ss/-to does', async (tag, tags) => {
    const src = await chained(`chained-${tag}.ogg`, 'libvorbis', [{ hz: 440, seconds: 3 }, { hz: 660, seconds: 3 }], [...tags]);
    const ref = path.join(dir, `ref-${tag}.wav`);
    await runFfmpeg(['-i', src, '-ss', '4', '-to', '5', '-c:a', 'pcm_f32le', '-y', ref]);
    expect((await decodeFloat(ref, dir)).samples.length).toBe(48000);
    // Observed at submission: INVALID_ARGUMENT "chained.ogg: trim.start 4 s is past the end (3.00 s)".
    const file = { name: path.basename(src), path: src, size: (await stat(src)).size, sha256: '' };
    expect(await checkInput('audio', file, resolveLimits(), undefined, undefined, validateAudioParams({ trim: { start: 4, end: 5 } }))).toBeUndefined();
    for (const segment_seconds of [180, 2]) {
      const r = await runAudioInProcess({ codec: 'wav', trim: { start: 4, end: 5 }, segment_seconds }, [src], path.join(dir, `trim-${tag}-${segment_seconds}`));
      // Observed (planner): the same "past the end".
      expect(r.errors, `segment_seconds ${segment_seconds}`).toEqual([]);
      expect((await audioReport(r))[0]!.frames).toBe(48000);
      const out = await decodeFloat(r.outputs.find((o) => o.name === `chained-${tag}.wav`)!.path, dir);
      expect(crossingsPerSecond(out.samples, out.channels, 48000)).toBeCloseTo(1320, -1);
    }
  });

  test('Opus of six links (a stream rip): its packets add up to what ffmpeg decodes, and its last 0.1 s can be kept', async () => {
    const rip = await chained('rip.opus', 'libopus', [0, 1, 2, 3, 4, 5].map((i) => ({ hz: 400 + i * 100, seconds: 1 })));
    const ref = await decodeFloat(rip, dir);
    const decoded = ref.samples.length / ref.channels / 48000;
    expect(decoded).toBeCloseTo(6, 2);
    // Observed: 5.88 (each link's first and last packet, which carry side data, counted as 0).
    expect(await packetLength(rip, 0, 'rip.opus')).toBeGreaterThanOrEqual(decoded - 0.03);
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 5.9, end: 6 } }, [rip], path.join(dir, 'rip'));
    // Observed: "rip.opus: trim.start 5.9 s is past the end (5.88 s)".
    expect(r.errors.map((e) => e.message)).toEqual([]);
    expect((await audioReport(r))[0]!.frames).toBe(4800);
  });
});

describe('a length ffmpeg guessed from the bitrate', () => {
  /** 10 s of stereo, `loud` s of noise then silence (or silence first, with `quietFirst`), encoded with `codec` args. */
  async function guessed(name: string, loud: number, quietFirst: boolean, codec: string[]): Promise<string> {
    const out = path.join(dir, name);
    const noise = `anoisesrc=r=44100:d=${loud}:a=0.3:s=1`;
    const quiet = `anullsrc=r=44100:cl=stereo:d=${10 - loud}`;
    const graph = quietFirst ? '[1]aformat=channel_layouts=stereo[n];[0][n]concat=n=2:v=0:a=1' : '[0]aformat=channel_layouts=stereo[n];[n][1]concat=n=2:v=0:a=1';
    await runFfmpeg(['-f', 'lavfi', '-i', quietFirst ? quiet : noise, '-f', 'lavfi', '-i', quietFirst ? noise : quiet, '-filter_complex', graph, ...codec, '-y', out]);
    return out;
  }
  const adts = ['-c:a', 'aac', '-b:a', '192k', '-f', 'adts'];
  const spoolFile = async (src: string): Promise<{ name: string; path: string; size: number; sha256: string }> => ({ name: path.basename(src), path: src, size: (await stat(src)).size, sha256: '' });

  test('ADTS AAC that starts loud (stated 7.1 s of 10 s): trims past the guess keep what ffmpeg -ss/-to keeps, and a fade is not said to span it all', async () => {
    const src = await guessed('loudstart.aac', 7, false, adts);
    expect((await probeAudio(src, 'loudstart.aac')).duration).toBeLessThan(8);
    expect(await durationIsEstimate(src, 'loudstart.aac')).toBe(true);
    // Observed at submission: INVALID_ARGUMENT "trim.start 8 s is past the end (7.12 s)".
    expect(await checkInput('audio', await spoolFile(src), resolveLimits(), undefined, undefined, validateAudioParams({ trim: { start: 8, end: 9.5 } }))).toBeUndefined();
    for (const [start, end] of [[8, 9.5], [7.12, 9.5]] as const) {
      const r = await runAudioInProcess({ codec: 'wav', trim: { start, end } }, [src], path.join(dir, `loud-${start}`));
      // Observed (planner) for 7.12: "trim.start 7.12 s leaves 0.00476 s before the end (7.12 s)".
      expect(r.errors.map((e) => e.message)).toEqual([]);
      expect((await audioReport(r))[0]!.frames).toBe(Math.round((end - start) * 44100));
    }
    const faded = await runAudioInProcess({ codec: 'wav', trim: { start: 5, end: 9.9 }, fade_out: 3 }, [src], path.join(dir, 'loud-fade'));
    // Observed: "fade-out 3 s is longer than the 2.12 s of audio kept: it spans all of it".
    expect(faded.errors).toEqual([]);
    expect(faded.warnings).toEqual([]);
  });

  test('an MP3 without a Xing header (a VBR one written to a pipe): a trim in its last second is kept', async () => {
    const src = await guessed('vbr.mp3', 8, false, ['-c:a', 'libmp3lame', '-q:a', '0', '-write_xing', '0']);
    expect(await durationIsEstimate(src, 'vbr.mp3')).toBe(true);
    expect(await checkInput('audio', await spoolFile(src), resolveLimits(), undefined, undefined, validateAudioParams({ trim: { start: 9, end: 9.9 } }))).toBeUndefined();
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 9, end: 9.9 } }, [src], path.join(dir, 'vbr'));
    expect(r.errors.map((e) => e.message)).toEqual([]);
    expect((await audioReport(r))[0]!.frames).toBe(Math.round(0.9 * 44100));
  });

  test('ADTS AAC that starts quiet (stated 302 s of 10 s) passes --max-media-seconds 60; one over it is still refused where its length is its own', async () => {
    const src = await guessed('quietstart.aac', 7, true, adts);
    expect((await probeAudio(src, 'quietstart.aac')).duration).toBeGreaterThan(60);
    // Observed: RESOURCE_EXHAUSTED "duration 302.4 s is over the limit --max-media-seconds=60".
    const limits = resolveLimits({ maxMediaSeconds: 60 });
    expect(await checkInput('audio', await spoolFile(src), limits, undefined, undefined, validateAudioParams({}))).toBeUndefined();
    const wav = path.join(dir, 'long.wav');
    await runFfmpeg(['-f', 'lavfi', '-i', 'anullsrc=r=8000:cl=mono:d=61', '-y', wav]);
    expect(await checkInput('audio', await spoolFile(wav), limits, undefined, undefined, validateAudioParams({}))).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
  });
});
