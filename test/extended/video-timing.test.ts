/**
 * Video defects found by a tester, each on generated media through the kind's real plan -> process ->
 * merge (in-process, real ffmpeg): VFR timing kept, MP3 audio, low-rate AAC, exact output frame
 * rates, sources whose times start well before 0 (a stream-copy trim, a wrapped MPEG-TS clock), an
 * MPEG-TS whose header underestimates its audio, a picture too large refused at planning, and the
 * message and status of an intermediate that cannot be written.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { parseVideoParams } from '../../shared/kinds/video-params.js';
import { countVideoPackets, decodeCheck, probeMedia, probeVideoIndex } from '../../shared/media/probe.js';
import { cutVideoChunks } from '../../coordinator/kinds/video-chunks.js';
import type { VideoAudioPlan } from '../../shared/media/video-plan.js';
import { encodeAudio, videoProcessor } from '../../worker/processors/video.js';
import { makeVideo, runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-timing-'));
});
afterAll(async () => {
  if (!process.env['KEEP']) await rm(dir, { recursive: true, force: true });
});

/** Generates `name` with ffmpeg from lavfi sources (`args` before the output name). */
async function make(name: string, args: string[]): Promise<string> {
  const file = path.join(dir, name);
  await runFfmpeg(['-y', '-v', 'error', ...args, file]);
  return file;
}

async function transcode(src: string, params: Record<string, unknown>) {
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', ...params }), [src], { dir, slots: 2 });
  expect(run.errors).toEqual([]);
  expect(run.outputs).toHaveLength(1);
  return run.outputs[0]!.path;
}

/** Video packet durations (in the stream's time base) and the stream's rates. */
async function videoTiming(file: string) {
  const r = await runFfprobe<{ streams: Array<{ avg_frame_rate: string; time_base: string }>; packets: Array<{ duration?: string }> }>([
    '-select_streams', 'v:0', '-show_entries', 'stream=avg_frame_rate,time_base:packet=duration', '-i', file,
  ]);
  return { avgFrameRate: r.streams[0]!.avg_frame_rate, durations: new Set(r.packets.map((p) => Number(p.duration))) };
}

