/**
 * Checks every uploaded input before a job is planned: its format by content against the kind's
 * allow-list, then its declared size (pixels, frames, duration) from the header alone, so that a
 * decompression bomb is refused before anything decodes it. A refused input fails as its own item,
 * with a message naming the file and the limit; the other inputs of the job go ahead.
 */
import { open } from 'node:fs/promises';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { runFfprobe, runFfprobeLogged, summariseStderr } from '../shared/ffmpeg.js';
import { PREFETCHED_INPUTS, type CoordinatorKind, type ItemFailure, type SpoolFile } from '../shared/job-kind.js';
import type { ImageParams } from '../shared/kinds/image-params.js';
import type { AudioJobParams } from '../shared/kinds/audio-params.js';
import { copyAudioRefusal, type VideoContainer, type VideoJobParams } from '../shared/kinds/video-params.js';
import { describeLimit, limitFlag, type Limits } from '../shared/limits.js';
import { lengthIsGuessed } from '../shared/media/audio-probe.js';
import { animationRefusal, cropProblem, gifTruncation, imagePages, tiffTruncation, keepsFrames, outputFormat } from '../shared/media/image-pipeline.js';
import { SNIFF_BYTES, refusalFor, sniffBuffer, type SniffedFormat } from '../shared/media/sniff.js';
import { HandOff } from './hand-off.js';
import { withVipsPath } from '../shared/media/vips-path.js';
import { formatEdgeProblem, oversizeOutput } from './kinds/image-tiles.js';

/** ffmpeg demuxer names per sniffed container: ffprobe may use only the demuxer the bytes claim. */
const DEMUXERS: Partial<Record<SniffedFormat, string>> = {
  mp4: 'mov,mp4,m4a,3gp,3g2,mj2',
  matroska: 'matroska,webm',
  avi: 'avi',
  mpegts: 'mpegts',
  mpegps: 'mpeg',
  flv: 'flv',
  ogg: 'ogg',
  y4m: 'yuv4mpegpipe',
  wav: 'wav',
  // A file that starts with an ID3v2 tag is sniffed as MP3, and ffmpeg finds ADTS AAC or FLAC behind
  // such a tag too (podcast tools and HLS audio segments tag them so; review AWILD).
  mp3: 'mp3,aac,flac',
  aac: 'aac',
  flac: 'flac',
  aiff: 'aiff',
  ac3: 'ac3',
  eac3: 'eac3',
  dts: 'dts',
  wavpack: 'wv',
  w64: 'w64',
  caf: 'caf',
  au: 'au',
  tta: 'tta',
  asf: 'asf',
};

/** What became of the inputs: those accepted, and one failure per refused input. */
export interface InputCheckResult {
  accepted: SpoolFile[];
  errors: ItemFailure[];
}

/**
 * Checks at once. They run beside the submission's shared-storage lookups (2 at once), and libuv
 * has 4 file-system threads: a hung mount must not take them all. ffprobe is a process per file.
 */
const CHECKS_AT_ONCE = 2;
/** Checks waiting with the head their lookup read (64 KiB each at most). */
const HEADS_HELD = 64;

/**
 * Checks a job's inputs as they arrive, a few at a time, so that the checks overlap the receiving
 * (or the shared-storage lookups) of the inputs after them. `result` gives the verdicts in
 * submission order; `stop` lets the submission fail without leaving a check reading its files.
 * `params`: the job's params (`image`, `audio`, `video`), to refuse what they ask that an input cannot give ({@link checkInput}).
 * `prefetch`: the job kind's, handed each of the first inputs to pass, in the order they were added.
 */
