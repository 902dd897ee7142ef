/**
 * Encoder arguments for each video/audio encoder, in one place. Workers use them for every segment
 * (identical settings across segments is what makes a stitched file match a single-process encode),
 * and tests and the benchmark use them for the single-process baseline.
 */
import { opusLayoutFor } from '../kinds/audio-params.js';
import { ffmpegAtLeast } from '../ffmpeg.js';
import { PRESETS, type VideoJobParams } from '../kinds/video-params.js';

/** Speed settings of encoders that do not take x264 preset names, indexed like {@link PRESETS}. */
const VPX_CPU_USED = [8, 7, 6, 5, 4, 3, 2, 1, 0];
const AOM_CPU_USED = [8, 8, 7, 6, 5, 4, 3, 2, 1];
const SVT_PRESET = [12, 11, 10, 9, 8, 7, 5, 4, 2];

/**
 * Encoders a bitrate's segments are encoded with in two passes. Not SVT-AV1 (ffmpeg 5.1's wrapper
 * writes no first-pass statistics).
 */
export const TWO_PASS_ENCODERS: ReadonlySet<string> = new Set(['libx264', 'libx265', 'libvpx-vp9', 'libaom-av1']);
/**
 * Of those, the ones whose second pass needs the encoder's time base to be a frame's length: ffmpeg
 * 5.1 gives libvpx and libaom each frame's length as one tick of it, which their second pass takes
 * for the frame rate. A segment keeping the source's timing is encoded in the source's time base
 * (1/15360 s for an MP4: 300k came out at 35 kbps); one resampled by `--fps` is in 1/fps (review V59).
 */
export const TWO_PASS_AT_FRAME_RATE: ReadonlySet<string> = new Set(['libvpx-vp9', 'libaom-av1']);

/** Whether a segment of `encoder`, resampled (`resampled`) or not, is encoded in two passes where asked. */
export function takesTwoPasses(encoder: string, resampled: boolean): boolean {
  return TWO_PASS_ENCODERS.has(encoder) && (resampled || !TWO_PASS_AT_FRAME_RATE.has(encoder));
}

/**
 * One pass of a two-pass encode: `stats` is the statistics file's name (x265's, relative to
 * ffmpeg's working folder: a ':' in a path would end its parameter) or prefix (the others').
 */
export interface EncodePass {
  pass: 1 | 2;
  stats: string;
}

/**
 * Output arguments (after `-map`) that encode video with `encoder` at the job's settings; with
 * `pass`, that pass of a two-pass encode (an encoder not in {@link TWO_PASS_ENCODERS} has none).
 */
export function videoEncoderArgs(params: VideoJobParams, encoder: string, threads: number, pixFmt = 'yuv420p', pass?: EncodePass): string[] {
  const speed = Math.max(0, PRESETS.indexOf(params.preset as (typeof PRESETS)[number]));
  const t = String(Math.max(1, threads));
  const quality = (crfFlag: string[]): string[] =>
    params.bitrate !== undefined ? ['-b:v', String(params.bitrate)] : [...crfFlag, String(params.crf)];
  const lossless = params.lossless;
  const passArgs = pass ? ['-pass', String(pass.pass), '-passlogfile', pass.stats] : [];
  // 8-bit 4:2:0 plays everywhere (10-bit for a deep source through an encoder that keeps it, see
  // VideoSegmentPlan.pixFmt); every segment gets the same pixel format.
  const common = ['-pix_fmt', pixFmt];
  switch (encoder) {
    case 'libx264':
      // Closed GOPs are x264's default; said explicitly because segments are cut right after them.
      // qp 0 is x264's lossless mode (High 4:4:4 Predictive profile, whatever the chroma).
      return ['-c:v', 'libx264', '-preset', params.preset, ...(lossless ? ['-qp', '0'] : quality(['-crf'])), ...passArgs, '-threads', t, '-x264-params', 'open-gop=0', ...common];
    case 'libx265':
      return ['-c:v', 'libx265', '-preset', params.preset, ...(lossless ? [] : quality(['-crf'])), '-x265-params', `open-gop=0:pools=${t}:log-level=error${lossless ? ':lossless=1' : ''}${pass ? `:pass=${pass.pass}:stats=${pass.stats}` : ''}`, ...common];
    case 'libvpx-vp9':
      return ['-c:v', 'libvpx-vp9', '-deadline', 'good', '-cpu-used', String(VPX_CPU_USED[speed]), ...(lossless ? ['-lossless', '1'] : quality(['-b:v', '0', '-crf'])), ...passArgs, '-row-mt', '1', '-threads', t, ...common];
    case 'libaom-av1':
      // ffmpeg before 4.2 (the npm package's of 2018) takes libaom only as "experimental".
      return ['-c:v', 'libaom-av1', ...(ffmpegAtLeast(5) ? [] : ['-strict', 'experimental']), '-cpu-used', String(AOM_CPU_USED[speed]), ...quality(['-b:v', '0', '-crf']), ...passArgs, '-row-mt', '1', '-threads', t, ...common];
    case 'libsvtav1':
      // ffmpeg 5.1's wrapper takes no -threads: without lp, SVT-AV1 sizes itself to every core of the
      // machine (about 90 threads, 1.7 of 2 cores for a slot given one).
      return ['-c:v', 'libsvtav1', '-preset', String(SVT_PRESET[speed]), ...quality(['-crf']), '-svtav1-params', `lp=${t}`, ...common];
    default:
      throw new Error(`no settings for video encoder ${encoder}`);
  }
}

