/**
 * Planning of an audio job: probe every input (bad ones fail alone), group small files into `whole`
 * subtasks, and cut long files into whole-second WAV segments with 1 s of pre/post-roll (`segment`
 * subtasks). Non-WAV long files are decoded once here to a WAV in the decoder's own sample format, so
 * the cut is sample-exact whatever the source codec.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { invalidArgument } from '../../shared/errors.js';
import type { ItemFailure, PlanContext, PlanErrors, PlanResult, SpoolFile, SubtaskPlan } from '../../shared/job-kind.js';
import { AUDIO_CODECS, aacRateWritten, bitrateProblem, keepsTooLittle, mp3RateWritten, MIN_TRIM_SECONDS, opusLayoutChange, outputChannels, outputLayout, outputSampleRate, type AudioJobParams } from '../../shared/kinds/audio-params.js';
import { losslessBits } from '../../shared/media/audio-filters.js';
import { AUDIO_CHAPTERS_FEATURE, AUDIO_STREAM_FEATURE, AUDIO_TAGS_FEATURE, fadeSamples, outputName, resampledFrames, segmentCuts, waveformSpp, type FileRender, type SegmentPlan, type WholeFilesPlan } from '../../shared/media/audio-pieces.js';
import { checkNotTruncated, firstFrameFormat, statedExactly, isCuttableWav, keptChapters, lengthIsGuessed, packetLength, probeAudio, type AudioProbe } from '../../shared/media/audio-probe.js';
import { takeHeaderProbe } from '../input-check.js';
import { ARRIVAL_PAUSE_MS, itemFailure } from './plan-each.js';
import { decodeToWav } from '../../shared/media/audio-render.js';
import { checkWavComplete, readWavInfo, wavHeader, type WavInfo } from '../../shared/media/audio-wav.js';
import { NameSet } from '../../shared/names.js';
import { countedMediaOverLimit } from '../../shared/limits.js';

/** Small files are grouped into one subtask up to this many seconds of audio (less on a small batch)... */
const GROUP_SECONDS = 60;
/** ...and this many files. */
const GROUP_FILES = 16;

interface Probed {
  file: SpoolFile;
  probe: AudioProbe;
}

/** A small file's render, to be grouped with others into one `whole` subtask. */
interface Small {
  file: SpoolFile;
  render: WholeFilesPlan['files'][number];
  seconds: number;
}

/** Plans the job's first phase: at once, or (its upload still running) file by file as they arrive. */
export async function planAudio(ctx: PlanContext<AudioJobParams>): Promise<PlanResult> {
  if (ctx.arriving) return { subtasks: [], later: planArriving(ctx, ctx.arriving) };
  const errors: ItemFailure[] = [];
  const subtasks: SubtaskPlan[] = [];
  const taken = new NameSet(['audio-report.json']);
  const probed: Probed[] = [];
  for (const file of ctx.inputs) {
    try {
      probed.push({ file, probe: await probeForPlan(ctx, file) });
    } catch (err) {
      errors.push(itemFailure(err, file.name));
    }
  }
  const smalls: Small[] = [];
  for (const { file, probe } of probed) {
    try {
      const planned = await planFile(ctx, file, probe, taken);
      if (Array.isArray(planned)) subtasks.push(...planned);
      else smalls.push(planned);
    } catch (err) {
      errors.push(itemFailure(err, file.name));
    }
  }
  // Groups small enough that every slot gets work (at least two groups per slot), at most GROUP_SECONDS.
  const totalSeconds = probed.reduce((n, x) => n + Math.min(x.probe.duration, ctx.params.segmentSeconds), 0);
  for (const g of groups(smalls, spreadSeconds(totalSeconds, ctx.cluster.slots))) subtasks.push(groupSubtask(g, ctx.params));
  return { subtasks, errors };
}

