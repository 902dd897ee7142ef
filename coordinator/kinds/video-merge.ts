/**
 * Merge step of the `video` kind: stitches the encoded segments with the concat demuxer (stream copy;
 * each segment's exact duration given so VFR timing survives), muxes the audio tracks and the
 * source's subtitles, chapters and tags, then verifies the result before it is published. When it
 * fails, each segment is counted: one that does not hold its planned frames is planned again as a
 * new phase (up to twice); the output is only returned once it verifies.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FinalOutput, ItemFailure, MergeContext, MergeResult, SubtaskOutcome, SubtaskPlan } from '../../shared/job-kind.js';
import { dataLoss, isOwnTroubleToWaitOut, TesseraError } from '../../shared/errors.js';
import { chunkPath, spoolFile } from './video-chunks.js';
import { fpsModeFlag, runFfmpeg } from '../../shared/ffmpeg.js';
import type { VideoJobParams } from '../../shared/kinds/video-params.js';
import { countVideoPackets, probeMedia, probePacketSpan, type StreamSpan } from '../../shared/media/probe.js';
import { AUDIO_BESIDE_SEGMENT_FEATURE, chunkFormatOf, MOV_CHUNKS_FEATURE, NUT_CHUNKS_FEATURE, shownTime, VIDEO_10BIT_FEATURE, VIDEO_LOSSLESS_FEATURE, type VideoSegmentPlan, type VideoSegmentResult, type VideoSubtaskPlan } from '../../shared/media/video-plan.js';
import { NameSet } from '../../shared/names.js';

/** Plan-time facts about one input that the merge needs (written to the job's workDir). */
export interface InputPlanRecord {
  /** Index of the job input, and its client name and spooled path. */
  inputIndex: number;
  input: string;
  inputPath: string;
  container: VideoJobParams['container'];
  codec: VideoJobParams['codec'];
  /** Start of the first video frame relative to the container start (kept in the output). */
  videoOffset: number;
  audio: {
    mode: 'copy' | 'encode';
    streamIndex: number;
    /** Start of the audio stream relative to the container start (given to the muxer). */
    offset: number;
    /** Copy mode: the track already copied out of the source (without what an edit list hides), to mux instead of the source's. */
    file?: string;
    /** Where that copy's first packet is, past the track's start (it holds whole packets only). */
    fileStart?: number;
    /**
     * Where the source audio starts and ends, in seconds from the first video frame: the output must
     * keep both. Absent when it could not be measured (and in records from before it existed).
     */
    span?: StreamSpan;
    /** The source track's disposition ("default", "comment", "0"), set on the output's; absent in older records. */
    disposition?: string;
  } | null;
  /** The source's further audio tracks, in order (absent when it has one; and in records from before they were kept). */
  moreAudio?: Array<NonNullable<InputPlanRecord['audio']>>;
  /** The source's subtitle tracks (absent in records from before they were kept). */
  subtitles?: Array<{ streamIndex: number; codec: string }>;
  /** The source's video stream (its language and title are the output's); absent in older records. */
  videoStreamIndex?: number;
  /** The source's start timecode (MediaInfo.timecode), written into the output as ffmpeg does. */
  timecode?: string;
  segments: Array<{ frames: number; duration: number }>;
  expectedFrames: number;
  expectedDuration: number;
  /** Longest frame interval: the duration tolerance. */
  frameDuration: number;
  width: number;
  height: number;
}

const MUXER: Record<VideoJobParams['container'], string> = { mp4: 'mp4', mkv: 'matroska', webm: 'webm' };
const CONTENT_TYPE: Record<VideoJobParams['container'], string> = { mp4: 'video/mp4', mkv: 'video/x-matroska', webm: 'video/webm' };
const MAX_RERUN_PHASES = 2;

const PLAN_FILE = 'video-plan.json';

/**
 * Keeps the plan-time facts the merge needs beside the job's scratch files. The data dir may move
 * between the plan and the merge (a coordinator restarted on it elsewhere: the store's paths are
 * rewritten, this file's are not), so the files in the job's work folder (a straightened copy of
 * the source, copied audio tracks) are kept relative to it, and where the plan was made from the
 * job's input itself, its path is read from the job's record at the merge.
 */
