/**
 * Validation and normalisation of `VideoParams` (kind `video`), shared by the coordinator's `validate`
 * and the worker's `params`. Pure: no I/O. Defaults are applied here, in one place.
 */
import { checkFieldTypes } from './param-checks.js';
import { invalidArgument } from '../errors.js';
import type { VideoParams__Output } from '../proto/generated/tessera/v1/VideoParams.js';

export type VideoCodec = 'h264' | 'h265' | 'vp9' | 'av1';
export type AudioCodecChoice = 'aac' | 'opus' | 'mp3' | 'copy' | 'none';
export type VideoContainer = 'mp4' | 'mkv' | 'webm';

/** Normalised video params: every field has its final value. */
export interface VideoJobParams {
  codec: VideoCodec;
  /** Constant quality; undefined when a bitrate is set or the encode is lossless. */
  crf: number | undefined;
  /** Mathematically lossless (at 8-bit 4:2:0): neither crf nor bitrate. */
  lossless: boolean;
  /** Target bitrate in bits/s; undefined in CRF mode. */
  bitrate: number | undefined;
  /**
   * Encoding passes per segment: 2 by default with a bitrate (a first pass measures the segment so
   * the second spends the rate where its pictures need it), 1 otherwise.
   */
  passes: 1 | 2;
  /** Encoder speed preset in x264 names (ultrafast..veryslow), mapped per encoder by the worker. */
  preset: string;
  /** Requested box (0 = unconstrained); aspect is kept and dimensions are even. */
  width: number;
  height: number;
  /** Output frame rate (0 = keep source timing, VFR passthrough). */
  fps: number;
  audioCodec: AudioCodecChoice;
  /** Audio bitrate in bits/s (lossy codecs). */
  audioBitrate: number;
  /** Whether the job gave audio_bitrate (a default is the encoder's to fit). */
  audioBitrateGiven?: boolean;
  container: VideoContainer;
  /** Target segment length in seconds (0 = chosen by the planner). */
  segmentSeconds: number;
}

/**
 * Encoders that can produce each codec, in order of preference. The planner picks the first one the
 * cluster has and pins it on every segment, so all segments share identical settings.
 */
export const VIDEO_ENCODERS: Readonly<Record<VideoCodec, readonly string[]>> = {
  h264: ['libx264'],
  h265: ['libx265'],
  vp9: ['libvpx-vp9'],
  av1: ['libsvtav1', 'libaom-av1'],
};

/**
 * What an encoder cannot make, where it is less than any picture and rate (ffmpeg 5.1's libraries):
 * SVT-AV1 refuses an edge under 64 px or over 240 fps, x265 an edge under 16 px ("bad parameter",
 * "Image size is too small"), each when it opens, on every segment.
 */
export const ENCODER_LIMITS: Readonly<Record<string, { minEdge?: number; maxFps?: number }>> = {
  libsvtav1: { minEdge: 64, maxFps: 240 },
  libx265: { minEdge: 16 },
};

/**
 * Why `encoder` cannot make a `width` x `height` picture at `fps` (0: not known): its words and
 * which of the two it is; undefined when it can.
 */
export function encoderMisfit(encoder: string, width: number, height: number, fps: number): { why: string; of: 'size' | 'rate' } | undefined {
  const l = ENCODER_LIMITS[encoder];
  if (l?.minEdge && Math.min(width, height) < l.minEdge) return { why: `${encoder} makes no picture under ${l.minEdge} px on an edge`, of: 'size' };
  if (l?.maxFps && fps > l.maxFps + 1e-6) return { why: `${encoder} takes at most ${l.maxFps} fps`, of: 'rate' };
  return undefined;
}

/** Encoders for the lossy audio codecs. */
export const AUDIO_ENCODERS: Readonly<Record<'aac' | 'opus' | 'mp3', string>> = {
  aac: 'aac',
  opus: 'libopus',
  mp3: 'libmp3lame',
};

/** x264-style preset names, slowest last; other encoders map them to their speed scales. */
export const PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'] as const;

const CRF_MAX: Record<VideoCodec, number> = { h264: 51, h265: 51, vp9: 63, av1: 63 };
/** Codecs whose encoders here have a lossless mode (SVT-AV1 has none; ffmpeg 5.1's libaom wrapper offers none). */
const LOSSLESS_CODECS: readonly VideoCodec[] = ['h264', 'h265', 'vp9'];
/** Codec defaults when neither crf nor bitrate is given (each encoder's usual default quality). */
const CRF_DEFAULT: Record<VideoCodec, number> = { h264: 23, h265: 28, vp9: 31, av1: 35 };