describe('video timing and audio fixes', () => {
  it.each([
    ['30 then 15 fps, mp4', 'mp4'],
    // Matroska's 1 ms time base: stream-copied chunks in a time base made from the frame rate would round it.
    ['24 and 60 fps in turn, Matroska', 'mkv'],
  ])('keeps the frame timing of a VFR source (%s), in one segment and in several', async (_, container) => {
    const src =
      container === 'mkv'
        ? await makeVideo(dir, 'vfr24-60.mkv', { duration: 4, vfr: true })
        : await make('vfr2.mp4', [
            '-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=30:d=2', '-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=15:d=2',
            '-filter_complex', '[0:v][1:v]concat=n=2:v=1[v]', '-map', '[v]', '-fps_mode', 'vfr', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30',
          ]);
    const srcIndex = await probeVideoIndex(src);
    expect(srcIndex.vfr).toBe(true);
    for (const segmentSeconds of [60, 1]) {
      const out = await transcode(src, { segment_seconds: segmentSeconds });
      const [outIndex, decoded] = await Promise.all([probeVideoIndex(out), decodeCheck(out)]);
      expect(decoded.errors).toEqual([]);
      expect(outIndex.frameTimes).toHaveLength(srcIndex.frameTimes.length);
      // Every frame exactly where the source shows it (ffprobe prints microseconds).
      outIndex.frameTimes.forEach((t, i) => expect(Math.abs(t - outIndex.frameTimes[0]! - (srcIndex.frameTimes[i]! - srcIndex.frameTimes[0]!))).toBeLessThan(2.1e-6));
    }
  });

  it('encodes MP3 audio into mp4 and mkv, in step with the picture', async () => {
    const src = await make('tone.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=3', '-f', 'lavfi', '-i', 'sine=d=3', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac']);
    for (const container of ['mp4', 'mkv']) {
      const out = await transcode(src, { audio_codec: 'mp3', container, segment_seconds: 1 });
      const info = await probeMedia(out);
      expect(info.audio.map((a) => a.codec)).toEqual(['mp3']);
      expect((await decodeCheck(out)).errors).toEqual([]);
    }
  });

  it.each([8000, 11025])('keeps %i Hz AAC audio (one AAC frame is longer than 50 ms)', async (rate) => {
    const src = await make(`aac${rate}.mp4`, ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=4', '-f', 'lavfi', '-i', `sine=d=4:sample_rate=${rate}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac']);
    const out = await transcode(src, { segment_seconds: 2 });
    const info = await probeMedia(out);
    expect(info.audio[0]!.sampleRate).toBe(rate);
    // Like a plain ffmpeg encode: the last AAC frame is padded, at most one frame (1024 samples) long.
    expect(info.audio[0]!.duration - 4).toBeGreaterThanOrEqual(0);
    expect(info.audio[0]!.duration - 4).toBeLessThanOrEqual(1024 / rate + 0.001);
  });

  it('keeps a 30000/1001 source at exactly 30000/1001 fps, in one segment and in several (no 1 ms rounding)', async () => {
    const src = await make('ntsc-keep.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=30000/1001:d=3', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15']);
    for (const segmentSeconds of [60, 1]) {
      const out = await transcode(src, { segment_seconds: segmentSeconds });
      const timing = await videoTiming(out);
      expect(timing.avgFrameRate).toBe('30000/1001');
      // One frame duration throughout: 1001/30000 s in whatever time base the output has.
      expect(timing.durations.size).toBe(1);
      expect((await decodeCheck(out)).frames).toBe(90);
    }
  });

  it('resamples a 30000/1001 source to exactly 60 fps (no 1 ms rounding of frame times)', async () => {
    const src = await make('ntsc.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=30000/1001:d=3', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15']);
    const sixty = await transcode(src, { fps: 60, segment_seconds: 1 });
    const t60 = await videoTiming(sixty);
    expect(t60.avgFrameRate).toBe('60/1');
    expect(t60.durations.size).toBe(1);
    // Every 60 fps slot of the source's 90 x 1001/30000 s = 3.003 s: 181 (the last one holds the last frame).
    expect((await decodeCheck(sixty)).frames).toBe(181);
  });

  it.each([
    // [source, container flags, whether a stream copy can move its times]
    ['no B-frames, mp4', 'nob.mp4', ['-bf', '0'], true],
    ['B-frames, MPEG-TS (decode times from 1.4 s)', 'b.ts', ['-bf', '3'], true],
    ['B-frames, mp4 (decode times before 0)', 'b.mp4', ['-bf', '3'], false],
    ['B-frames, Matroska (no decode times stored)', 'b.mkv', ['-bf', '3'], false],
  ] as const)('measures the chunks\' time shift only where a stream copy can move times: %s', async (_, name, flags, nonNegative) => {
    const src = await make(name, ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=3', '-c:v', 'libx264', '-preset', 'fast', '-g', '25', ...flags]);
    const index = await probeVideoIndex(src);
    expect(index.nonNegative).toBe(nonNegative);
    // The plan skips the probe where nothing can move: the muxer must indeed have moved nothing there.
    const { shift } = await cutVideoChunks(src, name, 0, [1], path.join(dir, `chunks-${name}`), new AbortController().signal, { sourceFirstPts: index.packets[0]!.pts });
    if (nonNegative) expect(shift).toBe(0);
    else expect(shift).toBeGreaterThan(0);
    // The merge's one probe counts the packets as the count of its own did.
    expect((await probeMedia(src, { countPackets: true })).video?.packets).toBe(await countVideoPackets(src));
  });

  it('an intermediate that cannot be written is Tessera\'s fault (INTERNAL), with the line that explains it, once', async () => {
    const src = await make('tone.wav', ['-f', 'lavfi', '-i', 'sine=d=1']);
    const params = parseVideoParams({});
    // pcm_s16le has no place in the AAC intermediate (.m4a): the muxer refuses it, as it refused MP3.
    const plan: VideoAudioPlan = { type: 'audio', input: 0, source: 'clip.mp4', file: 'tone.wav', encoder: 'pcm_s16le', channels: 0, duration: 1 };
    const workDir = await mkdtemp(path.join(dir, 'task-'));
    const err = await encodeAudio(
      {
        jobId: 'j', subtaskId: 's', attempt: 1, phase: 0, params, spec: specOf('video', {}), plan, inputs: [{ name: 'tone.wav', path: src, size: 0 }],
        workDir, signal: new AbortController().signal, progress: () => undefined, threads: 1, log: pino({ level: 'silent' }),
      },
      plan,
    ).then(() => undefined, (e: unknown) => e as { codeName: string; retryable: boolean; message: string });
    expect(err).toMatchObject({ codeName: 'INTERNAL', retryable: false });
    expect(err!.message).toMatch(/^clip\.mp4: audio: could not write the pcm_s16le track \(\[ipod\] Could not find tag for codec pcm_s16le in stream #0/);
    expect(err!.message).not.toMatch(/0x[0-9a-f]{6}/);
    const parts = err!.message.split('; ');
    expect(new Set(parts).size).toBe(parts.length);
  });

  // The segment muxer compares its cut times with packet times it has already shifted to be
  // non-negative: where that shift is longer than a GOP, chunks were cut a keyframe (or several)
  // early, and every segment failed as "encoded 14 frames where 54 were planned" (25 of 50, TS).
  it.each([
    ['an MP4 trimmed by stream copy (1.6 s hidden lead, keyframes 0.4 s apart)', async () => {
      const whole = await make('trim-whole.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=8', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '1000', '-force_key_frames', '0,2,2.4,2.8,3.2,3.6,4,4.4,4.8,5.2,5.6,6,6.4,6.8,7.2,7.6']);
      return make('trimmed.mp4', ['-ss', '1.6', '-i', whole, '-c', 'copy']);
    }],
    ['an MPEG-TS whose clock wraps 1.3 s in (times from -1.3 s), a keyframe every second', () =>
      make('wrap.ts', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=6', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-output_ts_offset', '95441', '-f', 'mpegts'])],
  ] as const)('keeps every frame of %s', async (_what, build) => {
    const src = await build();
    const index = await probeVideoIndex(src);
    expect(index.nonNegative).toBe(false);
    for (const segment_seconds of [0, 1]) {
      const out = await transcode(src, { audio_codec: 'none', segment_seconds });
      expect((await decodeCheck(out)).frames, `segment_seconds ${segment_seconds}`).toBe(index.frameTimes.length);
    }
  });

  it('stitches an MPEG-TS whose header underestimates its 44.1 kHz AAC track (ffmpeg estimates 5.83 s of 6.04), the audio encoded or copied', async () => {
    const src = await make('broadcast.ts', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=6', '-f', 'lavfi', '-i', 'sine=d=6', '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-output_ts_offset', '10', '-f', 'mpegts']);
    // Before: "stitched output failed verification: audio runs from -0.023 s to 6.014 s of the video, the source's from -0.023 s to 5.805 s" (DATA_LOSS).
    for (const audio_codec of ['aac', 'copy']) await transcode(src, { segment_seconds: 2, container: 'mkv', audio_codec });
  });

  it('refuses at planning, as INVALID_ARGUMENT naming the size, a box whose derived edge no encoder makes (--width 8192 of a 16x480 video)', async () => {
    const src = await make('sliver.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=16x480:r=25:d=1', '-c:v', 'libx264', '-preset', 'ultrafast']);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', width: 8192, audio_codec: 'none' }), [src], { dir, slots: 2 });
    // Before, a worker's encode failed as a retryable DATA_LOSS, run again on other workers.
    expect(run.outcomes).toEqual([]);
    expect(run.errors).toEqual([{ input: 'sliver.mp4', code: 'INVALID_ARGUMENT', message: 'sliver.mp4: its 16x480 picture fitted to 8192xany would be 8192x245760, over 8192 px on an edge: ask a box that fits both edges (--width and --height)' }]);
  });
});
