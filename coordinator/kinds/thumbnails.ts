/**
 * Coordinator side of the `thumbnails` kind: picks the thumbnail times (every T seconds, or N evenly
 * spaced), partitions them into time ranges across workers (each worker reads the whole input,
 * seeking to sparse times or decoding through dense ones), then collects the images and, when
 * asked, builds sprite sheets plus a WebVTT index.
 */
import { copyFile, link } from 'node:fs/promises';
import path from 'node:path';
import type { CoordinatorKind, FinalOutput, ItemFailure, MergeContext, PlanContext, SpoolFile, SubtaskOutcome, SubtaskPlan } from '../../shared/job-kind.js';
import { invalidArgument } from '../../shared/errors.js';
import { MAX_THUMBNAILS, parseThumbnailParams, type ThumbnailJobParams } from '../../shared/kinds/thumbnails-params.js';
import { endsEarlyWarning, probeMedia, probeVideoIndex, type VideoIndex } from '../../shared/media/probe.js';
import { takeHeaderProbe } from '../input-check.js';
import { THUMBNAILS_FRAME_NUMBERS_FEATURE, THUMBNAILS_SEEK_FROM_FEATURE, THUMBNAILS_STREAM_FEATURE, thumbnailName, type ThumbnailRangePlan, type ThumbnailsResult } from '../../shared/media/video-thumbnails.js';
import { planEach, planEachArriving, type PlanOne } from './plan-each.js';
import { writeSprites } from './video-sprite.js';
import { foldedName, NameSet } from '../../shared/names.js';
import { countedMediaOverLimit } from '../../shared/limits.js';
import { CLOCK_JUMPS_WARNING, linearCopy } from './linear-clock.js';
import { spoolFile } from './video-chunks.js';

/** Thumbnails per subtask at least: fewer would spend more on process start-up and transfer than on work. */
const MIN_PER_SUBTASK = 4;

