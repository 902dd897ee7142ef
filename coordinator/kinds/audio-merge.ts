/**
 * Merge of an audio job. Whole-file subtasks already hold finished outputs. For each segmented file the
 * merge checks every segment (frame counts against the plan and against the WAV that crossed the wire),
 * joins the 100 ms sub-block energies in timeline order and gates them once over the whole file, then
 * joins the PCM bodies and encodes once (gain + true-peak limiter) — no encoder sees a join.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dataLoss, isOwnTroubleToWaitOut, TesseraError } from '../../shared/errors.js';
import type { FinalOutput, ItemFailure, MergeContext, MergeResult, SubtaskOutcome } from '../../shared/job-kind.js';
import { AUDIO_CODECS, type AudioJobParams } from '../../shared/kinds/audio-params.js';
import type { PieceStats } from '../../shared/media/audio-analyze.js';
import { finishFile, type FileReport } from '../../shared/media/audio-finish.js';
import { MAX_GAIN_DB, type AudioSubtaskPlan, type SegmentPlan, type WholeFilesPlan } from '../../shared/media/audio-pieces.js';
import { probeAudio } from '../../shared/media/audio-probe.js';
import { readWavInfo } from '../../shared/media/audio-wav.js';

/** Job-wide output: per file, measured loudness, gain, true peak, frames. */
export const AUDIO_REPORT = 'audio-report.json';

export async function mergeAudio(ctx: MergeContext<AudioJobParams>): Promise<MergeResult> {
  const outputs: FinalOutput[] = [];
  const errors: ItemFailure[] = [];
  const reports: FileReport[] = [];
  const segmented = new Map<string, SubtaskOutcome[]>();
  for (const r of ctx.results) {
    const plan = r.plan as AudioSubtaskPlan;
    if (plan.type === 'segment') {
      const list = segmented.get(plan.file.input) ?? [];
      list.push(r);
      segmented.set(plan.file.input, list);
      continue;
    }
    collectWhole(r, plan, outputs, errors, reports);
  }
  for (const [input, segs] of segmented) {
    try {
      const failed = segs.find((s) => !s.ok);
      if (failed) {
        errors.push(failed.error ? { ...failed.error, input: failed.error.input || input } : { input, code: 'INTERNAL', message: `${input}: segment ${failed.label} failed` });
        continue;
      }
      const done = await finishSegmented(ctx, input, segs);
      reports.push(done.report);
      for (const name of done.files) outputs.push({ name, path: path.join(ctx.outputDir, name), source: input, contentType: contentType(name, ctx.params) });
    } catch (err) {
      // The coordinator's own trouble (a full disk): the job manager merges again later, as for video.
      if (!(err instanceof TesseraError) || isOwnTroubleToWaitOut(err)) throw err;
      // A segment that does not verify fails its file only; the rest of the batch is published.
      errors.push({ input, code: err.codeName, message: err.message });
    }
  }
  for (const r of reports) {
    warnLoudnessMissed(ctx, r);
    warnUnmeasured(ctx, r);
    warnPeakOver(ctx, r);
    warnClipped(ctx, r);
  }
  if (reports.length > 0) {
    const file = path.join(ctx.outputDir, AUDIO_REPORT);
    await writeFile(file, JSON.stringify({ files: reports }, null, 2));
    outputs.push({ name: AUDIO_REPORT, path: file, source: '', contentType: 'application/json' });
  }
  return { outputs, errors };
}

function collectWhole(r: SubtaskOutcome, plan: WholeFilesPlan, outputs: FinalOutput[], errors: ItemFailure[], reports: FileReport[]): void {
  errors.push(...r.itemErrors);
  if (!r.ok) {
    // The subtask failed for good: every one of its files that has no specific error fails with it.
    for (const f of plan.files) {
      if (!r.itemErrors.some((e) => e.input === f.input)) errors.push({ ...(r.error ?? { code: 'INTERNAL', message: 'subtask failed' }), input: f.input });
    }
    return;
  }
  const result = r.result as { files?: FileReport[] } | undefined;
  for (const rep of result?.files ?? []) reports.push(rep);
  // Only the names the plan gives (each file's output, and its waveform's two with --waveform): a
  // worker naming others (`payload.exe`, `TONE.WAV` beside `tone.wav`) had them published (review SEC).
  for (const o of r.outputs) {
    const owner = plan.files.find((f) => {
      const stem = f.output.replace(/\.[^.]+$/, '');
      return o.name === f.output || o.name === `${stem}.waveform.json` || o.name === `${stem}.waveform.png`;
    });
    if (owner) outputs.push({ name: o.name, path: o.path, source: owner.input, contentType: contentTypeByName(o.name) });
  }
}