/**
 * Plans the files in submission order as they pass their checks: a long file's segments go out at
 * once, small files wait to be grouped (see ARRIVAL_PAUSE_MS); at the end of the upload what waits
 * is grouped two groups per slot at least (a job of small files only, all in at once, is grouped
 * as planned at once; long files there count towards the group size, here not).
 */
async function* planArriving(ctx: PlanContext<AudioJobParams>, arriving: NonNullable<PlanContext<AudioJobParams>['arriving']>): AsyncGenerator<SubtaskPlan | PlanErrors> {
  const taken = new NameSet(['audio-report.json']);
  const waiting: Small[] = [];
  const seconds = (list: Small[]): number => list.reduce((n, x) => n + x.seconds, 0);
  for (;;) {
    const run = await arriving.take(waiting.length > 0 ? ARRIVAL_PAUSE_MS : Infinity);
    if (run === undefined) break;
    for (const file of run) {
      try {
        const probe = await probeForPlan(ctx, file);
        const planned = await planFile(ctx, file, probe, taken);
        if (Array.isArray(planned)) yield* planned;
        else waiting.push(planned);
      } catch (err) {
        yield { errors: [itemFailure(err, file.name)] };
      }
    }
    if (run.length === 0) {
      // A pause in the upload: what waits is spread over the slots, a group each.
      const perSlot = Math.max(1, seconds(waiting) / Math.max(1, ctx.cluster.slots));
      for (const g of groups(waiting.splice(0), Math.min(GROUP_SECONDS, perSlot))) yield groupSubtask(g, ctx.params);
      continue;
    }
    // Full groups (the next file would not fit), each while as much again waits behind it: kept to
    // be spread at the end, so that a small batch all in at once is grouped as a whole.
    for (let first = groups(waiting, GROUP_SECONDS)[0]; first; first = groups(waiting, GROUP_SECONDS)[0]) {
      if (waiting.length - first.length < first.length || seconds(waiting) - seconds(first) < seconds(first)) break;
      yield groupSubtask(waiting.splice(0, first.length), ctx.params);
    }
  }
  for (const g of groups(waiting, spreadSeconds(seconds(waiting), ctx.cluster.slots))) yield groupSubtask(g, ctx.params);
}

/** Seconds per group that give every slot work (at least two groups per slot), at most GROUP_SECONDS. */
const spreadSeconds = (totalSeconds: number, slots: number): number => Math.min(GROUP_SECONDS, Math.max(1, totalSeconds / Math.max(2, 2 * slots)));

/** Consecutive small files in groups of at most `groupSeconds` of audio (a longer file alone) and GROUP_FILES files. */
function groups(smalls: Small[], groupSeconds: number): Small[][] {
  const out: Small[][] = [];
  let group: Small[] = [];
  let secs = 0;
  for (const s of smalls) {
    if (group.length > 0 && (secs + s.seconds > groupSeconds || group.length >= GROUP_FILES)) {
      out.push(group);
      group = [];
      secs = 0;
    }
    group.push(s);
    secs += s.seconds;
  }
  if (group.length > 0) out.push(group);
  return out;
}

/** What a group's renders need of a worker beyond the encoder: to write the sources' tags, chapters. */
function features(group: Small[]): string[] {
  return [
    ...(group.some((g) => Object.keys(g.render.tags ?? {}).length > 0) ? [AUDIO_TAGS_FEATURE] : []),
    ...(group.some((g) => (g.render.chapters ?? []).length > 0) ? [AUDIO_CHAPTERS_FEATURE] : []),
    ...(group.some((g) => g.render.stream !== undefined || g.render.durationFromTag || g.render.fillGaps) ? [AUDIO_STREAM_FEATURE] : []),
  ];
}

/** One `whole` subtask rendering a group of small files. */
function groupSubtask(group: Small[], p: AudioJobParams): SubtaskPlan {
  const names = group.map((g) => g.file.name);
  return {
    label: names.length === 1 ? `file ${names[0]}` : `files ${names[0]} .. ${names[names.length - 1]} (${names.length})`,
    inputs: group.map((g) => g.file),
    plan: { type: 'whole', files: group.map((g) => g.render) } satisfies WholeFilesPlan,
    weight: Math.max(1, Math.round(group.reduce((n, g) => n + g.seconds, 0) * 10)),
    items: names,
    requires: { encoders: [AUDIO_CODECS[p.codec].encoder], ...(features(group).length > 0 && { features: features(group) }) },
  };
}

