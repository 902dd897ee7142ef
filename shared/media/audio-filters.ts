/**
 * The audio kind's filter chains, built from typed values only (never from client strings).
 *
 * Stage A is sample-local and runs in parallel, per segment: format/rate/channel conversion, then fades
 * positioned on the global output timeline. Stage B is global and runs once over the joined PCM: the
 * loudness gain and, when needed, the true-peak limiter, followed by the single encode. A single-process
 * run of the same filters is `stageA(whole) + "," + stageB` on the source; tests compare against it.
 */
import { AUDIO_CODECS, OPUS_LAYOUTS, type AudioCodec } from '../kinds/audio-params.js';

/** Fade in or out, in output samples on the global timeline. */
export interface FadeSamples {
  start: number;
  length: number;
}

/** Everything stage A needs to know about one piece (a whole file or a segment with its pre-roll). */
export interface StageAOptions {
  /** Source trim in source samples (whole-file pieces only; segments arrive already cut). */
  trim?: { startSample: number; endSample: number } | undefined;
  /** Fill the gaps in the source's timestamps with silence first, so that its samples follow its timeline (a trim of an MPEG-TS's dropout). */
  fillGaps?: boolean | undefined;
  /** Output sample rate; differs from the source's when resampling. */
  outRate: number;
  /** Output channel layout name when down/up-mixing ("" = keep). */
  outLayout: string;
  /** Output-timeline position (in output samples) of the piece's first sample, pre-roll included. */
  offset: number;
  fadeIn?: FadeSamples | undefined;
  fadeOut?: FadeSamples | undefined;
  /** Output samples of the piece (pre-roll included); fades that do not reach the piece are left out. */
  pieceLength?: number | undefined;
}

/** Silence where the timestamps jump (over 0.1 s): the samples then follow the source's timeline. */
export const FILL_GAPS = 'aresample=async=1';

/** The stage-A filter chain. It always ends in packed float at the output rate. */
export function stageAChain(o: StageAOptions): string {
  const f: string[] = [];
  if (o.fillGaps) f.push(FILL_GAPS);
  if (o.trim) f.push(`atrim=start_sample=${o.trim.startSample}:end_sample=${o.trim.endSample}`, 'asetpts=PTS-STARTPTS');
  // A mix to another layout is normalised (no output channel sums over full scale), as `ffmpeg -ac`
  // mixes: converting to float, the resampler would otherwise leave its matrix as it is, and a
  // loud stereo file mixed to mono, or 5.1 to stereo, clipped hard once written as integers.
  if (o.outLayout) f.push('aresample=rematrix_maxval=1');
  f.push(`aformat=sample_fmts=flt:sample_rates=${o.outRate}${o.outLayout ? `:channel_layouts=${o.outLayout}` : ''}`);
  // Fades position themselves from timestamps: give the piece its place on the global output timeline.
  f.push(`asettb=1/${o.outRate}`, `asetpts=N+${o.offset}`);
  const end = o.pieceLength === undefined ? Infinity : o.offset + o.pieceLength;
  if (o.fadeIn && o.fadeIn.length > 0 && o.offset < o.fadeIn.start + o.fadeIn.length) {
    f.push(`afade=t=in:ss=${o.fadeIn.start}:ns=${o.fadeIn.length}`);
  }
  if (o.fadeOut && o.fadeOut.length > 0 && end > o.fadeOut.start) {
    f.push(`afade=t=out:ss=${o.fadeOut.start}:ns=${o.fadeOut.length}`);
  }
  return f.join(',');
}

/** Settings of the global stage. */
export interface StageBOptions {
  /** Gain in dB (0 = none). */
  gainDb: number;
  /** Peak limit (linear, 0.0625..1) of the lookahead limiter, or undefined for none. */
  limit?: number | undefined;
  /** The signal's sample rate: the limiter works at 4 times it (see stageBChain). */
  sampleRate: number;
  /** ffmpeg major version (alimiter's latency compensation exists from 5 on). */
  ffmpegMajor: number;
}

/** Limiter lookahead in ms: long enough for a smooth gain change, short enough to keep transients. */
export const LIMITER_ATTACK_MS = 5;
export const LIMITER_RELEASE_MS = 100;

