/**
 * Pure planning math of the audio kind, shared by the coordinator (which plans) and the worker (which
 * reads the plans): the subtask plan shapes, whole-second segmentation with pre/post-roll, fades in
 * output samples, waveform bin size, and the loudness gain / limiter decision.
 */
import type { AudioJobParams } from '../kinds/audio-params.js';
import type { FadeSamples } from './audio-filters.js';
import type { PinnedFormat } from './audio-render.js';
import { withExtension, type NameSet } from '../names.js';

/**
 * Workers that write `FileRender.tags`: an older one would leave the source's tags out, saying
 * nothing. A whole-file subtask of a tagged source requires it.
 */
export const AUDIO_TAGS_FEATURE = 'audio-tags';

/**
 * Workers that write `FileRender.chapters`: an older one would leave them out, saying nothing. A
 * whole-file subtask of a source with chapters requires it.
 */
export const AUDIO_CHAPTERS_FEATURE = 'audio-chapters';
/**
 * Workers that render FileRender's `stream`, `durationFromTag` and `fillGaps`: an older one encoded
 * the first audio track (a commentary) where the plan said another, and held a Matroska tag's length
 * to the sample (review K15).
 */
export const AUDIO_STREAM_FEATURE = 'audio-stream';

/** How one input file is rendered (the same for all of its pieces). */
export interface FileRender {
  /** Job input name (client file name). */
  input: string;
  /** Output file name (unique in the job). */
  output: string;
  sourceRate: number;
  outRate: number;
  /** Output channel layout when converting channels ("" = keep the source's). */
  outLayout: string;
  /** Layout name used for the BS.1770 channel weights. */
  weightLayout: string;
  /** PCM depth of flac/wav outputs. */
  bits: 16 | 24;
  /** The source's codec (ffprobe name): a PCM source is decoded without `-xerror` (audio-render.ts). */
  sourceCodec?: string | undefined;
  /** The source's audio track where it has several (AudioProbe.stream; absent: its first). */
  stream?: number | undefined;
  /** A trimmed MPEG-TS or -PS: its timestamp gaps filled with silence first (audio-filters.ts FILL_GAPS). */
  fillGaps?: boolean | undefined;
  /**
   * Decoded by a process of its own before the whole-file chain (audio-render.ts StageARun.decodeApart):
   * a source whose layout or rate may change part-way (broadcast and elementary-stream formats,
   * codecs carrying their format in each frame). Workers from before it render such a file as before.
   */
  decodeApart?: PinnedFormat | undefined;
  /** Output frames expected for the whole file (exact for WAV-cut files, estimated for others). */
  totalFrames: number;
  /** False when that estimate came from the container, not the audio stream (see AudioProbe.durationIsAudio). */
  durationIsAudio?: boolean | undefined;
  /** Seconds of that estimate the decoder skips at the start (AudioProbe.statedSkip: a bare MP3's delay). */
  statedSkip?: number | undefined;
  /** That estimate is a Matroska tag's (AudioProbe.durationFromTag): never held to the sample. */
  durationFromTag?: boolean | undefined;
  /**
   * The coordinator's --max-media-seconds: a whole-file render stops a little past it and the file
   * is refused, whatever length its header states (absent in plans from before 2026-12-04).
   */
  maxSeconds?: number | undefined;
  fadeIn?: FadeSamples | undefined;
  fadeOut?: FadeSamples | undefined;
  /** Waveform bin size in output samples (absent = no waveform). */
  waveformSpp?: number | undefined;
  /** The source's tags, written into the output (absent in plans from before 2026-12-05: none). */
  tags?: Record<string, string> | undefined;
  /** The source's chapters on the output's timeline (seconds), written into it (absent: none). */
  chapters?: Array<{ start: number; end: number; title: string }> | undefined;
}

/** A subtask that renders whole (small) files, start to finish, on one worker. */
export interface WholeFilesPlan {
  type: 'whole';
  files: Array<FileRender & { trim?: { startSample: number; endSample: number } | undefined }>;
}

/** A subtask that runs stage A and the analysis over one segment of a long file. */
export interface SegmentPlan {
  type: 'segment';
  file: FileRender;
  /** Name of the segment WAV among the subtask's inputs. */
  segmentInput: string;
  index: number;
  count: number;
  /** Output-timeline position of the body's first sample. */
  offset: number;
  /** Pre-roll in output samples (stage A output frames before the body). */
  preRoll: number;
  /** Body length in output samples (undefined for the last segment: all that stage A produces after the pre-roll). */
  body?: number | undefined;
}

export type AudioSubtaskPlan = WholeFilesPlan | SegmentPlan;

/** A cut of the source (in source frames) and where its body lands in output frames. */
export interface SegmentCut {
  /** First source frame of the cut (pre-roll included). */
  from: number;
  /** Source frames in the cut (pre-roll + body + post-roll). */
  frames: number;
  offset: number;
  preRoll: number;
  body?: number | undefined;
}

/** Seconds of context each segment gets on both sides: warms up the resampler and the K-weighting filters. */
export const ROLL_SECONDS = 1;

/**
 * Splits `frames` source frames (starting at source frame `start`) into segments of about
 * `segmentSeconds`, as even as whole seconds allow: boundary k is at round(k x length / count) seconds,
 * so segments differ by at most a second and the last one holds the fraction. Boundaries stay on whole
 * seconds from the start because the join needs them there: whole samples at both rates (11025 Hz has
 * no whole-sample 100 ms), on the 100 ms loudness grid, and on the waveform's bins (up to 1 s long).
 */
