/**
 * Videos as they come in the wild (review VWILD2), through the video kind in-process, against what
 * one `ffmpeg` command with the same settings gives: which video stream is the picture, and which
 * rate a variable-frame-rate phone clip is planned at.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-vwild2-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Stream { codec_type?: string; codec_name?: string; width?: number; height?: number; nb_read_packets?: string; r_frame_rate?: string; avg_frame_rate?: string }
async function streams(file: string): Promise<Stream[]> {
  const r = await runFfprobe<{ streams?: Stream[] }>(['-count_packets', '-show_entries', 'stream=codec_type,codec_name,width,height,nb_read_packets,r_frame_rate,avg_frame_rate', '-i', file]);
  return r.streams ?? [];
}

/** Each stream's type, size and default flag. */
async function defaultStreams(file: string): Promise<Array<{ codec_type?: string; width?: number; height?: number; disposition?: { default?: number } }>> {
  const r = await runFfprobe<{ streams?: Array<{ codec_type?: string; width?: number; height?: number; disposition?: { default?: number } }> }>(['-show_entries', 'stream=codec_type,width,height:stream_disposition=default', '-i', file]);
  return r.streams ?? [];
}

describe('video kind: wild inputs (VWILD2)', () => {
  it('transcodes the real video of a Matroska file whose cover art (a one-picture MJPEG track) comes first, as `ffmpeg -i in.mkv out.mp4` does', async () => {
    // What `ffmpeg -i cover.png -i clip -map 0 -map 1 -disposition:v:0 attached_pic out.mkv` writes:
    // Matroska keeps the cover as a plain MJPEG video track before the clip's H.264.
    // The cover: one JPEG picture (in Matroska, which the runner's input list takes).
    const cover = path.join(dir, 'cover.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'color=c=red:size=64x64:rate=1:duration=1', '-frames:v', '1', '-c:v', 'mjpeg', cover]);
    const src = path.join(dir, 'with-cover.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-i', cover, '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=2', '-f', 'lavfi', '-i', 'sine=duration=2',
      '-map', '0', '-map', '1', '-map', '2', '-c:v:0', 'copy', '-c:v:1', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-disposition:v:0', 'attached_pic', src]);
    expect((await streams(src)).map((s) => s.codec_name)).toEqual(['mjpeg', 'h264', 'aac']);
    // One ffmpeg command picks the clip (its best video stream), not the cover.
    const baseline = path.join(dir, 'baseline-cover.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', baseline]);
    const b = (await streams(baseline)).find((s) => s.codec_type === 'video')!;
    expect([b.width, b.height]).toEqual([160, 120]);

    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const v = (await streams(run.outputs[0]!.path)).find((s) => s.codec_type === 'video')!;
    // It was the 64x64 cover, one frame long, beside 2 s of sound; the clip "left out" with a warning.
    expect({ size: `${v.width}x${v.height}`, frames: Number(v.nb_read_packets) }).toEqual({ size: '160x120', frames: 50 });
    expect(run.warnings.map((w) => w.message).join('\n')).toMatch(/mjpeg/);

    // Its thumbnails are the clip's too (by time, by one decoding pass, by frame number in an AVI-like
    // pick alike: the workers take the stream the plan names), not the square cover's.
    for (const params of [{ count: 2, width: 64 }, { every: 0.1, width: 64 }]) {
      const thumbs = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', params), [src], { dir });
      expect(thumbs.errors).toEqual([]);
      expect(thumbs.warnings).toEqual([]);
      for (const o of thumbs.outputs) {
        expect(await sharp(o.path).metadata(), `${JSON.stringify(params)} ${o.name}`).toMatchObject({ width: 64, height: 48 });
        // The cover is solid red; the clip's test pattern is mostly not.
        const { channels } = await sharp(o.path).stats();
        expect(channels[0]!.mean - channels[2]!.mean, `${JSON.stringify(params)} ${o.name}: red`).toBeLessThan(100);
      }
    }
  }, 120_000);

  it('encodes a ~30 fps variable-frame-rate phone clip (r_frame_rate 90000/1) as AV1 on a cluster with SVT-AV1, as `ffmpeg -c:v libsvtav1` does', async () => {
    // Frame times in a 1/90000 timescale with up to 13 ms of jitter, as a phone's encoder stamps them:
    // ffprobe's r_frame_rate is then 90000/1, its avg_frame_rate about 29.6.
    const src = path.join(dir, 'phone-vfr.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=30:duration=2', '-vf', "settb=1/90000,setpts='N*3000+trunc(random(0)*1200)'",
      '-fps_mode', 'passthrough', '-enc_time_base', '1:90000', '-c:v', 'libx264', '-preset', 'ultrafast', '-video_track_timescale', '90000', src]);
    const s = (await streams(src))[0]!;
    expect(s.r_frame_rate).toBe('90000/1');
    // One ffmpeg command encodes it with SVT-AV1 (ffmpeg takes the average rate where r_frame_rate is implausible).
    const baseline = path.join(dir, 'baseline-vfr-av1.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libsvtav1', '-preset', '12', '-fps_mode', 'passthrough', '-enc_time_base', '-1', baseline]);
    expect(Number((await streams(baseline))[0]!.nb_read_packets)).toBe(60);

    // A cluster whose workers have SVT-AV1 as their AV1 encoder.
    const encoders = ['libx264', 'libx265', 'libvpx-vp9', 'libsvtav1', 'aac', 'libopus', 'libmp3lame'];
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, codec: 'av1' }), [src], { dir, encoders });
    // It was refused: "phone-vfr.mp4: its 90000 fps cannot be encoded as av1: libsvtav1 takes at most
    // 240 fps ...; ask --fps 240 or less" (and where libaom-av1 is there too, moved to it, many times slower).
    expect(run.errors).toEqual([]);
    expect(run.outcomes.map((o) => (o.plan as { encoder?: string }).encoder)).toContain('libsvtav1');
  }, 120_000);

  // By area alone, the larger second track was taken (review K25): ffmpeg counts a default track 5 Mpx larger.
  it('transcodes the default track, as `ffmpeg -i in.mp4 out.mp4` does, not the larger non-default one', async () => {
    // The main programme (160x120, default) and a second, larger, non-default track.
    const src = path.join(dir, 'two-tracks.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=1', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=1', '-f', 'lavfi', '-i', 'sine=duration=1',
      '-map', '0', '-map', '1', '-map', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', src]);
    expect((await defaultStreams(src)).map((s) => [s.codec_type, s.width, s.disposition?.default])).toEqual([['video', 160, 1], ['video', 320, 0], ['audio', undefined, 1]]);
    // One ffmpeg command picks the default track.
    const baseline = path.join(dir, 'baseline.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', baseline]);
    const b = (await defaultStreams(baseline)).find((s) => s.codec_type === 'video')!;
    expect([b.width, b.height]).toEqual([160, 120]);

    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const v = (await defaultStreams(run.outputs[0]!.path)).find((s) => s.codec_type === 'video')!;
    // Is: 320x240, with the warning "left out of the output: video (stream 0, h264)".
    expect([v.width, v.height]).toEqual([160, 120]);
  }, 60_000);
});
