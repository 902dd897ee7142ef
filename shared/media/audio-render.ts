/**
 * The two ffmpeg runs of the audio kind: stage A (decode + sample-local filters to a float WAV) and the
 * final encode (join the pieces, stage B gain/limiter, encode once). Both sides use them: a worker runs
 * both for a whole small file; for a long file workers run stage A per segment and the coordinator runs
 * the final encode over the joined segments, so lossy encoders never see a join.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { invalidArgument, TesseraError } from '../errors.js';
import { decoderThreads, ffmpegAtLeast, runFfmpeg, type RunOptions } from '../ffmpeg.js';
import { encodingArgs, FILL_GAPS, type OutputEncoding } from './audio-filters.js';
import { spelledLayout } from './loudness.js';
import { audioMap, firstFrameFormat } from './audio-probe.js';

export interface StageARun {
  /** Local path of the source (a whole file or a segment WAV). */
  source: string;
  /** The source's audio track (AudioProbe.stream; absent: its first). */
  stream?: number | undefined;
  /** The chain fills timestamp gaps (FileRender.fillGaps): the demuxer's long jumps are kept for it. */
  fillGaps?: boolean | undefined;
  /**
   * Decode in a process of its own, piping the stream as float PCM of this format to the one running
   * the chain (FileRender.decodeApart): a source whose layout or rate changes part-way. The chain must
   * then not fill gaps itself: the decoding side does.
   */
  decodeApart?: PinnedFormat | undefined;
  /** Job input name, for messages. */
  input: string;
  /** Filter chain from {@link stageAChain}. */
  chain: string;
  /**
   * The source's codec (ffprobe name), when known. A PCM source is decoded without `-xerror` (see
   * {@link corruptPacketsFail}); unknown (a plan from an older coordinator) keeps it.
   */
  codec?: string | undefined;
  /** Float WAV to write. */
  out: string;
  threads?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((seconds: number) => void) | undefined;
  /**
   * Output written up to this many seconds and a sample more, at most: a file holding more than
   * its header states is decoded only as far as the coordinator's limit, then refused.
   */
  maxSeconds?: number | undefined;
}

/** `-t` for an output capped at `maxSeconds` (a little past it, so that a count over the cap shows). */
function capArgs(maxSeconds: number | undefined): string[] {
  return maxSeconds && maxSeconds > 0 ? ['-t', (maxSeconds + 1).toFixed(3)] : [];
}

/** True for codecs whose packets are bare samples (pcm_s16le, pcm_f32be, ...): no bitstream to be corrupt. */
export function isPcmCodec(codec: string): boolean {
  return /^pcm_/.test(codec);
}

/**
 * Whether a decode of this source runs with `-xerror`, which fails it on the first decode error or
 * corrupt packet: a truncated or damaged compressed file would otherwise decode "successfully" with
 * frames missing. Not for PCM: every byte sequence is valid samples there, and the demuxer flags the
 * short last packet of any file whose data does not end on its packet size as corrupt: a WAV written
 * to a pipe (its size 0xFFFFFFFF) or whose header states more than it holds. A truncated PCM file is
 * caught by the length checks instead (audio-probe.ts checkNotTruncated, audio-wav.ts checkWavComplete).
 * Nor for MPEG audio (MP3, MP2): its decoder looks for the next frame's sync word past anything
 * else, and says "Header missing" of what it skips, which MP3s from the wild hold between or after
 * their frames: the ID3 tag and Info frame of each part of MP3s joined with `cat`, a download's
 * zero padding, a Lyrics3 tag. ffmpeg and every player play through them; a file cut short is
 * still refused by its stated length (review AWILD).
 */
export function corruptPacketsFail(codec: string | undefined): boolean {
  return codec === undefined || !(isPcmCodec(codec) || /^mp[123]$/.test(codec));
}