/** The stage-B filter chain, or "" when it is the identity. */
export function stageBChain(o: StageBOptions): string {
  const f: string[] = [];
  if (o.gainDb !== 0) f.push(`volume=${o.gainDb.toFixed(4)}dB`);
  if (o.limit !== undefined) {
    // level=disabled: alimiter would otherwise re-normalise the output to the limit and undo the gain.
    const limiter = `alimiter=limit=${o.limit.toFixed(6)}:attack=${LIMITER_ATTACK_MS}:release=${LIMITER_RELEASE_MS}:level=disabled`;
    // At 4 times the rate: alimiter holds sample peaks, and between samples a signal rises over them
    // (clipped or bright material by 3-7 dB). Oversampled, its samples are the true peak's points
    // (BS.1770's 4x), so the limit holds for the true peak too; a sample-peak limit low enough for
    // that would squash such material by as much.
    const rate = o.sampleRate * 4;
    // alimiter delays its output by its lookahead: ffmpeg 5 and later take it back (latency=1); before
    // (the npm package's ffmpeg of 2018) the chain does, padding the end by as much as it cuts from the
    // start, or every sample came 5 ms late and the last 5 ms were lost.
    const lookahead = Math.round((rate * LIMITER_ATTACK_MS) / 1000);
    const limited = o.ffmpegMajor >= 5 ? [`${limiter}:latency=1`] : [`apad=pad_len=${lookahead}`, limiter, `atrim=start_sample=${lookahead}`, 'asetpts=PTS-STARTPTS'];
    f.push(`aresample=${rate}`, ...limited, `aresample=${o.sampleRate}`);
  }
  return f.join(',');
}

/** The final output's encoder arguments, and its muxer (format and options) apart. */
export interface OutputEncoding {
  /** `-c:a ...` and the encoder's options. */
  codec: string[];
  /** Muxer (`-f`). */
  format: string;
  /** Muxer options, as `-name value` on a command line. */
  muxerOptions: Record<string, string>;
}

/**
 * Encoder and muxer of the final output. `bits` is the PCM depth for flac/wav (16 or 24);
 * `channels` the output's channel count (0 = not known; only Opus needs it).
 */
export function outputEncoding(codec: AudioCodec, bitrate: number, bits: 16 | 24, channels = 0): OutputEncoding {
  const info = AUDIO_CODECS[codec];
  const args = ['-c:a', info.encoder];
  // Counts with a Vorbis layout arrive in it (stage A converts them); beyond those, discrete channels.
  if (codec === 'opus' && channels > 0 && !OPUS_LAYOUTS[channels]) args.push('-mapping_family', '255');
  // 6.1 with the wrapper's default mapping lands in the wrong Vorbis slots in ffmpeg 5.1 (its centre
  // played from the back, review AOUT); asked for family 1, as the video kind asks, it is in order.
  if (codec === 'opus' && channels === 7) args.push('-mapping_family', '1');
  if (codec === 'wav') args.splice(1, 1, bits === 24 ? 'pcm_s24le' : 'pcm_s16le');
  if (codec === 'flac') args.push('-sample_fmt', bits === 24 ? 's32' : 's16');
  if (info.lossy) args.push('-b:a', String(bitrate));
  // bitexact: no encoder-version tags, so identical samples give identical lossless files.
  if (!info.lossy) args.push('-flags', '+bitexact', '-fflags', '+bitexact');
  return { codec: args, format: codec === 'aac' ? 'ipod' : codec === 'opus' ? 'ogg' : codec, muxerOptions: { ...info.muxerOptions } };
}

/** An {@link OutputEncoding} as one command line's arguments (encoder, muxer options, `-f`). */
export function encodingArgs(e: OutputEncoding): string[] {
  return [...e.codec, ...Object.entries(e.muxerOptions).flatMap(([k, v]) => [`-${k}`, v]), '-f', e.format];
}

/** The arguments of {@link outputEncoding}. */
export function encoderArgs(codec: AudioCodec, bitrate: number, bits: 16 | 24, channels = 0): string[] {
  return encodingArgs(outputEncoding(codec, bitrate, bits, channels));
}

/** PCM depth of a lossless output for a source sample format: 16-bit sources stay 16-bit. */
export function losslessBits(sourceSampleFormat: string): 16 | 24 {
  return /^(s16|s16p|u8|u8p)$/.test(sourceSampleFormat) ? 16 : 24;
}
