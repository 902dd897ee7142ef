/** Builds typed job specs from CLI flags. No raw ffmpeg arguments or filter strings, ever. */
import { UsageError } from './usage-error.js';
import { InvalidArgumentError } from 'commander';
import type { JobSpec } from '../client.js';

/**
 * A number; with `positive`, over 0. A job's field left at 0 reaches the coordinator as "unset"
 * (its default): --every 0 or --fps 0 must not pass for a value. `noDefault`: the flag has no
 * default to fall back on (--every), so a 0 is not told to leave it out.
 */
export const num =
  (name: string, opts: { positive?: boolean; noDefault?: boolean; nonZero?: string } = {}) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    if (opts.positive && n <= 0) throw new InvalidArgumentError(`${name} must be more than 0, got ${v}${n === 0 && !opts.noDefault ? ' (leave it out for the default)' : ''}`);
    // A job's field at 0 reaches the coordinator as "unset": refused rather than quietly the default.
    if (opts.nonZero !== undefined && n === 0) throw new InvalidArgumentError(`${name} cannot be 0, which a job reads as unset: ${opts.nonZero}`);
    return n;
  };

/**
 * A frame rate: a number (29.97) or a fraction as ffmpeg writes rates (30000/1001; review VID3).
 * The job's field is a number: the coordinator takes one within a thousandth of an NTSC rate for it.
 */
export function frameRate(v: string): number {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(v);
  if (!m) return num('--fps', { positive: true })(v);
  const [top, bottom] = [Number(m[1]), Number(m[2])];
  if (bottom === 0 || top === 0) throw new InvalidArgumentError(`--fps must be more than 0, got ${v}`);
  return top / bottom;
}

/**
 * A whole number that fits the protocol's 32-bit fields (past them protobuf wraps it silently:
 * --width 4294967328 became 32): 0..2^31-1, or -2^31..2^31-1 with `signed`, or from `min`. A
 * job's field left at 0 reaches the coordinator as "unset" (its default): --quality 0 was quietly
 * quality 80, so fields where 0 is no value of their own take `min: 1`.
 */