/**
 * A group of whole files cut into a subtask per file (of the files in `only`, when given): the
 * audio kind's `split`. A segment of a long file is not split.
 */
export function splitWholeFiles(s: SubtaskPlan, only?: readonly string[]): SubtaskPlan[] | undefined {
  const plan = s.plan as WholeFilesPlan | SegmentPlan;
  if (plan.type !== 'whole' || (!only && plan.files.length < 2)) return undefined;
  const count = plan.files.length;
  return plan.files
    .filter((f) => !only || only.includes(f.input))
    .map((f) => {
      const file = s.inputs.find((i) => i.name === f.input);
      return {
        label: `file ${f.input}`,
        inputs: file ? [file] : [],
        plan: { type: 'whole', files: [f] } satisfies WholeFilesPlan,
        weight: Math.max(1, Math.round(s.weight / count)),
        items: [f.input],
        ...(s.requires ? { requires: s.requires } : {}),
      };
    });
}

/**
 * The trim of `p` on the sound's own timeline, in seconds from its first sample: the file's (as
 * `ffmpeg -ss/-to` takes it) less where the sound starts in it, never before it; `end` undefined
 * for none.
 */
function soundTrim(p: AudioJobParams, probe: AudioProbe): { start: number; end: number | undefined } {
  return {
    start: Math.max(0, (p.trim?.start ?? 0) - probe.startOffset),
    end: p.trim?.end ? Math.max(0, p.trim.end - probe.startOffset) : undefined,
  };
}

/** One probed file: a long one's segment subtasks, or a small one's render to be grouped. */
/**
 * Ogg files, and files whose length ffmpeg guessed from the bitrate, at least this large are
 * measured (see {@link probeForPlan}): a few minutes of Vorbis, Opus or MP3 and more.
 */
const MEASURED_BYTES = 8 << 20;

/**
 * The probe a file is planned by: a capture's format that may change part-way is its first frame's
 * (one frame decoded, about 60 ms of an ffmpeg), which the render converts the whole stream to; where its stated length is none (a FLAC written to a pipe) or may
 * be short (an Ogg states its last link's, and a chained one, two files joined or a radio rip,
 * holds more), the length its packets add up to. Without it such a file was never cut into
 * segments, small ones were grouped as if empty, and a trim into a chained Ogg's second link was
 * refused as past the end (review AWILD). A small Ogg without a trim is rendered whole, on its
 * decoded length, either way. The same for a length ffmpeg guessed from the bitrate (ADTS AAC, an
 * MP3 without a Xing header), where a trim, a fade or the file's size makes it matter.
 */
async function probeForPlan(ctx: PlanContext<AudioJobParams>, file: SpoolFile): Promise<AudioProbe> {
  let probe = await probeAudio(file.path, file.name, ctx.signal, takeHeaderProbe(file), ctx.params.track);
  // A format that may change part-way is converted to its first frame's: planned by that too, where
  // a change is likely within ffprobe's first seconds (a capture starting just before a programme);
  // MP3, Ogg and bare AAC files (nearly all of one format; 60 ms of planning each) by their probe.
  const capture = /^(mpegts|mpeg|flv|asf|wtv|ac3|eac3|dts|truehd)$/.test(probe.container) || /^(ac3|eac3|dts|truehd|mp2)$/.test(probe.codec);
  const first = capture ? await firstFrameFormat(file.path, probe.stream, file.name, ctx.signal) : undefined;
  if (first) probe = { ...probe, ...first };
  // Trims, fades and the choice to cut into segments go by the length: where ffmpeg guessed it from
  // the bitrate (7.1 s of an ADTS file's 10 s, 302 s of another's), it is measured instead.
  const cut = ctx.params.trim !== null || ctx.params.fadeOut > 0 || ctx.params.fadeIn > 0 || file.size >= MEASURED_BYTES;
  const guessed = probe.duration > 0 && cut && (await lengthIsGuessed(probe.container, file.path, file.name, ctx.signal, probe.stream));
  const ogg = probe.container === 'ogg' && (ctx.params.trim !== null || file.size >= MEASURED_BYTES);
  if (probe.duration > 0 && !ogg && !guessed) return probe;
  const measured = await packetLength(file.path, probe.stream, file.name, ctx.signal);
  // A guess gives way to the measure either way; a stated length only to a longer one (a chained Ogg).
  return measured > 0 && (guessed || measured > probe.duration) ? { ...probe, duration: measured } : probe;
}

