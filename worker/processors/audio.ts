/**
 * Worker side of the `audio` kind. Two subtask shapes (see shared/media/audio-pieces.ts):
 *  - `whole`: one or a few small files, each rendered start to finish here (stage A, loudness, encode);
 *  - `segment`: one segment of a long file: stage A over the segment and its pre/post-roll, then the
 *    analysis pass, which returns the body as a float WAV plus its sub-block energies and peaks; the
 *    coordinator gates the loudness over the whole file and encodes once.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { status } from '../../shared/grpc-status.js';
import { invalidArgument, statusFromName, TesseraError } from '../../shared/errors.js';
import type { ItemFailure, ProcessContext, ProcessOutput, ProcessResult, WorkerProcessor } from '../../shared/job-kind.js';
import { AUDIO_CODECS, audioParamsFromSpec, outputSampleRate, type AudioCodec, type AudioJobParams } from '../../shared/kinds/audio-params.js';
import { analyzePiece } from '../../shared/media/audio-analyze.js';
import { stageAChain } from '../../shared/media/audio-filters.js';
import { finishFile, type FileReport } from '../../shared/media/audio-finish.js';
import { fadeSamples, waveformSpp, type AudioSubtaskPlan, type FileRender, type SegmentPlan, type WholeFilesPlan } from '../../shared/media/audio-pieces.js';
import { checkNotTruncated, statedExactly } from '../../shared/media/audio-probe.js';
import { renderStageA } from '../../shared/media/audio-render.js';
import { readWavInfo } from '../../shared/media/audio-wav.js';
import { countedMediaOverLimit } from '../../shared/limits.js';

/** Name of the per-segment statistics file a segment subtask returns next to its PCM body. */
export const SEGMENT_STATS = 'stats.json';
/** Name of the PCM body a segment subtask returns. */
export const SEGMENT_BODY = 'body.wav';

/**
 * Why a file with samples decoded to none, where resampling lost them: ffmpeg's resampler gives
 * nothing for the first half millisecond or so of audio, and a file that short (one sample at
 * 44.1 kHz for Opus) was said to have "no samples", as if it were empty.
 */
function tooShortToResample(f: { sourceRate?: number; outRate: number; trim?: unknown }, p: AudioJobParams): string | undefined {
  if (f.trim || !f.sourceRate || f.sourceRate === f.outRate) return undefined;
  const keeping = (Object.keys(AUDIO_CODECS) as AudioCodec[]).filter((codec) => outputSampleRate({ codec, sampleRate: 0 }, f.sourceRate!) === f.sourceRate);
  // Leaving sample_rate out keeps the source's rate only where the codec takes it (Opus takes no 44.1 kHz).
  const keep = p.sampleRate && keeping.includes(p.codec) ? `leave sample_rate out to keep ${f.sourceRate} Hz` : `${p.codec} cannot take ${f.sourceRate} Hz: choose a codec that keeps it (${keeping.join(', ')})`;
  return `it is too short to resample from ${f.sourceRate} Hz to ${f.outRate} Hz (ffmpeg's resampler gives no samples for under about half a millisecond of audio); ${keep}`;
}

export const audioProcessor: WorkerProcessor<AudioJobParams> = {
  name: 'audio',
  params: audioParamsFromSpec,
  async process(ctx) {
    const plan = ctx.plan as AudioSubtaskPlan;
    return plan.type === 'segment' ? processSegment(ctx, plan) : processWhole(ctx, plan);
  },
};

async function processSegment(ctx: ProcessContext<AudioJobParams>, plan: SegmentPlan): Promise<ProcessResult> {
  const src = ctx.inputs.find((i) => i.name === plan.segmentInput);
  if (!src) throw new TesseraError(status.INTERNAL, `segment input ${plan.segmentInput} missing`, { retryable: true });
  const f = plan.file;
  let stageA = src.path;
  if (!isIdentity(f)) {
    stageA = path.join(ctx.workDir, 'stage-a.wav');
    await renderStageA({
      source: src.path,
      input: f.input,
      chain: stageAChain({ outRate: f.outRate, outLayout: f.outLayout, offset: plan.offset - plan.preRoll, fadeIn: f.fadeIn, fadeOut: f.fadeOut }),
      out: stageA,
      threads: ctx.threads,
      signal: ctx.signal,
    });
  }
  const info = await readWavInfo(stageA, f.input);
  const body = plan.body ?? info.frames - plan.preRoll;
  const bodyPath = path.join(ctx.workDir, SEGMENT_BODY);
  ctx.progress(0.5, `segment ${plan.index + 1}/${plan.count}: analysing`);
  const stats = await analyzePiece(stageA, { preRoll: plan.preRoll, body, layout: f.weightLayout, waveformSpp: f.waveformSpp, writeBodyTo: bodyPath, signal: ctx.signal });
  const statsPath = path.join(ctx.workDir, SEGMENT_STATS);
  await writeFile(statsPath, JSON.stringify(stats));
  return {
    outputs: [
      { name: SEGMENT_BODY, path: bodyPath, source: f.input },
      { name: SEGMENT_STATS, path: statsPath, source: f.input },
    ],
    result: { index: plan.index, frames: stats.frames },
  };
}