/**
 * The input option that keeps an MPEG-TS/PS's forward jumps for FILL_GAPS to fill: ffmpeg closes one
 * over 10 s itself before any filter sees it, and a trim after a long dropout was cut from the closed-up
 * sound (review K16). Back jumps are closed as before; the -t cap bounds what a wild jump adds.
 */
function keepJumps(fillGaps: boolean | undefined): string[] {
  return fillGaps ? ['-dts_delta_threshold', '1000000'] : [];
}

/** Decodes the source's audio track and applies stage A; decode errors (truncated/corrupt input) fail the input. */
export async function renderStageA(r: StageARun): Promise<void> {
  const head = [...(corruptPacketsFail(r.codec) ? ['-xerror'] : []), ...(r.threads ? ['-threads', decoderThreads(r.threads)] : [])];
  const source = [...keepJumps(r.fillGaps), '-i', r.source, '-map', audioMap(r.stream), '-vn', '-sn', '-dn'];
  const out = [...capArgs(r.maxSeconds), '-c:a', 'pcm_f32le', '-f', 'wav', '-rf64', 'auto', '-y', r.out];
  if (!r.decodeApart) {
    const apart = await unlessFormatChanges(() => decodeRun([...head, ...source, '-af', r.chain, ...out], r.input, r.signal, { onProgress: r.onProgress }), r.source, r.stream, r.input, r.signal);
    if (apart) await renderStageA({ ...r, decodeApart: apart });
    return;
  }
  // ffmpeg's command line builds its filter graph afresh where the decoded layout or rate changes
  // (a broadcast's stereo to 5.1, MP3s of two rates joined), and the chain's counters (the trim's
  // sample numbers, the timeline's N) start again from 0 there: the output's times ran backwards
  // and the file was refused as corrupt, or, without -xerror, the trim was cut a second time
  // (review K16). The decoding process converts the whole stream to its first frame's format; the
  // chain reads it unchanging.
  await decodedApart({
    decode: [...head, ...source, '-map_metadata', '-1'],
    format: r.decodeApart,
    fillGaps: r.fillGaps,
    maxSeconds: r.maxSeconds,
    input: r.input,
    signal: r.signal,
    onProgress: r.onProgress,
    reader: (input, filters) => [...input, '-i', 'pipe:0', '-af', [...filters, r.chain].join(','), ...out],
  });
}

/**
 * Runs `decode` (one process, the source's format taken as its header states it); where it fails
 * because the decoded format changed part-way after all (a FLAC of two rates joined with the concat
 * demuxer and stream-copied: its STREAMINFO is the first part's, its frames say otherwise, and the
 * WAV muxer's -xerror refuses the times that run back where ffmpeg's filter graph starts again), the
 * first frame's format, in which it is then decoded apart, as formatMayChange's sources are (review A).
 */
async function unlessFormatChanges(decode: () => Promise<void>, source: string, stream: number | undefined, input: string, signal: AbortSignal | undefined): Promise<PinnedFormat | undefined> {
  try {
    await decode();
    return undefined;
  } catch (err) {
    if (!(err instanceof TesseraError) || !/Non-monotonous DTS in output stream/.test(err.message)) throw err;
    const first = await firstFrameFormat(source, stream, input, signal).catch(() => undefined);
    if (!first) throw err;
    return { rate: first.sampleRate, channels: first.channels, layout: first.layout };
  }
}

/** How long a decoding process may take to end by itself once the process reading its pipe has ended. */
const DECODER_GRACE_MS = 250;

/**
 * Runs a decode in two processes: the first decodes (`decode`: its input and stream) and writes the
 * stream in `format` to a pipe, the second reads it (`reader`, given its input options and the
 * filters to put first in its chain). Bare samples, whose muxer takes no timestamps (a WAV muxer's
 * -xerror refuses a chained Ogg's or joined MP3s', which run backwards), or, where gaps are filled
 * (`fillGaps`), NUT with its timestamps: both fill them, the decoder so that its times never run
 * back (a looped or joined capture's repeat them, which its muxer's -xerror refuses), the reader
 * because the decoder's filter starts again, and misses a gap, where the format changes (review
 * K17). NUT keeps the channel count only: the reader names the layout again.
 *
 * The decoder's own failure is the one reported (a reader then read a stream that ended early). A
 * reader that ends first (at a trim's end: what ffmpeg -to does) leaves the decoder decoding a
 * stream nobody reads, which its pipe would drain into nothing to the end of a long capture: it is
 * stopped (review K17).
 */