export function inputChecker(kind: string, limits: Limits, signal?: AbortSignal, params?: ImageParams | AudioJobParams | VideoJobParams, prefetch?: CoordinatorKind['prefetch']) {
  const limit = pLimit(CHECKS_AT_ONCE);
  const verdicts = new Map<SpoolFile, Promise<ItemFailure | undefined>>();
  // The inputs in the order they were added, each until its verdict is known: the planner takes
  // them in that order, so the prefetch goes to the first ones that pass in that order, not to
  // whichever check ends first.
  const waiting: Array<{ file: SpoolFile; passed?: boolean }> = [];
  let prefetched = 0;
  const prefetchInOrder = (): void => {
    while (waiting[0]?.passed !== undefined && prefetched < PREFETCHED_INPUTS && !stopping.signal.aborted) {
      const { file, passed } = waiting.shift()!;
      if (!passed) continue;
      prefetched++;
      prefetch!(file, stopping.signal);
    }
    if (prefetched >= PREFETCHED_INPUTS) waiting.length = 0;
  };
  // Stops the running checks (ffprobe) when the submission fails, as well as when the client goes.
  const stopping = new AbortController();
  const checkSignal = signal ? AbortSignal.any([signal, stopping.signal]) : stopping.signal;
  const add = (file: SpoolFile, head?: Buffer): Promise<ItemFailure | undefined> => {
    let v = verdicts.get(file);
    if (!v) {
      // A check that never ran is no verdict: it rejects rather than pass the file.
      v = limit(() => (checkSignal.throwIfAborted(), checkInput(kind, file, limits, checkSignal, head, params)));
      // The planner's own reading of the first inputs to pass starts as soon as they have (and
      // those added before them have their verdicts). Not under the call's signal: grpc-js
      // reports a call that ended normally as cancelled too.
      if (prefetch && prefetched < PREFETCHED_INPUTS) {
        const entry: { file: SpoolFile; passed?: boolean } = { file };
        waiting.push(entry);
        v.then(
          (failure) => (entry.passed = !failure),
          () => (entry.passed = false),
        ).then(prefetchInOrder, () => undefined);
      }
      // Awaited by `result` or `stop`; not an unhandled rejection meanwhile.
      v.catch(() => undefined);
      verdicts.set(file, v);
    }
    return v;
  };
  return {
    /**
     * Starts checking `file` as soon as a place is free; `head`: its first `headBytes(kind)` bytes,
     * if already read. Kept only while few checks wait (thousands of inputs looked up faster than
     * checked must not hold 64 KiB each): the others read theirs when their turn comes.
     */
    add: (file: SpoolFile, head?: Buffer): void => void add(file, limit.pendingCount < HEADS_HELD ? head : undefined),
    /** `file`'s failure, or undefined when it passed (checking it now if it was not added). */
    verdict: (file: SpoolFile): Promise<ItemFailure | undefined> => add(file),
    /** The accepted inputs (in the order given) and one failure per refused input; checks any not added yet. */
    async result(inputs: readonly SpoolFile[]): Promise<InputCheckResult> {
      const all = await Promise.all(inputs.map((f) => add(f)));
      const accepted: SpoolFile[] = [];
      const errors: ItemFailure[] = [];
      inputs.forEach((f, i) => {
        const v = all[i];
        if (v) errors.push(v);
        else accepted.push(f);
      });
      return { accepted, errors };
    },
    /** Starts no further check and waits for the running ones (there is no result after this). */
    async stop(): Promise<void> {
      stopping.abort(new Error('the input checks were stopped'));
      await Promise.allSettled(verdicts.values());
    },
  };
}

/**
 * Bytes read from the start of an input: the sniffed signature, and for JPEG and PNG the whole
 * header libvips needs (a camera JPEG's EXIF and thumbnail are typically 10-60 KiB).
 */
const HEAD_BYTES = 64 * 1024;

/** The bytes from the start of an input that the check of a `kind` input reads. */
export const headBytes = (kind: string): number => (kind === 'image' ? HEAD_BYTES : SNIFF_BYTES);

/**
 * Checks one input; returns its failure, or undefined when it may be planned. Records an image's
 * `dims`. `given`: the file's first `headBytes(kind)` bytes (fewer for a shorter file), when
 * the caller has read them already. `params`: the job's params, when known: for an `image` job a
 * result over `maxPixels` (a huge width or height asked of a small image), a crop that does not
 * fit and steps an animation cannot keep, for an `audio` job a trim that starts after the end, for
 * a `video` job audio stream-copied into a container that cannot hold it, are refused as the
 * input's error too, before the planner decodes anything.
 */
