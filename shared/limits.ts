/**
 * Limits on what one client may ask of the cluster. Every limit has a flag name (used in error
 * messages, so a user learns which knob to turn), an environment variable and a default.
 */
import { resourceExhausted, type TesseraError } from './errors.js';

/** The limits the coordinator enforces at submit time. */
export interface Limits {
  /** Bytes of one uploaded input. */
  maxFileBytes: number;
  /** Bytes of all inputs of one job. */
  maxJobBytes: number;
  /** Inputs of one job. */
  maxInputs: number;
  /** Pixels of one image (width x height x frames), read from the header before any decoding. */
  maxPixels: number;
  /** Frames (pages) of an animated image. */
  maxFrames: number;
  /** Seconds of one video or audio input. */
  maxMediaSeconds: number;
  /** Pixels of one video frame (width x height). */
  maxVideoPixels: number;
  /** Frames of one video (duration x frame rate, or the container's count). */
  maxVideoFrames: number;
  /** Unfinished jobs of one client identity at a time. */
  maxJobsPerClient: number;
  /** WatchJob and DownloadOutput calls one client has open at once (each holds some memory). */
  maxStreamsPerClient: number;
  /**
   * Bytes of outputs the coordinator holds for DownloadOutput and WatchJob readers at once, all
   * clients together (coordinator/stream-buffers.ts): past it downloads go on in small messages
   * and watchers get events without their outputs' bytes.
   */
  streamBufferBytes: number;
  /**
   * Highest `spec.priority` a client token that is no admin one may ask: a higher priority goes
   * ahead of every other client's work, and takes back their queued assignments (review MTEN).
   */
  maxClientPriority: number;
}

/** One limit's flag, environment variable, default and meaning. */
export interface LimitSpec {
  key: keyof Limits;
  flag: string;
  env: string;
  fallback: number;
  description: string;
  /** The least value it takes (1 where absent). */
  min?: number;
  /** Said of the default in --help instead of the number. */
  fallbackText?: string;
}

export const LIMIT_SPECS: readonly LimitSpec[] = [
  { key: 'maxFileBytes', flag: '--max-file-bytes', env: 'TESSERA_MAX_FILE_BYTES', fallback: 64 * 1024 ** 3, description: 'largest input file' },
  { key: 'maxJobBytes', flag: '--max-job-bytes', env: 'TESSERA_MAX_JOB_BYTES', fallback: 256 * 1024 ** 3, description: 'largest total upload of one job' },
  { key: 'maxInputs', flag: '--max-inputs', env: 'TESSERA_MAX_INPUTS', fallback: 10_000, description: 'most input files in one job' },
  // 10 Gpx is what the tiled huge-image path is built for (shared/media/tile-config.ts); 100k x 100k is over it.
  { key: 'maxPixels', flag: '--max-pixels', env: 'TESSERA_MAX_PIXELS', fallback: 10_000_000_000 - 1, description: 'most pixels (width x height x frames) of an image' },
  { key: 'maxFrames', flag: '--max-frames', env: 'TESSERA_MAX_FRAMES', fallback: 1000, description: 'most frames of an animated image' },
  { key: 'maxMediaSeconds', flag: '--max-media-seconds', env: 'TESSERA_MAX_MEDIA_SECONDS', fallback: 6 * 3600, description: 'longest video or audio input' },
  { key: 'maxVideoPixels', flag: '--max-video-pixels', env: 'TESSERA_MAX_VIDEO_PIXELS', fallback: 7680 * 4320, description: 'most pixels of one video frame (8K)' },
  { key: 'maxVideoFrames', flag: '--max-video-frames', env: 'TESSERA_MAX_VIDEO_FRAMES', fallback: 6 * 3600 * 120, description: 'most frames of one video' },
  { key: 'maxJobsPerClient', flag: '--max-jobs-per-client', env: 'TESSERA_MAX_JOBS_PER_CLIENT', fallback: 100, description: 'most unfinished jobs of one client' },
  // About 18 KiB of the coordinator's memory each: 1000 is 18 MiB, and many watchers per job.
  { key: 'maxStreamsPerClient', flag: '--max-streams-per-client', env: 'TESSERA_MAX_STREAMS_PER_CLIENT', fallback: 1000, description: 'most WatchJob and DownloadOutput calls one client has open at once' },
  // Two 1 MiB messages per download (or run of inline outputs) on its way: 64 streams at full size.
  { key: 'streamBufferBytes', flag: '--stream-buffer-bytes', env: 'TESSERA_STREAM_BUFFER_BYTES', fallback: 128 * 1024 ** 2, description: 'most bytes of outputs held for DownloadOutput and WatchJob readers at once, all clients together (past it downloads go on in 64 KiB messages, watchers get no bytes inside events)' },
  { key: 'maxClientPriority', flag: '--max-client-priority', env: 'TESSERA_MAX_CLIENT_PRIORITY', fallback: 2 ** 31 - 1, min: 0, fallbackText: 'none (2147483647)', description: 'highest job priority a client token that is no admin one may ask' },
];