/** The `thumbnails` kind as the coordinator registry sees it. */
export const thumbnailsKind: CoordinatorKind<ThumbnailJobParams> = {
  name: 'thumbnails',
  validate: (params) => parseThumbnailParams(params as Parameters<typeof parseThumbnailParams>[0]),
  plansWhileReceiving: () => true,
  async plan(ctx) {
    const planOne: PlanOne<object> = (input, i) => planInput(ctx, input, i);
    if (ctx.arriving) return { subtasks: [], later: planEachArriving(ctx.arriving, planOne) };
    const { subtasks, errors } = await planEach(ctx.inputs, planOne);
    return { subtasks, errors };
  },
  async merge(ctx) {
    const outputs: FinalOutput[] = [];
    const errors: ItemFailure[] = [];
    // With several inputs each one's files are prefixed with its name without the extension, or
    // with its whole name where that is taken (clip.mp4 and clip.mov must not overwrite each other,
    // nor clip.mp4.mkv the first of them), numbered as a last resort.
    const bases = ctx.inputs.map((i) => path.parse(i.name).name);
    const prefixes = new Map<string, string>();
    const used = new NameSet();
    for (const [k, input] of ctx.inputs.entries()) {
      const base = bases[k]!;
      let p = bases.filter((b) => foldedName(b) === foldedName(base)).length > 1 ? input.name : base;
      if (used.has(p)) p = input.name;
      for (let n = 2; used.has(p); n++) p = `${input.name}-${n}`;
      used.add(p);
      // By the inputs submitted, not those accepted: with one of two videos refused at its upload,
      // the other's thumbnails came out unprefixed, as a job of one video names them.
      prefixes.set(input.name, (ctx.submitted ?? ctx.inputs.length) > 1 ? `${p}-` : '');
    }
    // Each input's subtasks, and each subtask's outputs by name, looked up once: per thumbnail, a
    // scan of every output made the merge of 10,000 thumbnails take seconds (N^2).
    const byInput = new Map<string, typeof ctx.results>();
    for (const r of ctx.results) for (const item of r.items) byInput.set(item, [...(byInput.get(item) ?? []), r]);
    for (const input of ctx.inputs) {
      const mine = byInput.get(input.name) ?? [];
      if (mine.length === 0) continue; // rejected at planning; its error is already reported
      const failed = mine.find((r) => !r.ok);
      if (failed) {
        errors.push(failed.error ? { ...failed.error, input: failed.error.input || input.name } : { input: input.name, code: 'INTERNAL', message: `${input.name}: ${failed.label} failed` });
        continue;
      }
      const prefix = prefixes.get(input.name)!;
      const plans = mine.map((r) => r.plan as ThumbnailRangePlan);
      const count = plans.reduce((a, p) => a + p.times.length, 0);
      const files: string[] = [];
      const made = new Map(mine.flatMap((r) => r.outputs).map((o) => [o.name, o]));
      for (let n = 1; n <= count; n++) {
        const name = thumbnailName(n, ctx.params.format);
        const file = made.get(name);
        if (!file) {
          errors.push({ input: input.name, code: 'DATA_LOSS', message: `${input.name}: ${name} is missing` });
          break;
        }
        files.push(file.path);
        const dest = path.join(ctx.outputDir, prefix + name);
        // A hard link, not a copy: a thousand thumbnails made a thousand files (an inode and a
        // copy each) and were read again for their checksums when published. The subtask's file
        // stays where it is, for a merge run again.
        const linked = await link(file.path, dest).then(() => true, () => false);
        if (!linked) await copyFile(file.path, dest);
        outputs.push({ name: prefix + name, path: dest, source: input.name, contentType: ctx.params.format === 'jpeg' ? 'image/jpeg' : 'image/webp', ...(linked && { linkOf: file.path }) });
      }
      warnDamaged(ctx, input.name, mine);
      if (files.length !== count || !ctx.params.sprite) continue;
      const { width, height } = plans[0]!;
      const cues = plans.flatMap((p) => p.cues);
      const names = await writeSprites(ctx.outputDir, { files, cues, width, height, ...ctx.params.sprite, format: ctx.params.format, prefix }, ctx.signal, ctx.workDir, (err) => ctx.log.warn({ err, input: input.name }, 'ffmpeg could not tile the sprite sheets; sharp makes them instead'));
      for (const n of names) outputs.push({ name: n, path: path.join(ctx.outputDir, n), source: input.name, contentType: n.endsWith('.vtt') ? 'text/vtt' : ctx.params.format === 'jpeg' ? 'image/jpeg' : 'image/webp' });
    }
    return { outputs, errors };
  },
};

/** Thumbnails named one by one in a warning; past these, how many more. */
const DAMAGED_NAMED = 8;

/**
 * Says which thumbnails the decoder complained of (ThumbnailsResult.damaged): a damaged video gives
 * smeared blocks, or an earlier picture, where it cannot be decoded (review VID1).
 */
function warnDamaged(ctx: MergeContext<ThumbnailJobParams>, input: string, mine: SubtaskOutcome[]): void {
  const at = new Map<number, number>();
  let damage: string | undefined;
  for (const r of mine) {
    const result = r.result as ThumbnailsResult | undefined;
    if (!result?.damaged?.length) continue;
    damage ??= result.damage;
    const plan = r.plan as ThumbnailRangePlan;
    // Each thumbnail's own time (its cue's start; the middle of its slice with --count), not the
    // time of the frame it shows, which is sent to the worker: on a screen capture seconds apart.
    for (const n of result.damaged) {
      const k = plan.numbers.indexOf(n);
      const cue = plan.cues[k];
      at.set(n, cue ? (ctx.params.count ? (cue[0] + cue[1]) / 2 : cue[0]) : (plan.times[k] ?? NaN));
    }
  }
  if (at.size === 0) return;
  const numbers = [...at.keys()].sort((a, b) => a - b);
  const named = numbers.slice(0, DAMAGED_NAMED).map((n) => `${n} (${at.get(n)!.toFixed(2)} s)`).join(', ');
  const more = numbers.length > DAMAGED_NAMED ? ` and ${numbers.length - DAMAGED_NAMED} more` : '';
  ctx.warn(input, `the video is damaged where thumbnail${numbers.length > 1 ? 's' : ''} ${named}${more} ${numbers.length > 1 ? 'were' : 'was'} taken (ffmpeg: ${damage}): ${numbers.length > 1 ? 'they' : 'it'} may show smeared blocks or an earlier picture; repair or re-encode the file for clean ones`);
}

