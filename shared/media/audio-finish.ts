/**
 * The global step of one file: gated loudness over all of its sub-blocks, the gain / limiter decision,
 * the single encode over the joined pieces, and the waveform. Runs on a worker for a whole small file
 * and on the coordinator (in `merge`) for a segmented long one, so both paths produce the same bytes.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ffmpegInfo } from '../ffmpeg.js';
import { AUDIO_CODECS, bitrateFor, layoutChannelCount, type AudioJobParams } from '../kinds/audio-params.js';
import type { PieceStats } from './audio-analyze.js';
import { outputEncoding, stageBChain } from './audio-filters.js';
import { decideLoudness, LIMITER_MARGIN_DB, limiterLevel, MIN_NORMALIZE_SECONDS, type FileRender, type LoudnessDecision } from './audio-pieces.js';
import { invalidArgument, TesseraError } from '../errors.js';
import { encodeFinal, measureEncoded, measureEncodedLoudness, isLossyCodec, type EncodedMeasurement, type MeasuredLayout } from './audio-render.js';
import { joinBins, waveformJson, writeWaveform } from './audio-waveform.js';
import { integratedLoudness, loudnessForTarget, withGain } from './loudness.js';

/** What a finished file reports (also the per-file entry of the job's result). */
export interface FileReport {
  input: string;
  output: string;
  frames: number;
  sampleRate: number;
  channels: number;
  /** Integrated loudness of the stage-A signal (before gain), LUFS; null when all blocks are gated out. */
  loudness: number | null;
  /** Gain applied, dB (exactly as written in the filter). */
  gainDb: number;
  /** Sample-peak limit of the limiter (linear), when it was needed. */
  limit?: number | undefined;
  /**
   * True peak of the source as rendered (after resampling, down-mix and fades, before gain, limiter
   * and encoding), dBTP. Kept under this name for existing readers; {@link sourceTruePeak} says the same.
   */
  truePeak: number | null;
  /** The same value as `truePeak`, named for what it is; null for digital silence, as `outputTruePeak`. */
  sourceTruePeak: number | null;
  /**
   * True peak of the output file, dBTP. Lossless: the source's plus the gain (exact but for the
   * 16/24-bit rounding), or measured on the file by ffmpeg's ebur128 (peak=true, 0.1 dB) when the
   * limiter was needed. Lossy and normalised: measured by ebur128 on the encoded stream (what a
   * player decodes). Null for digital silence, for lossy outputs not normalised (not measured), and
   * where ebur128 cannot measure the file.
   */
  outputTruePeak: number | null;
  /**
   * Where a lossless output's samples went over full scale and were clipped (a float source mixed
   * hot, kept without a limiter): how far over, dBFS; absent otherwise.
   */
  clippedDb?: number | undefined;
  /**
   * Integrated loudness of the output, LUFS, when normalised: measured on a lossy output and on a
   * limited lossless one, the source's plus the gain otherwise; null where it is not known. A
   * limiter that had to take much off leaves it under the target (the job warns past 1 LU).
   */
  outputLoudness?: number | null;
  limited: boolean;
  /** Gain added after measuring the encoded output (lossy codecs that lose treble energy), dB. */
  codecCorrectionDb: number;
  pieces: number;
  /** Names of the waveform files, when asked for. */
  waveform?: { json: string; png: string } | undefined;
}

/**
 * Joins the complete sub-blocks of consecutive pieces. Every piece but the last ends on a whole second;
 * the last one's trailing partial sub-block is left out, as ffmpeg's ebur128 forms no block from it.
 */
export function joinStats(stats: PieceStats[]): { energy: number[]; samples: number[]; truePeak: number; frames: number } {
  const energy: number[] = [];
  const samples: number[] = [];
  let truePeak = 0;
  let frames = 0;
  for (const s of stats) {
    energy.push(...s.subBlocks.energy);
    samples.push(...s.subBlocks.samples);
    truePeak = Math.max(truePeak, s.truePeak);
    frames += s.frames;
  }
  return { energy, samples, truePeak, frames };
}

/**
 * The output's encoder and muxer. Its default bitrate follows the channels written: those of the
 * layout it is converted to (a 2.1 source written as Opus's 5.1), else the pieces' (review self:
 * the 2.1 source was given the bitrate of three channels, written as six).
 */
function encodingOf(o: Pick<FinishOptions, 'params' | 'file' | 'stats'>): ReturnType<typeof outputEncoding> {
  const written = (o.file.outLayout ? layoutChannelCount(o.file.outLayout) : undefined) ?? o.stats[0]?.channels ?? 0;
  return outputEncoding(o.params.codec, bitrateFor(o.params.codec, o.params.bitrate, o.params.bitrateGiven ?? false, written), o.file.bits, o.stats[0]?.channels);
}