/**
 * Stage A changes no sample value when the file keeps its rate and channels and has no fade: its float
 * conversion is exact for PCM. Then the segment WAV is analysed as it came, and its body is returned in
 * the source's sample format (half the bytes of float for 16-bit sources); the final encode converts it
 * to float exactly as stage A would have.
 */
function isIdentity(f: FileRender): boolean {
  return !f.outLayout && f.outRate === f.sourceRate && !f.fadeIn && !f.fadeOut;
}

async function processWhole(ctx: ProcessContext<AudioJobParams>, plan: WholeFilesPlan): Promise<ProcessResult> {
  const outputs: ProcessOutput[] = [];
  const itemErrors: ItemFailure[] = [];
  const reports: FileReport[] = [];
  for (const [i, f] of plan.files.entries()) {
    ctx.signal.throwIfAborted();
    const src = ctx.inputs.find((x) => x.name === f.input);
    const step = (frac: number): void => ctx.progress((i + frac) / plan.files.length, f.input);
    try {
      if (!src) throw new TesseraError(status.INTERNAL, `input ${f.input} missing`, { retryable: true });
      const dir = path.join(ctx.workDir, String(i));
      await mkdir(dir, { recursive: true });
      const stageA = path.join(dir, 'stage-a.wav');
      const render = (fades: Pick<FileRender, 'fadeIn' | 'fadeOut'>): Promise<void> =>
        renderStageA({
          source: src.path,
          input: f.input,
          stream: f.stream,
          fillGaps: f.fillGaps,
          decodeApart: f.decodeApart,
          codec: f.sourceCodec,
          // Gaps are filled on the decoding side when that is a process of its own.
          chain: stageAChain({ trim: f.trim, fillGaps: f.fillGaps && !f.decodeApart, outRate: f.outRate, outLayout: f.outLayout, offset: 0, ...fades }),
          out: stageA,
          threads: ctx.threads,
          signal: ctx.signal,
          maxSeconds: f.maxSeconds,
        });
      await render(f);
      let info = await readWavInfo(stageA, f.input);
      // A header that states less than the file holds passed the submission check: what was decoded is held to the limit.
      const over = f.maxSeconds ? countedMediaOverLimit(f.input, { seconds: info.frames / f.outRate }, { maxMediaSeconds: f.maxSeconds }) : undefined;
      if (over) throw over;
      // The probe's length can promise audio that is not there (a trim inside a wrong duration): never encode nothing.
      if (info.frames === 0) throw invalidArgument(`${f.input}: no audio to encode${f.trim ? ' in the trimmed range' : ''}: ${tooShortToResample(f, ctx.params) ?? 'the decoded file has no samples'}`, f.input);
      await checkNotTruncated({ path: src.path, input: f.input, frames: info.frames, expected: f.totalFrames, durationIsAudio: f.durationIsAudio, rate: f.outRate, exact: statedExactly(f.sourceCodec, f.durationFromTag), codec: f.sourceCodec, sourceRate: f.sourceRate, skipped: f.statedSkip, stream: f.stream, signal: ctx.signal });
      const placed = fadeSamples(ctx.params, f.outRate, info.frames);
      if (info.frames !== f.totalFrames && JSON.stringify([placed.fadeIn, placed.fadeOut]) !== JSON.stringify([f.fadeIn, f.fadeOut])) {
        // The planner's length came from the container's duration (rounded, an estimate from the
        // bitrate, or none at all): place the fades on the decoded length instead, the fade-out
        // ending on the last sample, a fade-in longer than the audio spanning all of it.
        await render(placed);
        info = await readWavInfo(stageA, f.input);
      }
      step(0.3);
      // The waveform's bin size too: a file of unknown length would get 100 bins a second, past the ~20,000 bins.
      const spp = f.waveformSpp !== undefined && info.frames !== f.totalFrames ? waveformSpp(f.outRate, info.frames) : f.waveformSpp;
      const stats = await analyzePiece(stageA, { preRoll: 0, body: info.frames, layout: f.weightLayout, waveformSpp: spp, signal: ctx.signal });
      const done = await finishFile({
        params: ctx.params,
        file: f,
        pieces: [stageA],
        stats: [stats],
        outDir: ctx.workDir,
        workDir: dir,
        threads: ctx.threads,
        signal: ctx.signal,
        onProgress: (x) => step(0.4 + 0.6 * x),
      });
      for (const name of done.files) outputs.push({ name, path: path.join(ctx.workDir, name), source: f.input });
      reports.push(done.report);
    } catch (err) {
      // A bad file fails alone; anything retryable (or a cancel) fails the whole subtask.
      if (err instanceof TesseraError && !err.retryable) {
        itemErrors.push({ input: f.input, code: err.codeName, message: err.message });
        continue;
      }
      throw err;
    }
  }
  if (outputs.length === 0 && itemErrors.length > 0 && plan.files.length === 1) {
    // A subtask with nothing but a bad input: report it as the subtask's error so it is not retried.
    const e = itemErrors[0]!;
    throw new TesseraError(statusFromName(e.code), e.message, { input: e.input, retryable: false });
  }
  return { outputs, itemErrors, result: { files: reports } };
}

