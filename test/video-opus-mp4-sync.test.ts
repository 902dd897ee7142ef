/**
 * Opus audio in an MP4 output: a single `ffmpeg -c:a libopus out.mp4` hides the encoder's pre-skip
 * (312 samples, 6.5 ms) with an edit list, so the sound starts where the source's does. The job's
 * track must start there too, not the pre-skip late.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { ffmpegBinaries, runFfmpeg } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-opus-mp4-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Where the first sound after a silence starts (seconds, on the file's own timeline). */
async function soundStart(file: string): Promise<number> {
  const escaped = file.replace(/'/g, "\\'");
  const { stdout } = await promisify(execFile)(ffmpegBinaries().ffprobe, [
    '-v', 'error', '-f', 'lavfi', '-i', `amovie='${escaped}',silencedetect=noise=-30dB:d=0.02`, '-show_entries', 'frame_tags=lavfi.silence_end', '-of', 'csv=p=0',
  ]);
  return Number(stdout.split('\n').find((l) => l.trim())!);
}

describe('video kind: Opus audio into MP4', () => {
  it('starts the sound where the source has it, as `ffmpeg -c:a libopus out.mp4` does (not the 6.5 ms pre-skip late)', async () => {
    // Silence, then a tone from 1 s on.
    const src = path.join(dir, 'clip.mp4');
    await runFfmpeg([
      '-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=3', '-f', 'lavfi', '-i', "sine=f=1000:r=48000:d=3,volume=0:enable='lt(t,1)'",
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', src,
    ]);
    const single = path.join(dir, 'single.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'libopus', single]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, audio_codec: 'opus' }), [src], { dir });
    expect(run.errors).toEqual([]);
    const [want, theirs, ours] = await Promise.all([soundStart(src), soundStart(single), soundStart(run.outputs[0]!.path)]);
    expect(Math.abs(theirs - want)).toBeLessThan(0.002);
    expect(Math.abs(ours - want)).toBeLessThan(0.002);
  });
});
