/**
 * Sources as DVD and broadcast recorders, screen recorders, old cameras and HDR cameras write them
 * (MPEG-2 video in Matroska, MPEG-TS and MPEG-PS; QuickTime Animation; Xvid AVI; 10-bit HDR10),
 * through the video kind in-process (real plan -> process -> merge), each against what one `ffmpeg`
 * command with the same request gives: every frame, and a 10-bit source's 10 bits where the codec keeps them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-source-codecs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `name` from a small testsrc2 clip (and a tone when `audio`) with the given output arguments. */
async function make(name: string, seconds: number, audio: string | undefined, args: string[]): Promise<string> {
  const file = path.join(dir, name);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=96x64:rate=25:duration=${seconds}`, ...(audio ? ['-f', 'lavfi', '-i', audio] : []), ...args, file]);
  return file;
}

/** The first video stream's pixel format and counted packets. */
async function videoOf(file: string): Promise<{ pixFmt: string; frames: number }> {
  const r = await runFfprobe<{ streams: Array<{ pix_fmt: string; nb_read_packets: string }> }>(['-count_packets', '-select_streams', 'v:0', '-show_entries', 'stream=pix_fmt,nb_read_packets', '-i', file]);
  return { pixFmt: r.streams[0]!.pix_fmt, frames: Number(r.streams[0]!.nb_read_packets) };
}

/** What one ffmpeg command makes of `src` with the video encoder arguments given. */
async function baseline(src: string, video: string[]): Promise<{ pixFmt: string; frames: number }> {
  const out = path.join(dir, `baseline-${path.basename(src)}.mp4`);
  await runFfmpeg(['-y', '-v', 'error', '-i', src, ...video, '-preset', 'ultrafast', '-c:a', 'aac', out]);
  return videoOf(out);
}

async function transcode(src: string, params: Record<string, unknown>) {
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', ...params }), [src], { dir, slots: 2 });
  return { errors: run.errors, warnings: run.warnings, out: run.outputs[0] ? await videoOf(run.outputs[0].path) : undefined };
}

describe('video kind: source codecs from cameras, recorders and editors', () => {
  // Each was a failure of a good file: MPEG-2 split into segments was DATA_LOSS ("encoded 24 frames
  // where 25 were planned" from Matroska, 0 from MPEG-TS: its NUT chunks read no start time, and the
  // concat demuxer placed every chunk after the first one its start too late); a DVD's MPEG-PS was
  // refused as INVALID_ARGUMENT "av_interleaved_write_frame(): Invalid argument" (NUT takes no packet
  // without a PTS: the cut now generates them); QuickTime Animation was DATA_LOSS "[qtrle]
  // Unsupported colorspace: 0 bits/sample?" on every attempt (NUT and Matroska chunks lose the
  // sample description's bit depth; MOV keeps it); an Xvid AVI (decode times only) lost a frame a
  // segment once the cut generated times the planner's index did not have.
  it.each([
    ['MPEG-2 video in Matroska, split into segments', 'mpeg2.mkv', 2, ['-c:v', 'mpeg2video', '-c:a', 'mp2'], { segment_seconds: 1 }],
    ['MPEG-2 video in MPEG-TS (broadcast, HDV), split into segments', 'mpeg2.ts', 2, ['-c:v', 'mpeg2video', '-c:a', 'mp2'], { segment_seconds: 1 }],
    ['a DVD-style MPEG-PS (.mpg/.vob) whose packets do not all carry a PTS', 'dvd.mpg', 3, ['-c:v', 'mpeg2video', '-c:a', 'mp2', '-f', 'vob'], {}],
    ['QuickTime Animation (qtrle), as screen recorders export it, split into segments', 'animation.mov', 2, ['-c:v', 'qtrle', '-g', '25'], { segment_seconds: 1 }],
    ['an Xvid AVI with B-frames, split into segments', 'xvid.avi', 3, ['-c:v', 'mpeg4', '-vtag', 'XVID', '-bf', '1', '-g', '25', '-q:v', '4', '-an'], { segment_seconds: 1 }],
  ] as const)('keeps every frame of %s', async (_, name, seconds, args, params) => {
    const src = await make(name, seconds, (args as readonly string[]).includes('-an') ? undefined : `sine=duration=${seconds}:sample_rate=48000`, (args as readonly string[]).filter((a) => a !== '-an'));
    const single = await baseline(src, ['-c:v', 'libx264']);
    expect(single.frames).toBe(25 * seconds);
    const { errors, out } = await transcode(src, params);
    expect(errors).toEqual([]);
    expect(out?.frames).toBe(single.frames);
  }, 60_000);

  it('keeps a 10-bit HDR10 (BT.2020 / PQ) source 10-bit through h265 and vp9, as `ffmpeg` does; h264 stays 8-bit and says so', async () => {
    const src = await make('hdr10.mkv', 2, undefined, ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-pix_fmt', 'yuv420p10le',
      '-color_primaries', 'bt2020', '-color_trc', 'smpte2084', '-colorspace', 'bt2020nc']);
    const single = await baseline(src, ['-c:v', 'libx265', '-x265-params', 'log-level=error']);
    expect(single.pixFmt).toBe('yuv420p10le');
    // It was 8-bit yuv420p, still tagged smpte2084/bt2020: PQ in 8 bits bands, and HDR10 is 10-bit by definition.
    for (const codec of ['h265', 'vp9']) {
      const { errors, warnings, out } = await transcode(src, { codec, segment_seconds: 1 });
      expect([errors, warnings], codec).toEqual([[], []]);
      expect(out, codec).toEqual({ pixFmt: 'yuv420p10le', frames: 50 });
    }
    const h264 = await transcode(src, { segment_seconds: 1 });
    expect(h264.errors).toEqual([]);
    expect(h264.out).toEqual({ pixFmt: 'yuv420p', frames: 50 });
    expect(h264.warnings).toEqual([{ input: 'hdr10.mkv', message: 'an HDR (PQ) source encoded in 8 bits, still tagged PQ: its picture may band (libx264 writes 8 here; --codec h265, vp9 or av1 keeps 10)' }]);
  }, 60_000);
});