export interface FinishOptions {
  params: AudioJobParams;
  file: FileRender;
  /** Stage-A WAVs of the pieces, in timeline order. */
  pieces: string[];
  stats: PieceStats[];
  /** Folder the output (and waveform) files are written to. */
  outDir: string;
  /** Scratch folder. */
  workDir: string;
  threads?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((fraction: number) => void) | undefined;
}

/** Measures, decides, encodes once and draws the waveform. */
export async function finishFile(o: FinishOptions): Promise<{ report: FileReport; decision: LoudnessDecision; files: string[] }> {
  const joined = joinStats(o.stats);
  const loud = integratedLoudness({ energy: joined.energy, samples: joined.samples });
  if (o.params.normalize && loud.blocks === 0) {
    // Not one 400 ms block: there is no loudness to normalise to. Silence (blocks, all gated out) is
    // not this: it gets no gain, as it should.
    throw invalidArgument(
      `${o.file.input}: too short to normalise: ${(joined.frames / o.file.outRate).toFixed(3)} s of audio, and EBU R128 loudness needs at least ${MIN_NORMALIZE_SECONDS} s; submit this file without normalize (--normalize, --loudness, --true-peak)`,
      o.file.input,
    );
  }
  const lossyNormalize = o.params.normalize && AUDIO_CODECS[o.params.codec].lossy && Number.isFinite(loud.lufs);
  // A lossy encoder's low-pass removes K-weighted (boosted) treble energy: on bright material the output
  // reads several tenths of a LU low. For a long file, learn that loss from one piece first (encode it
  // alone, measure it) so that the whole file is still encoded once.
  // The loudness the gain is decided from: the source's, as the output will measure it once gained
  // (blocks a gain takes under the absolute gate count no more).
  const lufs = o.params.normalize && Number.isFinite(loud.lufs) ? loudnessForTarget(joined, loud.lufs, o.params.loudness) : loud.lufs;
  let corrected = lossyNormalize && o.pieces.length > 1 ? await pieceCodecLoss(o, lufs, joined.truePeak) : 0;
  let decision = decideLoudness(o.params, lufs - corrected, joined.truePeak);
  const seconds = joined.frames / o.file.outRate;
  const out = path.join(o.outDir, o.file.output);
  // A lossy output is measured as it is encoded (see encodeFinal): the check below then costs no pass
  // of its own, and its true peak (what the encoder made of the limiter's ceiling) comes with it.
  const codec = o.params.codec;
  const layout = measuredLayout(o);
  const measure = lossyNormalize && isLossyCodec(codec) ? { codec, frames: joined.frames, truePeak: true, layout } : undefined;
  const encode = (d: LoudnessDecision, share: [number, number], measuring?: typeof measure): Promise<EncodedMeasurement | undefined> =>
    encodeFinal({
      pieces: o.pieces,
      input: o.file.input,
      chain: stageBChain({ gainDb: d.gainDb, limit: d.limit, sampleRate: o.file.outRate, ffmpegMajor: ffmpegInfo().major }),
      encoder: encodingOf(o),
      out,
      workDir: o.workDir,
      threads: o.threads,
      signal: o.signal,
      onProgress: o.onProgress && seconds > 0 ? (t) => o.onProgress!(share[0] + share[1] * Math.min(1, t / seconds)) : undefined,
      measure: measuring,
      tags: o.file.tags,
      chapters: o.file.chapters,
    });
  // Measured on the file where the measurement beside the encode failed.
  const measuredOut = async (m: EncodedMeasurement | undefined): Promise<EncodedMeasurement> => m ?? (await measureEncoded(out, o.file.input, { truePeak: true, layout, signal: o.signal }));
  const first = await encode(decision, [0, 0.8], measure);
  let lossyPeakDb = NaN;
  let outLufs = NaN;
  if (lossyNormalize) {
    // Check the encoded output; while it still misses by more than 0.3 LU, encode again corrected by
    // the miss, twice at most: a starved encoder (128k for 7.1 AAC) loses more as the gain grows,
    // and one correction left it 0.6 LU short (review AVC).
    let measured = await measuredOut(first);
    // The codec's loss only: where the limiter worked, what it took is not won back by more gain in
    // front of it, which drove it harder and the encoder's overshoot of the ceiling with it (1.5 to
    // 5 dB over, the target still missed).
    for (let pass = 0; pass < LOUDNESS_CORRECTIONS && Number.isFinite(measured.lufs) && Math.abs(o.params.loudness - measured.lufs) > 0.3 && decision.limit === undefined; pass++) {
      corrected += o.params.loudness - measured.lufs;
      decision = decideLoudness(o.params, lufs - corrected, joined.truePeak);
      measured = await measuredOut(await encode(decision, [0.8 + 0.05 * pass, 0.05], measure));
    }
    // A lossy encoder's own peaks over the limiter's ceiling: on dense material the limiter leans on
    // hard (pink noise brought up 17 dB), over a dB. Encoded again with the limit lowered by it, up
    // to PEAK_RETRIES times (the overshoot grows as the limiter works harder: opus on bright
    // material needed two); without a limiter (the source's peaks were just under the ceiling, the
    // encoder's went over), through one.
    for (let tries = 0; tries < PEAK_RETRIES && measured.truePeak > o.params.truePeak + LOSSY_TRUE_PEAK_TOLERANCE_DB; tries++) {
      const limit = decision.limit === undefined ? limiterLevel(o.params.truePeak - LIMITER_MARGIN_DB) : limiterLevel(o.params.truePeak - measured.truePeak, decision.limit);
      decision = { ...decision, limit };
      measured = await measuredOut(await encode(decision, [0.9, 0.1], measure));
    }
    lossyPeakDb = measured.truePeak;
    outLufs = measured.lufs;
  }
  // Nothing but gain and 16/24-bit rounding between the analysed signal and a lossless output without
  // limiter: its true peak is known. A lossless one through the (sample-peak) limiter is measured.
  // A normalised lossy output's was measured with its loudness (a lossy encoder may overshoot the
  // ceiling by a few tenths of a dB); one not normalised is not measured at all (null).
  const lossless = !AUDIO_CODECS[o.params.codec].lossy;
  const sourcePeakDb = 20 * Math.log10(Math.max(joined.truePeak, 1e-10));
  const limitedMeasure = lossless && o.params.normalize && decision.limit !== undefined ? await measuredLimited(out, o) : undefined;
  let limitedPeakDb = limitedMeasure?.truePeak;
  if (limitedMeasure) outLufs = limitedMeasure.lufs;
  for (let tries = 0; tries < PEAK_RETRIES && limitedPeakDb !== undefined && decision.limit !== undefined && limitedPeakDb > o.params.truePeak + TRUE_PEAK_TOLERANCE_DB; tries++) {
    // The limiter holds sample peaks LIMITER_MARGIN_DB under the ceiling; material whose inter-sample
    // peaks rise further over its samples (a burst near a quarter of the rate rises 2.7 dB) still
    // passes the ceiling. Encode once more with the limit lowered by the overshoot measured.
    const limit = limiterLevel(o.params.truePeak - limitedPeakDb, decision.limit);
    decision = { ...decision, limit };
    await encode(decision, [0.8, 0.2]);
    const again = await measuredLimited(out, o);
    limitedPeakDb = again.truePeak;
    outLufs = again.lufs;
  }
  // Without a limiter a lossless output is the source with the gain applied: its loudness is known.
  if (lossless && o.params.normalize && decision.limit === undefined && Number.isFinite(loud.lufs)) outLufs = integratedLoudness(withGain(joined, decision.gainDb)).lufs;
  // Samples over full scale (a float source mixed hot, with no gain or limiter to bring them under)
  // are clipped in an integer WAV or FLAC: its true peak is the file's, measured, not the source's
  // (reported +0.5 dBTP of a file clipped at 0), and the job says so (review AOUT).
  const samplePeak = Math.max(0, ...o.stats.map((st) => st.samplePeak));
  const overDb = 20 * Math.log10(Math.max(samplePeak, 1e-10)) + decision.gainDb;
  const clipped = lossless && decision.limit === undefined && overDb > 0.001 ? await measuredLimited(out, o) : undefined;
  const outPeakDb = !lossless ? lossyPeakDb : (limitedPeakDb ?? clipped?.truePeak ?? (joined.truePeak > 0 ? sourcePeakDb + decision.gainDb : -Infinity));
  const files = [o.file.output];
  let waveform: FileReport['waveform'];
  const bins = o.stats.map((s) => s.waveform).filter((w) => w !== undefined);
  if (o.params.waveform && bins.length === o.stats.length && bins.length > 0) {
    const stem = o.file.output.slice(0, -(AUDIO_CODECS[o.params.codec].extension.length + 1));
    waveform = await writeWaveform(o.outDir, stem, waveformJson(joinBins(bins), o.file.outRate, decision.gainDb, decision.limit));
    files.push(waveform.json, waveform.png);
  }
  const report: FileReport = {
    input: o.file.input,
    output: o.file.output,
    frames: joined.frames,
    sampleRate: o.file.outRate,
    channels: o.stats[0]?.channels ?? 0,
    loudness: Number.isFinite(loud.lufs) ? round(loud.lufs, 3) : null,
    gainDb: decision.gainDb,
    limit: decision.limit,
    truePeak: joined.truePeak > 0 ? round(sourcePeakDb, 3) : null,
    sourceTruePeak: joined.truePeak > 0 ? round(sourcePeakDb, 3) : null,
    outputTruePeak: Number.isFinite(outPeakDb) ? round(outPeakDb, 3) : null,
    ...(o.params.normalize && { outputLoudness: Number.isFinite(outLufs) ? round(outLufs, 3) : null }),
    limited: decision.limit !== undefined,
    ...(clipped && { clippedDb: round(overDb, 3) }),
    codecCorrectionDb: round(corrected, 4),
    pieces: o.pieces.length,
    waveform,
  };
  return { report, decision, files };
}

