import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { cutVideoChunks } from '../../coordinator/kinds/video-chunks.js';
import { ffmpegBinaries, runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { parseVideoParams } from '../../shared/kinds/video-params.js';
import { decodeCheck, probeMedia, probeVideoIndex } from '../../shared/media/probe.js';
import { videoEncoderArgs } from '../../shared/media/video-encode.js';
import type { VideoSegmentPlan, VideoSubtaskPlan } from '../../shared/media/video-plan.js';
import { WORKER_FEATURES } from '../../shared/job-kind.js';
import { pino } from 'pino';
import { videoProcessor } from '../../worker/processors/video.js';
import { damagingSegment, decodedPictureHashes, makeVideo, runKindInProcess, specOf, type VideoFixture } from '../helpers/media.js';
import { resolveLimits } from '../../shared/limits.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Transcodes a generated clip in-process and returns what a user would look at. */
async function transcode(name: string, fixture: VideoFixture, params: Record<string, unknown>, slots = 2) {
  const src = await makeVideo(dir, name, fixture);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', ...params }), [src], { dir, slots });
  expect(run.errors).toEqual([]);
  // A clip of a picture and sound loses nothing: nothing to warn of (an odd edge asked for is
  // rounded, which the test that asks one checks).
  expect(run.warnings.filter((w) => !w.message.startsWith("the video's edges must be even"))).toEqual([]);
  expect(run.outputs).toHaveLength(1);
  const out = run.outputs[0]!;
  const [srcIndex, outInfo, outIndex, decoded] = await Promise.all([probeVideoIndex(src), probeMedia(out.path), probeVideoIndex(out.path), decodeCheck(out.path)]);
  return { src, run, out, srcIndex, outInfo, outIndex, decoded };
}

describe('video kind (plan -> process -> merge in-process)', () => {
  it('keeps picture subtitles (PGS) in Matroska, and leaves them out of MP4 with a warning that says Matroska can hold them', async () => {
    const plain = await makeVideo(dir, 'bluray-src.mp4', { duration: 2, width: 96, height: 64, audioChannels: 2 });
    const sup = path.join(dir, 'subs.sup');
    await writeFile(sup, pgsSubtitles());
    const film = path.join(dir, 'bluray.mkv');
    // Straight ffmpeg: Tessera's runner reads no .sup.
    await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-y', '-v', 'error', '-i', plain, '-i', sup, '-map', '0', '-map', '1', '-c', 'copy', film]);
    for (const container of ['mkv', 'mp4']) {
      const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, container }), [film], { dir });
      expect(run.errors, container).toEqual([]);
      const out = run.outputs[0]!.path;
      const streams = (await runFfprobe<{ streams: Array<{ codec_name: string }> }>(['-show_entries', 'stream=codec_name', '-i', out])).streams.map((st) => st.codec_name);
      if (container === 'mkv') {
        expect(streams).toEqual(['h264', 'aac', 'hdmv_pgs_subtitle']);
        expect(run.warnings).toEqual([]);
      } else {
        expect(streams).toEqual(['h264', 'aac']);
        expect(run.warnings).toEqual([{ input: 'bluray.mkv', message: 'subtitle track(s) hdmv_pgs_subtitle (stream 2) left out: MP4 cannot hold them (Matroska can: --container mkv)' }]);
      }
      expect((await decodeCheck(out)).frames, container).toBe(50);
    }
  });

  it('warns of the streams it leaves out (cover art, a font), naming the input, not of a camera\'s timecode; the videos are whole', async () => {
    const plain = await makeVideo(dir, 'camera-src.mp4', { duration: 2, width: 96, height: 64, audioChannels: 2 });
    // A camera's file: the picture, the sound and a QuickTime timecode (a data stream, in most
    // camera and phone files, which no transcoder carries by default: no warning).
    const camera = path.join(dir, 'camera.mov');
    await runFfmpeg(['-y', '-v', 'error', '-i', plain, '-map', '0', '-c', 'copy', '-timecode', '01:00:00:00', camera]);
    // A music video with its cover art (an attached picture).
    const cover = path.join(dir, 'cover.png');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'color=c=red:s=32x32:d=0.04', '-frames:v', '1', '-f', 'image2', cover]);
    const song = path.join(dir, 'song.mp4');
    // Straight ffmpeg: Tessera's runner reads no PNG, and attaches nothing.
    const ff = (args: string[]) => promisify(execFile)(ffmpegBinaries().ffmpeg, ['-y', '-v', 'error', ...args]);
    await ff(['-i', plain, '-i', cover, '-map', '0', '-map', '1', '-c', 'copy', '-disposition:v:1', 'attached_pic', song]);
    // A Matroska file with a font attached, as one with styled subtitles has.
    const font = path.join(dir, 'Sans.ttf');
    await writeFile(font, 'not really a font, but attached as one');
    const styled = path.join(dir, 'styled.mkv');
    await ff(['-i', plain, '-map', '0', '-c', 'copy', '-attach', font, '-metadata:s:t', 'mimetype=application/x-truetype-font', styled]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [camera, song, styled], { dir });
    expect(run.errors).toEqual([]);
    const carried = 'a video job carries the picture, the audio and subtitle tracks, the chapters and the tags';
    expect(run.warnings).toEqual([
      { input: 'song.mp4', message: `left out of the output: cover art (stream 2, png); ${carried}` },
      { input: 'styled.mkv', message: `left out of the output: attachment (stream 2, ttf); ${carried}` },
    ]);
    expect(run.outputs).toHaveLength(3);
    for (const out of run.outputs) expect((await decodeCheck(out.path)).frames, out.name).toBe(50);
  });

  it('stitches segments into one file with the source frame count, duration and audio', async () => {
    const r = await transcode('plain.mp4', { duration: 4, audioChannels: 2 }, {});
    expect(r.out.name).toBe('plain.mp4');
    const segs = r.run.outcomes.filter((o) => (o.plan as { type: string }).type === 'segment');
    expect(segs.length).toBeGreaterThan(1);
    expect(r.decoded.errors).toEqual([]);
    expect(r.decoded.frames).toBe(r.srcIndex.frameTimes.length);
    expect(r.outInfo.video!.codec).toBe('h264');
    expect(Math.abs(r.outIndex.end - r.outIndex.frameTimes[0]! - (r.srcIndex.end - r.srcIndex.frameTimes[0]!))).toBeLessThan(0.041);
    expect(r.outInfo.audio).toHaveLength(1);
    expect(Math.abs(r.outInfo.audio[0]!.duration - r.outInfo.video!.duration)).toBeLessThan(0.05);
  });

  it.each([
    ['open GOP with B-frames (mkv)', 'opengop.mkv', { duration: 4, openGop: true, gop: 12, audioChannels: 2 }],
    ['VFR 24/60 fps (mkv)', 'vfr.mkv', { duration: 4, vfr: true }],
    ['odd dimensions, no audio', 'odd.mp4', { duration: 3, width: 161, height: 91 }],
    ['5.1 audio (mov)', 'surround.mov', { duration: 3, audioChannels: 6 }],
    ['MPEG-TS with a 1.4 s start offset', 'offset.ts', { duration: 4, audioChannels: 2, openGop: true, gop: 25 }],
    ['webm (vp9 + opus) input', 'input.webm', { duration: 3, audioChannels: 2 }],
  ] as const)('keeps every frame: %s', async (_what, name, fixture) => {
    const r = await transcode(name, fixture as VideoFixture, { segment_seconds: 1 });
    expect(r.run.outcomes.filter((o) => (o.plan as { type: string }).type === 'segment').length).toBeGreaterThan(1);
    expect(r.decoded.errors).toEqual([]);
    expect(r.decoded.frames).toBe(r.srcIndex.frameTimes.length);
    // Presentation times survive (VFR passthrough): same intervals as the source, within mkv's 1 ms rounding.
    const rel = (ts: number[]) => ts.map((t) => t - ts[0]!);
    const a = rel(r.srcIndex.frameTimes);
    const b = rel(r.outIndex.frameTimes);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(0.0021);
    expect(r.outInfo.video!.width % 2).toBe(0);
    expect(r.outInfo.video!.height % 2).toBe(0);
    const srcInfo = await probeMedia(r.src);
    expect(r.outInfo.audio.length).toBe(srcInfo.audio.length > 0 ? 1 : 0);
    if (srcInfo.audio.length > 0) {
      expect(r.outInfo.audio[0]!.channels).toBe(srcInfo.audio[0]!.channels);
      expect(Math.abs(r.outInfo.audio[0]!.duration - r.outInfo.video!.duration)).toBeLessThan(0.05);
    }
  });

  it('handles an MPEG-TS that starts in the middle of an open GOP like ffmpeg does', async () => {
    const whole = await makeVideo(dir, 'whole.ts', { duration: 3, openGop: true, gop: 25 });
    const src = path.join(dir, 'midgop.ts');
    // Output-side seek with -copyinkf keeps the non-keyframes before the first keyframe.
    await runFfmpeg(['-y', '-i', whole, '-ss', '0.5', '-c', 'copy', '-copyinkf', '-f', 'mpegts', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const single = path.join(dir, 'midgop-single.mp4');
    await runFfmpeg(['-y', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', '-fps_mode', 'passthrough', single]);
    const [ours, theirs] = await Promise.all([decodeCheck(run.outputs[0]!.path), decodeCheck(single)]);
    expect(ours.errors).toEqual([]);
    expect(ours.frames).toBe(theirs.frames);
  });

  it('applies rotation metadata, scales to an even box and resamples to a requested fps', async () => {
    const r = await transcode('rotated.mp4', { duration: 3, width: 160, height: 90, fps: 24, rotate: 90, audioChannels: 1 }, { width: 45, fps: 10, segment_seconds: 1 });
    // The 160x90 picture displays as 90x160; fitted to width 45 -> 44x80 (even, aspect kept).
    expect([r.outInfo.video!.width, r.outInfo.video!.height]).toEqual([44, 80]);
    expect(r.run.warnings).toEqual([{ input: 'rotated.mp4', message: "the video's edges must be even: width 45 -> 44" }]);
    expect(r.outInfo.video!.rotation).toBe(0);
    expect(r.decoded.errors).toEqual([]);
    expect(r.decoded.frames).toBe(30);
    expect(r.outIndex.vfr).toBe(false);
  });

  it("an MPEG-TS cut off in its last frame: the warning gives where that is on the file's own timeline, not the capture clock's", async () => {
    // The clock starts at 7.5 s (as a broadcast capture's does); the file plays from 0 for 3 s.
    const whole = await makeVideo(dir, 'capture-whole.ts', { duration: 3, width: 160, height: 120, startOffset: 7.5, gop: 25 });
    const bytes = await readFile(whole);
    const cut = path.join(dir, 'capture.ts');
    // Whole 188-byte packets, the last frame's data cut short.
    await writeFile(cut, bytes.subarray(0, Math.floor((bytes.length * 0.97) / 188) * 188));
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, audio_codec: 'none' }), [cut], { dir });
    expect(run.errors).toEqual([]);
    // Before: "from about 9.5 s" and the like, the clock's time (review VID2).
    const warned = run.warnings.map((w) => /from about (\d+\.\d) s/.exec(w.message)?.[1]).filter(Boolean).map(Number);
    expect(warned.length, JSON.stringify(run.warnings)).toBe(1);
    expect(warned[0]).toBeGreaterThanOrEqual(2);
    expect(warned[0]).toBeLessThan(3);
  });

  it('--fps 29.97 is the NTSC rate, 30000/1001, across segments: not 2997/100', async () => {
    const r = await transcode('ntsc.mp4', { duration: 3, width: 96, height: 64, fps: 30 }, { fps: 29.97, segment_seconds: 1, audio_codec: 'none' });
    const rates = await runFfprobe<{ streams: Array<{ r_frame_rate: string; avg_frame_rate: string }> }>(['-select_streams', 'v:0', '-show_entries', 'stream=r_frame_rate,avg_frame_rate', '-i', r.out.path]);
    expect(rates.streams[0]).toEqual({ r_frame_rate: '30000/1001', avg_frame_rate: '30000/1001' });
    // The slots of the grid over 3 s: 0 to 89 (89 / 29.97 = 2.97 s).
    expect(r.decoded.frames).toBe(90);
  });

  it('matches a single-process encode in quality (SSIM within 0.005, h264)', async () => {
    const fixture: VideoFixture = { duration: 4, width: 320, height: 180, crf: 18 };
    const r = await transcode('quality.mp4', fixture, { crf: 28, preset: 'veryfast', audio_codec: 'none', segment_seconds: 1 });
    const single = path.join(dir, 'single.mp4');
    const params = parseVideoParams({ crf: 28, preset: 'veryfast' });
    await runFfmpeg(['-y', '-i', r.src, '-map', '0:v:0', ...videoEncoderArgs(params, 'libx264', 1), single]);
    const [split, whole] = await Promise.all([ssim(r.out.path, r.src), ssim(single, r.src)]);
    expect(whole).toBeGreaterThan(0.9);
    expect(Math.abs(split - whole)).toBeLessThan(0.005);
  });

  it('encodes h265, vp9 and av1 into the containers that hold them', async () => {
    for (const [codec, container] of [['h265', 'mp4'], ['vp9', 'webm'], ['av1', 'mkv']] as const) {
      const r = await transcode(`codec-${codec}.mp4`, { duration: 2, width: 128, height: 72, audioChannels: 2 }, { codec, container, audio_codec: container === 'webm' ? 'opus' : 'aac', crf: 40, segment_seconds: 1 });
      expect(r.out.name).toBe(`codec-${codec}.${container}`);
      expect(r.outInfo.video!.codec).toBe(codec === 'h265' ? 'hevc' : codec);
      expect(r.decoded.errors).toEqual([]);
      expect(r.decoded.frames).toBe(r.srcIndex.frameTimes.length);
    }
  });

  it('encodes losslessly with lossless: every decoded picture of the stitched output is the source\'s, bit for bit (h264, h265, vp9)', async () => {
    for (const [codec, container] of [['h264', 'mp4'], ['h265', 'mkv'], ['vp9', 'webm']] as const) {
      const r = await transcode(`lossless-${codec}.mp4`, { duration: 2, width: 128, height: 72 }, { codec, container, lossless: true, preset: 'ultrafast', audio_codec: 'none', segment_seconds: 1 });
      expect(r.run.outcomes.filter((o) => (o.plan as VideoSubtaskPlan).type === 'segment').length, codec).toBeGreaterThan(1);
      const [src, out] = await Promise.all([decodedPictureHashes(r.src), decodedPictureHashes(r.out.path)]);
      expect(out.length, codec).toBe(src.length);
      expect(out, codec).toEqual(src);
    }
    // The same at a quality setting is not lossless: the check above can tell.
    const lossy = await transcode('lossy.mp4', { duration: 2, width: 128, height: 72 }, { crf: 30, preset: 'ultrafast', audio_codec: 'none', segment_seconds: 1 });
    expect(await decodedPictureHashes(lossy.out.path)).not.toEqual(await decodedPictureHashes(lossy.src));
  });

  it('copies the source audio untouched with audio_codec copy, and drops it with none', async () => {
    const copied = await transcode('copy.mp4', { duration: 2, audioChannels: 2 }, { audio_codec: 'copy', container: 'mkv', segment_seconds: 1 });
    expect(copied.out.name).toBe('copy.mkv');
    const srcInfo = await probeMedia(copied.src);
    expect(copied.outInfo.audio.map((a) => [a.codec, a.channels])).toEqual([[srcInfo.audio[0]!.codec, 2]]);
    // Stream copy keeps every audio packet: same count as the source.
    const packets = async (f: string) => (await runFfprobe<{ streams: Array<{ nb_read_packets: string }> }>(['-select_streams', 'a:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-i', f])).streams[0]!.nb_read_packets;
    expect(await packets(copied.out.path)).toBe(await packets(copied.src));
    const dropped = await transcode('drop.mp4', { duration: 2, audioChannels: 2 }, { audio_codec: 'none' });
    expect(dropped.outInfo.audio).toEqual([]);
    expect(dropped.decoded.frames).toBe(dropped.srcIndex.frameTimes.length);
  });

  it('encodes the plans of an older coordinator: Matroska chunks, no chunk start times, the audio on its own', async () => {
    const src = await makeVideo(dir, 'older-plan.mp4', { duration: 3, openGop: true, gop: 12, audioChannels: 2 });
    const seen: string[] = [];
    const older: typeof videoProcessor = {
      ...videoProcessor,
      async process(ctx) {
        const plan = ctx.plan as VideoSubtaskPlan;
        if (plan.type === 'segment') seen.push(...plan.chunks);
        // What an older coordinator's plans lack (a cluster with an older worker gets them today
        // without chunk start times, which Matroska chunks do not match to the microsecond).
        if (plan.type === 'segment') expect(plan.chunkStarts).toBeUndefined();
        if (plan.type === 'audio') delete plan.sourceChannels;
        return videoProcessor.process(ctx);
      },
    };
    // A cluster with an older worker in it: the coordinator cuts Matroska.
    const run = await runKindInProcess(videoKind, older, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir, features: [] });
    expect(run.errors).toEqual([]);
    expect(seen.length).toBeGreaterThan(2);
    for (const name of seen) expect(name).toMatch(/\.mkv$/);
    expect(run.outcomes.map((o) => o.label).filter((l) => l.includes('audio'))).toEqual(['older-plan.mp4 audio']);
    const decoded = await decodeCheck(run.outputs[0]!.path);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(75);
    const info = await probeMedia(run.outputs[0]!.path);
    expect(info.audio.map((a) => [a.codec, a.channels])).toEqual([['aac', 2]]);
  });

  it('encodes again a segment reported done without its file', async () => {
    const src = await makeVideo(dir, 'no-file.mp4', { duration: 2, audioChannels: 2 });
    let dropped = 0;
    const forgetful: typeof videoProcessor = {
      ...videoProcessor,
      async process(ctx) {
        const res = await videoProcessor.process(ctx);
        const plan = ctx.plan as VideoSubtaskPlan;
        // The first segment, which carries the audio: its answer loses both files, once.
        if (plan.type === 'segment' && plan.segment === 0 && dropped++ === 0) return { ...res, outputs: [] };
        return res;
      },
    };
    const run = await runKindInProcess(videoKind, forgetful, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(dropped).toBe(2);
    expect(run.outcomes.filter((o) => o.phase === 1).map((o) => o.label)).toEqual(['no-file.mp4 segment 1 (0.0s-1.0s) and audio (re-run)']);
    expect((await decodeCheck(run.outputs[0]!.path)).frames).toBe(50);
    expect((await probeMedia(run.outputs[0]!.path)).audio).toHaveLength(1);
  });

  it('encodes the audio beside the first segment, and a failure of either fails that subtask with its own error', async () => {
    const src = await makeVideo(dir, 'beside.mp4', { duration: 3, audioChannels: 2 });
    const plan = await videoKind.plan({
      jobId: 'j', params: parseVideoParams({ preset: 'ultrafast', segment_seconds: 1 }), spec: specOf('video', {}), workDir: await mkdtemp(path.join(dir, 'plan-')),
      inputs: [{ name: 'beside.mp4', path: src, size: 0, sha256: '' }], cluster: { workers: 2, slots: 2, encoders: new Set(['libx264', 'aac']), encoderSets: [new Set(['libx264', 'aac'])], features: new Set(WORKER_FEATURES) },
      signal: new AbortController().signal, log: pino({ level: 'silent' }), warn: () => undefined, limits: resolveLimits(),
    });
    expect(plan.subtasks.map((s) => s.label)).toEqual(['beside.mp4 segment 1 (0.0s-1.0s) and audio', 'beside.mp4 segment 2 (1.0s-2.0s)', 'beside.mp4 segment 3 (2.0s-3.0s)']);
    const carrier = plan.subtasks[0]!;
    expect(carrier.weight).toBeGreaterThan(plan.subtasks[1]!.weight);
    expect(carrier.requires).toEqual({ encoders: ['libx264', 'aac'], features: ['video-nut-chunks', 'video-audio-beside-segment'] });
    expect(carrier.inputs.map((f) => f.name)).toEqual([...(carrier.plan as VideoSegmentPlan).chunks, 'in0-audio.mov']);

    // The audio cannot be written (PCM has no place in the AAC intermediate): the segment's encode
    // (one segment, slow enough to be running still) is stopped and the subtask fails with the
    // audio's error, not with the stop.
    const broken: typeof videoProcessor = {
      ...videoProcessor,
      async process(ctx) {
        const p = ctx.plan as VideoSegmentPlan;
        if (p.audio) p.audio.encoder = 'pcm_s16le';
        return videoProcessor.process(ctx);
      },
    };
    const long = await makeVideo(dir, 'beside-long.mp4', { duration: 4, width: 320, height: 240, audioChannels: 2 });
    const run = await runKindInProcess(videoKind, broken, specOf('video', { preset: 'veryslow', segment_seconds: 60 }), [long], { dir });
    expect(run.outcomes).toHaveLength(1);
    expect(run.outputs).toEqual([]);
    expect(run.errors).toEqual([{ input: 'beside-long.mp4', code: 'INTERNAL', message: expect.stringMatching(/^beside-long\.mp4: audio: could not write the pcm_s16le track/) }]);
    // Stopped part-way: the segment never reported itself done.
    const fractions = run.progress.get(run.outcomes[0]!.label)!;
    expect(fractions.at(-1) ?? 0).toBeLessThan(1);

    // And the other way round: the segment's encoder has no settings, the audio (started beside it)
    // is stopped, the subtask fails with the segment's error.
    const noEncoder: typeof videoProcessor = {
      ...videoProcessor,
      async process(ctx) {
        const p = ctx.plan as VideoSegmentPlan;
        if (p.audio) p.encoder = 'no_such_encoder';
        return videoProcessor.process(ctx);
      },
    };
    const second = await runKindInProcess(videoKind, noEncoder, specOf('video', { preset: 'veryslow', segment_seconds: 60 }), [long], { dir });
    expect(second.outputs).toEqual([]);
    expect(second.errors).toEqual([{ input: 'beside-long.mp4', code: 'INTERNAL', message: 'no settings for video encoder no_such_encoder' }]);
  });

  it('fails a segment that encodes fewer frames than planned, as ffmpeg counts them, with DATA_LOSS', async () => {
    const src = await makeVideo(dir, 'short-count.mp4', { duration: 2 });
    // One frame more planned for segment 1 than its range holds: ffmpeg encodes what there is.
    const greedy: typeof videoProcessor = {
      ...videoProcessor,
      async process(ctx) {
        const plan = ctx.plan as VideoSegmentPlan;
        if (plan.type === 'segment' && plan.segment === 0) plan.frames += 1;
        return videoProcessor.process(ctx);
      },
    };
    const run = await runKindInProcess(videoKind, greedy, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir });
    expect(run.outputs).toEqual([]);
    expect(run.errors).toEqual([{ input: 'short-count.mp4', code: 'DATA_LOSS', message: 'segment 1: encoded 25 frames where 26 were planned' }]);
  });

  it('gives up on a segment that keeps arriving damaged, and still publishes the other input', async () => {
    const good = await makeVideo(dir, 'good.mp4', { duration: 2 });
    const bad = await makeVideo(dir, 'always-damaged.mp4', { duration: 2 });
    const flaky = damagingSegment(videoProcessor, { segment: 1, keep: 2000, source: 'always-damaged.mp4', always: true });
    const run = await runKindInProcess(videoKind, flaky.processor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [good, bad], { dir });
    // The first encode and two re-runs.
    expect(flaky.seen()).toBe(3);
    expect(run.outputs.map((o) => o.name)).toEqual(['good.mp4']);
    expect((await decodeCheck(run.outputs[0]!.path)).frames).toBe(50);
    expect(run.errors).toEqual([{ input: 'always-damaged.mp4', code: 'DATA_LOSS', message: 'always-damaged.mp4: segment 2 kept failing its frame-count check' }]);
    expect(run.outcomes.filter((o) => o.phase === 2).map((o) => o.label)).toEqual(['always-damaged.mp4 segment 2 (1.0s-2.0s) (re-run)']);
  });

  it('encodes a segment again when its file arrives damaged', async () => {
    const src = await makeVideo(dir, 'damaged.mp4', { duration: 3 });
    // Damage the bytes of segment 2's first result after the worker checked it (as a bad disk or copy would).
    const flaky = damagingSegment(videoProcessor, { segment: 1, keep: 2000 });
    const run = await runKindInProcess(videoKind, flaky.processor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(flaky.seen()).toBe(2);
    expect(run.outcomes.filter((o) => o.phase === 1).map((o) => o.label)).toEqual([expect.stringContaining('segment 2')]);
    const decoded = await decodeCheck(run.outputs[0]!.path);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(75);
  });

  it('cuts again into fewer chunks without counting the first cut\'s (a plan made again after a restart)', async () => {
    const src = await makeVideo(dir, 'recut.mp4', { duration: 4, gop: 25 });
    const chunks = path.join(dir, 'recut-chunks');
    const signal = new AbortController().signal;
    expect((await cutVideoChunks(src, 'recut.mp4', 0, [1, 2, 3], chunks, signal)).chunks).toHaveLength(4);
    const { chunks: again } = await cutVideoChunks(src, 'recut.mp4', 0, [2], chunks, signal);
    expect(again.map((c) => c.name)).toEqual(['recut-chunks-chunk00000.nut', 'recut-chunks-chunk00001.nut']);
    const second = await runFfprobe<{ streams: Array<{ nb_read_packets: string }> }>(['-count_packets', '-show_entries', 'stream=nb_read_packets', '-f', 'nut', '-i', again[1]!.path]);
    expect(Number(second.streams[0]!.nb_read_packets)).toBe(50);
  });

  it.each([
    ['mkv (h264 + opus), audio 0.2 s shorter', 'short.mkv', ['-f', 'lavfi', '-i', 'sine=duration=5.8'], ['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'libopus']],
    ['webm (vp9 + opus), audio 0.2 s shorter', 'short.webm', ['-f', 'lavfi', '-i', 'sine=duration=5.8'], ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-c:a', 'libopus']],
    ['mkv (h264 + aac), audio starting at 0.5 s', 'late.mkv', ['-itsoffset', '0.5', '-f', 'lavfi', '-i', 'sine=duration=5.5'], ['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac']],
  ] as const)('keeps where the audio starts and ends against the picture into mp4: %s', async (_what, name, audioInput, codecs) => {
    // Matroska gives no per-stream duration: the planner has to measure the audio track itself.
    const src = path.join(dir, name);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=6', ...audioInput, '-map', '0:v', '-map', '1:a', ...codecs, src]);
    expect((await probeMedia(src)).audio[0]!.duration).toBeNaN();
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mp4', segment_seconds: 2 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const out = run.outputs[0]!.path;
    const decoded = await decodeCheck(out);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(150);
    const [want, got] = await Promise.all([audioAgainstVideo(src), audioAgainstVideo(out)]);
    expect(Math.abs(got.start - want.start)).toBeLessThan(0.05);
    expect(Math.abs(got.end - want.end)).toBeLessThan(0.05);
  });

  it('leaves out the frames and sound an MP4 edit list hides (a trim by stream copy), into mp4 and mkv, audio encoded or copied', async () => {
    const whole = await makeVideo(dir, 'untrimmed.mp4', { duration: 6, gop: 25, audioChannels: 2 });
    const src = path.join(dir, 'trimmed.mp4');
    // Stream copy starts at the keyframe before 1.3 s; the edit list hides the frames before 1.3 s.
    await runFfmpeg(['-y', '-v', 'error', '-ss', '1.3', '-i', whole, '-c', 'copy', src]);
    const shown = Number((await runFfprobe<{ streams: Array<{ nb_read_frames: string }> }>(['-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=nb_read_frames', '-i', src])).streams[0]!.nb_read_frames);
    expect(shown).toBeLessThan((await probeVideoIndex(src)).packets.length);
    const want = await audioAgainstVideo(src);
    const cases = [
      ['mp4', 'aac'],
      ['mkv', 'aac'],
      // Copied: Matroska has no edit list, so the packets it hides must not be copied at all.
      ['mp4', 'copy'],
      ['mkv', 'copy'],
    ] as const;
    for (const [container, audio] of cases) {
      const what = `${container}, audio ${audio}`;
      const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container, audio_codec: audio, segment_seconds: 2 }), [src], { dir });
      expect(run.errors, what).toEqual([]);
      const out = run.outputs[0]!.path;
      const decoded = await decodeCheck(out);
      expect(decoded.errors).toEqual([]);
      expect(decoded.frames, what).toBe(shown);
      const got = await audioAgainstVideo(out);
      expect(Math.abs(got.videoEnd - want.videoEnd), what).toBeLessThan(0.041);
      expect(Math.abs(got.start - want.start), what).toBeLessThan(0.05);
      expect(Math.abs(got.end - want.end), what).toBeLessThan(0.05);
      if (audio === 'copy') expect((await probeMedia(out)).audio[0]?.codec, what).toBe('aac');
    }
  });

  it('copies 8 kHz audio from a trimmed MP4 into mkv where its first whole packet after the cut plays, not a packet early', async () => {
    const whole = path.join(dir, 'phone-untrimmed.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=6', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=8000:duration=6', '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-ar', '8000', whole]);
    const src = path.join(dir, 'phone.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-ss', '1.3', '-i', whole, '-c', 'copy', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mkv', audio_codec: 'copy', segment_seconds: 2 }), [src], { dir });
    expect(run.errors).toEqual([]);
    // Where the first packet that starts at or after the cut lies in the source (128 ms packets at 8 kHz).
    const r = await runFfprobe<{ packets: Array<{ pts_time: string; flags: string }> }>(['-select_streams', 'a:0', '-show_entries', 'packet=pts_time,flags', '-i', src]);
    const firstWhole = Math.min(...r.packets.map((p) => Number(p.pts_time)).filter((t) => t >= -1e-6));
    const got = await audioAgainstVideo(run.outputs[0]!.path);
    expect(Math.abs(got.start - firstWhole)).toBeLessThan(0.01);
    expect((await probeMedia(run.outputs[0]!.path)).audio[0]?.codec).toBe('aac');
  });

  it('rejects audio copy into a container that cannot hold it, naming the input', async () => {
    const src = await makeVideo(dir, 'aac-source.mp4', { duration: 1, audioChannels: 2 });
    const run = runKindInProcess(videoKind, videoProcessor, specOf('video', { codec: 'vp9', container: 'webm', audio_codec: 'copy' }), [src], { dir });
    const { errors, outputs } = await run;
    expect(outputs).toEqual([]);
    expect(errors).toEqual([{ input: 'aac-source.mp4', code: 'INVALID_ARGUMENT', message: expect.stringContaining('aac-source.mp4: its aac audio cannot be copied into webm') }]);
  });

  it('names the track that cannot be copied when it is not the first', async () => {
    const aac = await makeVideo(dir, 'aac-second.mkv', { duration: 1, audioChannels: 2 });
    // An Opus track WebM takes, then the AAC one it does not.
    const src = path.join(dir, 'opus-then-aac.mkv');
    await runFfmpeg(['-y', '-i', aac, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=1', '-map', '0:v', '-map', '1:a', '-map', '0:a', '-c:v', 'copy', '-c:a:0', 'libopus', '-c:a:1', 'copy', src]);
    const { errors, outputs } = await runKindInProcess(videoKind, videoProcessor, specOf('video', { codec: 'vp9', container: 'webm', audio_codec: 'copy' }), [src], { dir });
    expect(outputs).toEqual([]);
    expect(errors).toEqual([{ input: 'opus-then-aac.mkv', code: 'INVALID_ARGUMENT', message: expect.stringContaining('opus-then-aac.mkv: its aac audio track 2 cannot be copied into webm') }]);
  });

  it('refuses an MP4 cut short behind its index (faststart) as truncated, without encoding it', async () => {
    const whole = await makeVideo(dir, 'whole-faststart.mp4', { duration: 4, audioChannels: 2 });
    const fast = path.join(dir, 'faststart.mp4');
    await runFfmpeg(['-y', '-i', whole, '-c', 'copy', '-movflags', '+faststart', fast]);
    const bytes = await readFile(fast);
    const cut = path.join(dir, 'cut-short.mp4');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const { errors, outputs } = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [cut], { dir });
    expect(outputs).toEqual([]);
    expect(errors).toEqual([{ input: 'cut-short.mp4', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^cut-short\.mp4: truncated file: its video data stops at \d+\.\d+ s/) }]);
  });
});

/**
 * Where the first audio track starts and ends, and where the video ends, in seconds from the first
 * video frame shown: from the packets as ffprobe lists them, leaving out those an edit list hides.
 */
async function audioAgainstVideo(file: string): Promise<{ start: number; end: number; videoEnd: number }> {
  const span = async (stream: string) => {
    const r = await runFfprobe<{ packets: Array<{ pts_time: string; duration_time?: string; flags: string }> }>(['-select_streams', stream, '-show_entries', 'packet=pts_time,duration_time,flags', '-i', file]);
    const shown = r.packets.filter((p) => !p.flags.includes('D'));
    const starts = shown.map((p) => Number(p.pts_time));
    const ends = shown.map((p) => Number(p.pts_time) + (Number(p.duration_time) || 0.021));
    return { start: Math.min(...starts), end: Math.max(...ends) };
  };
  const [v, a] = await Promise.all([span('v:0'), span('a:0')]);
  return { start: a.start - v.start, end: a.end - v.start, videoEnd: v.end - v.start };
}

/** Mean SSIM of `file` against `reference` (ffmpeg's ssim filter, all frames). */
async function ssim(file: string, reference: string): Promise<number> {
  const { stderr } = await runFfmpeg(['-i', file, '-i', reference, '-lavfi', '[0:v][1:v]ssim', '-f', 'null', '-'], {});
  const m = /SSIM .*All:([0-9.]+)/.exec(stderr);
  if (!m) throw new Error(`no SSIM in ffmpeg output: ${stderr.slice(-300)}`);
  return Number(m[1]);
}

/**
 * A Blu-ray (PGS) subtitle stream as a .sup file: one 2 x 2 picture shown from 0.5 s to 1 s on a
 * 96 x 64 frame. ffmpeg makes no picture subtitles from text, so the segments are written here.
 */
function pgsSubtitles(): Buffer {
  const u16 = (n: number): number[] => [n >> 8, n & 0xff];
  const u32 = (n: number): number[] => [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  const segment = (pts: number, type: number, data: number[]): number[] => [0x50, 0x47, ...u32(pts), ...u32(0), type, ...u16(data.length), ...data];
  const displaySet = (pts: number, show: boolean): number[] => {
    // Presentation (frame 96 x 64; an epoch start showing object 0 at 8,8, or a composition of no objects), window.
    const pcs = [...u16(96), ...u16(64), 0x10, ...u16(show ? 0 : 1), show ? 0x80 : 0x00, 0, 0, show ? 1 : 0, ...(show ? [...u16(0), 0, 0, ...u16(8), ...u16(8)] : [])];
    const wds = [1, 0, ...u16(8), ...u16(8), ...u16(2), ...u16(2)];
    const out = [...segment(pts, 0x16, pcs), ...segment(pts, 0x17, wds)];
    if (show) {
      // Palette entry 1 (white, opaque), and the object: two lines of two pixels of it, run-length coded.
      const rle = [1, 1, 0, 0, 1, 1, 0, 0];
      out.push(...segment(pts, 0x14, [0, 0, 1, 235, 128, 128, 255]));
      out.push(...segment(pts, 0x15, [...u16(0), 0, 0xc0, 0, 0, rle.length + 4, ...u16(2), ...u16(2), ...rle]));
    }
    return [...out, ...segment(pts, 0x80, [])];
  };
  return Buffer.from([...displaySet(45_000, true), ...displaySet(90_000, false)]);
}