export const int =
  (name: string, opts: { signed?: boolean; min?: number; max?: number; noDefault?: boolean } = {}) =>
  (v: string): number => {
    // Decimal digits only: Number() also reads 1e2 and 0x10, which the message says are not whole numbers (review OPS).
    const n = /^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number, got "${v}"`);
    const min = opts.min ?? (opts.signed ? -(2 ** 31) : 0);
    if (n === 0 && min > 0) throw new InvalidArgumentError(`${name} must be ${min} or more, got 0${opts.noDefault ? '' : ' (leave it out for the default)'}`);
    // Signed, past the top: the least it takes may be its own (checked later, "at least 100"), not -2^31.
    if (opts.signed && n > 2 ** 31 - 1) throw new InvalidArgumentError(`${name} must be at most ${2 ** 31 - 1}, got ${v}`);
    if (opts.max !== undefined && (n < min || n > opts.max)) throw new InvalidArgumentError(`${name} must be between ${min} and ${opts.max}, got ${v}`);
    if (n < min && min > 1 && n > 0) throw new InvalidArgumentError(`${name} must be ${min} or more, got ${v}`);
    if (n < min || n > 2 ** 31 - 1) throw new InvalidArgumentError(`${name} must be between ${min} and ${2 ** 31 - 1}, got ${v}`);
    return n;
  };

/** --crf: 0 would reach the coordinator as "unset" (the codec's default), not as x264's lossless. */
export function crfOption(v: string): number {
  const n = int('--crf')(v);
  if (n === 0) throw new InvalidArgumentError('--crf must be 1 or more (for a lossless encode, --lossless)');
  return n;
}

function pair(name: string, v: string, sep: RegExp): [number, number] {
  const parts = v.split(sep).map(Number);
  if (parts.length !== 2 || parts.some((n) => !Number.isFinite(n))) throw new InvalidArgumentError(`${name} must look like A,B, got "${v}"`);
  return [parts[0]!, parts[1]!];
}

export function cropOption(v: string): { left: number; top: number; width: number; height: number } {
  const parts = v.split(',').map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0)) throw new InvalidArgumentError(`--crop must be LEFT,TOP,WIDTH,HEIGHT, got "${v}"`);
  const [left, top, width, height] = parts as [number, number, number, number];
  if (width === 0 || height === 0) throw new InvalidArgumentError(`--crop: the width and height must both be positive, got "${v}"`);
  return { left, top, width, height };
}

export function trimOption(v: string): { start: number; end: number } {
  const [start, end] = pair('--trim', v, /,/);
  return { start, end };
}

type Opts = Record<string, unknown>;

const common = (o: Opts): Pick<JobSpec, 'label' | 'priority' | 'max_attempts' | 'request_id'> => ({
  label: (o['label'] as string | undefined) ?? '',
  priority: (o['priority'] as number | undefined) ?? 0,
  max_attempts: (o['maxAttempts'] as number | undefined) ?? 0,
  // Empty: the client library picks a UUID for this submission.
  request_id: (o['requestId'] as string | undefined) ?? '',
});

export function imageSpec(o: Opts): JobSpec {
  return {
    ...common(o),
    image: {
      width: o['width'] as number | undefined,
      height: o['height'] as number | undefined,
      fit: o['fit'] as string | undefined,
      no_enlarge: o['enlarge'] === false,
      background: o['background'] as string | undefined,
      crop: o['crop'] as JobSpec['image'] extends infer T ? (T extends { crop?: infer C } ? C : never) : never,
      rotate: o['rotate'] as number | undefined,
      flip: Boolean(o['flip']),
      flop: Boolean(o['flop']),
      blur: o['blur'] as number | undefined,
      sharpen: Boolean(o['sharpen']),
      grayscale: Boolean(o['grayscale']),
      brightness: o['brightness'] as number | undefined,
      saturation: o['saturation'] as number | undefined,
      hue: o['hue'] as number | undefined,
      format: o['format'] as string | undefined,
      quality: o['quality'] as number | undefined,
      keep_metadata: Boolean(o['keepMetadata']),
      no_auto_orient: o['autoOrient'] === false,
      tile_size: o['tile'] as number | undefined,
      tiled_output: o['pyramid'] as string | undefined,
      iiif_id: o['iiifId'] as string | undefined,
      bit_depth: o['bitDepth'] === undefined ? undefined : Number(o['bitDepth']),
    },
  };
}

export function videoSpec(o: Opts): JobSpec {
  return {
    ...common(o),
    video: {
      codec: o['codec'] as string | undefined,
      crf: o['crf'] as number | undefined,
      bitrate: o['bitrate'] as string | undefined,
      passes: o['passes'] === undefined ? undefined : Number(o['passes']),
      preset: o['preset'] as string | undefined,
      width: o['width'] as number | undefined,
      height: o['height'] as number | undefined,
      fps: o['fps'] as number | undefined,
      audio_codec: o['audioCodec'] as string | undefined,
      audio_bitrate: o['audioBitrate'] as string | undefined,
      container: o['container'] as string | undefined,
      segment_seconds: o['segmentSeconds'] as number | undefined,
      lossless: o['lossless'] as boolean | undefined,
    },
  };
}

export function thumbnailsSpec(o: Opts): JobSpec {
  // Said with the flags' names before anything is uploaded: the coordinator names the fields (review VID5).
  if (o['every'] === undefined && o['count'] === undefined) throw new UsageError('--every SECONDS or --count N is required');
  return {
    ...common(o),
    thumbnails: {
      every: o['every'] as number | undefined,
      count: o['count'] as number | undefined,
      width: o['width'] as number | undefined,
      format: o['format'] as string | undefined,
      sprite: o['sprite'] as string | undefined,
    },
  };
}

export function audioSpec(o: Opts): JobSpec {
  const loudness = o['loudness'] as number | undefined;
  return {
    ...common(o),
    audio: {
      codec: o['codec'] as string | undefined,
      bitrate: o['bitrate'] as string | undefined,
      sample_rate: o['sampleRate'] as number | undefined,
      channels: o['channels'] as number | undefined,
      trim: o['trim'] as { start: number; end: number } | undefined,
      fade_in: o['fadeIn'] as number | undefined,
      fade_out: o['fadeOut'] as number | undefined,
      normalize: loudness !== undefined || Boolean(o['normalize']),
      loudness,
      true_peak: o['truePeak'] as number | undefined,
      waveform: Boolean(o['waveform']),
      segment_seconds: o['segmentSeconds'] as number | undefined,
      track: o['track'] as number | undefined,
      language: o['language'] as string | undefined,
    },
  };
}

export function passthroughSpec(o: Opts): JobSpec {
  return {
    ...common(o),
    passthrough: {
      subtasks: o['subtasks'] as number | undefined,
      work_ms: o['workMs'] as number | undefined,
      fail_first_attempts: o['failFirstAttempts'] as number | undefined,
    },
  };
}