/** Output arguments that encode the audio track (`aac`, `libopus`, `libmp3lame`). */
export function audioEncoderArgs(encoder: string, bitrate: number, sourceChannels: number, sourceLayout = ''): string[] {
  const args = ['-c:a', encoder, '-b:a', String(bitrate)];
  if (encoder === 'libmp3lame' && sourceChannels > 2) args.push('-ac', '2'); // MP3 holds at most stereo
  if (encoder === 'libopus') {
    // libopus takes one layout per channel count and refuses the rest (5.1(side) from every AC3 track,
    // 2.1, 4.0): convert to it (side -> back is exact); a 2.1 or 3.1 track, whose LFE that layout
    // has no place for, to 5.1 (opusLayoutFor). Past 8 channels: discrete channels, no layout.
    const layout = opusLayoutFor(sourceChannels, sourceLayout);
    if (layout) args.push('-af', `aformat=channel_layouts=${layout}`);
    if (sourceChannels > 2) args.push('-mapping_family', layout ? '1' : '255'); // surround Opus
  }
  return args;
}

/** Output picture size: rotation applied, then fitted into the requested box (aspect kept), even. */
export function outputSize(srcWidth: number, srcHeight: number, rotation: number, boxWidth: number, boxHeight: number): { width: number; height: number } {
  const [w, h] = rotation === 90 || rotation === 270 ? [srcHeight, srcWidth] : [srcWidth, srcHeight];
  let scale = 1;
  if (boxWidth && boxHeight) scale = Math.min(boxWidth / w, boxHeight / h);
  else if (boxWidth) scale = boxWidth / w;
  else if (boxHeight) scale = boxHeight / h;
  // Rounded down to even: 4:2:0 needs even edges, and rounding down never upscales an odd source.
  const even = (x: number): number => Math.max(2, 2 * Math.floor(x / 2 + 1e-6));
  // An exact requested edge stays exact (when even); only the derived edge is rounded.
  const width = boxWidth && (!boxHeight || boxWidth / w <= boxHeight / h) ? even(boxWidth) : even(w * scale);
  const height = boxHeight && (!boxWidth || boxHeight / h < boxWidth / w) ? even(boxHeight) : even(h * scale);
  return { width, height };
}

/**
 * Filters that show the picture as its display matrix says, as ffmpeg's autorotate does: turned by
 * `rotation` (clockwise), mirrored where the matrix also mirrors (a front camera's: an angle of 180
 * that is a mirror alone, a quarter turn that is a transpose the other way). Without a matrix (a
 * `rotate` tag), the turn alone.
 */
export function orientationFilters(rotation: number, matrix: readonly number[] | undefined, tilt = 0): string[] {
  // Another angle than a quarter turn: turned within the picture's frame, its corners black, as ffmpeg's autorotate does (review K20).
  if (tilt !== 0) return [`rotate=${tilt}*PI/180`];
  if (!matrix) return rotationFilters(rotation);
  const [a, , , c, d] = matrix as [number, number, number, number, number];
  if (rotation === 90) return [c > 0 ? 'transpose=cclock_flip' : 'transpose=clock'];
  if (rotation === 270) return [c < 0 ? 'transpose=clock_flip' : 'transpose=cclock'];
  if (rotation === 180) return [...(a < 0 ? ['hflip'] : []), ...(d < 0 ? ['vflip'] : [])];
  return d < 0 ? ['vflip'] : [];
}

/** The filters {@link orientationFilters} may give, which a worker accepts in a plan. */
export const ORIENTATION_FILTERS = /^(hflip|vflip|transpose=(clock|cclock|clock_flip|cclock_flip)|rotate=-?\d{1,3}\*PI\/180)$/;

/** Filters that turn the picture by a clockwise display rotation. */
export function rotationFilters(rotation: number): string[] {
  if (rotation === 90) return ['transpose=clock'];
  if (rotation === 180) return ['hflip', 'vflip'];
  if (rotation === 270) return ['transpose=cclock'];
  return [];
}
