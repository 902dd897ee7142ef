/**
 * MPEG-TS and -PS sources whose clock jumps (two recordings joined with `cat`, a DVD's cells, a
 * broadcast's splice), for the kinds that place frames by their times (video, thumbnails).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import type { VideoIndex } from '../../shared/media/probe.js';

/** Demuxers whose clock may jump, and the muxer a copy read straight through is written with. */
const JUMPING_CLOCKS: Readonly<Record<string, string>> = { mpegts: 'mpegts', mpeg: 'vob' };

/** What a kind tells the job of such a source. */
export const CLOCK_JUMPS_WARNING = 'its clock jumps (recordings joined end to end?): played straight on across each jump, as ffmpeg plays it';

/**
 * Where the clock of `src` (ffprobe's `formatName`, its packet `index`) jumps (back by more than
 * 0.1 s or forward by more than 10 s, ffmpeg's own thresholds): the streams `maps` select copied once
 * as ffmpeg reads them, the clock run on across each jump, into `workDir` as `base` (its extension
 * the muxer's). Cut or sought as it is, the part after a restart was squeezed into the last
 * millisecond before it (or never reached), and a jump forward kept as a frozen picture. Undefined
 * where the clock runs straight.
 */
export async function linearCopy(src: string, name: string, formatName: string, index: VideoIndex, maps: readonly string[], workDir: string, base: string, signal: AbortSignal): Promise<string | undefined> {
  const muxer = JUMPING_CLOCKS[formatName];
  if (!muxer || index.jumps !== true) return undefined;
  const linear = path.join(workDir, `${base}.${muxer === 'vob' ? 'vob' : 'ts'}`);
  await mkdir(workDir, { recursive: true });
  await runFfmpeg(['-y', '-v', 'error', '-i', src, ...maps, '-c', 'copy', '-f', muxer, linear], { signal, input: name });
  return linear;
}