async function finishSegmented(ctx: MergeContext<AudioJobParams>, input: string, segs: SubtaskOutcome[]): Promise<{ report: FileReport; files: string[] }> {
  const ordered = [...segs].sort((a, b) => (a.plan as SegmentPlan).index - (b.plan as SegmentPlan).index);
  const first = ordered[0]!.plan as SegmentPlan;
  if (ordered.length !== first.count || ordered.some((s, i) => (s.plan as SegmentPlan).index !== i)) {
    throw dataLoss(`${input}: expected ${first.count} segments, got ${ordered.length}`);
  }
  const pieces: string[] = [];
  const stats: PieceStats[] = [];
  let expectOffset = 0;
  for (const s of ordered) {
    const plan = s.plan as SegmentPlan;
    const body = s.outputs.find((o) => o.name === 'body.wav');
    const st = s.outputs.find((o) => o.name === 'stats.json');
    if (!body || !st) throw dataLoss(`${input}: segment ${plan.index} returned no body or statistics`);
    const stat = await readPieceStats(st.path, input, plan.index);
    if (stats.length > 0 && stat.channels !== stats[0]!.channels) throw dataLoss(`${input}: segment ${plan.index} has ${stat.channels} channels, segment 0 ${stats[0]!.channels}`);
    const info = await readWavInfo(body.path, input);
    // Verify before joining: the body that crossed the wire has the frames the plan and the analysis say.
    if (info.frames !== stat.frames || (plan.body !== undefined && stat.frames !== plan.body) || plan.offset !== expectOffset) {
      throw dataLoss(`${input}: segment ${plan.index} has ${info.frames} frames (analysis ${stat.frames}, plan ${plan.body ?? 'rest'}) at ${plan.offset}, expected ${expectOffset}`);
    }
    if (info.sampleRate !== plan.file.outRate) throw dataLoss(`${input}: segment ${plan.index} is at ${info.sampleRate} Hz, expected ${plan.file.outRate}`);
    expectOffset += stat.frames;
    pieces.push(body.path);
    stats.push(stat);
  }
  const done = await finishFile({ params: ctx.params, file: first.file, pieces, stats, outDir: ctx.outputDir, workDir: ctx.workDir, signal: ctx.signal });
  // Check the encoded output before publishing it: it must hold the joined duration.
  const out = await probeAudio(path.join(ctx.outputDir, first.file.output), first.file.output, ctx.signal);
  const want = expectOffset / first.file.outRate;
  // What a container states may hold the encoder's priming and padding (MP3: up to about four of its
  // 1152-sample frames, 0.17 s at 8 kHz measured); a segment lost or doubled is a whole second.
  const slack = Math.max(0.1, MAX_CODEC_PADDING_SAMPLES / first.file.outRate);
  if (out.duration > 0 && Math.abs(out.duration - want) > slack) {
    throw dataLoss(`${input}: encoded output lasts ${out.duration.toFixed(3)} s, expected ${want.toFixed(3)} s`);
  }
  ctx.log.info({ input, loudness: done.report.loudness, gainDb: done.report.gainDb, segments: ordered.length }, 'audio file merged');
  return done;
}

/**
 * A segment's statistics as its worker wrote them, checked before the join reads them: statistics
 * that do not parse or lack a field (a damaged file, a worker of another version) fail their input
 * with DATA_LOSS, as a body that does not verify does, not the whole job.
 */
async function readPieceStats(file: string, input: string, index: number): Promise<PieceStats> {
  const bad = (why: string): TesseraError => dataLoss(`${input}: segment ${index}'s statistics ${why}`);
  let v: unknown;
  try {
    v = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw bad(`do not parse: ${(err as Error).message}`);
  }
  const num = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);
  const nums = (x: unknown): x is number[] => Array.isArray(x) && x.every(num);
  const s = (v ?? {}) as Partial<PieceStats>;
  if (typeof v !== 'object' || ![s.frames, s.sampleRate, s.channels].every((n) => Number.isInteger(n) && (n as number) >= 0) || !num(s.samplePeak) || !num(s.truePeak)) {
    throw bad('lack their frames, sample rate, channels or peaks');
  }
  const b = s.subBlocks;
  if (!b || !nums(b.energy) || !nums(b.samples) || b.energy.length !== b.samples.length || !num(b.partial?.energy) || !num(b.partial?.samples)) {
    throw bad('lack their loudness sub-blocks');
  }
  const w = s.waveform;
  if (w !== undefined && (!num(w?.spp) || !nums(w?.min) || !nums(w?.max) || w.min.length !== w.max.length)) throw bad('hold a malformed waveform');
  return s as PieceStats;
}

