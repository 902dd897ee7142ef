/**
 * Worker side of the `video` kind: encodes one frame range (a segment) or the audio track.
 *
 * A segment decodes its keyframe-aligned chunks as one stream (concat demuxer, durations given so the
 * timeline is continuous), keeps the frames of its range by presentation time, turns/scales them and
 * encodes them as one closed GOP sequence starting on an IDR, with the same settings on every worker.
 * The result is checked (frame count as planned, as ffmpeg reports it) before it is returned; a
 * mismatch is a retryable DATA_LOSS so the runtime runs it again.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { status } from '../../shared/grpc-status.js';
import { dataLoss, invalidArgument, TesseraError } from '../../shared/errors.js';
import { DECODE_ERROR, decoderComplaint, decoderThreads, fpsModeFlag, runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import type { LocalFile, ProcessContext, ProcessResult, WorkerProcessor } from '../../shared/job-kind.js';
import { parseVideoParams, rateExpression, type VideoJobParams } from '../../shared/kinds/video-params.js';
import { bitrateFor, outputChannels, type AudioCodec } from '../../shared/kinds/audio-params.js';
import { probeMedia } from '../../shared/media/probe.js';
import { audioEncoderArgs, ORIENTATION_FILTERS, rotationFilters, takesTwoPasses, videoEncoderArgs, type EncodePass } from '../../shared/media/video-encode.js';
import { chunkFormatOf, colourFilter, colourProblem, shownTime, type VideoAudioPlan, type VideoSegmentPlan, type VideoSegmentResult, type VideoSubtaskPlan } from '../../shared/media/video-plan.js';

/** The `video` kind as the worker registry sees it. */
export const videoProcessor: WorkerProcessor<VideoJobParams> = {
  name: 'video',
  params: (spec) => parseVideoParams(spec.video),
  async process(ctx) {
    const plan = ctx.plan as VideoSubtaskPlan;
    const problem = planProblem(plan);
    if (problem) throw invalidArgument(`video plan: ${problem}`);
    return plan.type === 'audio' ? encodeAudio(ctx, plan) : encodeSegment(ctx, plan);
  },
};

/**
 * What in a plan is not as the coordinator makes it, or undefined. Its fields go into file names
 * and ffmpeg's arguments: a plan from a buggy or impersonated coordinator with an `input` of
 * `/../../x` had ffmpeg write outside the worker's temp folder, and one with text in `width` would
 * reach the filter graph.
 */