/** Video codecs and audio codecs each container can hold (audio `copy` is checked against the source at plan time). */
const CONTAINER_VIDEO: Record<VideoContainer, readonly VideoCodec[]> = {
  mp4: ['h264', 'h265', 'vp9', 'av1'],
  mkv: ['h264', 'h265', 'vp9', 'av1'],
  webm: ['vp9', 'av1'],
};
const CONTAINER_AUDIO: Record<VideoContainer, readonly AudioCodecChoice[]> = {
  mp4: ['aac', 'mp3', 'opus', 'copy', 'none'],
  mkv: ['aac', 'mp3', 'opus', 'copy', 'none'],
  webm: ['opus', 'copy', 'none'],
};

/** Source audio codecs a container accepts by stream copy. */
export const CONTAINER_COPY_AUDIO: Record<VideoContainer, readonly string[] | 'any'> = {
  // mp2: a DVD's or a broadcast's track, which MP4 holds (as `ffmpeg -c:a copy` writes it).
  mp4: ['aac', 'mp3', 'mp2', 'opus', 'alac', 'flac', 'ac3', 'eac3'],
  mkv: 'any',
  webm: ['opus', 'vorbis'],
};

/**
 * Why `--audio-codec copy` cannot put these source audio tracks (their codec names, in order) into
 * `container`, or undefined when it can.
 */
export function copyAudioRefusal(codecs: readonly string[], container: VideoContainer): string | undefined {
  const allowed = CONTAINER_COPY_AUDIO[container];
  if (allowed === 'any') return undefined;
  const t = codecs.findIndex((c) => !allowed.includes(c));
  if (t < 0) return undefined;
  return `its ${codecs[t]} ${t === 0 ? 'audio' : `audio track ${t + 1}`} cannot be copied into ${container}; choose an audio codec such as ${container === 'webm' ? 'opus' : 'aac'}`;
}

/** The largest output edge asked for (--width, --height); one derived from the source's shape is held to it too. */
export const MAX_DIMENSION = 8192;

/** Parses "2M", "800k", "1.5m", "128000" into bits/s; NaN when malformed. */
export function parseBitrate(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(text);
  if (!m) return Number.NaN;
  const mult = m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1e3 : 1e6;
  return Math.round(Number(m[1]) * mult);
}

/** The NTSC rates, N x 1000/1001 frames a second, by their N. */
const NTSC_RATES = [24, 30, 48, 60, 120];

/**
 * The exact NTSC rate (24000/1001 and so on) that `fps` stands for, where it is one to a thousandth:
 * --fps 29.97 was written as 2997/100, a rate no camera or broadcast has (review VID3).
 */
export function ntscRate(fps: number): number | undefined {
  const n = NTSC_RATES.find((r) => Math.abs(fps - (r * 1000) / 1001) < 1e-3);
  return n === undefined ? undefined : (n * 1000) / 1001;
}

/** The rate `fps` as ffmpeg reads it exactly: an NTSC rate as its fraction (30000/1001). */
export function rateExpression(fps: number): string {
  const n = NTSC_RATES.find((r) => Math.abs(fps - (r * 1000) / 1001) < 1e-9);
  return n === undefined ? String(fps) : `${n * 1000}/1001`;
}