/** One video's thumbnail subtasks: its times, split into ranges over the slots. */
async function planInput(ctx: PlanContext<ThumbnailJobParams>, given: SpoolFile, inputIndex: number): Promise<{ subtasks: SubtaskPlan[] }> {
  const subtasks: SubtaskPlan[] = [];
  let input = given;
  let info = await probeMedia(input.path, { signal: ctx.signal, input: input.name, given: takeHeaderProbe(input) });
  if (!info.video?.width || !info.video.height) throw invalidArgument(`${input.name}: has no video stream`, input.name);
  // An MPEG-PS's times generated where packets have none, as the video kind reads them: a VOB's
  // B-frame stream leaves them off, and a reference frame's decode time stood for its presentation
  // time, so the last times ran past the frames and the input failed DATA_LOSS (review K13). (Not
  // elsewhere: an AVI's generated times are not its frames'; it is picked by number.)
  const genpts = (f: string): boolean => f === 'mpeg';
  // The picture track, where it is not the first video stream (a cover or a proxy before the clip): by its index (review VWILD2).
  const stream = (i: typeof info): number | undefined => (i.pictureIsFirst ? undefined : i.video?.index);
  let index = await probeVideoIndex(input.path, { signal: ctx.signal, input: input.name, genpts: genpts(info.formatName), stream: stream(info) });
  // Recordings joined end to end (MPEG-TS or -PS): its video copied once, its clock run on across
  // each jump, as the video kind does; sought as it was, the second recording was never reached and
  // the times stopped at the first's end, without a word (review THOPT).
  const linear = await linearCopy(input.path, input.name, info.formatName, index, ['-map', `0:${info.video.index}`], ctx.workDir, `linear${inputIndex}`, ctx.signal);
  if (linear) {
    input = await spoolFile(linear, given.name);
    info = await probeMedia(linear, { signal: ctx.signal, input: input.name });
    index = await probeVideoIndex(linear, { signal: ctx.signal, input: input.name, genpts: genpts(info.formatName), stream: stream(info) });
    ctx.warn(input.name, CLOCK_JUMPS_WARNING);
  }
  const v = info.video;
  if (!v || !v.width || !v.height) throw invalidArgument(`${input.name}: has no video stream`, input.name);
  if (index.endsEarly) ctx.warn(input.name, endsEarlyWarning(index, info.duration));
  const first = index.frameTimes[0]!;
  const last = index.frameTimes[index.frameTimes.length - 1]!;
  // Times count from the file's start, as `ffmpeg -ss` and a player's timeline do: a video that
  // starts after its audio has its first frame later than 0 (before, times counted from that frame).
  const origin = Number.isFinite(info.startTime) ? Math.min(info.startTime, first) : first;
  const duration = Math.max(index.end - origin, 1e-3);
  const over = countedMediaOverLimit(input.name, { seconds: index.end - first, frames: index.frameTimes.length }, ctx.limits);
  if (over) throw over;
  const needed = thumbnailCount(ctx.params, duration);
  // Refused rather than cut short: the first MAX_THUMBNAILS alone would silently leave the rest of the video out.
  if (needed > MAX_THUMBNAILS) {
    throw invalidArgument(`${input.name}: every ${ctx.params.every} s over ${Number(duration.toFixed(3))} s = ${needed} thumbnails, over the limit of ${MAX_THUMBNAILS}`, input.name);
  }
  const times = thumbnailTimes(ctx.params, duration);
  // Each thumbnail shows the picture on screen at its time, as a player seeking there shows it:
  // the last frame at or before it (the first, before the first). The worker takes the first frame
  // at or after a time, as `ffmpeg -ss` does, so each is given that frame's own time. Taken as it
  // came, a time between two frames got the later one: `--count 10` of a 10-frame clip showed
  // frames 1-9 and 9 again, and a screen capture's 1-4 s cues the picture that came at 4 s (review thumb).
  const shown = (t: number): number => index.frameTimes[onScreenAt(index.frameTimes, Math.min(origin + t, last))]!;
  // More of them than frames repeat some.
  const frames = index.frameTimes.length;
  if (times.length > frames) ctx.warn(input.name, `${times.length} thumbnails asked of a video of ${frames} frame(s): ${times.length - frames} or more show the same frame as another`);
  const cues = thumbnailCues(ctx.params, times, duration);
  // The box follows the displayed picture: non-square pixels (anamorphic DVD, HDV) stretched to
  // their aspect, then turned by the display rotation.
  const shownWidth = v.width * v.sar;
  const [w, h] = v.rotation === 90 || v.rotation === 270 ? [v.height, shownWidth] : [shownWidth, v.height];
  const width = ctx.params.width;
  // A thumbnail's height at a width (even), and the widest width down from the asked one (16 px at
  // the least, the params' floor) that `ok` takes: what an advice names.
  const heightAt = (wd: number): number => Math.max(2, 2 * Math.round((wd * h) / w / 2));
  const widest = (ok: (wd: number) => boolean): number => {
    // The largest that fits (a smaller width fits wherever a larger one does): stepping down a tenth
    // at a time named 611 where 655 fit (review thumb).
    let [lo, hi] = [16, width];
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (ok(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const height = heightAt(width);
  // A thumbnail's height follows the video's shape too: a tall one could pass what its format
  // holds (WebP 16383 px, JPEG 65535) or what ffmpeg makes (images under 2^28 px, its margin in).
  const tallest = ctx.params.format === 'webp' ? 16_383 : 65_535;
  const fits = (wd: number, ht: number): boolean => ht <= tallest && (wd + 128) * (ht + 128) < 2 ** 28;
  if (!fits(width, height)) {
    const most = widest((wd) => fits(wd, heightAt(wd)));
    throw invalidArgument(`${input.name}: its ${width}x${height} px thumbnails would be larger than ${ctx.params.format === 'webp' ? 'WebP' : 'JPEG'} or ffmpeg can make: ask a smaller --width (${most} fits)`, input.name);
  }
  // The sheet's height follows the video's shape (checked here, where it is known, as its width
  // was with the params): a portrait video's sheet could pass what WebP and JPEG can hold.
  const sprite = ctx.params.sprite;
  const rows = sprite ? Math.min(sprite.rows, Math.ceil(times.length / sprite.cols)) : 0;
  if (sprite && rows * height > 16_383) {
    // Advice that, followed, is taken: fewer rows where one row fits at this width, a width (16 px
    // at the least) at which these rows fit, or both where only that fits (a very tall video);
    // one row too tall at 16 px leaves no sheet to make (review T, M).
    const most = widest((wd) => rows * heightAt(wd) <= 16_383);
    const options: string[] = [];
    if (height <= 16_383) options.push(`fewer rows (--sprite ${sprite.cols}x${Math.floor(16_383 / height)})`);
    if (rows * heightAt(most) <= 16_383) options.push(`a smaller --width (${most} fits)`);
    if (options.length === 0 && heightAt(16) <= 16_383) options.push(`fewer rows and a smaller width (--sprite ${sprite.cols}x${Math.floor(16_383 / heightAt(16))} --width 16)`);
    const advice = options.length > 0 ? `ask ${options.join(' or ')}` : 'the video is too tall for a sprite sheet: leave out --sprite';
    throw invalidArgument(`${input.name}: a sprite sheet of ${rows} row${rows === 1 ? '' : 's'} of ${width}x${height} px thumbnails would be ${rows * height} px tall, over the 16383-pixel limit: ${advice}`, input.name);
  }
  // Keyframes (presentation times, sorted) where the demuxer would not seek to one by itself.
  // By number, except an MPEG-4 part 2 stream (XviD, DivX) with a chunk of a few bytes: a frame
  // coded as "not coded" (an N-VOP, a repeated picture) that the decoder outputs nothing for, which
  // would shift every later number; such a file is picked by time, as before.
  const notCoded = /^(mpeg4|msmpeg4v[23]?|h263)$/.test(v.codec) && index.packets.some((pk) => pk.size !== undefined && pk.size > 0 && pk.size <= N_VOP_MAX_BYTES);
  const byNumber = UNRELIABLE_SEEK.test(info.formatName) && !notCoded;
  // Also an MP4 or MOV with open GOPs: it seeks to the keyframe decoded at or before the time, and a
  // time among a keyframe's leading frames got the keyframe, a frame or two late (review THOPT).
  const openGopMov = index.openKeyframes.length > 0 && info.formatName.split(',').some((f) => f === 'mov' || f === 'mp4');
  // And Y4M, every frame a keyframe: a seek between two frames stamped the first frame out 0, not
  // its own time, and the pass took the frame after the one wanted; sought to a frame's own time
  // (no margin), it counts from there (review THOPT).
  const y4m = info.formatName === 'yuv4mpegpipe';
  const keyframes = !byNumber && (SEEKS_ANY_PACKET.test(info.formatName) || openGopMov || y4m) ? seekableKeyframes(index) : undefined;
  const margin = y4m ? 0 : 0.1;
  const parts = Math.max(1, Math.min(2 * Math.max(1, ctx.cluster.slots), Math.ceil(times.length / MIN_PER_SUBTASK)));
  const per = Math.ceil(times.length / parts);
  for (let p = 0; p * per < times.length; p++) {
    const slice = times.slice(p * per, (p + 1) * per);
    const plan: ThumbnailRangePlan = {
      source: input.name,
      // Seek targets are relative to the container start: each the time of the frame it shows.
      times: slice.map((t) => shown(t) - info.startTime),
      numbers: slice.map((_, k) => p * per + k + 1),
      cues: cues.slice(p * per, (p + 1) * per),
      width,
      height,
      ...(keyframes && { seekFrom: slice.map((t) => shown(t)).map((at) => Math.max(0, Math.min(seekPoint(keyframes, at, margin), at) - info.startTime)) }),
      ...(byNumber && { frames: slice.map((t) => onScreenAt(index.frameTimes, Math.min(origin + t, last))) }),
      ...(stream(info) !== undefined && { stream: stream(info) }),
    };
    const features = [...(plan.seekFrom ? [THUMBNAILS_SEEK_FROM_FEATURE] : []), ...(plan.frames ? [THUMBNAILS_FRAME_NUMBERS_FEATURE] : []), ...(plan.stream !== undefined ? [THUMBNAILS_STREAM_FEATURE] : [])];
    subtasks.push({
      label: `${input.name} thumbnails ${plan.numbers[0]}-${plan.numbers[plan.numbers.length - 1]} (${slice[0]!.toFixed(1)}s-${slice[slice.length - 1]!.toFixed(1)}s)`,
      inputs: [input],
      plan,
      weight: slice.length,
      items: [input.name],
      // The worker's ffmpeg encodes each thumbnail: one without the format's encoder (a build without
      // libwebp) would fail the job blaming the input; the job waits for a worker that has it.
      requires: { encoders: [ctx.params.format === 'webp' ? 'libwebp' : 'mjpeg'], ...(features.length > 0 && { features }) },
    });
  }
  return { subtasks };
}

/**
 * Demuxers that take any packet as a seek point (MPEG-TS, MPEG-PS, raw elementary streams): a seek
 * lands after the keyframe before the time, and the decoder then shows nothing until the next one.
 */
const SEEKS_ANY_PACKET = /^(mpegts|mpeg|mpegvideo|h264|hevc|m4v)$/;

/**
 * Demuxers whose seek and frame times are not to be trusted for picking a frame: FLV with B-frames
 * (composition offsets: `-ss 0` gave no frame, or with audio the keyframe 2 s on) and AVI (no
 * presentation times: B-frame streams stamped a frame or two late, `-ss 0` skipping the first GOP).
 * Their thumbnails are picked by frame number, decoded from the start.
 */
const UNRELIABLE_SEEK = /^(flv|avi)$/;

/** Most bytes of an MPEG-4 "not coded" frame (a start code, a few header bits and stuffing); any coded one is more. */
const N_VOP_MAX_BYTES = 8;

/** The number (display order, from 0) of the frame on screen at `t` in sorted `times`: the last at or before it, the first before them all. */
export function onScreenAt(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    // A microsecond of slack: ffprobe prints times to the microsecond.
    if (times[mid]! <= t + 1e-6) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The keyframes shown (not an edit list's discarded ones), by presentation time, each with where a seek to it must aim. */
interface SeekableKeyframe {
  pts: number;
  /** Its decode time where it is decoded before it is shown (B-frames), else its presentation time. */
  seek: number;
}

function seekableKeyframes(index: VideoIndex): SeekableKeyframe[] {
  return index.packets
    .filter((pk) => pk.keyframe && !pk.discard)
    .map((pk) => ({ pts: pk.pts, seek: Math.min(pk.pts, pk.dts ?? pk.pts) }))
    .sort((a, b) => a.pts - b.pts);
}

/**
 * Where to start decoding for the frame at `t`: `margin` (a tenth of a second) before the keyframe
 * shown at or before it, by its decode time (MPEG-TS seeks by decode time: aimed at its presentation
 * time, a low-rate capture's seek landed past a keyframe decoded two frames earlier, 2 s at 1 fps,
 * and gave the next GOP's frame or none at all; review THOPT).
 */
function seekPoint(keyframes: SeekableKeyframe[], t: number, margin: number): number {
  // Binary search (sorted): thousands of times over a long capture's thousands of keyframes.
  let lo = 0;
  let hi = keyframes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyframes[mid]!.pts <= t + 1e-6) lo = mid + 1;
    else hi = mid;
  }
  return (lo > 0 ? keyframes[lo - 1]!.seek : (keyframes[0]?.seek ?? t)) - margin;
}

/** Number of thumbnails `params` asks of a video of `duration` seconds (every T from 0, or N). */
export function thumbnailCount(params: ThumbnailJobParams, duration: number): number {
  return params.count || Math.max(1, Math.ceil(duration / params.every - 1e-9));
}

/** Thumbnail times in seconds from the start of the file: every T (from 0), or N centred in equal slices. */
export function thumbnailTimes(params: ThumbnailJobParams, duration: number): number[] {
  const n = thumbnailCount(params, duration);
  if (params.count) return Array.from({ length: n }, (_, i) => ((i + 0.5) * duration) / n);
  return Array.from({ length: n }, (_, i) => i * params.every);
}

/** The span each thumbnail previews: from its time to the next one's (count mode: its equal slice). */
export function thumbnailCues(params: ThumbnailJobParams, times: number[], duration: number): Array<[number, number]> {
  return times.map((t, i) => {
    if (params.count) return [(i * duration) / times.length, ((i + 1) * duration) / times.length];
    return [t, i + 1 < times.length ? times[i + 1]! : duration];
  });
}
