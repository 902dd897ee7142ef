/**
 * The two ffmpeg runs of the audio kind: stage A (decode + sample-local filters to a float WAV) and the
 * final encode (join the pieces, stage B gain/limiter, encode once). Both sides use them: a worker runs
 * both for a whole small file; for a long file workers run stage A per segment and the coordinator runs
 * the final encode over the joined segments, so lossy encoders never see a join.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { invalidArgument, TesseraError } from '../errors.js';
import { runFfmpeg } from '../ffmpeg.js';

export interface StageARun {
  /** Local path of the source (a whole file or a segment WAV). */
  source: string;
  /** Job input name, for messages. */
  input: string;
  /** Filter chain from {@link stageAChain}. */
  chain: string;
  /** Float WAV to write. */
  out: string;
  threads?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((seconds: number) => void) | undefined;
}

/** Decodes the first audio stream and applies stage A; decode errors (truncated/corrupt input) fail the input. */
export async function renderStageA(r: StageARun): Promise<void> {
  const args = ['-xerror', '-i', r.source, '-map', '0:a:0', '-vn', '-sn', '-dn', '-af', r.chain, '-c:a', 'pcm_f32le', '-f', 'wav', '-rf64', 'auto', '-y', r.out];
  if (r.threads) args.unshift('-threads', String(r.threads));
  try {
    await runFfmpeg(args, { signal: r.signal, input: r.input, onProgress: r.onProgress });
  } catch (err) {
    if (err instanceof TesseraError && !err.retryable) {
      // -xerror turns a decode error into a failure: the file is truncated or corrupt.
      throw invalidArgument(`${r.input}: cannot decode audio (truncated or corrupt file): ${err.message.replace(/^[^:]*: /, '')}`, r.input);
    }
    throw err;
  }
}

export interface FinalEncode {
  /** Float/PCM WAV pieces in timeline order (one for a whole file). */
  pieces: string[];
  input: string;
  /** Stage-B chain ("" = none). */
  chain: string;
  /** From {@link encoderArgs}. */
  encoder: string[];
  out: string;
  /** Folder for the concat list. */
  workDir: string;
  threads?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((seconds: number) => void) | undefined;
}

/** Joins the pieces (concat demuxer: PCM packets back to back, no resampling, no gap) and encodes once. */
export async function encodeFinal(e: FinalEncode): Promise<void> {
  let inputArgs: string[];
  if (e.pieces.length === 1) {
    inputArgs = ['-i', e.pieces[0]!];
  } else {
    const list = path.join(e.workDir, `concat-${process.pid}-${Date.now()}.txt`);
    await writeFile(list, e.pieces.map((p) => `file '${p.replace(/'/g, "'\\''")}'\n`).join(''));
    inputArgs = ['-f', 'concat', '-safe', '0', '-i', list];
  }
  const args = [...inputArgs, '-map', '0:a:0', '-map_metadata', '-1'];
  if (e.chain) args.push('-af', e.chain);
  args.push(...e.encoder, '-y', e.out);
  if (e.threads) args.unshift('-threads', String(e.threads));
  await runFfmpeg(args, { signal: e.signal, input: e.input, onProgress: e.onProgress });
}

/** Decodes a file to a WAV with the decoder's own sample format (exact: no conversion but planar->packed). */
export async function decodeToWav(source: string, input: string, sampleFormat: string, out: string, signal?: AbortSignal): Promise<void> {
  const fmt = sampleFormat.replace(/p$/, '');
  const codec = fmt === 's16' ? 'pcm_s16le' : fmt === 's32' ? 'pcm_s32le' : fmt === 'u8' ? 'pcm_u8' : 'pcm_f32le';
  // Doubles (rare) become float: a negligible rounding that both the segmented and whole path would share.
  const args = ['-xerror', '-i', source, '-map', '0:a:0', '-vn', '-sn', '-dn', '-map_metadata', '-1', '-c:a', codec, '-f', 'wav', '-rf64', 'auto', '-y', out];
  try {
    await runFfmpeg(args, { signal, input });
  } catch (err) {
    if (err instanceof TesseraError && !err.retryable) {
      throw invalidArgument(`${input}: cannot decode audio (truncated or corrupt file): ${err.message.replace(/^[^:]*: /, '')}`, input);
    }
    throw err;
  }
}

/** Integrated loudness of an encoded file by ffmpeg's ebur128 (0.1 LU resolution), -Infinity for silence. */
export async function measureEncodedLoudness(file: string, input: string, signal?: AbortSignal): Promise<number> {
  const { stderr } = await runFfmpeg(['-i', file, '-map', '0:a:0', '-af', 'ebur128=framelog=verbose', '-f', 'null', '-'], { signal, input });
  const summary = stderr.slice(stderr.lastIndexOf('Summary:'));
  const m = /I:\s+(-?[\d.]+|-inf) LUFS/.exec(summary);
  return m && m[1] !== '-inf' ? Number(m[1]) : -Infinity;
}