/** Validates raw `VideoParams` (proto defaults applied) and returns normalised params. */
export function parseVideoParams(raw: Partial<VideoParams__Output> | null | undefined): VideoJobParams {
  const p = checkFieldTypes('video', raw, {
    codec: 'string', crf: 'number', bitrate: 'string', preset: 'string', width: 'number', height: 'number', fps: 'number',
    audio_codec: 'string', audio_bitrate: 'string', container: 'string', segment_seconds: 'number', lossless: 'boolean', passes: 'number',
  }) as Partial<VideoParams__Output>;
  // The container first: WebM's defaults are its own codecs (VP9 and Opus), not MP4's.
  const container = (p.container || 'mp4').toLowerCase();
  if (!isOneOf(container, ['mp4', 'mkv', 'webm'] as const)) throw invalidArgument(`container: "${p.container}" is not one of mp4, mkv, webm`);
  const codec = (p.codec || (container === 'webm' ? 'vp9' : 'h264')).toLowerCase();
  if (!isOneOf(codec, ['h264', 'h265', 'vp9', 'av1'] as const)) throw invalidArgument(`codec: "${p.codec}" is not one of h264, h265, vp9, av1`);

  const crfRaw = p.crf ?? 0;
  const bitrateText = (p.bitrate ?? '').trim();
  const lossless = p.lossless ?? false;
  if (crfRaw && bitrateText) throw invalidArgument('crf and bitrate: give one or the other, not both');
  if (lossless && (crfRaw || bitrateText)) throw invalidArgument(`lossless: has no ${crfRaw ? 'crf' : 'bitrate'} (a lossless encode has no quality setting)`);
  if (lossless && !LOSSLESS_CODECS.includes(codec)) throw invalidArgument(`lossless: not available for ${codec} (use ${LOSSLESS_CODECS.join(', ')})`);
  let crf: number | undefined;
  let bitrate: number | undefined;
  if (lossless) {
    // Neither: the encoders' own lossless modes.
  } else if (bitrateText) {
    bitrate = parseBitrate(bitrateText);
    if (!Number.isFinite(bitrate)) throw invalidArgument(`bitrate: "${bitrateText}" is not a rate such as 2M or 800k`);
    if (bitrate < 16e3 || bitrate > 500e6) throw invalidArgument(`bitrate: ${bitrateText} is outside 16k..500M`);
  } else {
    crf = crfRaw || CRF_DEFAULT[codec];
    if (!Number.isInteger(crf) || crf < 1 || crf > CRF_MAX[codec]) throw invalidArgument(`crf: ${crfRaw} is outside 1..${CRF_MAX[codec]} for ${codec}`);
  }

  const passesAsked = p.passes ?? 0;
  if (!(passesAsked === 0 || passesAsked === 1 || passesAsked === 2)) throw invalidArgument(`passes: ${p.passes} is not 1 or 2 (0 = the default: 2 with a bitrate)`);
  if (passesAsked && bitrate === undefined) throw invalidArgument(`passes: only with bitrate (${lossless ? 'a lossless' : 'a crf'} encode takes one pass)`);
  const passes = bitrate === undefined ? 1 : passesAsked === 1 ? 1 : 2;

  const preset = (p.preset || 'medium').toLowerCase();
  if (!isOneOf(preset, PRESETS)) throw invalidArgument(`preset: "${p.preset}" is not one of ${PRESETS.join(', ')}`);

  const width = p.width ?? 0;
  const height = p.height ?? 0;
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    // 0 keeps the source's (the API's default; the CLI's --width takes 1 and up): the range says so (review VID5).
    if (!Number.isInteger(v) || v < 0 || v > MAX_DIMENSION) throw invalidArgument(`${name}: ${v} is outside 16..${MAX_DIMENSION} (0 keeps the source's)`);
    if (v > 0 && v < 16) throw invalidArgument(`${name}: ${v} is below the 16-pixel minimum`);
  }

  const asked = Number(p.fps ?? 0);
  if (!Number.isFinite(asked) || asked < 0 || asked > 240 || (asked > 0 && asked < 1)) throw invalidArgument(`fps: ${p.fps} is outside 1..240 (unset keeps the source timing)`);
  const fps = ntscRate(asked) ?? asked;

  const audioCodec = (p.audio_codec || (container === 'webm' ? 'opus' : 'aac')).toLowerCase();
  if (!isOneOf(audioCodec, ['aac', 'opus', 'mp3', 'copy', 'none'] as const)) throw invalidArgument(`audio_codec: "${p.audio_codec}" is not one of aac, opus, mp3, copy, none`);
  const audioBitrateText = (p.audio_bitrate ?? '').trim();
  const audioBitrate = audioBitrateText ? parseBitrate(audioBitrateText) : 128e3;
  if (!Number.isFinite(audioBitrate) || audioBitrate < 8e3 || audioBitrate > 1e6) throw invalidArgument(`audio_bitrate: "${audioBitrateText}" is not a rate within 8k..1M`);
  if (audioBitrateText && (audioCodec === 'copy' || audioCodec === 'none')) throw invalidArgument(`audio_bitrate: has no meaning with audio_codec ${audioCodec}`);


  if (!CONTAINER_VIDEO[container].includes(codec)) throw invalidArgument(`container: ${container} cannot hold ${codec} video (use ${CONTAINER_VIDEO[container].join(' or ')})`);
  if (!CONTAINER_AUDIO[container].includes(audioCodec)) throw invalidArgument(`audio_codec: ${container} cannot hold ${audioCodec} audio (use ${CONTAINER_AUDIO[container].join(', ')})`);

  const segmentSeconds = Number(p.segment_seconds ?? 0);
  if (!Number.isFinite(segmentSeconds) || segmentSeconds < 0 || (segmentSeconds > 0 && segmentSeconds < 1) || segmentSeconds > 3600) {
    throw invalidArgument(`segment_seconds: ${p.segment_seconds} is outside 1..3600 (0 = automatic)`);
  }

  return { codec, crf, bitrate, passes, lossless, preset, width, height, fps, audioCodec, audioBitrate, audioBitrateGiven: audioBitrateText !== '', container, segmentSeconds };
}

function isOneOf<T extends string>(value: string, options: readonly T[]): value is T {
  return (options as readonly string[]).includes(value);
}