export async function checkInput(kind: string, file: SpoolFile, limits: Limits, signal?: AbortSignal, given?: Buffer, params?: ImageParams | AudioJobParams | VideoJobParams): Promise<ItemFailure | undefined> {
  const fail = (code: 'INVALID_ARGUMENT' | 'RESOURCE_EXHAUSTED' | 'PERMISSION_DENIED', why: string): ItemFailure => ({ input: file.name, code, message: `${file.name}: ${why}` });
  let head: Buffer;
  try {
    head = given ?? (await readHead(file.path, headBytes(kind)));
  } catch (err) {
    // A file on shared storage the coordinator may not read fails as its own input, not the job.
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    return fail(code === 'EACCES' || code === 'EPERM' ? 'PERMISSION_DENIED' : 'INVALID_ARGUMENT', `could not be read (${code})`);
  }
  const format = sniffBuffer(head.subarray(0, SNIFF_BYTES));
  const refusal = refusalFor(kind, format);
  if (refusal) return fail('INVALID_ARGUMENT', refusal);
  if (kind === 'image') return checkImage(file, format, head, limits, fail, params as ImageParams | undefined);
  const asks: MediaAsks = {
    trimStart: kind === 'audio' ? ((params as AudioJobParams | undefined)?.trim?.start ?? 0) : 0,
    copyAudioInto: kind === 'video' && (params as VideoJobParams | undefined)?.audioCodec === 'copy' ? (params as VideoJobParams).container : undefined,
  };
  if (kind === 'video' || kind === 'thumbnails' || kind === 'audio') return checkMedia(kind, file, format, limits, fail, signal, asks);
  return undefined;
}