async function decodedApart(o: {
  decode: string[];
  format: PinnedFormat;
  /** Output codec of the pipe's samples (pcm_f32le, or the decoder's own sample format, see decodeToWav). */
  codec?: string;
  fillGaps?: boolean | undefined;
  maxSeconds?: number | undefined;
  input: string;
  signal?: AbortSignal | undefined;
  onProgress?: ((seconds: number) => void) | undefined;
  reader: (input: string[], filters: string[]) => string[];
}): Promise<void> {
  const raw = pinnedRaw(o.format, o.codec);
  const relabel = o.format.layout ? [`channelmap=channel_layout=${o.format.layout}`] : [];
  const [output, input, filters] = o.fillGaps ? [[raw.output[0]!, raw.output[1]!, '-f', 'nut'], ['-f', 'nut'], [...relabel, FILL_GAPS]] : [raw.output, raw.input, []];
  const pcm = new PassThrough();
  const stop = new AbortController();
  const forward = (): void => stop.abort(o.signal?.reason);
  if (o.signal?.aborted) forward();
  else o.signal?.addEventListener('abort', forward, { once: true });
  try {
    // Settles with the decoder's error, or undefined.
    const decoding = decodeRun([...o.decode, '-af', [...(o.fillGaps ? [FILL_GAPS] : []), raw.filter].join(','), ...capArgs(o.maxSeconds), ...output, 'pipe:3'], o.input, stop.signal, { pipe3: pcm }).then(
      () => undefined,
      (err: unknown) => err ?? new Error('decoder failed'),
    );
    const read = await decodeRun(o.reader(input, filters), o.input, o.signal, { stdin: pcm, ...(o.onProgress && { onProgress: o.onProgress }) }).then(
      () => undefined,
      (err: unknown) => err ?? new Error('reader failed'),
    );
    const ended = await Promise.race([decoding.then((err) => ({ err })), delay(DECODER_GRACE_MS)]);
    if (!ended) {
      stop.abort();
      await decoding;
    } else if (ended.err !== undefined) {
      throw ended.err;
    }
    if (read !== undefined) throw read;
  } finally {
    o.signal?.removeEventListener('abort', forward);
  }
}

/** The format a source is decoded to when decoded apart: its first (probed) rate and layout. */
export interface PinnedFormat {
  rate: number;
  channels: number;
  /** ffmpeg's layout name, "" when the source states none. */
  layout: string;
}

/**
 * The decoding side's last filter, output and the reading side's input options, for bare samples of
 * `codec` (pcm_f32le, pcm_s16le...) in `f`'s format.
 */
function pinnedRaw(f: PinnedFormat, codec = 'pcm_f32le'): { filter: string; output: string[]; input: string[] } {
  const layout = f.layout || `${f.channels}c`;
  const raw = codec.replace(/^pcm_/, '');
  const sampleFmt = { f32le: 'flt', s16le: 's16', s32le: 's32', u8: 'u8' }[raw] ?? 'flt';
  return {
    // A later part in other channels is mixed as ffmpeg mixes it into integer samples, and as stage A
    // mixes --channels: normalised (a float mix left 5.1 mixed to stereo at up to +7.7 dB; review A).
    filter: `aresample=rematrix_maxval=1,aformat=sample_fmts=${sampleFmt}:sample_rates=${f.rate}:channel_layouts=${layout}`,
    output: ['-c:a', codec, '-f', raw],
    input: ['-f', raw, '-ar', String(f.rate), ...(f.layout ? [layoutOption(), f.layout] : ['-ac', String(f.channels)])],
  };
}

