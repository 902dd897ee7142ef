/**
 * A FLAC written as a stream (`ffmpeg ... -f flac pipe:1 > file.flac`, `flac -` from stdin, a live
 * recorder) leaves STREAMINFO's total sample count at 0: ffprobe gives it no duration. Such a file
 * is converted correctly, but the planner took it for 0 s long: one longer than `segment_seconds`
 * was never cut into segments, and any number of them (up to 16) were grouped into one subtask on
 * one worker, however long each was.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ffmpegBinaries } from '../shared/ffmpeg.js';
import { probeAudio } from '../shared/media/audio-probe.js';
import { audioReport, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-wild-flac-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A FLAC of `seconds` of tone written to a pipe: its STREAMINFO states no length. */
function pipedFlac(file: string, seconds: number): string {
  const fd = openSync(file, 'w');
  try {
    const r = spawnSync(ffmpegBinaries().ffmpeg, ['-hide_banner', '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', `sine=f=440:r=44100:d=${seconds}`, '-c:a', 'flac', '-f', 'flac', 'pipe:1'], { stdio: ['ignore', fd, 'pipe'] });
    if (r.status !== 0) throw new Error(`ffmpeg failed: ${String(r.stderr)}`);
  } finally {
    closeSync(fd);
  }
  return file;
}

describe('FLAC written to a pipe (no total samples in STREAMINFO)', () => {
  test('one longer than segment_seconds is segmented like any other long file', async () => {
    const src = pipedFlac(path.join(dir, 'live.flac'), 6);
    expect((await probeAudio(src, 'live.flac')).duration).toBe(0);
    const r = await runAudioInProcess({ codec: 'flac', segment_seconds: 2 }, [src], path.join(dir, 'run'));
    expect(r.errors).toEqual([]);
    const rep = (await audioReport(r))[0]!;
    expect(rep.frames).toBe(6 * 44100);
    expect(rep.pieces).toBe(3);
  });

  test('several are spread over subtasks as files of their real length are', async () => {
    const files = [1, 2, 3].map((i) => pipedFlac(path.join(dir, `live-${i}.flac`), 5));
    const r = await runAudioInProcess({ codec: 'flac' }, files, path.join(dir, 'run'));
    expect(r.errors).toEqual([]);
    // 15 s over 2 slots: files of a stated 5 s each get a subtask each (see spreadSeconds).
    expect(r.subtasks.length).toBe(3);
  });
});
