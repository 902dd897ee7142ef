/**
 * The video kind's stitch, against what one `ffmpeg` run makes of the same source:
 * - a picture of a few frames beside a longer sound into Matroska was failed on the video stream
 *   duration libavformat guesses there (the file's), though its frames were all there;
 * - a phone-like VFR clip with AAC into Matroska was failed by the join check, which decoded at a
 *   constant rate's ticks and took the null muxer's complaint of two frames on one tick for an error;
 * - Opus into MP4 played the encoder's pre-skip (6.5 ms late): the Matroska intermediate's negative
 *   start was moved to 0;
 * - a FLAC track copied into MP4 failed (ffmpeg 5.1 writes it only with -strict experimental).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { ffmpegBinaries, fpsModeFlag, runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { decodeCheck, probeVideoIndex } from '../../shared/media/probe.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-stitch-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: a picture of a few frames beside a long sound', () => {
  it.each([1, 5])('%i frame(s) and 3 s of audio into mkv is made, as ffmpeg makes it, not failed as "video lasts 3.041 s, expected 0.040 s"', async (frames) => {
    const container = 'mkv';
    const src = path.join(dir, `cover-${frames}.mp4`);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `testsrc2=s=160x120:r=25,trim=end_frame=${frames}`, '-f', 'lavfi', '-i', 'sine=d=3', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    expect((await probeVideoIndex(run.outputs[0]!.path)).frameTimes).toHaveLength(frames);
  });
});

describe('video kind: a phone-like VFR clip with audio into Matroska', () => {
  it('is made with every frame at its source time, not failed as "errors at the segment joins: non monotonically increasing dts"', async () => {
    const src = path.join(dir, 'phone.mp4');
    await runFfmpeg([
      '-y', '-v', 'error',
      '-f', 'lavfi', '-i', "testsrc2=s=192x108:r=30:d=3,settb=1/90000,setpts='(N/30+0.003*sin(N*1.7))/TB'",
      '-f', 'lavfi', '-i', 'sine=d=3',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', fpsModeFlag(), 'vfr', '-enc_time_base:v', '-1', '-video_track_timescale', '90000',
      '-c:a', 'aac', src,
    ]);
    const srcIndex = await probeVideoIndex(src);
    expect(srcIndex.vfr).toBe(true);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, container: 'mkv' }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    const out = run.outputs[0]!.path;
    const [outIndex, decoded] = await Promise.all([probeVideoIndex(out), decodeCheck(out)]);
    expect(decoded.errors).toEqual([]);
    expect(outIndex.frameTimes).toHaveLength(srcIndex.frameTimes.length);
    // Matroska keeps milliseconds.
    outIndex.frameTimes.forEach((t, i) => expect(Math.abs(t - outIndex.frameTimes[0]! - (srcIndex.frameTimes[i]! - srcIndex.frameTimes[0]!))).toBeLessThan(0.0011));
  });
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

describe('video kind: a FLAC track copied into MP4', () => {
  it('video --audio-codec copy of a FLAC track into mp4 keeps the FLAC track', async () => {
    const src = path.join(dir, 'flac.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=25:d=2', '-f', 'lavfi', '-i', 'sine=d=2', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-pix_fmt', 'yuv420p', '-c:a', 'flac', '-shortest', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, audio_codec: 'copy' }), [src], { dir });
    expect(run.errors).toEqual([]);
    const probe = await runFfprobe<{ streams: { codec_name: string }[] }>(['-show_entries', 'stream=codec_name', run.outputs[0]!.path]);
    expect(probe.streams.map((s) => s.codec_name)).toEqual(['h264', 'flac']);
  });
});