export function segmentCuts(start: number, frames: number, sourceRate: number, outRate: number, segmentSeconds: number): SegmentCut[] {
  const seconds = frames / sourceRate;
  const count = Math.max(1, Math.round(seconds / segmentSeconds));
  // seconds / count >= 2/3 of a segment (>= 1.33 s): consecutive boundaries never coincide.
  const boundary = (k: number): number => Math.round((k * seconds) / count);
  const cuts: SegmentCut[] = [];
  for (let k = 0; k < count; k++) {
    const last = k === count - 1;
    const from = boundary(k);
    const to = last ? seconds : boundary(k + 1);
    const bodyFrom = from * sourceRate;
    const bodyTo = last ? frames : to * sourceRate;
    const pre = k === 0 ? 0 : ROLL_SECONDS * sourceRate;
    const post = last ? 0 : Math.min(ROLL_SECONDS * sourceRate, frames - bodyTo);
    cuts.push({
      from: start + bodyFrom - pre,
      frames: pre + (bodyTo - bodyFrom) + post,
      offset: from * outRate,
      preRoll: k === 0 ? 0 : ROLL_SECONDS * outRate,
      body: last ? undefined : (to - from) * outRate,
    });
  }
  return cuts;
}

/** Output frames for `frames` source frames after resampling (what ffmpeg's resampler emits). */
export function resampledFrames(frames: number, sourceRate: number, outRate: number): number {
  return sourceRate === outRate ? frames : Math.ceil((frames * outRate) / sourceRate);
}

/** Fade positions in output samples for an output of `totalFrames` frames. */
export function fadeSamples(params: AudioJobParams, outRate: number, totalFrames: number): { fadeIn?: FadeSamples; fadeOut?: FadeSamples } {
  const r: { fadeIn?: FadeSamples; fadeOut?: FadeSamples } = {};
  if (params.fadeIn > 0) r.fadeIn = { start: 0, length: Math.min(totalFrames, Math.max(1, Math.round(params.fadeIn * outRate))) };
  if (params.fadeOut > 0) {
    const length = Math.min(totalFrames, Math.max(1, Math.round(params.fadeOut * outRate)));
    r.fadeOut = { start: totalFrames - length, length };
  }
  return r;
}

/** Waveform bin size: the finest whole-sample bins (up to 100 per second) giving at most ~20000 bins. */
export function waveformSpp(outRate: number, totalFrames: number): number {
  const seconds = totalFrames / outRate;
  for (const pps of [100, 50, 25, 20, 10, 5, 4, 2, 1]) {
    if (outRate % pps === 0 && seconds * pps <= 20_000) return outRate / pps;
  }
  return outRate;
}

/**
 * EBU R128 integrated loudness is gated over 400 ms blocks: a file with less audio than one block has
 * no loudness to normalise, and is refused (with --normalize) rather than passed through unchanged.
 */
export const MIN_NORMALIZE_SECONDS = 0.4;

/** The loudness correction of one file. */
export interface LoudnessDecision {
  /** Measured integrated loudness before correction, LUFS. */
  measured: number;
  gainDb: number;
  /** Sample-peak limit (linear) when the gain would push the true peak over the ceiling. */
  limit?: number | undefined;
  /** True peak after the gain, before limiting, dBTP. */
  peakAfterGain: number;
}

/**
 * Margin under the ceiling for the limiter, which runs 4x oversampled (true peaks, not samples):
 * what is left over after resampling back is a few tenths of a dB, measured on lossless outputs
 * and encoded again lower where over (a lossy encoder's own peaks likewise). It was 1 dB from when
 * the limiter held samples only: outputs a dB under the ceiling and short of their target by as
 * much (review audio).
 */
export const LIMITER_MARGIN_DB = 0.5;

/**
 * The limiter's sample-peak level (linear) `dB` under full scale times `scale`, as the filter string
 * writes it (6 decimals), never under 0.0625 (-24 dBFS, alimiter's floor).
 */
export function limiterLevel(dB: number, scale = 1): number {
  return Math.round(Math.max(0.0625, scale * 10 ** (dB / 20)) * 1e6) / 1e6;
}

/** The most gain (or cut) normalisation applies, dB. */
export const MAX_GAIN_DB = 60;

/** Decides gain and limiter from the measured loudness and true peak (linear). */
export function decideLoudness(params: AudioJobParams, measured: number, truePeak: number): LoudnessDecision {
  const peakDb = truePeak > 0 ? 20 * Math.log10(truePeak) : -Infinity;
  if (!params.normalize || !Number.isFinite(measured)) return { measured, gainDb: 0, peakAfterGain: peakDb };
  // Silence-like material (gated out entirely) gets no gain rather than +inf.
  // Rounded as the filter string writes it, so the report states the exact gain that was applied.
  const gainDb = Math.round(Math.max(-MAX_GAIN_DB, Math.min(MAX_GAIN_DB, params.loudness - measured)) * 1e4) / 1e4;
  const peakAfterGain = peakDb + gainDb;
  const limit = peakAfterGain > params.truePeak ? limiterLevel(params.truePeak - LIMITER_MARGIN_DB) : undefined;
  return { measured, gainDb, limit, peakAfterGain };
}

/**
 * A unique output name for an input, with the codec's extension: its own name otherwise, as the
 * other kinds name theirs (input names are checked on the way in). Every character outside ASCII
 * letters and digits was made `_`: `Beyoncé – Halo.wav` gave `Beyonc____Halo.mp3`, and names in
 * other scripts `_.mp3`, `_-2.mp3` (review NAMES).
 */
export function outputName(input: string, extension: string, taken: NameSet): string {
  const first = withExtension(input.replace(/^.*[\\/]/, ''), extension);
  const stem = first.slice(0, -(extension.length + 1));
  let name = first;
  for (let i = 2; taken.has(name); i++) name = `${stem}-${i}.${extension}`;
  taken.add(name);
  return name;
}
