/**
 * Regression review K16 of bb6b8ff (audio: a Matroska track's start is its first packet's, one more
 * ffprobe, `-read_intervals %+#1`, for a Matroska input "with more than one stream"; an audio-only
 * one is not to pay it).
 *
 * "More than one stream" counts a cover picture: an audio-only Matroska/WebM file with its album
 * art (a Matroska attachment, image/jpeg: ffprobe's stream 1, an attached picture) pays the extra ffprobe on the coordinator, serially,
 * file after file at planning (about 0.1 s each here: a 1000-track batch waits about 100 s more
 * before its first subtask). A cover has no timeline, so the sound is the file's only timed stream
 * and starts where the file does; the plain file's probe, with the submission check's output
 * given, runs no ffprobe at all.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';

/** The ffprobe runs made (their arguments). */
const probes: string[][] = [];
vi.mock('../shared/ffmpeg.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../shared/ffmpeg.js')>();
  return {
    ...real,
    runFfprobe: (args: string[], ...rest: unknown[]) => {
      probes.push(args);
      return (real.runFfprobe as (...a: unknown[]) => unknown)(args, ...rest);
    },
  };
});

const { runFfmpeg, runFfprobe } = await import('../shared/ffmpeg.js');
const { probeAudio } = await import('../shared/media/audio-probe.js');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mka-cover-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('audio probe of an audio-only Matroska file', () => {
  test.each([false, true])('runs no ffprobe of its own when the submission probe is given (cover art: %s)', async (cover) => {
    const jpeg = path.join(dir, 'cover.jpg');
    if (cover) await runFfmpeg(['-f', 'lavfi', '-i', 'color=red:s=64x64:d=1', '-frames:v', '1', '-y', jpeg]);
    const src = path.join(dir, `song-${cover}.mka`);
    // The cover as Matroska keeps it: an attachment (image/jpeg), which ffmpeg shows as an attached picture.
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=3',
      ...(cover ? ['-attach', jpeg, '-metadata:s:t', 'mimetype=image/jpeg', '-metadata:s:t', 'filename=cover.jpg'] : []),
      '-c:a', 'flac', '-f', 'matroska', '-y', src,
    ]);
    const given = await runFfprobe(['-show_streams', '-show_format', '-show_chapters', '-i', src]);
    const streams = (given as { streams: Array<{ disposition?: { attached_pic?: number } }> }).streams;
    expect(streams.map((x) => x.disposition?.attached_pic ?? 0)).toEqual(cover ? [0, 1] : [0]);
    probes.length = 0;
    const p = await probeAudio(src, 'song.mka', undefined, given);
    expect(p).toMatchObject({ codec: 'flac', startOffset: 0 });
    // Observed (cover art): one ffprobe, ['-select_streams', '0', '-read_intervals', '%+#1', ...].
    expect(probes).toEqual([]);
  }, 30_000);
});