/** The most samples of priming and padding an encoder adds to what its container states. */
const MAX_CODEC_PADDING_SAMPLES = 4 * 1152;

function contentType(name: string, p: AudioJobParams): string {
  return name.endsWith(`.${AUDIO_CODECS[p.codec].extension}`) ? AUDIO_CODECS[p.codec].contentType : contentTypeByName(name);
}

function contentTypeByName(name: string): string {
  if (name.endsWith('.png')) return 'image/png';
  if (name.endsWith('.json')) return 'application/json';
  const codec = Object.values(AUDIO_CODECS).find((c) => name.endsWith(`.${c.extension}`));
  return codec?.contentType ?? 'application/octet-stream';
}

/** How far over its true-peak ceiling a normalised output may measure before the job says so, dB (a lossy encoder's own peaks). */
const PEAK_OVER_WARNED_DB = 0.5;

/**
 * Says so where a normalised output still measures over its true-peak ceiling after the limiter was
 * lowered as far as the encodes allowed (a lossy encoder's own peaks on bright material): the
 * report's `outputTruePeak` says where, and the job would otherwise look like it kept the ceiling.
 */
function warnPeakOver(ctx: MergeContext<AudioJobParams>, r: FileReport): void {
  const got = r.outputTruePeak;
  const { truePeak } = ctx.params;
  if (!ctx.params.normalize || got === undefined || got === null || !(got > truePeak + PEAK_OVER_WARNED_DB)) return;
  ctx.warn(r.input, `true peak ${got.toFixed(1)} dBTP, over the ${truePeak} dBTP ceiling: the encoder's own peaks passed the limiter's; a lower --true-peak or a higher bitrate keeps it`);
}

/** Says so where a lossless output's samples over full scale were clipped (FileReport.clippedDb). */
function warnClipped(ctx: MergeContext<AudioJobParams>, r: FileReport): void {
  if (r.clippedDb === undefined) return;
  ctx.warn(r.input, `its samples reach +${r.clippedDb.toFixed(2)} dBFS, over full scale (a float source mixed hot): written as ${ctx.params.codec} integers they are clipped there; --normalize (or --loudness) brings them under a ceiling`);
}

/**
 * Says so where a file asked to be normalised has sound but no loudness: all of it under EBU R128's
 * -70 LUFS absolute gate (a very quiet recording), left as it is. The report said `loudness: null`,
 * as for silence, and the job nothing, the file delivered 54 LU under its target (review audio).
 */
function warnUnmeasured(ctx: MergeContext<AudioJobParams>, r: FileReport): void {
  if (!ctx.params.normalize || r.loudness !== null || r.sourceTruePeak === null) return;
  ctx.warn(r.input, `not normalised: all of it is under the -70 LUFS absolute gate of EBU R128 loudness (its true peak is ${r.sourceTruePeak.toFixed(1)} dBTP), so it has no loudness to bring to the ${ctx.params.loudness} LUFS asked; it is left as it is`);
}

/** How far a normalised output may land from its target before the job says so, LU. */
const LOUDNESS_MISS_WARNED_LU = 0.5;

/**
 * Says so where a normalised output missed its loudness target: the true-peak ceiling held it back
 * (dense, loud material, the limiter taking off what the gain put on). The file is still made.
 */
function warnLoudnessMissed(ctx: MergeContext<AudioJobParams>, r: FileReport): void {
  const got = r.outputLoudness;
  const { loudness, truePeak } = ctx.params;
  if (!ctx.params.normalize || got === undefined || got === null || Math.abs(got - loudness) <= LOUDNESS_MISS_WARNED_LU) return;
  // The limiter takes off what the gain put on; where the gain took off already, it holds the
  // source's own peaks down (clipped, bursty material: review AUD8).
  const limiting = r.gainDb > 0 ? 'the limiter took off what the gain put on' : "the limiter held the source's own peaks under it";
  const why = r.limited
    ? `the true-peak ceiling of ${truePeak} dBTP held it back (${limiting}); a lower --loudness or a higher --true-peak reaches its target`
    : Math.abs(r.gainDb) >= MAX_GAIN_DB
      ? `the gain is at most ${MAX_GAIN_DB} dB (the source measures ${r.loudness} LUFS)`
      : 'the encoder changed its loudness more than a second encode could correct';
  ctx.warn(r.input, `normalised to ${got.toFixed(1)} LUFS, not the ${loudness} LUFS asked: ${why}`);
}