/** Up to `bytes` from the start of `file` (fewer: the whole file). */
async function readHead(file: string, bytes: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

type Fail = (code: 'INVALID_ARGUMENT' | 'RESOURCE_EXHAUSTED' | 'PERMISSION_DENIED', why: string) => ItemFailure;

/**
 * Formats whose header, everything checked here included, comes before their pixel data: libvips
 * reads it from the head already in memory, at a third of the cost of opening the file. A head
 * that stops inside the header makes libvips fail, and the file is read instead. GIF and WebP
 * frames, and a TIFF's or HEIF's header, may lie anywhere in the file.
 */
const HEADER_FIRST: ReadonlySet<SniffedFormat> = new Set(['jpeg', 'png']);

/** A 32 x 32 HEIC (HEVC-coded HEIF, as phones write), 639 bytes: whether this libvips decodes one. */
const TINY_HEIC = 'AAAAHGZ0eXBoZWljAAAAAG1pZjFoZWljbWlhZgAAAa1tZXRhAAAAAAAAACFoZGxyAAAAAAAAAABwaWN0AAAAAAAAAAAAAAAAAAAAAA5waXRtAAAAAAACAAAAEGlkYXQAAAAAACAAIAAAADhpbG9jAQAAAERAAAIAAQAAAAAAAAHRAAEAAAAAAAAArgACAAEAAAAAAAAAAQAAAAAAAAAIAAAAOGlpbmYAAAAAAAIAAAAVaW5mZQIAAAEAAQAAaHZjMQAAAAAVaW5mZQIAAAAAAgAAZ3JpZAAAAADYaXBycAAAALZpcGNvAAAAdmh2Y0MBA3AAAAAAAAAAAAAe8AD8/fj4AAAPAyAAAQAYQAEMAf//A3AAAAMAkAAAAwAAAwAeugJAIQABACpCAQEDcAAAAwCQAAADAAADAB6gIIEFlurkprm4EBAwIAAAAwAgAAADACEiAAEABkQBwXPAiQAAABRpc3BlAAAAAAAAAEAAAABAAAAAFGlzcGUAAAAAAAAAIAAAACAAAAAQcGl4aQAAAAADCAgIAAAAGmlwbWEAAAAAAAAAAgABAoECAAICA4QAAAAaaXJlZgAAAAAAAAAOZGltZwACAAEAAQAAALZtZGF0AAAAqigBrwY46WWHTLbhH7VvfwV1Z1lO4Pl3CG03o8mp7Vgog468Fzz6KE31MT45cFIT1LEA/QbF8RT93/8xpRfF2z2PNPvW1jpRo2TSn/9FOXJZEhY8oIlfT/Xh7IxleSCZF00vGbX8EPO0XfbCfye+HzTf5U4vuZHulOaut5w722f2SEZtTgP/iDDWldAh/5Gw1d7C6JnVyY8M8SrGNotttwTNDOHd5FfS7Dv8';
let hevcDecoding: Promise<boolean> | undefined;

/** Whether this build of libvips decodes HEVC-coded HEIF (found out once, on the first HEIC). */
function hevcDecodes(): Promise<boolean> {
  return (hevcDecoding ??= sharp(Buffer.from(TINY_HEIC, 'base64')).raw().toBuffer().then(() => true, () => false));
}

/** A 64 x 48 AVIF of 10 bits a sample (as HDR phone captures and libavif write), 532 bytes. */
const TINY_AVIF_10BIT = 'AAAAIGZ0eXBhdmlmAAAAAGF2aWZtaWYxbWlhZk1BMUIAAAD5bWV0YQAAAAAAAAAvaGRscgAAAAAAAAAAcGljdAAAAAAAAAAAAAAAAFBpY3R1cmVIYW5kbGVyAAAAAA5waXRtAAAAAAABAAAAHmlsb2MAAAAARAAAAQABAAAAAQAAASEAAADzAAAAKGlpbmYAAAAAAAEAAAAaaW5mZQIAAAAAAQAAYXYwMUNvbG9yAAAAAGppcHJwAAAAS2lwY28AAAAUaXNwZQAAAAAAAABAAAAAMAAAABBwaXhpAAAAAAMKCgoAAAAMYXYxQ4EATAAAAAATY29scm5jbHgAAgACAAIAAAAAF2lwbWEAAAAAAAAAAQABBAECgwQAAAD7bWRhdAoGGBV/vbgIMugBRyAACzVxY/WBANtxWUBkBjfbytybe/G+bto2YbIMoyzr5V+oAkDkRrndpkYbBZfAPudfji2a3nYtwNDophAZOFfsshGUXuSLEpnsNcbu7POhsebKlC2GnZt9M4Ex6hrtPb/RbLK3tt6iVaQPDkm3bpKW9XCvV3eOXGZw4602GAOo85VcumCDJEnt90nu2stWQXZl1vHIHzo3i9uhzkyGA3/IGnyL6TaT2jRaDz+mOfmGtxrO32YxmJfF7de6L6aYLYhcCLasRkQGxfzM6wfmYNQ12N3vZxVL8JDbPSaGwDyaDHK2B+ljwg==';
let deepAv1Decoding: Promise<boolean> | undefined;

/** Whether this build of libvips decodes AVIF of more than 8 bits a sample (found out once, on the first). */
function deepAv1Decodes(): Promise<boolean> {
  return (deepAv1Decoding ??= sharp(Buffer.from(TINY_AVIF_10BIT, 'base64')).raw().toBuffer().then(() => true, () => false));
}

async function checkImage(file: SpoolFile, format: SniffedFormat, head: Buffer, limits: Limits, fail: Fail, params?: ImageParams): Promise<ItemFailure | undefined> {
  // metadata() reads the header only; the pixel limit is ours to apply, below, with the limit named.
  const options = { limitInputPixels: false } as const;
  // The whole file, by its size (a short read on a network mount is not the end of the file).
  const whole = head.length === file.size;
  let meta: sharp.Metadata | undefined;
  if (whole || HEADER_FIRST.has(format)) meta = await sharp(head, options).metadata().catch(() => undefined);
  try {
    meta ??= await withVipsPath(file.path, (name) => sharp(name, options).metadata());
  } catch (err) {
    const cutShort = format === 'tiff' ? await tiffTruncation(file.path).catch(() => undefined) : undefined;
    if (cutShort) return fail('INVALID_ARGUMENT', cutShort);
    // libvips names the file by the coordinator's path to it: by its name instead.
    return fail('INVALID_ARGUMENT', `not a decodable image (${String((err as Error).message ?? err).split(file.path).join(file.name).slice(0, 200)})`);
  }
  // Phones' HEIC is HEVC-coded: sharp's prebuilt libvips reads its header but has no HEVC decoder,
  // and a worker failed the photo as "not a decodable image (bad seek to 1024)".
  if (meta.format === 'heif' && meta.compression === 'hevc' && !(await hevcDecodes())) {
    return fail('INVALID_ARGUMENT', 'HEIC (HEVC-coded HEIF) cannot be decoded by this build of libvips, which has no HEVC decoder; convert it to JPEG or AVIF first');
  }
  // Likewise 10- and 12-bit AVIF (HDR captures): the header reads, the pixels do not ("bad seek").
  const bits = meta.bitsPerSample ?? 8;
  if (meta.format === 'heif' && meta.compression === 'av1' && bits > 8 && !(await deepAv1Decodes())) {
    return fail('INVALID_ARGUMENT', `${bits}-bit AVIF cannot be decoded by this build of libvips (its AV1 decoder reads 8 bits a sample only); convert it to 8-bit AVIF, PNG or 16-bit TIFF first`);
  }
  const truncated = meta.format === 'gif' ? await gifTruncation(file.path).catch(() => undefined) : meta.format === 'tiff' ? await tiffTruncation(file.path).catch(() => undefined) : undefined;
  if (truncated) return fail('INVALID_ARGUMENT', truncated);
  // The planner sizes its work from this rather than read the header again.
  file.dims = { width: meta.width ?? 0, height: meta.height ?? 0, orientation: meta.orientation ?? 1 };
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  const frames = Math.max(1, await imagePages(file.path, meta));
  if (width <= 0 || height <= 0) return fail('INVALID_ARGUMENT', 'not a decodable image (no dimensions in its header)');
  if (frames > limits.maxFrames) return fail('RESOURCE_EXHAUSTED', `${frames} frames is over the limit ${describeLimit(limits, 'maxFrames')}`);
  const pixels = width * height * frames;
  if (pixels > limits.maxPixels) {
    return fail('RESOURCE_EXHAUSTED', `${width}x${height}${frames > 1 ? `x${frames} frames` : ''} = ${pixels} pixels is over the limit ${describeLimit(limits, 'maxPixels')}`);
  }
  // What the params ask of this image that it cannot give: refused now, not when a worker meets it.
  const badCrop = params && cropProblem(params, meta);
  if (badCrop) return fail('INVALID_ARGUMENT', badCrop);
  // An animation keeps its frames in a format that holds them: the result has as many.
  const kept = params && keepsFrames(meta.format, outputFormat(params, meta.format)) ? frames : 1;
  const refusal = params && kept > 1 ? animationRefusal(params, meta.orientation ?? 1) : undefined;
  if (refusal) return fail('INVALID_ARGUMENT', refusal);
  const oversize = params && oversizeOutput(file.dims, params, limits.maxPixels, limitFlag('maxPixels'), kept);
  if (oversize) return fail('RESOURCE_EXHAUSTED', oversize);
  // Its format's own edge limit: a worker failed it with sharp's words, neither size nor limit named
  // ("too large for the HEIF format", an AVIF asked for; review IMGOPT).
  const edge = params && formatEdgeProblem(file.dims, params, outputFormat(params, meta.format));
  if (edge) return fail('INVALID_ARGUMENT', edge);
  return undefined;
}

interface ProbeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  nb_frames?: string;
  avg_frame_rate?: string;
  duration?: string;
  disposition?: { attached_pic?: number };
}

