/**
 * Coordinator-side stream-copy cutting for the video kind: the video stream into keyframe-aligned
 * chunks (segment muxer, original timestamps kept) and each audio track into a file of its own.
 * Both are cheap (no decoding) and let each worker fetch only the bytes its range needs.
 *
 * Chunks are NUT, ffmpeg's own container: it holds any codec and keeps the source's time base
 * exactly (refined, never rounded). Matroska, used before, stores times in whole milliseconds, which
 * turned a 29.97 fps source into 33/34 ms frames in the output.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { dataLoss } from '../../shared/errors.js';
import { fpsModeFlag, runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import type { SpoolFile } from '../../shared/job-kind.js';
import { chunkExtension, chunkFormatOf, type ChunkFormat } from '../../shared/media/video-plan.js';

const CHUNK = /^chunk\d{5}\.(nut|mkv|mov)$/;

/**
 * Cuts stream `streamIndex` of `src` at `cutTimes` into `dir/chunkNNNNN.nut` (or `.mkv`) files, in
 * order; with `sourceFirstPts`, also measures the muxer's {@link chunkTimeShift} (beside the chunks'
 * checksums, which take about as long).
 */
export async function cutVideoChunks(
  src: string,
  input: string,
  streamIndex: number,
  cutTimes: number[],
  dir: string,
  signal: AbortSignal,
  opts: { format?: ChunkFormat; sourceFirstPts?: number; expectedShift?: number; lossless?: boolean } = {},
): Promise<{ chunks: SpoolFile[]; shift: number }> {
  const format = opts.format ?? 'nut';
  await mkdir(dir, { recursive: true });
  // The muxer compares the cut times with packet times it has already moved by its shift (a source
  // whose decode times start before 0: B-frame delay, a trim by stream copy, a wrapped MPEG-TS
  // clock), so the times are moved by it too: as expected from the first keyframe's decode time,
  // and, where the measured shift differs, cut again with that one.
  let expected = opts.expectedShift ?? 0;
  for (let attempt = 1; ; attempt++) {
    const names = await cutAt(src, input, streamIndex, cutTimes.map((t) => t + expected), dir, format, signal, opts.lossless ?? false);
    const shift = opts.sourceFirstPts === undefined ? 0 : await chunkTimeShift(path.join(dir, names[0]!), opts.sourceFirstPts, input, signal);
    if (Math.abs(shift - expected) > 0.0005 && attempt === 1) {
      expected = shift;
      continue;
    }
    const chunks = await Promise.all(names.map((n) => spoolFile(path.join(dir, n), `${path.basename(dir)}-${n}`)));
    return { chunks, shift };
  }
}

/** One run of the segment muxer: the chunks' names, in order. */
async function cutAt(src: string, input: string, streamIndex: number, cutTimes: number[], dir: string, format: ChunkFormat, signal: AbortSignal, lossless: boolean): Promise<string[]> {
  // A plan made again (the coordinator stopped while planning), or a cut made again, may cut into
  // fewer chunks: the earlier cut's chunks must not be counted, nor handed out, as this one's.
  for (const f of await readdir(dir)) if (CHUNK.test(f)) await rm(path.join(dir, f), { force: true });
  // The segment muxer splits at the first keyframe presenting at or after each time: aim just before it.
  const times = cutTimes.map((t) => (t - 0.0005).toFixed(6));
  // -copytb 1: the chunks keep the demuxer's time base (ffmpeg's automatic choice may take one from
  // the frame rate, 1/15 for a VFR Matroska, onto which NUT would round every 1 ms time).
  // +genpts: MPEG-PS (a DVD's .vob/.mpg) needs a presentation time only every 0.7 s; NUT refuses a
  // packet without one ("Negative pts not supported"), which failed the whole input at planning.
  // `lossless`: each picture encoded as FFV1 (intra-only: every frame a keyframe, as in the source),
  // at the source's own times and time base.
  const codec = lossless ? ['-c:v', 'ffv1', '-level', '3', '-g', '1', fpsModeFlag(), 'passthrough', '-enc_time_base:v', '-1'] : ['-c', 'copy', '-copytb', '1'];
  // -noautorotate: an FFV1 cut re-encodes the pictures, which ffmpeg would otherwise turn by the
  // display matrix; the segments turn them, so they were turned twice (review K20).
  const args = ['-copyts', '-fflags', '+genpts', '-noautorotate', '-i', src, '-map', `0:${streamIndex}`, ...codec, '-f', 'segment', '-segment_format', format, '-reset_timestamps', '0'];
  if (times.length > 0) args.push('-segment_times', times.join(','));
  else args.push('-segment_time', '1000000000');
  args.push(path.join(dir, `chunk%05d.${chunkExtension(format)}`));
  await runFfmpeg(args, { signal, input });
  const names = (await readdir(dir)).filter((f) => CHUNK.test(f)).sort();
  if (names.length !== cutTimes.length + 1) {
    throw dataLoss(`${input}: stream-copy split made ${names.length} chunks where ${cutTimes.length + 1} were planned`);
  }
  return names;
}

/**
 * How far the muxer moved timestamps while cutting (seconds): NUT, like Matroska, refuses negative
 * decode times, so a stream with B-frame delay is shifted by that delay. Compared on the first packet
 * of chunk 0.
 */
async function chunkTimeShift(chunk0: string, sourceFirstPts: number, input: string, signal: AbortSignal): Promise<number> {
  const r = await runFfprobe<{ packets?: Array<{ pts_time?: string }> }>(
    ['-select_streams', 'v:0', '-read_intervals', '%+#1', '-show_entries', 'packet=pts_time', '-f', chunkFormatOf(chunk0), '-i', chunk0],
    { signal, input },
  );
  const first = Number(r.packets?.[0]?.pts_time);
  return Number.isFinite(first) ? first - sourceFirstPts : 0;
}

/** Where the chunk spooled as `name` (e.g. "in0-chunk00003.nut") lives under the job's workDir. */
export function chunkPath(workDir: string, name: string): string {
  const m = /^(in\d+)-(.+)$/.exec(name);
  if (!m) throw new Error(`not a chunk name: ${name}`);
  return path.join(workDir, m[1]!, m[2]!);
}

/** Copies audio stream `streamIndex` of `src` into `dest` (Matroska holds any codec), timestamps kept. */
export async function extractAudio(src: string, input: string, streamIndex: number, dest: string, name: string, signal: AbortSignal, opts: { dropLead?: boolean } = {}): Promise<SpoolFile> {
  await mkdir(path.dirname(dest), { recursive: true });
  // dropLead: leave out the packets presented before 0, those an MP4 edit list hides.
  const lead = opts.dropLead ? ['-copypriorss', '0'] : [];
  await runFfmpeg(['-y', '-copyts', '-i', src, '-map', `0:${streamIndex}`, '-c', 'copy', ...lead, '-f', 'matroska', dest], { signal, input });
  return spoolFile(dest, name);
}

/** Describes a file on the coordinator's disk as a spool entry (size and sha256 for the transfer check). */
export async function spoolFile(file: string, name: string): Promise<SpoolFile> {
  const { size } = await stat(file);
  const hash = createHash('sha256');
  // Reads of up to 1 MiB (a 64 KiB stream took half again as long over a clip's chunks), no larger than the file.
  for await (const chunk of createReadStream(file, { highWaterMark: Math.max(1, Math.min(size, 1 << 20)) })) hash.update(chunk as Buffer);
  return { name, path: file, size, sha256: hash.digest('hex') };
}