/** What a limit's value must be, as its refusal says it. */
export function limitRule(s: LimitSpec): string {
  return (s.min ?? 1) === 1 ? 'is not a positive integer' : `is not a whole number of ${s.min} or more`;
}

/** The flag that sets a limit, for messages ("over the limit --max-pixels=..."). */
export function limitFlag(key: keyof Limits): string {
  return LIMIT_SPECS.find((s) => s.key === key)!.flag;
}

/** A limit's default. */
export function limitDefault(key: keyof Limits): number {
  return LIMIT_SPECS.find((s) => s.key === key)!.fallback;
}

/** "--max-pixels=1000000" — how an error names the limit that was hit. */
export function describeLimit(limits: Limits, key: keyof Limits): string {
  return `${limitFlag(key)}=${limits[key]}`;
}

/**
 * Resolves the limits: explicit values (flags) first, then the environment, then the defaults.
 * Invalid numbers are refused rather than silently ignored: a typo must not lift a limit.
 */
export function resolveLimits(explicit: Partial<Record<keyof Limits, number | string | undefined>> = {}, env: NodeJS.ProcessEnv = process.env): Limits {
  const out = {} as Limits;
  for (const s of LIMIT_SPECS) {
    const raw = explicit[s.key] ?? env[s.env];
    if (raw === undefined || raw === '') {
      out[s.key] = s.fallback;
      continue;
    }
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < (s.min ?? 1)) throw new Error(`${s.flag} (${s.env}): "${String(raw)}" ${limitRule(s)}`);
    out[s.key] = n;
  }
  return out;
}

/**
 * The limits on a video or audio input applied to what was counted of it (its packets, its decoded
 * samples) rather than to what its header states, which can lie: a 120 s file whose header says
 * 5 s passes the submission check. A RESOURCE_EXHAUSTED error naming the input, or undefined.
 */
export function countedMediaOverLimit(input: string, counted: { seconds: number; frames?: number }, limits: Pick<Limits, 'maxMediaSeconds'> & Partial<Pick<Limits, 'maxVideoFrames'>>): TesseraError | undefined {
  if (counted.seconds > limits.maxMediaSeconds) {
    return resourceExhausted(`${input}: duration ${counted.seconds.toFixed(1)} s (counted, whatever its header states) is over the limit ${limitFlag('maxMediaSeconds')}=${limits.maxMediaSeconds} (seconds)`, input);
  }
  if (counted.frames !== undefined && limits.maxVideoFrames !== undefined && counted.frames > limits.maxVideoFrames) {
    return resourceExhausted(`${input}: ${counted.frames} frames (counted, whatever its header states) is over the limit ${limitFlag('maxVideoFrames')}=${limits.maxVideoFrames}`, input);
  }
  return undefined;
}