/**
 * Loudness the lossy encoder takes away, in dB, measured on the middle piece: its own gated loudness
 * (from its sub-blocks) plus the gain, against ffmpeg's measurement of the piece encoded alone.
 */
async function pieceCodecLoss(o: FinishOptions, lufs: number, truePeak: number): Promise<number> {
  const i = Math.floor(o.pieces.length / 2);
  const piece = o.stats[i]!;
  const before = integratedLoudness({ energy: piece.subBlocks.energy, samples: piece.subBlocks.samples }).lufs;
  if (!Number.isFinite(before)) return 0;
  const d = decideLoudness(o.params, lufs, truePeak);
  // Through the limiter the piece's loss is the limiter's too, which more gain does not win back (as
  // for a whole file, see finishFile): a long file was driven harder than the same file short.
  if (d.limit !== undefined) return 0;
  const probe = path.join(o.workDir, `codec-probe.${AUDIO_CODECS[o.params.codec].extension}`);
  const beside = await encodeFinal({
    pieces: [o.pieces[i]!],
    input: o.file.input,
    chain: stageBChain({ gainDb: d.gainDb, limit: d.limit, sampleRate: o.file.outRate, ffmpegMajor: ffmpegInfo().major }),
    encoder: encodingOf(o),
    out: probe,
    workDir: o.workDir,
    threads: o.threads,
    signal: o.signal,
    measure: isLossyCodec(o.params.codec) ? { codec: o.params.codec, frames: piece.frames, layout: measuredLayout(o) } : undefined,
  });
  const after = beside?.lufs ?? (await measureEncodedLoudness(probe, o.file.input, o.signal, measuredLayout(o)));
  await rm(probe, { force: true });
  const loss = before + d.gainDb - after;
  // Only a plausible codec loss is trusted (a limiter-heavy piece could mislead it).
  return Number.isFinite(after) && Math.abs(loss) < 3 ? Math.round(loss * 100) / 100 : 0;
}

