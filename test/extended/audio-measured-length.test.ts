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
import { packetLength, probeAudio } from '../../shared/media/audio-probe.js';
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