function planProblem(plan: VideoSubtaskPlan): string | undefined {
  const whole = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (plan.type !== 'audio' && plan.type !== 'segment') return 'an unknown plan type';
  if (!whole(plan.input)) return 'input is not a whole number';
  if (plan.type === 'audio') return plan.track === undefined || whole(plan.track) ? undefined : 'track is not a whole number';
  if (!whole(plan.segment) || !whole(plan.width) || !whole(plan.height) || !whole(plan.frames)) return 'segment, width, height and frames must be whole numbers';
  if (plan.passes !== undefined && plan.passes !== 2) return 'passes is not 2';
  if (plan.pixFmt !== undefined && plan.pixFmt !== 'yuv420p10le') return `pixFmt ${JSON.stringify(plan.pixFmt)} is not one this worker encodes`;
  if (plan.fps && !(Number.isFinite(plan.fps.rate) && plan.fps.rate > 0 && Number.isFinite(plan.fps.firstSlot))) return 'fps is not a rate';
  if (![plan.lo, plan.hi ?? 0, plan.first, plan.rotation ?? 0].every(Number.isFinite)) return 'a time is not a number';
  if (plan.orient !== undefined && !(Array.isArray(plan.orient) && plan.orient.every((f) => typeof f === 'string' && ORIENTATION_FILTERS.test(f)))) return 'orient is not a list of flips and transposes';
  if (plan.colour !== undefined) {
    const problem = colourProblem(plan.colour);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Encodes one segment, and the audio track beside it when the plan carries it (both at once: the
 * audio's single thread is a few percent of the video's work); exported for in-process tests.
 */
export async function encodeSegment(ctx: ProcessContext<VideoJobParams>, plan: VideoSegmentPlan): Promise<ProcessResult> {
  if (!plan.audio) return encodeRange(ctx, plan);
  // Either failing stops the other, and the first failure is the subtask's.
  const both = new AbortController();
  const stop = (): void => both.abort(ctx.signal.reason);
  if (ctx.signal.aborted) stop();
  else ctx.signal.addEventListener('abort', stop, { once: true });
  let failure: { err: unknown } | undefined;
  const failed = (err: unknown): never => {
    failure ??= { err };
    both.abort(err);
    throw err;
  };
  try {
    const shared = { ...ctx, signal: both.signal };
    const [video, audio] = await Promise.allSettled([
      encodeRange(shared, plan).catch(failed),
      // The segment's progress stands for both.
      encodeAudio({ ...shared, progress: () => undefined }, { type: 'audio', ...plan.audio }).catch(failed),
    ]);
    if (failure) throw failure.err;
    if (video.status !== 'fulfilled' || audio.status !== 'fulfilled') throw new Error('unreachable: a settled encode neither failed nor finished');
    const result: VideoSegmentResult = { ...(video.value.result as VideoSegmentResult), audio: audio.value.result as { channels: number } };
    return { outputs: [...video.value.outputs, ...audio.value.outputs], result };
  } finally {
    ctx.signal.removeEventListener('abort', stop);
  }
}

/**
 * Where the decoder first complains of a segment's frames, seconds from the video's start (review
 * VID2: the message gave the segment's start, and an MPEG-TS's clock): the segment decoded again on
 * one thread, each frame's time logged as it comes out; the complaint comes while the frame after
 * the last one out is decoded (give or take the frames B-frames hold back). Only for a damaged
 * segment; the segment's start where the log tells nothing.
 */
async function damageStart(plan: VideoSegmentPlan, decodeInput: string[], trim: string, base: number, signal: AbortSignal): Promise<number> {
  let last: number | undefined;
  let at: number | undefined;
  await runFfmpeg(['-threads', '1', '-noautorotate', ...decodeInput, '-map', '0:v:0', '-vf', `${trim},showinfo`, '-f', 'null', '-'], {
    signal,
    input: plan.source,
    onStderrLine: (line) => {
      if (at !== undefined) return;
      const shown = /\[Parsed_showinfo[^\]]*\].*\bpts_time:\s*(-?[\d.]+)/.exec(line);
      if (shown) last = Number(shown[1]) + base;
      else if (DECODE_ERROR.test(line)) at = last ?? plan.first;
    },
  }).catch((err: unknown) => {
    if (signal.aborted) throw err;
  });
  return shownTime(plan, at ?? plan.first);
}

/** Encodes the frames of one segment. */
async function encodeRange(ctx: ProcessContext<VideoJobParams>, plan: VideoSegmentPlan): Promise<ProcessResult> {
  const { signal } = ctx;
  const chunks = plan.chunks.map((name) => fileNamed(ctx.inputs, name));
  const label = `segment ${plan.segment + 1}`;
  // The concat demuxer shifts the chunks so the first one starts at 0; it uses each file's own start
  // time, so each chunk's duration is given from the same numbers: the plan's (saving an ffprobe
  // process per chunk, 0.15-0.3 s before every segment), or probed here for a plan from before
  // it carried them.
  const starts =
    plan.chunkStarts ??
    (await Promise.all(
      chunks.map(async (c) => {
        const r = await runFfprobe<{ format?: { start_time?: string } }>(['-show_entries', 'format=start_time', '-f', chunkFormatOf(c.name), '-i', c.path], { signal, input: label });
        return Number(r.format?.start_time ?? 0);
      }),
    ));
  const base = starts[0]!;
  const list = path.join(ctx.workDir, 'chunks.txt');
  const lines = ['ffconcat version 1.0'];
  chunks.forEach((c, i) => {
    lines.push(`file '${c.path.replace(/'/g, "'\\''")}'`);
    // Each chunk's start as planned, not as the demuxer reads it: a NUT chunk of MPEG-1/2 video has
    // no decode time on its first packet, so it reads none (0), and every chunk after the first was
    // placed its whole start too late (the trim then dropped its frames).
    lines.push(`inpoint ${starts[i]!.toFixed(6)}`);
    if (i + 1 < chunks.length) lines.push(`duration ${(starts[i + 1]! - starts[i]!).toFixed(6)}`);
  });
  await writeFile(list, lines.join('\n') + '\n');

  const rel = (t: number): string => Math.max(0, t - base).toFixed(6);
  const filters: string[] = [];
  // The source's colour description first, before anything converts the frames (see VideoSegmentPlan.colour).
  if (plan.colour) filters.push(colourFilter(plan.colour));
  const trim = plan.hi === null ? `trim=start=${rel(plan.lo)}` : `trim=start=${rel(plan.lo)}:end=${rel(plan.hi)}`;
  filters.push(trim);
  // Scaled before it is turned: the scale filter follows a picture whose size changes part-way (a
  // recording adapting to its bandwidth, captures joined), which the graph is then not rebuilt for
  // (-reinit_filter 0 below): a rebuilt graph started setpts (and fps) again from that frame, whose
  // frames all landed at the segment's start (review VWILD). A transpose after it sees one size only.
  const orient = plan.orient ?? rotationFilters(plan.rotation);
  const turned = orient.some((f) => f.startsWith('transpose'));
  const [w, h] = turned ? [plan.height, plan.width] : [plan.width, plan.height];
  // Lossless of a full-range source: no conversion to limited range (every picture changed).
  filters.push(plan.keepFullRange ? `scale=${w}:${h}:in_range=pc:out_range=pc` : `scale=${w}:${h}`);
  filters.push(...orient);
  if (plan.fps) {
    // Frames are sampled on the job-wide grid (first slot given), holding the last frame shown.
    filters.push(`fps=fps=${rateExpression(plan.fps.rate)}:start_time=${rel(plan.fps.firstSlot)}:round=up`);
    // At the very end of the video the last frame is held until every planned slot is filled.
    filters.push(`tpad=stop_mode=clone:stop_duration=${(2 / plan.fps.rate).toFixed(6)}`);
  }
  filters.push(`format=${plan.pixFmt ?? 'yuv420p'}`);
  // The segment starts at 0: an MP4 records a later start as an edit list in milliseconds, which
  // would move its frames off the output grid (the stitch places each segment by its given duration).
  filters.push('setpts=PTS-STARTPTS');

  // MP4, not Matroska: Matroska rounds every timestamp to 1 ms, which turns 60 fps into alternating
  // 16/17 ms frames (avg 200000/3333) in the stitched file; MP4 keeps the encoder's time base exactly.
  const out = path.join(ctx.workDir, `segment-${plan.input}-${String(plan.segment).padStart(5, '0')}.mp4`);
  const expectedSpan = plan.frames;
  const decodeInput = ['-format_whitelist', `concat,${chunkFormatOf(plan.chunks[0]!)}`, '-f', 'concat', '-safe', '0', '-auto_convert', '0', '-i', list];
  const encodeArgs = (pass: EncodePass | undefined, output: string[]): string[] => [
    // -auto_convert 0: the concat demuxer's own h264/hevc to Annex B conversion (for stream copy into
    // MPEG-TS; a decoder takes either form) failed on a damaged packet and ended the read there.
    // The decoder keeps to the slot's threads too, as the encoder does: by default it took a frame
    // thread per core beside each slot's encode (README "Sizing slots").
    '-y', '-threads', decoderThreads(ctx.threads), '-noautorotate', '-reinit_filter', '0', ...decodeInput,
    '-map', '0:v:0', '-an', '-sn', '-dn', '-vf', filters.join(','),
    // Source timestamps pass through untouched (VFR stays VFR); resampling, when asked, is the fps filter's.
    fpsModeFlag(), 'passthrough', '-frames:v', String(plan.frames),
    // Without a resampling fps the encoder's time base must be the source's: ffmpeg's default (one over
    // the stream's guessed frame rate, 1/22.5 s for a 30-then-15 fps clip) rounds VFR timestamps onto
    // a coarse grid, giving frames the same timestamp (non-monotonic DTS at the stitch).
    ...(plan.fps ? [] : ['-enc_time_base:v', '-1']),
    ...videoEncoderArgs(ctx.params, plan.encoder, ctx.threads, plan.pixFmt, pass),
    ...output,
  ];
  const t0 = plan.first - base;
  const encode = (pass: EncodePass | undefined, output: string[], share: [number, number], doing: string): ReturnType<typeof runFfmpeg> =>
    runFfmpeg(encodeArgs(pass, output), {
      signal,
      input: label,
      // The statistics files of a two-pass encode are named relative to it (see EncodePass).
      cwd: ctx.workDir,
      onProgress: (t) => {
        if (plan.duration > 0) ctx.progress(share[0] + (share[1] - share[0]) * Math.min(1, Math.max(0, (t - t0) / plan.duration)), `${doing} ${label}`);
      },
    }).catch((err: unknown) => {
      throw encodeFailure(err, plan, label, signal);
    });
  // With a bitrate, a first pass measures the segment (x264's fast first pass; both passes took
  // 1.3-1.55x one pass's time at 720p, the second reusing the first's frame types): a single pass
  // starts its rate control afresh on every segment, and starved the half second after each
  // segment's first frame (2.7-3.8 dB under one ffmpeg run; review V58).
  // As the coordinator planned it (its --passes, and only where every worker takes two), not this
  // worker's reading of the params: a coordinator of an earlier release plans none.
  const twoPass = plan.passes === 2 && ctx.params.bitrate !== undefined && takesTwoPasses(plan.encoder, plan.fps !== null);
  // The first pass took 38-56% of the time (720p, medium and veryfast).
  if (twoPass) await encode({ pass: 1, stats: 'pass' }, ['-f', 'null', '-'], [0, 0.45], 'analysing');
  const { frames, stderr } = await encode(twoPass ? { pass: 2, stats: 'pass' } : undefined, ['-f', 'mp4', out], twoPass ? [0.45, 1] : [0, 1], 'encoding');
  // ffmpeg's own count of the frames it encoded (a probe of the file cost 0.1-0.2 s on the critical
  // path); the coordinator counts the file's packets when it stitches.
  if (frames !== expectedSpan) {
    // Fewer frames than the segment's packets, with the decoder's complaints: the source is damaged
    // there, and any worker would decode the same (its chunks' checksums were checked on the way).
    const damage = frames !== undefined && frames < expectedSpan ? DECODE_ERROR.exec(stderr)?.[0] : undefined;
    if (damage) {
      const at = await damageStart(plan, decodeInput, trim, base, signal);
      throw invalidArgument(
        `${plan.source}: the video is damaged from about ${at.toFixed(1)} s (${label}, ${plan.duration.toFixed(1)} s long): ${expectedSpan - frames!} of its ${expectedSpan} frames cannot be decoded (ffmpeg: ${decoderComplaint(damage)}); repair or re-encode the file first`,
        plan.source,
      );
    }
    throw dataLoss(`${label}: encoded ${frames ?? 'an unknown number of'} frames where ${expectedSpan} were planned`);
  }
  ctx.progress(1, `${label} done`);
  // Every frame came out, yet the decoder complained: it concealed damage in frames, or (resampling)
  // the fps filter filled the frames it lost by holding the one before. The job says so.
  const complaint = DECODE_ERROR.exec(stderr)?.[0];
  const result: VideoSegmentResult = { frames, file: path.basename(out), ...(complaint && { damage: decoderComplaint(complaint), damageAt: await damageStart(plan, decodeInput, trim, base, signal) }) };
  return { outputs: [{ name: path.basename(out), path: out, source: plan.source }], result };
}

/**
 * What an encode's failure means for the subtask. The coordinator cut and checked this input
 * already: a failure here is this machine's problem. One runFfmpeg already calls this machine's
 * (its disk full: UNAVAILABLE, naming the segment) keeps its status; a decoder's verdict on the
 * chunk becomes a retryable DATA_LOSS.
 */
function encodeFailure(err: unknown, plan: VideoSegmentPlan, label: string, signal: AbortSignal): unknown {
  if (signal.aborted || !(err instanceof Error)) return err;
  if (err instanceof TesseraError && err.code !== status.INVALID_ARGUMENT) return err;
  const why = err.message.startsWith(`${label}: `) ? err.message.slice(label.length + 2) : err.message;
  // An encoder that will not open for the plan's picture and rate (one ENCODER_LIMITS does not
  // know): the plan's fault, the same on every worker, not data lost on the way here. Short of
  // memory, this worker's trouble: another may open it (review K13).
  if (ENCODER_OPEN_FAILURE.test(why) && RESOURCE_SHORTAGE.test(why)) {
    return new TesseraError(status.UNAVAILABLE, `${label}: ${plan.encoder} could not start on this worker for want of memory (${why.replace(/^.*?ffmpeg failed: /, '')})`, { retryable: true });
  }
  if (ENCODER_OPEN_FAILURE.test(why)) {
    return new TesseraError(status.INTERNAL, `${label}: ${plan.encoder} would not encode ${plan.width}x${plan.height}${plan.outFps ? ` at ${+plan.outFps.toFixed(3)} fps` : ''} (${why.replace(/^.*?ffmpeg failed: /, '')}); a fault in Tessera's plan, not in the input: ask another size, rate or --codec`, { retryable: false });
  }
  return dataLoss(`${label}: encode failed: ${why}`);
}

/** The audio kind's codec of each encoder the video kind's audio uses: the channels it writes (MP3 two, Opus a 2.1 track as 5.1) are the same. */
const AUDIO_CODEC_OF: Readonly<Record<string, AudioCodec>> = { aac: 'aac', libopus: 'opus', libmp3lame: 'mp3' };

/** Encodes the audio track once; exported for in-process tests. */
export async function encodeAudio(ctx: ProcessContext<VideoJobParams>, plan: VideoAudioPlan): Promise<ProcessResult> {
  const { signal } = ctx;
  const src = fileNamed(ctx.inputs, plan.file);
  // Errors name the input the track came from, not the extracted file.
  const channels = plan.sourceChannels ?? (await probeMedia(src.path, { signal, input: plan.source })).audio[0]?.channels ?? 2;
  // MP4-family files carry the encoder delay in an edit list, so the track starts at 0 when demuxed.
  const { ext, muxer } = AUDIO_INTERMEDIATE[plan.encoder] ?? AUDIO_INTERMEDIATE['aac']!;
  const out = path.join(ctx.workDir, `audio-${plan.input}.${ext}`);
  const args = ['-y', '-i', src.path, '-map', '0:a:0', '-vn', ...audioEncoderArgs(plan.encoder, bitrateFor(plan.encoder, ctx.params.audioBitrate, ctx.params.audioBitrateGiven ?? false, outputChannels({ codec: AUDIO_CODEC_OF[plan.encoder] ?? 'aac', channels: 0 }, channels, plan.sourceLayout)), channels, plan.sourceLayout), '-f', muxer, out];
  await runFfmpeg(args, {
    signal,
    input: plan.source,
    onProgress: (t) => ctx.progress(plan.duration > 0 ? Math.min(1, t / plan.duration) : 0, 'encoding audio'),
  }).catch((err: unknown) => {
    // The source track was read (probed above): a muxer or encoder that cannot set up our own
    // intermediate is Tessera's fault, not the input's, and running it again will not help.
    if (signal.aborted || !(err instanceof TesseraError) || err.code !== status.INVALID_ARGUMENT || !OUTPUT_SETUP_FAILURE.test(err.message)) throw err;
    throw new TesseraError(status.INTERNAL, `${plan.source}: audio: could not write the ${plan.encoder} track (${err.message.replace(/^.*?ffmpeg failed: /, '')}); a fault in Tessera, not in the input`, { retryable: false });
  });
  ctx.progress(1, 'audio done');
  return { outputs: [{ name: path.basename(out), path: out, source: plan.source }], result: { channels } };
}

/**
 * Container of the encoded audio track, per encoder. MP4 (not its `ipod` flavour, .m4a, which
 * cannot hold MP3) keeps the encoder's priming in an edit list, so the stitch finds the track
 * starting at 0; Opus goes into Matroska, which signals its pre-skip.
 */
const AUDIO_INTERMEDIATE: Readonly<Record<string, { ext: string; muxer: string }>> = {
  aac: { ext: 'm4a', muxer: 'ipod' },
  libmp3lame: { ext: 'mp4', muxer: 'mp4' },
  libopus: { ext: 'mka', muxer: 'matroska' },
};

/** What ffmpeg says when the video encoder refuses its settings as it opens. */
const ENCODER_OPEN_FAILURE = /Error while opening encoder|Error setting encoder parameters/;
/** What an encoder says when the machine, not its settings, is short (SVT-AV1's "insufficient resources"). */
const RESOURCE_SHORTAGE = /insufficient resources|allocate memory|Cannot allocate memory|out of memory|ENOMEM/i;

/** What ffmpeg says when it cannot set up an output (muxer, encoder), as opposed to reading the input. */
const OUTPUT_SETUP_FAILURE = /Could not write header|Error initializing output stream|Could not find tag for codec|Error while opening encoder|Error opening output file/;

function fileNamed(files: LocalFile[], name: string): LocalFile {
  const f = files.find((x) => x.name === name);
  if (!f) throw invalidArgument(`subtask input ${name} is missing`);
  return f;
}