/**
 * Whether a source's decoded layout or rate may change part-way, which a whole-file render then
 * decodes apart (FileRender.decodeApart): a broadcast capture's stereo turning 5.1 at a programme's
 * start, MP3s of two rates joined end to end. Formats that are streams of self-describing frames
 * (MPEG-TS/PS, FLV, Ogg's chained streams, bare AAC/AC-3/MP3/DTS), and codecs that carry their
 * format in every frame in any container (a capture's AC-3 remuxed into Matroska). A file whose
 * format is fixed once in its header (WAV, FLAC, AAC in MP4) pays no second process.
 */
export function formatMayChange(probe: Pick<AudioProbe, 'container' | 'codec'>): boolean {
  return /^(mpegts|mpeg|flv|ogg|asf|wtv|aac|ac3|eac3|mp3|dts|truehd|loas|mp2)$/.test(probe.container) || /^(ac3|eac3|dts|mp2|mp3|aac_latm|truehd)$/.test(probe.codec);
}

/** The most channels AAC (ffmpeg's encoder: 7.1) and FLAC hold. */
const MOST_CHANNELS = 8;

async function planFile(ctx: PlanContext<AudioJobParams>, file: SpoolFile, probe: AudioProbe, taken: NameSet): Promise<SubtaskPlan[] | Small> {
  const p = ctx.params;
  const outRate = outputSampleRate(p, probe.sampleRate);
  const channels = outputChannels(p, probe.channels, probe.layout);
  const outLayout = outputLayout(p, channels, probe.channels, probe.layout);
  // Opus holds only its own layouts: what the conversion mixes or leaves silent is said (review AUD3).
  const opusChange = p.codec === 'opus' && !p.channels && outLayout ? opusLayoutChange(probe.layout, outLayout) : undefined;
  if (opusChange) ctx.warn(file.name, opusChange);
  // AAC and FLAC hold at most 8 channels: refused here, named, not by the encoder after the upload
  // and a worker's run ("Qavg: nan", review AUD5). A source without a layout cannot be mixed down.
  if ((p.codec === 'aac' || p.codec === 'flac') && channels > MOST_CHANNELS) {
    const mix = probe.layout ? `--channels ${MOST_CHANNELS} (or fewer) mixes it down; ` : `its channels have no layout to mix down from; `;
    throw invalidArgument(`${file.name}: it has ${channels} channels, and ${p.codec} holds at most ${MOST_CHANNELS}: ${mix}--codec opus or wav keeps them all`, file.name);
  }
  // ffmpeg guesses a layout for up to 8 unnamed channels; past that, it has none to mix from.
  if (channels < probe.channels && !probe.layout && probe.channels > MOST_CHANNELS) {
    throw invalidArgument(`${file.name}: its ${probe.channels} channels have no layout to mix down to ${channels} from${p.codec === 'mp3' ? ' (mp3 holds at most 2)' : ''}: --codec opus or wav keeps them all`, file.name);
  }
  // An encoder fails on a bitrate it cannot take for these channels (Opus); LAME writes another at
  // a low rate without a word (said here; a default is the encoder's to fit, as ffmpeg does).
  const rateProblem = p.bitrateGiven ? bitrateProblem(p.codec, p.bitrate, channels) : undefined;
  if (rateProblem) throw invalidArgument(`${file.name}: bitrate ${p.bitrate / 1000}k is ${rateProblem} (this file is ${channels === 1 ? 'mono' : `${channels} channels`} at ${outRate} Hz)`, file.name);
  const written = p.codec === 'mp3' && p.bitrateGiven ? mp3RateWritten(p.bitrate, outRate) : undefined;
  if (written) ctx.warn(file.name, `bitrate ${p.bitrate / 1000}k is written as ${written / 1000}k, the ${written > p.bitrate ? 'least' : 'most'} MP3 has at ${outRate} Hz`);
  // AAC's encoder clamps a rate it cannot hold, saying so in its log only (review AU3).
  const aacMost = p.codec === 'aac' && p.bitrateGiven ? aacRateWritten(p.bitrate, outRate, channels) : undefined;
  if (aacMost) ctx.warn(file.name, `bitrate ${p.bitrate / 1000}k is written as at most ${aacMost / 1000}k, the most AAC holds at ${outRate} Hz for ${channels === 1 ? 'mono' : `${channels} channels`}`);
  const base = {
    input: file.name,
    output: '',
    sourceRate: probe.sampleRate,
    outRate,
    outLayout,
    weightLayout: outLayout || probe.layout,
    bits: losslessBits(probe.sampleFormat),
    durationIsAudio: probe.durationIsAudio,
    ...(probe.durationFromTag && { durationFromTag: true }),
    ...(probe.statedSkip && { statedSkip: probe.statedSkip }),
    sourceCodec: probe.codec,
    ...(probe.audioTracks > 1 && { stream: probe.stream }),
    // A trim of an MPEG-TS or -PS, whose sound may drop out: on its timeline, gaps as silence (review K15).
    ...(p.trim && /^(mpegts|mpeg)$/.test(probe.container) && { fillGaps: true }),
    ...(formatMayChange(probe) && { decodeApart: { rate: probe.sampleRate, channels: probe.channels, layout: probe.layout } }),
    maxSeconds: ctx.limits.maxMediaSeconds,
    tags: probe.tags,
  };
  if (probe.audioTracks > 1 && !probe.chosen) {
    // Numbered as --track counts them (ffmpeg's stream index counted the video and from 0).
    const which = probe.track ? `track ${probe.track.number} (${[probe.track.language, `${probe.channels} channel${probe.channels === 1 ? '' : 's'}`].filter(Boolean).join(', ')})` : `stream ${probe.stream}`;
    ctx.warn(file.name, `it has ${probe.audioTracks} audio tracks: ${which} is encoded, the one ffmpeg takes (the default track, else the one with the most channels); --track N (from 1) or --language picks another`);
  }
  // A trim is on the file's timeline, as `ffmpeg -ss/-to` takes it: where the sound starts after
  // the picture, its samples start that much later (it was counted from the first sample: --trim
  // 2.5,3.5 of a sound starting at 2 s kept 4.5 to 5 s; review AVC).
  const offset = probe.startOffset;
  const { start: startSec, end: trimEnd } = soundTrim(p, probe);
  const endSec = trimEnd !== undefined ? Math.min(trimEnd, probe.duration || trimEnd) : probe.duration;
  // Chapters are on the file's timeline; the output starts at the first sample kept.
  const chapters = keptChapters(probe.chapters, Math.max(p.trim?.start ?? 0, offset), p.trim?.end ? p.trim.end : Infinity);
  if (chapters.length > 0) Object.assign(base, { chapters });
  const soundEnds = `${(offset + probe.duration).toFixed(2)} s${offset > 0 ? `; its sound starts at ${offset.toFixed(2)} s` : ''}`;
  if (probe.duration > 0 && startSec >= probe.duration) throw invalidArgument(`${file.name}: trim.start ${p.trim?.start ?? 0} s is past the end (${soundEnds})`, file.name);
  const seconds = Math.max(0, endSec - startSec);
  // The params allow no trim under MIN_TRIM_SECONDS; one that runs past the end can still keep less.
  if (p.trim && probe.duration > 0 && keepsTooLittle(seconds)) {
    throw invalidArgument(`${file.name}: trim.start ${p.trim.start} s leaves ${Number(seconds.toPrecision(3))} s before the end (${soundEnds}); a trim must keep at least ${MIN_TRIM_SECONDS} s`, file.name);
  }
  // A fade longer than what is kept spans all of it: allowed, and said.
  const longFades = [p.fadeIn > seconds ? `fade-in ${p.fadeIn} s` : '', p.fadeOut > seconds ? `fade-out ${p.fadeOut} s` : ''].filter(Boolean);
  if (longFades.length > 0 && seconds > 0) ctx.warn(file.name, `${longFades.join(' and ')} ${longFades.length > 1 ? 'are' : 'is'} longer than the ${seconds.toFixed(2)} s of audio kept: it spans all of it`);
  if (seconds > p.segmentSeconds) {
    base.output = reserveOutput(file.name, p, taken);
    return planSegments(ctx, file, probe, base);
  }
  // A PCM WAV's header is read here (a few bytes): one cut short is refused as the segmented path does.
  if (isCuttableWav(probe)) checkWavComplete(await readWavInfo(file.path, file.name), file.name);
  const startSample = Math.round(startSec * probe.sampleRate);
  const endSample = trimEnd !== undefined ? Math.round(trimEnd * probe.sampleRate) : undefined;
  const srcFrames = Math.round(seconds * probe.sampleRate);
  const totalFrames = resampledFrames(srcFrames, probe.sampleRate, outRate);
  const render: WholeFilesPlan['files'][number] = {
    ...base,
    output: reserveOutput(file.name, p, taken),
    totalFrames,
    ...fadeSamples(p, outRate, totalFrames),
    waveformSpp: p.waveform ? waveformSpp(outRate, totalFrames) : undefined,
    trim: p.trim ? { startSample, endSample: endSample ?? Number.MAX_SAFE_INTEGER } : undefined,
  };
  return { file, render, seconds };
}