export async function keepVideoPlan(workDir: string, records: InputPlanRecord[]): Promise<void> {
  const inside = (file: string): boolean => path.isAbsolute(file) && !path.relative(workDir, file).startsWith('..');
  const kept: KeptPlanRecord[] = records.map((r) => ({
    ...withPlanPaths(r, (file) => (inside(file) ? path.relative(workDir, file) : file)),
    ...(!inside(r.inputPath) && { inputIsJobInput: true }),
  }));
  await writeFile(path.join(workDir, PLAN_FILE), JSON.stringify(kept));
}

/** A plan record as kept: `inputIsJobInput` where its source is the job's input (its path then read from the job). */
type KeptPlanRecord = InputPlanRecord & { inputIsJobInput?: boolean };

/**
 * The plan kept by `keepVideoPlan`, its paths where they are now: the job's input where the plan
 * was made from it (the spool's path, or its shared one, from the job's record), the work folder's
 * files under the work folder as it is now. A plan from before paths were kept relative holds
 * absolute ones, used as they are.
 */
async function readVideoPlan(ctx: MergeContext<VideoJobParams>): Promise<InputPlanRecord[]> {
  const kept = await readFile(path.join(ctx.workDir, PLAN_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => {
    // Its work folder goes as a job fails or is cancelled, before that end is written: a coordinator
    // stopped between the two resumes the job without it (was "internal error").
    if (err.code === 'ENOENT') throw dataLoss(`the job's video plan (${PLAN_FILE} in its work folder) is gone: the job had ended, and the coordinator stopped before it wrote that; submit it again`);
    throw err;
  });
  const records = JSON.parse(kept) as KeptPlanRecord[];
  return records.map(({ inputIsJobInput, ...r }) => {
    const here = withPlanPaths(r, (file) => path.resolve(ctx.workDir, file));
    return { ...here, inputPath: (inputIsJobInput ? ctx.inputs[r.inputIndex]?.path : undefined) ?? here.inputPath };
  });
}

/** `r` with `fn` applied to every path it holds: its source and its audio tracks' copies. */
function withPlanPaths(r: InputPlanRecord, fn: (file: string) => string): InputPlanRecord {
  const track = <T extends { file?: string } | null>(t: T): T => (t?.file ? { ...t, file: fn(t.file) } : t);
  return { ...r, inputPath: fn(r.inputPath), audio: track(r.audio), ...(r.moreAudio && { moreAudio: r.moreAudio.map(track) }) };
}

/** Merges one finished phase of a video job. */
export async function mergeVideo(ctx: MergeContext<VideoJobParams>): Promise<MergeResult> {
  const records = await readVideoPlan(ctx);
  // Latest successful outcome of each subtask, by input/type/segment, across phases (re-runs win).
  const latest = new Map<string, SubtaskOutcome>();
  for (const o of [...ctx.history, ...ctx.results]) latest.set(keyOf(o.plan as VideoSubtaskPlan), o);

  const outputs: FinalOutput[] = [];
  const errors: ItemFailure[] = [];
  const rerun: SubtaskPlan[] = [];
  const usedNames = new NameSet();
  const ready: Array<{ rec: InputPlanRecord; segs: SubtaskOutcome[]; audio: string | undefined; moreAudio: Array<string | undefined> }> = [];
  for (const rec of records) {
    const mine = [...latest.values()].filter((o) => (o.plan as VideoSubtaskPlan).input === rec.inputIndex);
    const failed = mine.find((o) => !o.ok);
    if (failed) {
      errors.push(failed.error ? { ...failed.error, input: failed.error.input || rec.input } : { input: rec.input, code: 'INTERNAL', message: `${rec.input}: ${failed.label} failed` });
      continue;
    }
    const segs = mine.filter((o) => (o.plan as VideoSubtaskPlan).type === 'segment').sort((a, b) => (a.plan as VideoSegmentPlan).segment - (b.plan as VideoSegmentPlan).segment);
    // The encoded audio: a subtask's own output, or the second output of the segment it was encoded beside.
    const encoded = (track: number): SubtaskOutcome | undefined => mine.find((o) => { const p = o.plan as VideoSubtaskPlan; return p.type === 'audio' && (p.track ?? 0) === track; });
    const audio = encoded(0)?.outputs[0] ?? segs.find((s) => (s.plan as VideoSegmentPlan).audio)?.outputs[1];
    ready.push({ rec, segs, audio: audio?.path, moreAudio: (rec.moreAudio ?? []).map((_, k) => encoded(k + 1)?.outputs[0]?.path) });
  }
  for (const { rec, segs, audio, moreAudio } of ready) {
    // A segment reported done without its file, or without the audio encoded beside it, is encoded again.
    let bad = segs.filter((s) => !s.outputs[0] || ((s.plan as VideoSegmentPlan).audio && !s.outputs[1]));
    const missing = [rec.audio, ...(rec.moreAudio ?? [])].findIndex((t, k) => t?.mode === 'encode' && !(k === 0 ? audio : moreAudio[k - 1]));
    if (bad.length === 0 && missing >= 0) {
      errors.push({ input: rec.input, code: 'DATA_LOSS', message: `${rec.input}: the encoded audio track${missing > 0 ? ` ${missing + 1}` : ''} is missing` });
      continue;
    }
    if (bad.length === 0) {
      try {
        outputs.push(await stitch(ctx, rec, segs, audio, moreAudio, usedNames));
        warnDamage(ctx, rec.input, segs);
        continue;
      } catch (err) {
        // The coordinator's own trouble (a full disk): the job manager merges again later.
        if (!(err instanceof TesseraError) || isOwnTroubleToWaitOut(err)) throw err;
        // The stitched file's frames are counted as it is verified: only when it fails are the
        // segments counted one by one, and one whose bytes do not hold its planned frames is encoded
        // again (the worker counted its encode; this catches what went wrong on the way here).
        bad = await badSegments(ctx, rec, segs);
        if (bad.length === 0) {
          errors.push({ input: rec.input, code: err.codeName, message: err.message });
          continue;
        }
      }
    }
    if (ctx.phase >= MAX_RERUN_PHASES) {
      const segment = (bad[0]!.plan as VideoSegmentPlan).segment + 1;
      errors.push({ input: rec.input, code: 'DATA_LOSS', message: `${rec.input}: segment ${segment} kept failing its frame-count check` });
    } else {
      for (const b of bad) rerun.push(await resubmit(b, ctx.workDir, ctx.params.lossless));
    }
  }
  // Outputs and errors are reported once, by the last phase: a re-run phase stitches every input
  // again (those stitched already too: a merge's outputs are all its phase's).
  if (rerun.length > 0) return { next: rerun };
  return { outputs, errors };
}

/**
 * Segments whose every frame came out although the decoder complained about their source frames
 * (`VideoSegmentResult.damage`): the video is made, and the job says where it may show it.
 */
function warnDamage(ctx: MergeContext<VideoJobParams>, input: string, segs: SubtaskOutcome[]): void {
  const damaged = segs.filter((s) => (s.result as VideoSegmentResult | undefined)?.damage);
  if (damaged.length === 0) return;
  const where = damaged.map((s) => {
    const plan = s.plan as VideoSegmentPlan;
    return `${plan.segment + 1} (from about ${((s.result as VideoSegmentResult).damageAt ?? shownTime(plan, plan.first)).toFixed(1)} s)`;
  });
  const held = ctx.params.fps ? ', or repeat the frame before where --fps filled frames the decoder lost' : '';
  ctx.warn(
    input,
    `the video is damaged in segment${where.length > 1 ? 's' : ''} ${where.join(', ')} (ffmpeg: ${(damaged[0]!.result as VideoSegmentResult).damage}): every frame was made, but frames there may show blocks or smears${held}; repair or re-encode the file for a clean copy`,
  );
}

/** The segments whose files do not hold the frames planned for them. */
async function badSegments(ctx: MergeContext<VideoJobParams>, rec: InputPlanRecord, segs: SubtaskOutcome[]): Promise<SubtaskOutcome[]> {
  const counts = await Promise.all(segs.map((s) => (s.outputs[0] ? countVideoPackets(s.outputs[0].path, { signal: ctx.signal, input: rec.input }).catch(() => -1) : -1)));
  // A count cut short by the coordinator stopping says nothing about the segments.
  ctx.signal.throwIfAborted();
  return segs.filter((s, k) => counts[k] !== (s.plan as VideoSegmentPlan).frames);
}

async function stitch(ctx: MergeContext<VideoJobParams>, rec: InputPlanRecord, segs: SubtaskOutcome[], audio: string | undefined, moreAudio: Array<string | undefined>, usedNames: NameSet): Promise<FinalOutput> {
  const { signal } = ctx;
  const inputIdx = (segs[0]!.plan as VideoSegmentPlan).input;
  const list = path.join(ctx.workDir, `concat-${inputIdx}.txt`);
  // Each segment's duration is given, so the next one starts exactly where the source's next frame did.
  const lines = ['ffconcat version 1.0'];
  segs.forEach((s, k) => {
    lines.push(`file '${s.outputs[0]!.path.replace(/'/g, "'\\''")}'`);
    if (k < segs.length - 1) lines.push(`duration ${rec.segments[(s.plan as VideoSegmentPlan).segment]!.duration.toFixed(6)}`);
  });
  await writeFile(list, lines.join('\n') + '\n');

  let name = `${path.parse(rec.input).name}.${rec.container}`;
  for (let n = 2; usedNames.has(name); n++) name = `${path.parse(rec.input).name}-${n}.${rec.container}`;
  usedNames.add(name);
  const out = path.join(ctx.outputDir, name);
  // Errors only: what ffmpeg says of a failure is then its own last lines, not the output's description.
  const args = ['-y', '-v', 'error', '-itsoffset', rec.videoOffset.toFixed(6), '-f', 'concat', '-safe', '0', '-i', list];
  let inputs = 1;
  const input = (...a: string[]): number => {
    args.push(...a);
    return inputs++;
  };
  // The source itself, as one input: tracks copied straight from it, and its metadata (none of its
  // packets are read for that).
  let sourceIndex: number | undefined;
  const sourceInput = (): number => (sourceIndex ??= input('-i', rec.inputPath));
  // Each audio track from where it is: its copy out of the source, the source, or its encoded file.
  const maps = ['-map', '0:v:0'];
  const mapped: number[] = [];
  const dispositions: Array<string | undefined> = [];
  const encodedTracks: boolean[] = [];
  let hasAudio = false;
  const tracks = [rec.audio, ...(rec.moreAudio ?? [])];
  for (const [k, t] of tracks.entries()) {
    const encoded = k === 0 ? audio : moreAudio[k - 1];
    let from: string | undefined;
    if (t?.mode === 'copy' && t.file) from = `${input('-itsoffset', (t.offset + (t.fileStart ?? 0)).toFixed(6), '-i', t.file)}:a:0`;
    else if (t?.mode === 'copy') from = `${sourceInput()}:${t.streamIndex}`;
    else if (t && encoded) from = `${input('-itsoffset', (t.offset + (await encodedLead(encoded, rec, signal))).toFixed(6), '-i', encoded)}:a:0`;
    if (!from || !t) continue;
    maps.push('-map', from);
    mapped.push(t.streamIndex);
    dispositions.push(t.disposition);
    encodedTracks.push(t.mode !== 'copy');
    if (k === 0) hasAudio = true;
  }
  const src = sourceInput();
  // What a player shows of the file besides its pictures and sound, as ffmpeg keeps it in a
  // transcode: the source's title, dates and chapters (on the source's timeline, which the output
  // keeps), and each audio track's language and name.
  args.push(...maps, '-map_metadata', String(src), '-map_chapters', String(src));
  // A camera's start timecode (MP4: a tmcd track; Matroska: a TIMECODE tag), editors conform by it.
  if (rec.timecode) args.push('-timecode', rec.timecode);
  mapped.forEach((streamIndex, k) => args.push(`-map_metadata:s:a:${k}`, `${src}:s:${streamIndex}`));
  // Each track's flags as the source had them: an encoded track's file has its own (a commentary
  // came out a second default track), and "0" keeps a muxer from making one up.
  dispositions.forEach((d, k) => d !== undefined && args.push(`-disposition:a:${k}`, d));
  // The picture's own language and title, as `ffmpeg -map 0` keeps them.
  // Not its `rotate` tag: the segments are turned already, and ffmpeg before 5 keeps the turn as
  // that tag, which a player would apply a second time (the npm package's ffmpeg of 2018).
  if (rec.videoStreamIndex !== undefined) args.push('-map_metadata:s:v:0', `${src}:s:${rec.videoStreamIndex}`, '-metadata:s:v:0', 'rotate=');
  // What made each encoded track, not the source's encoder, whose tag came with its other tags (an
  // H.264 clip made H.265 was tagged libx264; review V): the picture's encoder named, an encoded
  // audio track's tag left out. And the picture the default track: the audio's dispositions given
  // keep ffmpeg from marking one itself, and Matroska wrote the only video track as not default.
  args.push('-metadata:s:v:0', `encoder=${(segs[0]!.plan as VideoSegmentPlan).encoder}`, '-disposition:v:0', 'default');
  encodedTracks.forEach((encoded, k) => encoded && args.push(`-metadata:s:a:${k}`, 'encoder='));
  args.push('-c', 'copy');
  // A copied FLAC track: ffmpeg before 6.1 writes FLAC into MP4 (the standard `fLaC` entry) only
  // when told it may ("experimental"); of the codecs MP4 takes by copy it is the only one.
  if (rec.container === 'mp4' && tracks.some((t) => t?.mode === 'copy')) args.push('-strict', 'experimental');
  // The subtitle tracks, from the source (on its timeline, which the output keeps), each in the form
  // the container holds; where it holds none (a picture-based track in MP4 or WebM) the track is left out.
  const carried: Array<{ streamIndex: number; codec: string; to: string }> = [];
  const left: string[] = [];
  let inMatroska = true;
  for (const t of rec.subtitles ?? []) {
    const codec = subtitleCodec(t.codec, rec.container);
    if (!codec) {
      left.push(`${t.codec} (stream ${t.streamIndex})`);
      inMatroska &&= subtitleCodec(t.codec, 'mkv') !== undefined;
      continue;
    }
    carried.push({ streamIndex: t.streamIndex, codec: t.codec, to: codec });
  }
  const subtitleArgs = (tracks: typeof carried): string[] =>
    tracks.flatMap((t, k) => ['-map', `${src}:${t.streamIndex}`, `-c:s:${k}`, t.to, `-map_metadata:s:s:${k}`, `${src}:s:${t.streamIndex}`]);
  const subtitles = subtitleArgs(carried);
  const tail: string[] = [];
  if (rec.container === 'mp4') {
    if (rec.codec === 'h265') tail.push('-tag:v', 'hvc1'); // players (Apple) only take hvc1 in MP4
    tail.push('-movflags', '+faststart');
  }
  tail.push('-f', MUXER[rec.container], out);
  /** Subtitle tracks ffmpeg would not carry over (named where one alone could be told), and what it said. */
  let refused: { tracks: string[]; reason: string } | undefined;
  try {
    await runFfmpeg([...args, ...subtitles, ...tail], { signal, input: rec.input });
  } catch (err) {
    // Subtitles ffmpeg refuses (the input's, not this machine's trouble) are not worth the video:
    // stitched again without them. Should that fail too, the trouble was elsewhere: its error stands.
    const theInput = err instanceof TesseraError && !err.retryable && err.codeName === 'INVALID_ARGUMENT';
    if (subtitles.length === 0 || signal.aborted || !theInput) throw err;
    // Which tracks: each converted alone (text only, quick). Those that go are kept: one track with
    // a cue MP4 cannot hold took every other one with it.
    const fine: typeof carried = [];
    const failed: string[] = [];
    for (const [k, t] of carried.entries()) {
      const probe = path.join(ctx.workDir, `subtitle-check-${inputIdx}-${k}.${rec.container}`);
      const ok = await runFfmpeg(['-y', '-v', 'error', '-i', rec.inputPath, '-map', `0:${t.streamIndex}`, '-c:s', t.to, '-f', MUXER[rec.container], probe], { signal, input: rec.input }).then(
        () => true,
        () => false,
      );
      await rm(probe, { force: true });
      if (ok) fine.push(t);
      else failed.push(`${t.codec} (stream ${t.streamIndex})`);
    }
    await runFfmpeg([...args, ...(failed.length > 0 ? subtitleArgs(fine) : []), ...tail], { signal, input: rec.input });
    refused = { tracks: failed, reason: err.message.replace(/^.*?\bffmpeg failed: /s, 'ffmpeg: ') };
  }
  await verifyOutput(out, rec, hasAudio, mapped.length, signal);
  // Told once the output they are about is made.
  if (left.length > 0) {
    const container = rec.container === 'mkv' ? 'Matroska' : rec.container === 'mp4' ? 'MP4' : 'WebM';
    ctx.warn(rec.input, `subtitle track(s) ${left.join(', ')} left out: ${container} cannot hold them${inMatroska && rec.container !== 'mkv' ? ' (Matroska can: --container mkv)' : ''}`);
  }
  if (refused) ctx.warn(rec.input, `subtitle track(s)${refused.tracks.length > 0 ? ` ${refused.tracks.join(', ')}` : ''} could not be carried over, and the video was stitched without them (${refused.reason})`);
  return { name, path: out, source: rec.input, contentType: CONTENT_TYPE[rec.container] };
}

/** Text subtitle codecs, which every container here takes in its own text form. */
const TEXT_SUBTITLES = new Set(['subrip', 'srt', 'ass', 'ssa', 'mov_text', 'webvtt', 'text']);
/** What Matroska takes as it is. */
const MATROSKA_SUBTITLES = new Set(['subrip', 'srt', 'ass', 'ssa', 'webvtt', 'hdmv_pgs_subtitle', 'dvd_subtitle', 'dvb_subtitle']);

/** The codec a subtitle track gets in the container ('copy' to keep it), or undefined where it cannot go. */
export function subtitleCodec(codec: string, container: VideoJobParams['container']): string | undefined {
  if (container === 'mkv') return MATROSKA_SUBTITLES.has(codec) ? 'copy' : TEXT_SUBTITLES.has(codec) ? 'srt' : undefined;
  if (!TEXT_SUBTITLES.has(codec)) return undefined;
  if (container === 'mp4') return codec === 'mov_text' ? 'copy' : 'mov_text';
  return codec === 'webvtt' ? 'copy' : 'webvtt';
}

/** How far the output's audio may sit from the source's position: rounding, and codec priming and padding. */
const AV_TOLERANCE = 0.05;

/**
 * Samples per frame of the common audio codecs (the largest where it varies). An encoder pads the
 * last frame, so the track ends up to a frame late, and a copied or re-encoded track starts on a
 * frame: at low sample rates one frame is longer than {@link AV_TOLERANCE} (AAC at 8 kHz: 128 ms).
 */
function samplesPerFrame(codec: string, sampleRate: number): number {
  switch (codec) {
    case 'aac':
      return 1024;
    case 'mp3':
      // MPEG-1 layer III (32 kHz and up) has 1152 samples a frame; MPEG-2/2.5 (below) 576.
      return sampleRate >= 32000 ? 1152 : 576;
    case 'mp2':
      return 1152;
    case 'ac3':
    case 'eac3':
      return 1536;
    case 'opus':
      return 2880; // at most 60 ms per packet (libopus sends 20 ms)
    case 'vorbis':
      return 2048;
    default:
      return 0;
  }
}

/** The A/V tolerance for an output audio track: {@link AV_TOLERANCE}, or one codec frame and a little more. */
export function avTolerance(codec: string, sampleRate: number): number {
  const frame = sampleRate > 0 ? samplesPerFrame(codec, sampleRate) / sampleRate : 0;
  return Math.max(AV_TOLERANCE, frame + 0.01);
}

/** Checks the stitched file before it is published: frames, duration, A/V alignment, clean joins. */
async function verifyOutput(file: string, rec: InputPlanRecord, hasAudio: boolean, audioTracks: number, signal: AbortSignal): Promise<void> {
  const fail = (why: string): TesseraError => dataLoss(`${rec.input}: stitched output failed verification: ${why}`);
  const want = hasAudio ? rec.audio?.span : undefined;
  // Matroska and WebM give no stream durations: where the A/V check needs them they are measured from
  // the packets, alongside the other reads of the file.
  const measure = want && rec.container !== 'mp4';
  const [info, errors, measured] = await Promise.all([
    // Streams and the video's packet count in one read (two ffprobes beside the joins' decode made
    // three processes on the critical path).
    probeMedia(file, { signal, input: rec.input, countPackets: true }),
    checkJoins(file, rec, signal),
    // Of the video only its start is compared against (its length is counted above): its first packets.
    measure ? Promise.all([probePacketSpan(file, 'v:0', { signal, input: rec.input, firstPackets: 32 }), probePacketSpan(file, 'a:0', { signal, input: rec.input })]) : undefined,
  ]);
  if (!info.video) throw fail('no video stream');
  if (info.video.width !== rec.width || info.video.height !== rec.height) throw fail(`size ${info.video.width}x${info.video.height}, planned ${rec.width}x${rec.height}`);
  const frames = info.video.packets ?? 0;
  if (frames !== rec.expectedFrames) throw fail(`${frames} frames, expected ${rec.expectedFrames}`);
  if (errors.length > 0) throw fail(`errors at the segment joins: ${errors.slice(0, 3).join('; ')}`);
  if (info.audio.length !== audioTracks) throw fail(`${info.audio.length} audio tracks, expected ${audioTracks}`);
  // MP4's own; Matroska keeps none per stream, and a video of fewer than about ten frames beside
  // longer audio is given the file's length (the frames are counted above in any case).
  const vDur = rec.container === 'mp4' ? info.video.duration : Number.NaN;
  const off = (d: number): boolean => Math.abs(d - rec.expectedDuration) > rec.frameDuration + 0.002;
  if (Number.isFinite(vDur) && off(vDur)) {
    // MP4's muxer states a track's length from its decode times: a variable rate with B-frames whose
    // last frames lie far apart is stated short (19.467 s for frames to 19.867 s, the source's header
    // as short), and the job failed where one ffmpeg run makes the file (review vid). The frames'
    // own times then decide.
    const span = await probePacketSpan(file, 'v:0', { signal, input: rec.input });
    if (!span || off(span.end - span.start)) throw fail(`video lasts ${vDur.toFixed(3)} s, expected ${rec.expectedDuration.toFixed(3)} s`);
  }
  if (hasAudio) {
    const a = info.audio[0];
    if (!a) throw fail('the audio track is missing');
    if (!want) return;
    // The source's own offsets are the reference: a track shorter than the video, or starting after
    // it, must stay so, no more and no less.
    const [v, got] = measured ?? [headerSpan(info.video), headerSpan(a)];
    if (!v || !got) throw fail('the audio or video track has no measurable span');
    const start = got.start - v.start;
    const end = got.end - v.start;
    const tolerance = avTolerance(a.codec, a.sampleRate);
    if (Math.abs(start - want.start) > tolerance || Math.abs(end - want.end) > tolerance) {
      throw fail(`audio runs from ${start.toFixed(3)} s to ${end.toFixed(3)} s of the video, the source's from ${want.start.toFixed(3)} s to ${want.end.toFixed(3)} s`);
    }
  }
}

/**
 * Where an encoded track's first packet lies before its start, for an MP4 output: Opus comes in
 * Matroska, which tells the encoder's pre-skip (6.5 ms) as a negative start. ffmpeg moves an input
 * to start at 0 (the pre-skip then played, the sound late by it); moved by that much less, the
 * output's MP4 hides it behind an edit list, as a single `ffmpeg -c:a libopus out.mp4` does.
 * Matroska and WebM outputs carry the pre-skip as it is; the other intermediates start at 0.
 */
async function encodedLead(file: string, rec: InputPlanRecord, signal: AbortSignal): Promise<number> {
  if (rec.container !== 'mp4' || path.extname(file) !== '.mka') return 0;
  const start = (await probeMedia(file, { signal, input: rec.input })).audio[0]?.startTime ?? 0;
  return start < 0 ? start : 0;
}

/** A stream's span as its header gives it (MP4), undefined without a duration. */
function headerSpan(info: { startTime: number; duration: number }): StreamSpan | undefined {
  return Number.isFinite(info.duration) ? { start: info.startTime, end: info.startTime + info.duration } : undefined;
}

/**
 * Reads every packet (demux errors, non-monotonic timestamps) and decodes the opening frames of each
 * segment, where a stitch can break; returns ffmpeg's error lines. Decoding the whole output again
 * would cost about a tenth of the encode on the critical path: the segment interiors are the encoder's
 * own output, counted on the worker and checksummed on the way here.
 */
export async function checkJoins(file: string, rec: Pick<InputPlanRecord, 'input' | 'videoOffset' | 'segments' | 'container'>, signal: AbortSignal): Promise<string[]> {
  // The picture first: in this output stream 0 is the video, the others its sound and subtitles.
  const args = ['-v', 'error', '-i', file, '-map', '0:v:0', '-map', '0:a?', '-map', '0:s?', '-c', 'copy', '-f', 'null', '-'];
  let at = rec.videoOffset;
  for (const seg of rec.segments.slice(0, 32)) {
    // `-t` bounds what each input reads: without it ffmpeg 5 keeps decoding an input to its end
    // after the output's -frames limit is reached (measured: 12 s instead of 0.3 s for 60 s of 720p).
    args.push('-ss', (at + 0.001).toFixed(6), '-t', '0.5', '-i', file);
    at += seg.duration;
  }
  // Frames at their own times: at a constant rate's ticks (the default), two frames of a variable
  // rate less than a tick apart get one timestamp, and the null muxer's complaint of it was taken
  // for a broken join.
  rec.segments.slice(0, 32).forEach((_, k) => args.push('-map', `${k + 1}:v:0`, '-frames:v', '8', fpsModeFlag(), 'passthrough', '-enc_time_base:v', '-1', '-f', 'null', '-'));
  const { stderr } = await runFfmpeg(args, { signal, input: rec.input });
  return stderr.split('\n').filter((l) => l.trim().length > 0 && !(rec.container !== 'mp4' && sameMillisecondSound(l)));
}

/**
 * The null muxer's complaint of two packets of a sound track at the same time (`... dts to muxer in
 * stream 1: 2206 >= 2206`). Matroska and WebM time packets to the millisecond and allow that (their
 * muxer takes it as it is): where a source's clock restarts (two MPEG-TS recordings joined), the
 * second recording's sound may begin up to a frame before the first's last frame, and a copied
 * track then has two frames on one millisecond, as a single `ffmpeg -c:a copy out.mkv` writes them.
 * The null muxer only logs it and reads on. Two pictures on one millisecond (stream 0 of every
 * output here), or a time going back, is still a broken join.
 */
function sameMillisecondSound(line: string): boolean {
  const m = /non monotonically increasing dts to muxer in stream (\d+): (-?\d+) >= (-?\d+)/.exec(line);
  return m !== null && m[1] !== '0' && m[2] === m[3];
}

function keyOf(p: VideoSubtaskPlan): string {
  return p.type === 'segment' ? `${p.input}/s/${p.segment}` : `${p.input}/a/${p.track ?? 0}`;
}

/**
 * A bad segment planned again: same plan (the audio too, when it was encoded beside it), its files
 * described afresh from the job's scratch folder.
 */
async function resubmit(bad: SubtaskOutcome, workDir: string, lossless: boolean): Promise<SubtaskPlan> {
  const plan = bad.plan as VideoSegmentPlan;
  const names = plan.audio ? [...plan.chunks, plan.audio.file] : plan.chunks;
  const inputs = await Promise.all(names.map((name) => spoolFile(chunkPath(workDir, name), name)));
  const features = [
    ...(chunkFormatOf(plan.chunks[0]!) === 'nut' ? [NUT_CHUNKS_FEATURE] : chunkFormatOf(plan.chunks[0]!) === 'mov' ? [MOV_CHUNKS_FEATURE] : []),
    ...(plan.audio ? [AUDIO_BESIDE_SEGMENT_FEATURE] : []),
    ...(lossless ? [VIDEO_LOSSLESS_FEATURE] : []),
    ...(plan.pixFmt ? [VIDEO_10BIT_FEATURE] : []),
    // Whatever the first plan required: a re-run on a worker without it (an MPEG-2 segment without
    // the inpoint) failed again.
    ...(plan.features ?? []),
  ];
  const encoders = plan.audio ? [plan.encoder, plan.audio.encoder] : [plan.encoder];
  const unique = [...new Set(features)];
  return { label: `${bad.label.replace(/ \(re-run\)$/, '')} (re-run)`, inputs, plan, weight: 1, items: bad.items, requires: { encoders, ...(unique.length > 0 && { features: unique }) } };
}