/** A raw input's layout option: `-ch_layout` from ffmpeg 5.1 (its channel layout API), `-channel_layout` before. */
function layoutOption(): string {
  return ffmpegAtLeast(5, 1) ? '-ch_layout' : '-channel_layout';
}

/** ffmpeg's Ogg demuxer on a page whose checksum fails: it skips the page and goes on. */
const OGG_CRC_MISMATCH = /\[ogg @ [^\]]*\] CRC mismatch/;

/**
 * Runs a decode of a client's file: a failure (with `-xerror`, any decode error) means the file is
 * truncated or corrupt. `-nostats` keeps ffmpeg's progress line ("size= ... time= ... bitrate=") out
 * of the log the error message is taken from.
 */
async function decodeRun(args: string[], input: string, signal: AbortSignal | undefined, o: Pick<RunOptions, 'onProgress' | 'stdin' | 'pipe3'> = {}): Promise<void> {
  let damaged = false;
  try {
    await runFfmpeg(['-nostats', ...args], { signal, input, onStderrLine: (line) => (damaged ||= OGG_CRC_MISMATCH.test(line)), ...o });
  } catch (err) {
    if (err instanceof TesseraError && !err.retryable) {
      const detail = withoutProgress(err.message.replace(/^[^:]*: /, ''));
      // A filter that cannot be set up (a layout swresample cannot mix) is no fault of the file's bytes.
      const why = /Failed to (?:configure|inject frame into) filter|Rematrix is needed|not yet implemented in FFmpeg|Error (?:initializing|reinitializing) filters/.test(detail)
        ? 'cannot convert its audio as asked (its channels or format cannot be mixed or converted so)'
        : 'cannot decode audio (truncated or corrupt file)';
      throw invalidArgument(`${input}: ${why}: ${detail}`, input);
    }
    throw err;
  }
  // An Ogg page that fails its checksum is skipped, its audio with it, and the rest decodes without
  // an error: a damaged Opus or Vorbis file came out a second or two short and closed up (review AUD2).
  if (damaged) {
    throw invalidArgument(`${input}: corrupt file: pages of its Ogg stream fail their checksum (CRC mismatch), and the audio in them cannot be decoded`, input);
  }
}

/** Drops ffmpeg progress fragments ("size= 8kB time=00:00:00.04 bitrate= 1.5kbits/s speed=...") from a log excerpt. */
export function withoutProgress(text: string): string {
  return text
    .replace(/(?:\b[A-Za-z]+=\s*\S+\s+)*time=\s*\S+(?:\s+[A-Za-z]+=\s*\S+)*/g, ' ')
    .replace(/\s+/g, ' ')
    .replace(/(?:\s*;\s*){2,}/g, '; ')
    .replace(/^[\s;]+|[\s;]+$/g, '');
}

export interface FinalEncode {
  /** Float/PCM WAV pieces in timeline order (one for a whole file). */
  pieces: string[];
  input: string;
  /** Stage-B chain ("" = none). */
  chain: string;
  /** From {@link outputEncoding}. */
  encoder: OutputEncoding;
  out: string;
  /** Folder for the concat list. */
  workDir: string;
  threads?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((seconds: number) => void) | undefined;
  /**
   * Measure the output's loudness while it is encoded (lossy codecs): `frames` is the number of
   * samples (per channel) the joined pieces hold; `truePeak` measures its true peak too.
   */
  measure?: { codec: LossyCodec; frames: number; truePeak?: boolean; layout?: MeasuredLayout } | undefined;
  /** Tags written into the output (the source's, see listenerTags). */
  tags?: Record<string, string> | undefined;
  /** Chapters written into the output (the source's, on the output's timeline, seconds). */
  chapters?: Array<{ start: number; end: number; title: string }> | undefined;
}