interface Probe {
  format?: { format_name?: string; duration?: string };
  streams?: ProbeStream[];
}

/** Kinds that work on the picture: an input without a video stream has nothing for them. */
const PICTURE_KINDS: ReadonlySet<string> = new Set(['video', 'thumbnails']);

/** What a job's params ask of a media input that its header can refuse. */
interface MediaAsks {
  /** An audio job's trim start (0 = none). */
  trimStart: number;
  /** A video job's container, where its audio is stream-copied. */
  copyAudioInto: VideoContainer | undefined;
}

async function checkMedia(kind: string, file: SpoolFile, format: SniffedFormat, limits: Limits, fail: Fail, signal?: AbortSignal, asks?: MediaAsks): Promise<ItemFailure | undefined> {
  const demuxer = DEMUXERS[format];
  if (!demuxer) return fail('INVALID_ARGUMENT', `no demuxer is allowed for ${format}`);
  if (!(PICTURE_KINDS.has(kind) && format === 'mp4')) return checkHeader(kind, file, demuxer, limits, fail, signal, asks);
  // The tail read of an MP4 for a picture kind runs beside the header probe (one ffprobe's start-up,
  // 0.15 s, off each submission); it counts only once the header has passed, and is stopped (and
  // waited for, so that no ffprobe outlives its check) when the header fails.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const tail = checkMovTail(file, demuxer, fail, stop.signal);
  // Handled from the start: stopped with the header probe, it may end first, and a rejection
  // with no handler yet ended the whole coordinator (Node 20). Awaited below all the same.
  tail.catch(() => undefined);
  try {
    const header = await checkHeader(kind, file, demuxer, limits, fail, signal, asks);
    if (!header) return await tail;
    stop.abort();
    await tail.catch(() => undefined);
    return header;
  } catch (err) {
    stop.abort();
    await tail.catch(() => undefined);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The header probe of each media input that passed its check, as ffprobe gave it (`-show_format
 * -show_streams`, what the planners' probes ask for), until a planner takes it (a minute at most:
 * planning starts within seconds of the check). Each ffprobe costs about 0.12 s of CPU here, mostly
 * loading ffmpeg's libraries, and an audio job of 40 small files spent 5 s planning on probes the
 * checks had just made.
 */
const headerProbes = new HandOff<SpoolFile, unknown>(60_000);

/**
 * The probe the submission check made of `file` (`ffprobe -show_format -show_streams`, with the
 * demuxer its bytes claim), for a planner to parse instead of probing again; undefined where there
 * is none (a plan after a restart, a kind without media checks). Taken once.
 */
export function takeHeaderProbe(file: SpoolFile): unknown {
  return headerProbes.take(file);
}

/** The header probe of {@link checkMedia}: readable, within the limits, a picture for picture kinds. */
async function checkHeader(kind: string, file: SpoolFile, demuxer: string, limits: Limits, fail: Fail, signal?: AbortSignal, asks?: MediaAsks): Promise<ItemFailure | undefined> {
  let probe: Probe;
  try {
    // Everything the planners read too (they take it, below, rather than probe again).
    probe = await runFfprobe<Probe>(['-format_whitelist', demuxer, '-show_format', '-show_streams', '-show_chapters', '-i', file.path], { signal, input: file.name });
  } catch (err) {
    if (signal?.aborted) throw err;
    const msg = (err as Error).message ?? String(err);
    return fail('INVALID_ARGUMENT', `not a readable media file (${summariseStderr(msg.replace(`${file.name}: `, ''))})`);
  }
  const streams = probe.streams ?? [];
  const durations = [probe.format?.duration, ...streams.map((s) => s.duration)].map(Number).filter((d) => Number.isFinite(d) && d > 0);
  const duration = durations.length > 0 ? Math.max(...durations) : 0;
  // A length ffmpeg guessed from the bitrate (ADTS AAC, an MP3 without a Xing header) may be 30
  // times the file's: such a file is held to the limit by what its decoding counts, as any is.
  const format = probe.format?.format_name;
  let guess: Promise<boolean> | undefined;
  const guessed = (): Promise<boolean> => (guess ??= lengthIsGuessed(format, file.path, file.name, signal));
  if (duration > limits.maxMediaSeconds && !(await guessed())) return fail('RESOURCE_EXHAUSTED', `duration ${duration.toFixed(1)} s is over the limit ${describeLimit(limits, 'maxMediaSeconds')} (seconds)`);
  for (const s of streams) {
    if (s.codec_type !== 'video') continue;
    const w = s.width ?? 0;
    const h = s.height ?? 0;
    if (w * h > limits.maxVideoPixels) return fail('RESOURCE_EXHAUSTED', `${w}x${h} video is over the limit ${describeLimit(limits, 'maxVideoPixels')} (pixels per frame)`);
    const fps = rate(s.avg_frame_rate);
    const frames = Number(s.nb_frames) > 0 ? Number(s.nb_frames) : Math.ceil(duration * fps);
    if (frames > limits.maxVideoFrames) return fail('RESOURCE_EXHAUSTED', `${frames} frames is over the limit ${describeLimit(limits, 'maxVideoFrames')}`);
  }
  // No stream at all in a file that was read as media: most often an index cut short or damaged.
  const empty = streams.length === 0 ? ' (no stream at all: a file cut short or damaged?)' : '';
  if (PICTURE_KINDS.has(kind)) {
    // Cover art (an attached picture) is not a video: an audio file with it has nothing to encode.
    const video = streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
    if (!video) return fail('INVALID_ARGUMENT', `has no video stream${empty}`);
    if (!video.width || !video.height) return fail('INVALID_ARGUMENT', 'the video stream has no picture size');
  }
  if (kind === 'audio' && !streams.some((s) => s.codec_type === 'audio')) return fail('INVALID_ARGUMENT', `has no audio stream${empty}`);
  // A trim that starts after the end keeps nothing (the planner says the same, reading the samples).
  // Not an Ogg's: it states its last link's length, and a chained one holds more (review AWILD); nor
  // past a length guessed from the bitrate (a loud start made 7.1 s of 10 s: --trim 8,9.5 refused).
  const trimStart = asks?.trimStart ?? 0;
  if (trimStart > 0 && duration > 0 && trimStart >= duration && format !== 'ogg' && !(await guessed())) return fail('INVALID_ARGUMENT', `trim.start ${trimStart} s is past the end (${duration.toFixed(2)} s)`);
  const copyRefused = asks?.copyAudioInto && copyAudioRefusal(streams.filter((s) => s.codec_type === 'audio').map((s) => s.codec_name ?? ''), asks.copyAudioInto);
  if (copyRefused) return fail('INVALID_ARGUMENT', copyRefused);
  headerProbes.give(file, probe);
  return undefined;
}

/**
 * An MP4/MOV whose index sits at the front (faststart) reads as whole from its header even when the
 * upload or copy was cut short. Reading from the last keyframe to the end (one GOP, whatever the
 * file's length: the index gives the seek) finds the samples the index lists past the last byte.
 * At most TAIL_PACKETS are read: a file of one endless GOP (a screen recording) is not read whole
 * at submission; its truncation, if any, is found when its chunks are cut.
 */
const TAIL_PACKETS = 2000;

async function checkMovTail(file: SpoolFile, demuxer: string, fail: Fail, signal?: AbortSignal): Promise<ItemFailure | undefined> {
  let stderr: string;
  let packets: number;
  try {
    let result: { packets?: unknown[] };
    ({ result, stderr } = await runFfprobeLogged<{ packets?: unknown[] }>(['-format_whitelist', demuxer, '-read_intervals', `99999999%+#${TAIL_PACKETS}`, '-show_entries', 'packet=stream_index', '-i', file.path], { signal, input: file.name }));
    packets = result.packets?.length ?? 0;
  } catch (err) {
    if (signal?.aborted) throw err;
    const msg = (err as Error).message ?? String(err);
    return fail('INVALID_ARGUMENT', `not a readable media file (${summariseStderr(msg.replace(`${file.name}: `, ''))})`);
  }
  // Nothing read at all: the seek itself landed past the last byte.
  if (/partial file/.test(stderr) || packets === 0) return fail('INVALID_ARGUMENT', 'truncated file: its index lists media past the end of the file (a copy or upload cut short?)');
  return undefined;
}

function rate(text: string | undefined): number {
  const [n, d] = (text ?? '0/1').split('/').map(Number);
  return n && d ? n / d : 0;
}