/**
 * The output's true peak, dBTP, for the report only: ebur128 refuses some layouts (a 10-channel
 * Opus has none), and the file is fine without the figure (NaN: reported as null).
 */
async function measuredLimited(out: string, o: FinishOptions): Promise<{ truePeak: number; lufs: number }> {
  try {
    const m = await measureEncoded(out, o.file.input, { truePeak: true, layout: measuredLayout(o), signal: o.signal });
    return { truePeak: m.truePeak, lufs: m.lufs };
  } catch (err) {
    if (err instanceof TesseraError && !err.retryable) return { truePeak: NaN, lufs: NaN };
    throw err;
  }
}

/** Encodes again with a lower limit, at most, for an output measured over the ceiling. */
const PEAK_RETRIES = 3;
/** Encodes again, at most, to bring a lossy output's loudness within 0.3 LU of the target. */
const LOUDNESS_CORRECTIONS = 2;

/** How far over the ceiling a lossy output may measure before it is encoded again with a lower limit. */
const LOSSY_TRUE_PEAK_TOLERANCE_DB = 0.5;

/** How far over the ceiling a lossless limited output may measure (ebur128 reports tenths of a dB). */
const TRUE_PEAK_TOLERANCE_DB = 0.1;

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The layout the output is encoded with (the one its loudness is weighed by), for its measurements. */
function measuredLayout(o: FinishOptions): MeasuredLayout | undefined {
  const channels = o.stats[0]?.channels ?? 0;
  return o.file.weightLayout && channels > 0 ? { name: o.file.weightLayout, channels } : undefined;
}