async function planSegments(ctx: PlanContext<AudioJobParams>, file: SpoolFile, probe: AudioProbe, base: Omit<FileRender, 'totalFrames'>): Promise<SubtaskPlan[]> {
  let wavPath = file.path;
  if (!isCuttableWav(probe)) {
    wavPath = path.join(ctx.workDir, `decoded-${createHash('sha1').update(file.name).digest('hex').slice(0, 12)}.wav`);
    await decodeToWav(file.path, file.name, probe.sampleFormat, wavPath, ctx.signal, probe.codec, ctx.limits.maxMediaSeconds, base.stream, base.fillGaps, base.decodeApart);
  }
  try {
    return await cutSegments(ctx, file, probe, base, wavPath);
  } finally {
    // Only its segments are read from here on: a 2.5 h FLAC's decoded copy (757 MB) stayed beside
    // them until the job ended.
    if (wavPath !== file.path) await rm(wavPath, { force: true });
  }
}

/** The segments of `wavPath` (the source itself, or its decoded copy) as subtasks. */
async function cutSegments(ctx: PlanContext<AudioJobParams>, file: SpoolFile, probe: AudioProbe, base: Omit<FileRender, 'totalFrames'>, wavPath: string): Promise<SubtaskPlan[]> {
  const p = ctx.params;
  const info = await readWavInfo(wavPath, file.name);
  // What was decoded (or a WAV's data), not what the header states, is held to the limit.
  const over = countedMediaOverLimit(file.name, { seconds: info.frames / info.sampleRate }, ctx.limits);
  if (over) throw over;
  if (wavPath !== file.path) {
    // A decoder stops cleanly where a cut-off file ends: compare with the length the file states.
    await checkNotTruncated({ path: file.path, input: file.name, frames: info.frames, expected: Math.round(probe.duration * info.sampleRate), durationIsAudio: probe.durationIsAudio, rate: info.sampleRate, exact: statedExactly(probe.codec, probe.durationFromTag), codec: probe.codec, sourceRate: probe.sampleRate, skipped: probe.statedSkip, stream: probe.stream, signal: ctx.signal });
  }
  // A streamed WAV may declare 0 or 0xFFFFFFFF bytes; any other shortfall means the file was cut off.
  if (wavPath === file.path) checkWavComplete(info, file.name);
  const trim = soundTrim(p, probe);
  const start = Math.min(info.frames, Math.round(trim.start * info.sampleRate));
  const end = trim.end !== undefined ? Math.min(info.frames, Math.round(trim.end * info.sampleRate)) : info.frames;
  const frames = end - start;
  // The container may state more than it holds (a Matroska file whose picture outlasts its sound):
  // once decoded, the trim can start past the end.
  if (frames <= 0) {
    throw invalidArgument(`${file.name}: no audio to encode${p.trim ? ` in the trimmed range: trim.start ${p.trim.start} s is past the end of the ${(info.frames / info.sampleRate).toFixed(2)} s decoded` : ''}`, file.name);
  }
  const totalFrames = resampledFrames(frames, info.sampleRate, base.outRate);
  const render: FileRender = { ...base, totalFrames, ...fadeSamples(p, base.outRate, totalFrames), waveformSpp: p.waveform ? waveformSpp(base.outRate, totalFrames) : undefined };
  const cuts = segmentCuts(start, frames, info.sampleRate, base.outRate, p.segmentSeconds);
  const subtasks: SubtaskPlan[] = [];
  for (const [k, cut] of cuts.entries()) {
    ctx.signal.throwIfAborted();
    const segPath = path.join(ctx.workDir, `${path.basename(wavPath, '.wav')}-${createHash('sha1').update(file.name).digest('hex').slice(0, 8)}-seg${k}.wav`);
    const seg = await cutWav(wavPath, info, cut.from, cut.frames, segPath);
    const plan: SegmentPlan = { type: 'segment', file: render, segmentInput: 'segment.wav', index: k, count: cuts.length, offset: cut.offset, preRoll: cut.preRoll, body: cut.body };
    const a = cut.offset / base.outRate;
    const b = (cut.body === undefined ? totalFrames : cut.offset + cut.body) / base.outRate;
    subtasks.push({
      label: `${file.name} segment ${k + 1}/${cuts.length} (${a.toFixed(1)}s-${b.toFixed(1)}s)`,
      inputs: [{ name: 'segment.wav', path: segPath, size: seg.size, sha256: seg.sha256 }],
      plan,
      weight: Math.max(1, Math.round((b - a) * 10)),
      items: [file.name],
    });
  }
  return subtasks;
}

/** A unique output name for the input; its waveform names are reserved with it. */
function reserveOutput(input: string, p: AudioJobParams, taken: NameSet): string {
  const name = outputName(input, AUDIO_CODECS[p.codec].extension, taken);
  const stem = name.slice(0, name.lastIndexOf('.'));
  if (p.waveform) for (const ext of ['waveform.json', 'waveform.png']) taken.add(`${stem}.${ext}`);
  return name;
}

/** Writes frames [from, from + frames) of a WAV as a WAV of its own, hashing it on the way. */
async function cutWav(src: string, info: WavInfo, from: number, frames: number, out: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  const ws = createWriteStream(out);
  const header = wavHeader(info.format, info.sampleRate, info.channels, frames, info.channelMask);
  hash.update(header);
  ws.write(header);
  const start = info.dataOffset + from * info.blockAlign;
  const rs = createReadStream(src, { start, end: start + frames * info.blockAlign - 1 });
  rs.on('data', (d) => hash.update(d));
  await pipeline(rs, ws);
  return { size: (await stat(out)).size, sha256: hash.digest('hex') };
}