/**
 * A value in an ffmetadata file: `=`, `;`, `#`, `\` and line breaks (`\r` too: ffmpeg's reader
 * ends a line at one) escaped with a backslash. A value is cut at a bare `\r` (a Windows tagger's
 * comment kept its first line only, review K24).
 */
const ffmetadataValue = (v: string): string => v.replace(/[=;#\\\r\n]/g, (c) => `\\${c}`);

/**
 * Whether an ffmetadata file carries `v` as it is. ffmpeg 5.1's reader takes the line break after an
 * escaped backslash for an escaped one too: a value ending in `\` swallowed the next line (the next
 * chapter, review K24). Such a value goes on the command line instead (few: no length trouble).
 */
const fileCarries = (v: string): boolean => !v.endsWith('\\');

/**
 * An ffmetadata file of chapters (milliseconds), the second input of the final encode; the titles
 * it cannot carry (see fileCarries) as `-metadata:c:N` arguments.
 */
async function writeChapters(chapters: NonNullable<FinalEncode['chapters']>, workDir: string): Promise<{ file: string; args: string[] }> {
  const file = path.join(workDir, `chapters-${process.pid}-${Date.now()}.txt`);
  const args: string[] = [];
  const body = chapters
    .map((c, i) => {
      if (c.title && !fileCarries(c.title)) args.push(`-metadata:c:${i}`, `title=${c.title}`);
      return `[CHAPTER]\nTIMEBASE=1/1000\nSTART=${Math.round(c.start * 1000)}\nEND=${Math.round(c.end * 1000)}\n${c.title && fileCarries(c.title) ? `title=${ffmetadataValue(c.title)}\n` : ''}`;
    })
    .join('');
  await writeFile(file, `;FFMETADATA1\n${body}`);
  return { file, args };
}

/** Chapters as Vorbis comments (CHAPTER000=00:01:02.500, CHAPTER000NAME=title), as Ogg players read them. */
function vorbisChapters(chapters: NonNullable<FinalEncode['chapters']>): Record<string, string> {
  const out: Record<string, string> = {};
  chapters.forEach((c, i) => {
    // Rounded, as the other containers' chapters are: floored, a start a microsecond early (an MP3's
    // stream and format starts a microsecond apart) was written a millisecond early (review aud).
    const ms = Math.max(0, Math.round(c.start * 1000));
    const hh = String(Math.floor(ms / 3_600_000)).padStart(2, '0');
    const mm = String(Math.floor(ms / 60_000) % 60).padStart(2, '0');
    const ss = String(Math.floor(ms / 1000) % 60).padStart(2, '0');
    const key = `CHAPTER${String(i).padStart(3, '0')}`;
    out[key] = `${hh}:${mm}:${ss}.${String(ms % 1000).padStart(3, '0')}`;
    if (c.title) out[`${key}NAME`] = c.title;
  });
  return out;
}

/**
 * An ffmetadata file of file-wide keys and values (an Ogg's chapter comments); those it cannot carry
 * (see fileCarries) as `-metadata` arguments.
 */
async function writeGlobalMetadata(values: Record<string, string>, workDir: string): Promise<{ file: string; args: string[] }> {
  const file = path.join(workDir, `metadata-${process.pid}-${Date.now()}.txt`);
  const entries = Object.entries(values);
  await writeFile(file, `;FFMETADATA1\n${entries.filter(([, v]) => fileCarries(v)).map(([k, v]) => `${ffmetadataValue(k)}=${ffmetadataValue(v)}\n`).join('')}`);
  return { file, args: entries.filter(([, v]) => !fileCarries(v)).flatMap(([k, v]) => ['-metadata', `${k}=${v}`]) };
}

/** The codecs whose output's loudness is checked after the encode (AUDIO_CODECS' lossy ones). */
export type LossyCodec = 'mp3' | 'aac' | 'opus';

export function isLossyCodec(codec: string): codec is LossyCodec {
  return codec === 'mp3' || codec === 'aac' || codec === 'opus';
}

/**
 * How a lossy output is measured while it is encoded. The encoder also writes its stream into a
 * pipe (ffmpeg's tee muxer: the file's bytes are the same), in a format a pipe can carry, and a
 * second ffmpeg decodes that into ebur128 at the same time, on another core, instead of decoding the
 * file once it is written (12 s for an hour of stereo here). A pipe carries no record of the
 * encoder's delay: the mp3 muxer writes LAME's header, with the delay and the end padding, only where
 * it can seek back, and ADTS has no edit list. The measuring side drops those samples itself (the
 * decoder's own 529 after LAME's 576; the AAC encoder's 1024 frames of priming), and for MP3 the
 * padding after the last sample: it reads exactly what a player decodes from the file (the tests
 * compare the two sample for sample). Ogg carries Opus's pre-skip and end: nothing to drop.
 */
export const MEASURED_WHILE_ENCODED: Readonly<Record<LossyCodec, { muxer: string; demuxer: string; delay: number; trimEnd: boolean }>> = {
  mp3: { muxer: 'mp3', demuxer: 'mp3', delay: 1105, trimEnd: true },
  aac: { muxer: 'adts', demuxer: 'aac', delay: 1024, trimEnd: false },
  opus: { muxer: 'ogg', demuxer: 'ogg', delay: 0, trimEnd: false },
};

/** A tee muxer slave: `[options]file`, the file name quoted for ffmpeg's tokenizer. */
function teeSlave(options: Record<string, string>, file: string): string {
  const opts = Object.entries(options).map(([k, v]) => `${k}=${v}`);
  return `${opts.length > 0 ? `[${opts.join(':')}]` : ''}'${file.replace(/'/g, "'\\''")}'`;
}

/**
 * Joins the pieces (concat demuxer: PCM packets back to back, no resampling, no gap) and encodes once.
 * With `measure`, resolves to the output's loudness as ffmpeg's ebur128 reads it from the encoded
 * stream; to undefined where that measurement failed (the encode goes on without it) or was not asked.
 */
export async function encodeFinal(e: FinalEncode): Promise<EncodedMeasurement | undefined> {
  let inputArgs: string[];
  if (e.pieces.length === 1) {
    inputArgs = ['-i', e.pieces[0]!];
  } else {
    const list = path.join(e.workDir, `concat-${process.pid}-${Date.now()}.txt`);
    await writeFile(list, e.pieces.map((p) => `file '${p.replace(/'/g, "'\\''")}'\n`).join(''));
    inputArgs = ['-f', 'concat', '-safe', '0', '-i', list];
  }
  // Chapters from a file of their own: the pieces carry none (a chapter cut at a join, or trimmed, is the plan's).
  // Ogg's are Vorbis comments, written here: ffmpeg's writer rounds a start's seconds and adds its
  // milliseconds again, 4.5 s written as 5.5 (review AOUT).
  // They go in through a metadata file, not the command line: a thousand long titles passed the
  // system's limit on it (spawn E2BIG, review K23). The tags (at most 32 KiB, listenerTags) stay
  // on the command line, which carries any value as it is.
  const oggChapters = e.encoder.format === 'ogg' && e.chapters && e.chapters.length > 0 ? vorbisChapters(e.chapters) : undefined;
  const mapChapters = !oggChapters && e.chapters && e.chapters.length > 0;
  const metadata = mapChapters ? await writeChapters(e.chapters!, e.workDir) : oggChapters ? await writeGlobalMetadata(oggChapters, e.workDir) : undefined;
  if (metadata) inputArgs.push('-f', 'ffmetadata', '-i', metadata.file);
  // The file's and the stream's metadata are the tags below only; a chapter's (its title) comes
  // with it (`-map_metadata -1` alone dropped chapters' titles).
  const args = [...inputArgs, '-map', '0:a:0', '-map_metadata:g', oggChapters ? '1' : '-1', '-map_metadata:s', '-1', '-map_chapters', mapChapters ? '1' : '-1', ...(metadata?.args ?? [])];
  for (const [key, value] of Object.entries(e.tags ?? {})) args.push('-metadata', `${key}=${value}`);
  if (e.chain) args.push('-af', e.chain);
  if (e.threads) args.unshift('-threads', decoderThreads(e.threads));
  const { codec, format, muxerOptions } = e.encoder;
  // ffmpeg's tee muxer writes no chapters: a file with chapters is measured once written instead
  // (undefined here: the caller measures the file). Before 5.1 (the npm package's ffmpeg of 2018) it
  // also left out the AAC encoder's priming (MP4's edit list): every sample came 1024 late.
  if (!e.measure || (e.chapters && e.chapters.length > 0) || !ffmpegAtLeast(5, 1)) {
    args.push(...encodingArgs(e.encoder), '-y', e.out);
    await runFfmpeg(args, { signal: e.signal, input: e.input, onProgress: e.onProgress });
    return undefined;
  }
  const how = MEASURED_WHILE_ENCODED[e.measure.codec];
  // The pipe's slave may fail (the measuring side gone) without failing the encode: onfail=ignore.
  args.push(...codec, '-f', 'tee', '-y', `${teeSlave({ f: format, ...muxerOptions }, `file:${e.out}`)}|${teeSlave({ f: how.muxer, onfail: 'ignore' }, 'pipe:3')}`);
  const trim = how.delay > 0 || how.trimEnd ? `atrim=start_sample=${how.delay}${how.trimEnd ? `:end_sample=${how.delay + e.measure.frames}` : ''},` : '';
  const stream = new PassThrough();
  const [encoded, measured] = await Promise.allSettled([
    runFfmpeg(args, { signal: e.signal, input: e.input, onProgress: e.onProgress, pipe3: stream }),
    runFfmpeg(['-nostats', '-f', how.demuxer, '-i', 'pipe:0', '-map', '0:a:0', '-af', `${trim}${relabel(e.measure.layout)}${ebur128Filter(e.measure.truePeak === true)}`, '-f', 'null', '-'], { signal: e.signal, input: e.input, stdin: stream }),
  ]);
  if (encoded.status === 'rejected') throw encoded.reason;
  // This process reads the encoder's pipe, whatever becomes of the measuring side, and that side
  // reads its stdin to the end: a measurement that succeeded read the whole stream.
  return measured.status === 'fulfilled' ? parseEbur128(measured.value.stderr, e.measure.truePeak === true) : undefined;
}

/**
 * Decodes a file to a WAV with the decoder's own sample format (exact: no conversion but planar->packed).
 * `sourceCodec` as in {@link corruptPacketsFail}.
 */
export async function decodeToWav(source: string, input: string, sampleFormat: string, out: string, signal?: AbortSignal, sourceCodec?: string, maxSeconds?: number, stream?: number, fillGaps?: boolean, decodeApart?: PinnedFormat): Promise<void> {
  const fmt = sampleFormat.replace(/p$/, '');
  const codec = fmt === 's16' ? 'pcm_s16le' : fmt === 's32' ? 'pcm_s32le' : fmt === 'u8' ? 'pcm_u8' : 'pcm_f32le';
  const head = corruptPacketsFail(sourceCodec) ? ['-xerror'] : [];
  const decode = [...head, ...keepJumps(fillGaps), '-i', source, '-map', audioMap(stream), '-vn', '-sn', '-dn', '-map_metadata', '-1'];
  const wav = [...capArgs(maxSeconds), '-f', 'wav', '-rf64', 'auto', '-y', out];
  // Doubles (rare) become float: a negligible rounding that both the segmented and whole path would share.
  if (!decodeApart) {
    const apart = await unlessFormatChanges(() => decodeRun([...decode, ...(fillGaps ? ['-af', FILL_GAPS] : []), '-c:a', codec, ...wav], input, signal), source, stream, input, signal);
    if (apart) await decodeToWav(source, input, sampleFormat, out, signal, sourceCodec, maxSeconds, stream, fillGaps, apart);
    return;
  }
  // A format that may change part-way is written in its first one by one process, and wrapped as
  // a WAV by a second (see renderStageA).
  await decodedApart({
    decode,
    format: decodeApart,
    codec,
    fillGaps,
    maxSeconds,
    input,
    signal,
    reader: (pipeInput, filters) => [...pipeInput, '-i', 'pipe:0', ...(filters.length > 0 ? ['-af', filters.join(','), '-c:a', codec] : ['-c:a', 'copy']), ...wav],
  });
}

/** Integrated loudness of an encoded file by ffmpeg's ebur128 (0.1 LU resolution), -Infinity for silence. */
export async function measureEncodedLoudness(file: string, input: string, signal?: AbortSignal, layout?: MeasuredLayout): Promise<number> {
  return (await measureEncoded(file, input, { signal, layout })).lufs;
}

/** What ffmpeg's ebur128 reads from an encoded file. */
export interface EncodedMeasurement {
  /** Integrated loudness, LUFS (0.1 LU resolution); -Infinity when every block is gated out or none formed. */
  lufs: number;
  /** True peak (4x oversampled), dBTP (0.1 dB resolution); -Infinity for digital silence; NaN when not asked. */
  truePeak: number;
}

/**
 * Measures an encoded file as a player decodes it. `truePeak` adds ebur128's 4x oversampling (about
 * twice the cost of the loudness alone: roughly 10 s per hour of stereo here).
 */
export async function measureEncoded(file: string, input: string, o: { truePeak?: boolean; layout?: MeasuredLayout | undefined; signal?: AbortSignal | undefined } = {}): Promise<EncodedMeasurement> {
  const { stderr } = await runFfmpeg(['-nostats', '-i', file, '-map', '0:a:0', '-af', `${relabel(o.layout)}${ebur128Filter(o.truePeak === true)}`, '-f', 'null', '-'], { signal: o.signal, input });
  return parseEbur128(stderr, o.truePeak === true);
}

/** The layout an output was encoded with: ffprobe's name of it, and its channel count. */
export interface MeasuredLayout {
  name: string;
  channels: number;
}

/**
 * Names the decoded channels as they were encoded, channel for channel, before ebur128 weighs them.
 * AAC has no configuration for some layouts (3.1, 6.0, 7.0, ...): the encoder writes them with a
 * program config element that ffmpeg decodes with no layout, which ebur128 refuses ("Unknown channel
 * layouts not supported"), and which a default layout of the count would weigh wrongly.
 */
function relabel(layout: MeasuredLayout | undefined): string {
  const spelled = layout ? spelledLayout(layout.channels, layout.name) : undefined;
  return spelled ? `channelmap=channel_layout=${spelled},` : '';
}

/** ffmpeg's ebur128, printing each block (parsed by {@link parseEbur128}), with true peaks when asked. */
function ebur128Filter(truePeak: boolean): string {
  return `ebur128=framelog=verbose${truePeak ? ':peak=true' : ''}`;
}

/** The summary ebur128 prints at its end. */
function parseEbur128(stderr: string, truePeak: boolean): EncodedMeasurement {
  const summary = stderr.slice(stderr.lastIndexOf('Summary:'));
  const m = /I:\s+(-?[\d.]+|-inf) LUFS/.exec(summary);
  const lufs = m && m[1] !== '-inf' ? Number(m[1]) : -Infinity;
  if (!truePeak) return { lufs, truePeak: NaN };
  const p = /Peak:\s+(-?[\d.]+|-inf) dBFS/.exec(summary.slice(summary.indexOf('True peak')));
  return { lufs, truePeak: !p ? NaN : p[1] === '-inf' ? -Infinity : Number(p[1]) };
}
