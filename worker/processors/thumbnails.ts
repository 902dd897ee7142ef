/**
 * Worker side of the `thumbnails` kind: grabs the frames at a list of times from the input and
 * writes them scaled as JPEG/WebP. The frame for time t is the first one at or after t, as
 * `ffmpeg -ss t -i input -frames:v 1` gives it; the coordinator sends each thumbnail's frame's own
 * time (the frame on screen at the thumbnail's time), so that it is that frame.
 *
 * Sparse times are each an input-side seek (decoding from the keyframe before it), several seeks
 * sharing one ffmpeg process, so thumbnails far apart in a long video stay cheap. Dense times (2 s
 * apart or less, as scrubbing previews are) are picked in one decoding pass instead: a seek costs an
 * input's set-up and a decode from its keyframe, which for times this close is more than decoding
 * the frames between them. Measured on a 60 s 720p30 H.264 clip, one thread: every 0.25 s, 47.0 s
 * seeking and 4.2 s in passes; every 1 s, 11.4 s and 2.5 s (4.8 s and 2.1 s with a keyframe each
 * second); every 2 s with a keyframe each second, 2.6 s and 1.9 s; every 5 s, 2.3 s either way.
 */
import { copyFile, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { dataLoss, invalidArgument } from '../../shared/errors.js';
import { decoderComplaint, decoderThreads, fpsModeFlag, runFfmpeg } from '../../shared/ffmpeg.js';
import type { ProcessContext, ProcessOutput, ProcessResult, WorkerProcessor } from '../../shared/job-kind.js';
import { parseThumbnailParams, type ThumbnailJobParams } from '../../shared/kinds/thumbnails-params.js';
import { thumbnailName, type ThumbnailRangePlan, type ThumbnailsResult } from '../../shared/media/video-thumbnails.js';

/** Thumbnails sharing one ffmpeg process when seeking (each is one more demuxer/decoder in it). */
const PER_PROCESS = 12;

/** Times at most this far apart on average are picked in one decoding pass rather than seeked. */
export const DENSE_GAP_SECONDS = 2;

/**
 * Times one decoding pass picks at most. Its select expression has a term for each, and ffmpeg 5.1
 * fails to build a filter whose expression holds somewhere between 60 and 100 of them ("Cannot
 * allocate memory"); a pass of 48 decodes its tail at most once per 48 thumbnails.
 */
const PER_PASS = 48;

/** Thumbnails picked by number in one ffmpeg run (one decode from the start): PER_PASS to a branch of its filter graph. */
const PER_RUN = 20 * PER_PASS;

/**
 * How far past its last time a pass (or a seek) decodes: the frame shown at a time can start up to a
 * frame's duration later, and a low frame rate or a variable one has long frames.
 */
const TAIL_SECONDS = 2;

/**
 * How far before a time a frame may lie and still be the frame at it: the seek offset ffmpeg
 * subtracts is rounded into the stream's time base (half a 90 kHz tick, 6 us; of 1/12800, 39 us;
 * of Matroska's millisecond, 0.5 ms), which put a frame exactly at a time just under it, and the
 * frame after it was taken (or, at the last frame, none at all: the input failed). Under a
 * millisecond: a time a millisecond after a frame still gets the next one, as `-ss` gives it.
 */
const SLACK_SECONDS = 0.0005;

/** The `thumbnails` kind as the worker registry sees it. */
export const thumbnailsProcessor: WorkerProcessor<ThumbnailJobParams> = {
  name: 'thumbnails',
  params: (spec) => parseThumbnailParams(spec.thumbnails),
  process: grabThumbnails,
};

/** What both ways of grabbing need: the input, where each thumbnail goes, and how to encode it. */
export interface GrabSpec {
  input: string;
  /** Seek positions in seconds from the start of the file, ascending. */
  times: number[];
  /** Output file of each time (absolute). */
  outputs: string[];
  /** Where to start decoding for each time (ThumbnailRangePlan.seekFrom); absent: at the time. */
  from?: number[] | undefined;
  width: number;
  height: number;
  format: ThumbnailJobParams['format'];
  threads: number;
  signal?: AbortSignal | undefined;
  /** The input's client name, for error messages. */
  source: string;
  /** The picture track's stream index (ThumbnailRangePlan.stream); absent: the first video stream. */
  stream?: number | undefined;
  /** Told the decoder's complaint where an ffmpeg run of the grab could not decode the video cleanly. */
  onDamage?: ((complaint: string) => void) | undefined;
}

/**
 * A decoder's complaint of damage in the frames it decodes. Not the ones a decode started without
 * its parameter sets or references gives (`decode_slice_header error`, "non-existing PPS": a seek
 * into an MPEG-TS, a capture that starts part-way into a group of pictures), which are no damage.
 */
const DAMAGE = /^.*(?:error while decoding MB|concealing \d+ [^\n]*errors|Invalid NAL unit size|corrupt(?:ed)? (?:input|frame|packet)).*$/i;

/**
 * Runs one of a grab's ffmpeg processes; the first decoder complaint of damage in its log goes to
 * `spec.onDamage`. Those before "Stream mapping:" are not counted: they come from the frames ffmpeg
 * decodes to learn the streams as it opens a file, whatever the seek (review S56).
 */
async function runGrab(args: string[], spec: Pick<GrabSpec, 'signal' | 'source' | 'onDamage'> & { onProgress?: (seconds: number) => void }, cwd?: string): Promise<void> {
  let mapped = false;
  let complaint: string | undefined;
  await runFfmpeg(args, {
    signal: spec.signal,
    input: spec.source,
    ...(cwd !== undefined && { cwd }),
    ...(spec.onProgress && { onProgress: spec.onProgress }),
    onStderrLine: (line) => {
      if (line.startsWith('Stream mapping:')) mapped = true;
      else if (mapped && complaint === undefined && DAMAGE.test(line)) complaint = decoderComplaint(line);
    },
  });
  if (complaint !== undefined) spec.onDamage?.(complaint);
}

async function grabThumbnails(ctx: ProcessContext<ThumbnailJobParams>): Promise<ProcessResult> {
  const plan = ctx.plan as ThumbnailRangePlan;
  const input = ctx.inputs[0];
  if (!input) throw invalidArgument('thumbnails subtask has no input');
  const outputs: ProcessOutput[] = plan.numbers.map((n) => {
    const name = thumbnailName(n, ctx.params.format);
    return { name, path: path.join(ctx.workDir, name), source: plan.source };
  });
  const n = plan.times.length;
  // A damaged video gives thumbnails of smeared blocks, or an earlier picture, with nothing but the
  // decoder's complaints to tell (review VID1): the job says which.
  const damaged: number[] = [];
  let damage: string | undefined;
  if (plan.frames) {
    for (let i = 0; i < n; i += PER_RUN) {
      // One decode from the start for them all: a complaint is the run's, for each of its thumbnails
      // (a frame the decoder could not make shifts the numbers of those after it, so which ones
      // show damage cannot be told apart here).
      const onDamage = (c: string): void => {
        damage ??= c;
        if (!damaged.includes(plan.numbers[i]!)) damaged.push(...plan.numbers.slice(i, i + PER_RUN));
      };
      await grabByNumber({ input: input.path, stream: plan.stream, frames: plan.frames.slice(i, i + PER_RUN), outputs: outputs.slice(i, i + PER_RUN).map((o) => o.path), width: plan.width, height: plan.height, format: ctx.params.format, threads: ctx.threads, signal: ctx.signal, source: plan.source, onDamage }, ctx.workDir);
      ctx.progress(Math.min(1, (i + PER_RUN) / n), `${Math.min(n, i + PER_RUN)}/${n} thumbnails`);
    }
    return checkOutputs(outputs, plan, { damaged, damage });
  }
  const dense = n > 1 && (plan.times[n - 1]! - plan.times[0]!) / (n - 1) <= DENSE_GAP_SECONDS;
  const per = dense ? PER_RUN : PER_PROCESS;
  const slice = (spec: GrabSpec, from: number, to: number): GrabSpec => ({ ...spec, times: spec.times.slice(from, to), outputs: spec.outputs.slice(from, to), from: spec.from?.slice(from, to) });
  for (let i = 0; i < n; i += per) {
    const spec: GrabSpec = {
      input: input.path,
      times: plan.times.slice(i, i + per),
      outputs: outputs.slice(i, i + per).map((o) => o.path),
      from: plan.seekFrom?.slice(i, i + per),
      width: plan.width,
      height: plan.height,
      format: ctx.params.format,
      threads: ctx.threads,
      signal: ctx.signal,
      source: plan.source,
      stream: plan.stream,
    };
    let complained = false;
    spec.onDamage = (c) => {
      damage ??= c;
      complained = true;
    };
    const told = (k: number): void => ctx.progress(Math.min(1, (i + k) / n), `${i + k}/${n} thumbnails`);
    // The pass only saves time: where it cannot do the job, seeking for each time still can.
    const passed = dense
      ? await grabInOneDecode(spec, ctx.workDir, (f) => told(Math.floor(f * spec.times.length))).catch((err: unknown) => {
          if (ctx.signal.aborted) throw err;
          return err as Error;
        })
      : [false];
    // The branches that did not give every thumbnail (all of them where the run failed): seeked.
    const branch = dense ? PER_PASS : spec.times.length;
    const starts = Array.from({ length: Math.ceil(spec.times.length / branch) }, (_, b) => b * branch);
    const left = passed instanceof Error ? starts : starts.filter((_, b) => !passed[b]);
    if (dense && left.length > 0) ctx.log.warn({ input: plan.source, ...(passed instanceof Error ? { err: passed.message } : { thumbnails: left.reduce((sum, from) => sum + Math.min(branch, spec.times.length - from), 0) }) }, 'one decoding pass did not give every dense thumbnail; seeking for each instead');
    for (const from of left) await grabBySeeking(slice(spec, from, from + branch));
    // Which of them (a damaged file only): the decode of each branch's span alone (dense), then of
    // each thumbnail of a branch that complains, from its keyframe to its time alone.
    if (complained) {
      for (const b of starts) {
        const last = Math.min(spec.times.length, b + branch) - 1;
        if (dense && last > b && !(await decodeComplains(spec, b, last))) continue;
        for (let k = b; k <= last; k++) if (await decodeComplains(spec, k)) damaged.push(plan.numbers[i + k]!);
      }
    }
    told(spec.times.length);
  }
  return checkOutputs(outputs, plan, { damaged, damage });
}

async function checkOutputs(outputs: ProcessOutput[], plan: ThumbnailRangePlan, found: { damaged: number[]; damage: string | undefined }): Promise<ProcessResult> {
  for (const o of outputs) {
    // An empty or missing file means ffmpeg found no frame at that time: worth another attempt.
    const size = await stat(o.path).then((s) => s.size, () => 0);
    if (size === 0) throw dataLoss(`${plan.source}: no frame came out for ${o.name}`);
  }
  const result: ThumbnailsResult = { count: outputs.length, ...(found.damaged.length > 0 && { damaged: found.damaged, damage: found.damage }) };
  return { outputs, result };
}

/** `list` in branches of {@link PER_PASS}: the most terms one select expression holds. */
function inBranches<T>(list: readonly T[]): T[][] {
  const branches: T[][] = [];
  for (let i = 0; i < list.length; i += PER_PASS) branches.push(list.slice(i, i + PER_PASS));
  return branches;
}

/**
 * The arguments after the input of one decode whose picture (after the filters `before`) is split
 * into a branch per filter chain of `chains`, branch `b` written as images `${prefix}-b-%05d.EXT`
 * (relative names: free of whatever the work folder's path holds), with `extra(b)` among its
 * output options.
 */
function splitDecode(spec: Pick<GrabSpec, 'format' | 'stream' | 'width' | 'height'>, before: string, chains: string[], prefix: string, extra: (b: number) => string[] = () => []): string[] {
  const { codec } = encoding(spec);
  const ext = spec.format === 'jpeg' ? 'jpg' : 'webp';
  const graph = [`[0:${pictureOf(spec)}]${before}split=${chains.length}${chains.map((_, b) => `[in${b}]`).join('')}`, ...chains.map((chain, b) => `[in${b}]${chain}[out${b}]`)];
  return ['-filter_complex', graph.join(';'), ...chains.flatMap((_, b) => ['-map', `[out${b}]`, fpsModeFlag(), 'passthrough', ...extra(b), ...codec, '-f', 'image2', '-start_number', '0', `${prefix}-${b}-%05d.${ext}`])];
}

/**
 * The frames of the given numbers (display order from 0, ascending), decoded from the start of the
 * input with no seek (see ThumbnailRangePlan.frames), to `outputs` in order.
 */
export async function grabByNumber(spec: Omit<GrabSpec, 'times' | 'from'> & { frames: number[] }, workDir: string): Promise<void> {
  const { scale } = encoding(spec);
  const wanted = [...new Set(spec.frames)].sort((a, b) => a - b);
  const ext = spec.format === 'jpeg' ? 'jpg' : 'webp';
  const prefix = `frames-${process.hrtime.bigint()}`;
  // One decode for them all: the decoded stream is split into branches of PER_PASS numbers each (a
  // select expression holds no more), each written to files of its own. A run per PER_PASS, each
  // decoding from the start again, made the work grow with the square of the count.
  const branches = inBranches(wanted);
  const split = splitDecode(spec, '', branches.map((set) => `select='${set.map((f) => `eq(n,${f})`).join('+')}',${scale}`), prefix, (b) => ['-frames:v', String(branches[b]!.length)]);
  await runGrab(['-y', '-threads', decoderThreads(spec.threads), '-i', spec.input, ...split], spec, workDir);
  const file = (f: number): string => {
    const k = wanted.indexOf(f);
    return path.join(workDir, `${prefix}-${Math.floor(k / PER_PASS)}-${String(k % PER_PASS).padStart(5, '0')}.${ext}`);
  };
  for (const [i, f] of spec.frames.entries()) {
    // A frame several thumbnails share is copied for all but the last of them, then moved.
    if (spec.frames.slice(i + 1).includes(f)) await copyFile(file(f), spec.outputs[i]!);
    else await rename(file(f), spec.outputs[i]!).catch(() => undefined);
  }
}

/** The scaling and encoding every thumbnail gets. */
function encoding(spec: Pick<GrabSpec, 'width' | 'height' | 'format'>): { scale: string; codec: string[] } {
  const jpeg = spec.format === 'jpeg';
  // The planner sized the box to the displayed aspect: square pixels in it, or viewers would stretch
  // an anamorphic source's picture again. Full-range YUV is what JPEG decoders expect; libwebp takes
  // plain yuv420p. Rotation metadata is applied by ffmpeg's autorotate; the planner sized the box after it.
  return {
    scale: `scale=${spec.width}:${spec.height},setsar=1${jpeg ? ',format=yuvj420p' : ''}`,
    codec: jpeg ? ['-c:v', 'mjpeg', '-q:v', '3'] : ['-c:v', 'libwebp', '-quality', '80'],
  };
}

/**
 * The input option that seeks to `t`: none at the start. An MPEG-TS with B-frames decodes its first
 * keyframe before the file's start time, and `-ss 0` (a seek by decode time) landed past it: the
 * first GOP was never decoded (review THOPT).
 */
function seekTo(t: number): string[] {
  return t > 0 ? ['-ss', t.toFixed(6)] : [];
}

/** The stream specifier of the picture track in `spec.input`. */
function pictureOf(spec: { stream?: number | undefined }): string {
  return spec.stream === undefined ? 'v:0' : String(spec.stream);
}

/**
 * Whether the decoder complains of damage in the frames the thumbnail at `spec.times[k]` is decoded
 * from (a damaged file only): from its seek (its keyframe; a plan's seekFrom, a little before it,
 * may take in the end of the group of pictures before, whose damage is then said of it too) to its
 * time, on one thread (frame threads would decode past it); with `last`, to the time of thumbnail
 * `last` (those of a branch at once). A run that fails outright says as much.
 */
async function decodeComplains(spec: GrabSpec, k: number, last = k): Promise<boolean> {
  const t = spec.times[last]!;
  const from = Math.min(spec.from?.[k] ?? spec.times[k]!, spec.times[k]!);
  let complained = false;
  try {
    await runGrab(['-threads', '1', ...seekTo(from), '-t', (t - from + 0.05).toFixed(6), '-i', spec.input, '-map', `0:${pictureOf(spec)}`, '-f', 'null', '-'], { signal: spec.signal, source: spec.source, onDamage: () => (complained = true) });
  } catch (err) {
    if (spec.signal?.aborted) throw err;
    return true;
  }
  return complained;
}

/** One input-side seek per time, {@link PER_PROCESS} of them in one ffmpeg process. */
export async function grabBySeeking(spec: GrabSpec): Promise<void> {
  const { scale, codec } = encoding(spec);
  for (let i = 0; i < spec.times.length; i += PER_PROCESS) {
    const times = spec.times.slice(i, i + PER_PROCESS);
    const args: string[] = ['-y', '-threads', decoderThreads(spec.threads)];
    // `-t` bounds each input: ffmpeg 5 would otherwise decode every seeked input to the end of the
    // file after its one-frame output is done.
    // From a point before the time (seekFrom), the frames before the time are passed over here.
    // Never after the time (a plan's point for a time before the video's first keyframe).
    const from = (k: number): number => Math.min(spec.from?.[i + k] ?? times[k]!, times[k]!);
    times.forEach((t, k) => args.push(...seekTo(from(k)), '-t', (t - from(k) + TAIL_SECONDS).toFixed(6), '-i', spec.input));
    times.forEach((t, k) => {
      const skip = from(k) < t ? `select='gte(t,${Math.max(0, t - from(k) - SLACK_SECONDS).toFixed(6)})',` : '';
      args.push('-map', `${k}:${pictureOf(spec)}`, '-frames:v', '1', '-vf', `${skip}${scale}`, ...codec, '-f', 'image2', '-update', '1', spec.outputs[i + k]!);
    });
    await runGrab(args, spec);
  }
}

/**
 * One seek to the first time, then one decoding pass to the last that keeps the first frame at or
 * after each time: a frame is selected when some time lies after the previously selected frame and
 * not after it. ffmpeg writes the selected frames in order and lists their timestamps; each time's
 * thumbnail is then the first selected frame at or after it (times closer than a frame share one).
 * False, with nothing to keep, where the pass did not give a frame for every time (a stream whose
 * frames have no timestamps, say): the caller then seeks for each time instead.
 */
export async function grabInOnePass(spec: GrabSpec, workDir: string): Promise<boolean> {
  return (await grabInOneDecode(spec, workDir)).every((ok) => ok);
}

/**
 * {@link grabInOnePass} for up to {@link PER_RUN} times: one seek and one decode for them all, the
 * decoded frames split into branches of {@link PER_PASS} times each (a select expression holds no
 * more), each selecting and writing its own. A pass per PER_PASS times set up the input, seeked and
 * decoded a group of pictures and {@link TAIL_SECONDS} more for each: a quarter of the decoding of
 * thumbnails a third of a second apart. Says for each branch whether it gave a frame for every one
 * of its times (moved to its outputs); a branch that did not leaves its outputs to the caller.
 */
export async function grabInOneDecode(spec: GrabSpec, workDir: string, onProgress?: (fraction: number) => void): Promise<boolean[]> {
  const { scale } = encoding(spec);
  // The seek: to the first time, or to a point before it (seekFrom).
  const t0 = Math.min(spec.from?.[0] ?? spec.times[0]!, spec.times[0]!);
  // Relative to the seek, as the frames' timestamps are after it, with SLACK_SECONDS for the
  // rounding of the seek offset.
  const rel = spec.times.map((t) => Math.max(0, t - t0 - SLACK_SECONDS));
  const branches = inBranches(rel);
  const ext = spec.format === 'jpeg' ? 'jpg' : 'webp';
  const prefix = `pass-${process.hrtime.bigint()}`;
  const listing = (b: number): string => `${prefix}-${b}.frames`;
  const chains = branches.map((times, b) => {
    // A branch's first frame is the first at or after its first time (the first frame out of the
    // seek, for the first branch, unless the seek was to a point before its time); every later time
    // wants the first frame past it.
    const first = b === 0 && t0 >= spec.times[0]! ? 'isnan(prev_selected_t)' : `gte(t,${times[0]!.toFixed(6)})*isnan(prev_selected_t)`;
    const terms = [first, ...times.slice(1).map((r) => `gte(t,${r.toFixed(6)})*lt(prev_selected_t,${r.toFixed(6)})`)];
    return `select='gt(${terms.join('+')},0)',metadata=mode=add:key=tessera_thumb:value=1,metadata=mode=print:key=tessera_thumb:file=${listing(b)},${scale}`;
  });
  const span = rel[rel.length - 1]! + TAIL_SECONDS;
  // Timestamps in microseconds (settb=AVTB), so that the listings' integers are exact times.
  const split = splitDecode(spec, 'settb=AVTB,', chains, prefix);
  await runGrab(['-y', '-threads', decoderThreads(spec.threads), ...seekTo(t0), '-t', span.toFixed(6), '-i', spec.input, ...split], { ...spec, ...(onProgress && { onProgress: (t: number) => onProgress(Math.min(1, t / span)) }) }, workDir);
  const done: boolean[] = [];
  for (const [b, times] of branches.entries()) {
    const listed = await readFile(path.join(workDir, listing(b)), 'utf8').catch(() => '');
    await rm(path.join(workDir, listing(b)), { force: true });
    const frames = [...listed.matchAll(/^frame:\s*\d+\s+pts:\s*(-?\d+)/gm)].map((m) => Number(m[1]) / 1e6);
    const pick: number[] = [];
    for (const r of times) {
      const k = pick.length === 0 ? 0 : frames.findIndex((f, j) => j >= pick[pick.length - 1]! && f >= r);
      if (k < 0 || k >= frames.length) break;
      pick.push(k);
    }
    const file = (k: number): string => path.join(workDir, `${prefix}-${b}-${String(k).padStart(5, '0')}.${ext}`);
    if (pick.length < times.length) {
      for (let k = 0; k < frames.length; k++) await rm(file(k), { force: true });
      done.push(false);
      continue;
    }
    for (const [i, k] of pick.entries()) {
      // A frame that several times share is copied for all but the last of them, then moved.
      const out = spec.outputs[b * PER_PASS + i]!;
      if (pick[i + 1] === k) await copyFile(file(k), out);
      else await rename(file(k), out);
    }
    done.push(true);
  }
  return done;
}
