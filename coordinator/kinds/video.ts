/**
 * Coordinator side of the `video` kind: split-and-stitch transcoding.
 *
 * plan: probe once, choose frame ranges (keyframe-snapped where keyframes are dense enough), cut the
 * video stream into keyframe-aligned chunks by stream copy, and emit one encode subtask per range;
 * each audio track is encoded once (chunked AAC clicks at the joins): the first beside the first
 * segment (or, where an older worker could take it, as a subtask of its own), each further one as a
 * subtask of its own.
 * merge: concat the segments by stream copy, mux the audio tracks, the source's subtitles, chapters
 * and tags, verify (counting each segment only when that fails, to encode a bad one again), publish.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { CoordinatorKind, PlanContext, RetargetableSubtask, SpoolFile, SubtaskPlan } from '../../shared/job-kind.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { invalidArgument } from '../../shared/errors.js';
import { ENCODER_LIMITS, encoderMisfit, MAX_DIMENSION, parseVideoParams, VIDEO_ENCODERS, AUDIO_ENCODERS, copyAudioRefusal, type VideoJobParams } from '../../shared/kinds/video-params.js';
import { AUDIO_CODECS, aacRateWritten, bitrateProblem, mp3RateWritten } from '../../shared/kinds/audio-params.js';
import { alphaInUse, decoderStartsAt, endsEarlyWarning, hiddenLead, probeMedia, probePacketSpan, probeVideoIndex, type AudioStreamInfo, type MediaInfo, type StreamSpan, type VideoIndex } from '../../shared/media/probe.js';
import { orientationFilters, outputSize, rotationFilters, takesTwoPasses, TWO_PASS_AT_FRAME_RATE } from '../../shared/media/video-encode.js';
import { AUDIO_BESIDE_SEGMENT_FEATURE, CHUNK_INPOINT_FEATURE, deepPixels, MOV_CHUNKS_FEATURE, UNTIMED_CHUNK_CODECS, NUT_CHUNKS_FEATURE, SAMPLE_DESCRIPTION_CODECS, TEN_BIT_ENCODERS, VIDEO_10BIT_FEATURE, VIDEO_COLOUR_FEATURE, VIDEO_LOSSLESS_FEATURE, VIDEO_ORIENT_FEATURE, VIDEO_TWO_PASS_FEATURE, videoColour, type VideoAudioPlan, type VideoSegmentPlan, type VideoSubtaskPlan } from '../../shared/media/video-plan.js';
import { cutVideoChunks, extractAudio, spoolFile } from './video-chunks.js';
import { HandOff } from '../hand-off.js';
import { takeHeaderProbe } from '../input-check.js';
import { planDecodableSegments, planSegments, segmentCount } from './video-segments.js';
import { CLOCK_JUMPS_WARNING, linearCopy } from './linear-clock.js';
import { keepVideoPlan, mergeVideo, type InputPlanRecord } from './video-merge.js';
import { planEach, planEachArriving, type PlanOne } from './plan-each.js';
import { countedMediaOverLimit } from '../../shared/limits.js';

/** The `video` kind as the coordinator registry sees it. */
export const videoKind: CoordinatorKind<VideoJobParams> = {
  name: 'video',
  validate: (params) => parseVideoParams(params as Parameters<typeof parseVideoParams>[0]),
  // WebM's own defaults (VP9, Opus) are newer than the workers of an earlier version, which would
  // read an empty codec as h264 and refuse the job: the spec carries them as chosen. Only for WebM,
  // which those versions refused without them, so a stored spec never differs from its repeat's.
  // A new submission's audio bitrate that no track could be written at (MP3 over 320k); the
  // channels of each track are looked at when it is planned. Not of a stored job, nor a retry's.
  refuseNew: (p) => {
    const rateProblem = p.audioBitrateGiven && p.audioCodec === 'mp3' ? bitrateProblem('mp3', p.audioBitrate) : undefined;
    if (rateProblem) throw invalidArgument(`audio_bitrate: ${p.audioBitrate / 1000}k is ${rateProblem}`);
  },
  checkNew: (p, spec) => {
    const v = spec.video;
    if (!v || (v.container ?? '').toLowerCase() !== 'webm') return;
    if (!v.codec) v.codec = p.codec;
    if (!v.audio_codec) v.audio_codec = p.audioCodec;
  },
  retarget(params, subtasks, encoders) {
    // Segments of one input share an encoder (the stitch joins one encoder's streams): switched only
    // while none of them has run or is running, to the codec's next encoder the workers have.
    const byInput = new Map<number, RetargetableSubtask[]>();
    for (const s of subtasks) {
      const plan = s.plan as VideoSubtaskPlan | undefined;
      if (plan?.type !== 'segment') continue;
      let group = byInput.get(plan.input);
      if (!group) byInput.set(plan.input, (group = []));
      group.push(s);
    }
    const changed: RetargetableSubtask[] = [];
    for (const group of byInput.values()) {
      const first = group[0]!.plan as VideoSegmentPlan;
      if (encoders.has(first.encoder) || !group.every((s) => s.state === 'pending')) continue;
      const next = VIDEO_ENCODERS[params.codec].find((e) => encoders.has(e) && (!first.pixFmt || TEN_BIT_ENCODERS.has(e)) && !encoderMisfit(e, first.width, first.height, first.fps?.rate ?? first.outFps ?? 0));
      if (!next) continue;
      for (const s of group) {
        const plan = s.plan as VideoSegmentPlan;
        s.plan = { ...plan, encoder: next };
        s.requires = { ...s.requires, encoders: (s.requires?.encoders ?? []).map((e) => (e === plan.encoder ? next : e)) };
        changed.push(s);
      }
    }
    return changed;
  },
  prefetch(input, signal) {
    prefetched.give(input, { signal, probes: probeInput(input.path, input.name, signal, takeHeaderProbe(input)) });
  },
  plansWhileReceiving: () => true,
  async plan(ctx) {
    const planOne: PlanOne<{ record: InputPlanRecord }> = (input, i) => planInput(ctx, input, i);
    // Merge needs the plan-time facts (offsets, expected counts); keep them beside the job's scratch files.
    const keep = (planned: Array<{ record: InputPlanRecord }>): Promise<void> => keepVideoPlan(ctx.workDir, planned.map((p) => p.record));
    if (ctx.arriving) return { subtasks: [], later: planEachArriving(ctx.arriving, planOne, keep) };
    const { subtasks, errors, planned } = await planEach(ctx.inputs, planOne);
    await keep(planned);
    return { subtasks, errors };
  },
  merge: mergeVideo,
};


/** The audio tracks a source declares that carry no sound, as the job names them. */
function silentTrackNotes(info: MediaInfo): string[] {
  return info.audio.filter((t) => !t.sampleRate || !t.channels).map((t) => `audio track ${info.audio.indexOf(t) + 1} (stream ${t.index}${t.codec ? `, ${t.codec}` : ''}), which carries no sound`);
}

async function planInput(ctx: PlanContext<VideoJobParams>, given: SpoolFile, inputIndex: number): Promise<{ subtasks: SubtaskPlan[]; record: InputPlanRecord }> {
  const { params, signal } = ctx;
  let input = given;
  const name = input.name;
  const early = prefetched.take(input);
  let probes = early ? await early.probes : undefined;
  // Probes stopped with their submission are no probes (a plan never sees such a job, but a test may).
  if (!probes || early?.signal.aborted) probes = await probeInput(input.path, name, signal, takeHeaderProbe(input));
  // An MPEG-TS or -PS whose clock jumps (two recordings joined with `cat`, a DVD's cells, a
  // broadcast's splice) is copied once as ffmpeg reads it, its clock run on across each jump: cut
  // as it is (-copyts), the part after a restart was squeezed into the last millisecond before it,
  // and a jump forward kept as a frozen picture and silence.
  // Tracks declared without sound, as the source has them (the copy below leaves them out).
  let silentNotes = probes.info instanceof Error ? [] : silentTrackNotes(probes.info);
  // The audio tracks that carry sound only: the muxer refuses one declared without (left out below, and said).
  const sounding = probes.info instanceof Error ? [] : probes.info.audio.filter((t) => t.sampleRate && t.channels).flatMap((t) => ['-map', `0:${t.index}`]);
  const linear = probes.info instanceof Error || probes.index instanceof Error ? undefined : await linearCopy(input.path, name, probes.info.formatName, probes.index, ['-map', '0:v', ...sounding, '-map', '0:s?'], ctx.workDir, `linear${inputIndex}`, signal);
  if (linear) {
    input = { ...input, path: linear };
    probes = await probeInput(linear, name, signal, undefined);
    ctx.warn(name, CLOCK_JUMPS_WARNING);
  }
  const { index } = probes;
  if (probes.info instanceof Error) throw probes.info;
  const info = probes.info;
  const video = info.video;
  if (!video) throw invalidArgument(`${name}: has no video stream`, name);
  if (!video.width || !video.height) throw invalidArgument(`${name}: the video stream has no picture size`, name);
  if (index instanceof Error) throw index;
  // A Matroska cut short made the part before the cut, without a word (review ERRUX).
  if (index.endsEarly) ctx.warn(name, endsEarlyWarning(index, info.duration));
  const over = countedMediaOverLimit(name, { seconds: index.end - index.frameTimes[0]!, frames: index.frameTimes.length }, ctx.limits);
  if (over) throw over;
  // A track declared but carrying no sound (a broadcast's audio description or second language
  // PID that sent nothing: no sample rate) cannot be copied out or encoded: left out, and said.
  const silent = info.audio.filter((t) => !t.sampleRate || !t.channels);
  if (input === given) silentNotes = silentTrackNotes(info);
  if (silentNotes.length > 0 && params.audioCodec !== 'none') ctx.warn(name, `left out of the output: ${silentNotes.join(', ')}`);
  const tracks = params.audioCodec === 'none' ? [] : info.audio.filter((t) => !silent.includes(t));
  const audio = tracks[0];
  const copyRefused = params.audioCodec === 'copy' ? copyAudioRefusal(tracks.map((t) => t.codec), params.container) : undefined;
  if (copyRefused) throw invalidArgument(`${name}: ${copyRefused}`, name);
  // More channels than the encoder can take, refused now rather than after the whole video is encoded.
  const rateNotes: string[] = [];
  tracks.forEach((t, k) => {
    const too = tooManyChannels(params.audioCodec, t);
    if (too) throw invalidArgument(`${name}: audio track ${k + 1} has ${t.channels} channels${t.channelLayout && !/channels|unknown/.test(t.channelLayout) ? ` (${t.channelLayout})` : ''}; ${too}: ask for --audio-codec opus (up to 255 channels), copy (into mkv) or none`, name);
    // MP3 of a low rate: its MP4 intermediate refuses it under 16 kHz (the job failed after every
    // segment, "a fault in Tessera"), and its encoder delay under 22.05 kHz is not hidden in Matroska.
    if (params.audioCodec === 'mp3' && t.sampleRate > 0 && (t.sampleRate < 16_000 || (t.sampleRate < 22_050 && params.container !== 'mp4'))) {
      throw invalidArgument(`${name}: audio track ${k + 1} is ${t.sampleRate} Hz, which MP3 audio is not written at here${t.sampleRate >= 16_000 ? ` into ${params.container}` : ''}: ask for --audio-codec aac or opus`, name);
    }
    // A bitrate the encoder cannot take for the track's channels failed after every segment was
    // encoded (Opus); one LAME changes at the rate it encodes at (the MP3 rate nearest the track's) is said.
    const rateProblem = params.audioBitrateGiven && (params.audioCodec === 'opus' || params.audioCodec === 'mp3') ? bitrateProblem(params.audioCodec, params.audioBitrate, t.channels) : undefined;
    if (rateProblem) throw invalidArgument(`${name}: audio_bitrate ${params.audioBitrate / 1000}k is ${rateProblem} (audio track ${k + 1}: ${t.channels} channel${t.channels === 1 ? '' : 's'} at ${t.sampleRate} Hz)`, name);
    const rate = nearestRate(t.sampleRate, AUDIO_CODECS.mp3.sampleRates);
    const written = params.audioBitrateGiven && params.audioCodec === 'mp3' ? mp3RateWritten(params.audioBitrate, rate) : undefined;
    if (written) rateNotes.push(`audio track ${k + 1}: audio_bitrate ${params.audioBitrate / 1000}k is written as ${written / 1000}k, the ${written > params.audioBitrate ? 'least' : 'most'} MP3 has at ${rate} Hz`);
    // AAC's encoder clamps a rate it cannot hold at the track's rate and channels, in its log only.
    const aacMost = params.audioBitrateGiven && params.audioCodec === 'aac' ? aacRateWritten(params.audioBitrate, t.sampleRate, t.channels) : undefined;
    if (aacMost) rateNotes.push(`audio track ${k + 1}: audio_bitrate ${params.audioBitrate / 1000}k is written as at most ${aacMost / 1000}k, the most AAC holds at ${t.sampleRate} Hz for ${t.channels === 1 ? 'mono' : `${t.channels} channels`}`);
  });
  // Only of an input that is planned (not before a later track refuses it).
  for (const note of rateNotes) ctx.warn(name, note);

  const size = outputSize(video.width, video.height, video.rotation, params.width, params.height);
  // The first of the codec's encoders the cluster has that can make this picture at this rate
  // (SVT-AV1 no edge under 64 px, x265 none under 16): one that cannot failed every segment on the
  // workers with ffmpeg's words (review VOPT). None: refused here, naming the size or the rate.
  // The rate the encoder is opened at, as ffmpeg guesses it (av_guess_frame_rate): a phone's
  // variable-rate clip stamped in 1/90000 states r_frame_rate 90000, its average about 30; that
  // clip was refused as "90000 fps" for SVT-AV1 (240 at most), or moved to libaom-av1 (review VWILD2).
  const outFps = params.fps || guessedRate(video);
  // (None connected yet: the first that fits, which the segments then wait for.)
  const present = VIDEO_ENCODERS[params.codec].filter((e) => ctx.cluster.encoders.has(e));
  const candidates = present.length > 0 ? present : VIDEO_ENCODERS[params.codec];
  const encoder = candidates.find((e) => !encoderMisfit(e, size.width, size.height, outFps)) ?? candidates[0]!;
  const misfit = encoderMisfit(encoder, size.width, size.height, outFps);
  if (misfit) {
    const what = misfit.of === 'rate' ? `its ${+outFps.toFixed(3)} fps` : `its ${size.width}x${size.height} output`;
    const ask = misfit.of === 'rate' ? `ask --fps ${ENCODER_LIMITS[encoder]!.maxFps} or less` : 'ask a larger --width or --height';
    const only = candidates.length === 1 ? ` (the only ${params.codec} encoder ${present.length > 0 ? "this cluster's workers have" : 'Tessera uses'})` : '';
    throw invalidArgument(`${name}: ${what} cannot be encoded as ${params.codec}: ${misfit.why}${only}; ${ask}, or another --codec`, name);
  }
  // The edge derived from a box (a tall source's height from --width) may pass what any encoder
  // makes: refused here, not found on a worker as an encode that failed. A source's own size stays.
  const [ownWidth, ownHeight] = video.rotation === 90 || video.rotation === 270 ? [video.height, video.width] : [video.width, video.height];
  if ((size.width > MAX_DIMENSION && size.width > ownWidth) || (size.height > MAX_DIMENSION && size.height > ownHeight)) {
    throw invalidArgument(`${name}: its ${ownWidth}x${ownHeight} picture fitted to ${params.width || 'any'}x${params.height || 'any'} would be ${size.width}x${size.height}, over ${MAX_DIMENSION} px on an edge: ask a box that fits both edges (--width and --height)`, name);
  }
  // 4:2:0 takes even edges only: an odd one asked for is one pixel less, said rather than done silently.
  const odd = [params.width % 2 === 1 ? `width ${params.width} -> ${size.width}` : '', params.height % 2 === 1 ? `height ${params.height} -> ${size.height}` : ''].filter(Boolean);
  if (odd.length > 0) ctx.warn(name, `the video's edges must be even: ${odd.join(', ')}`);
  const first = index.frameTimes[0]!;
  const span = Math.max(index.end - first, 1e-3);
  // A clock that restarts (two recordings joined, a DVD recorder's cells) places no frame by its
  // times: cut into segments, frames were lost (DATA_LOSS); one segment decodes it as ffmpeg does.
  const count = index.discontinuous ? 1 : segmentCount(span, ctx.cluster.slots, params.segmentSeconds);
  // A bitrate's two passes per segment where the encoder takes them (TWO_PASS_ENCODERS) and every
  // worker does (an older one reads no `passes`, and one file would mix segments of both kinds; a
  // cluster of none yet waits for workers of this release). One pass starts the rate control
  // afresh at every segment, which starves the half second after each join: said so.
  const twoPassEncoder = takesTwoPasses(encoder, params.fps > 0);
  const twoPass = params.passes === 2 && twoPassEncoder && (ctx.cluster.workers === 0 || ctx.cluster.features.has(VIDEO_TWO_PASS_FEATURE));
  if (params.passes === 2 && !twoPass) {
    const who = !twoPassEncoder
      ? `${encoder} encodes each segment in one pass${TWO_PASS_AT_FRAME_RATE.has(encoder) ? ' where the video keeps its own timing (--fps gives it two)' : ''}`
      : 'a worker of an earlier release takes one pass only, so each segment is encoded in one pass';
    ctx.warn(name, `${who} at a set bitrate: the file may come out under the rate${count > 1 ? `, and the quality dips for about half a second after ${count === 2 ? 'the segment join' : `each of the ${count - 1} segment joins`}` : ''} (--crf keeps the quality even)`);
  }
  // Snap to a keyframe only when it is close: an uneven split costs encode time on the critical path,
  // while a range that starts between keyframes only decodes (much cheaper) a few frames it drops.
  const segmentOptions = { count, snapTolerance: (0.03 * span) / count };
  // A packet flagged as a keyframe is not always one a decoder can start at: an intra-refresh
  // H.264's recovery points are flagged so (drones, dashcams, IP cameras), and a segment decoded
  // from one lost the frames before the picture was whole: the intact file was refused as damaged
  // (review VID4). Each cut is checked (one ffprobe) and the video cut only where a decode can
  // begin; a file with an IDR here and there (camera clips joined by stream copy) is cut at those
  // (review K11). Only where the container seeks by its index (MP4, MOV, Matroska).
  const checkCuts = RECOVERY_POINT_CODECS.has(video.codec) && (isMovFamily(info.formatName) || /matroska|webm/.test(info.formatName));
  const layout = checkCuts
    ? await planDecodableSegments(index, segmentOptions, (cuts, seekTo) => decoderStartsAt(input.path, cuts, { signal, input: name, genpts: true, seekTo, stream: video.index }))
    : planSegments(index, segmentOptions);
  const chunkDir = path.join(ctx.workDir, `in${inputIndex}`);
  // NUT keeps the source's frame times exactly; Matroska only while a worker too old to read NUT
  // can take video work (its segments then go to any worker).
  const nut = ctx.cluster.features.has(NUT_CHUNKS_FEATURE);
  // A QuickTime source whose decoder needs its sample description is cut into MOV (where every
  // worker that could take it reads MOV; its times move nowhere: no decode time below 0).
  // Required of its segments' workers, not chosen by who is connected now: no other chunk can be decoded.
  // A palette (which MOV chunks after the first do not carry either), or such a codec's packed RGB
  // outside MOV (an AVI's bottom-up BGR24 DIB read back as rgb555le): copied into chunks, their
  // pictures came out black or noise with no error. Their chunks are encoded losslessly instead
  // (FFV1, intra-only, whose stream says everything its decoder needs), as the source's pictures.
  const movSource = isMovFamily(info.formatName);
  const ffv1Chunks = video.pixFmt === 'pal8' || (SAMPLE_DESCRIPTION_CODECS.has(video.codec) && !movSource && !/^(yuv|gray|nv1)/.test(video.pixFmt));
  const mov = !ffv1Chunks && SAMPLE_DESCRIPTION_CODECS.has(video.codec) && movSource && index.nonNegative;
  const format = mov ? 'mov' : nut ? 'nut' : 'matroska';
  // A source of more than 8 bits (HDR10, HLG, a camera's 10-bit log) keeps 10 through an encoder
  // that writes them, as `ffmpeg -c:v libx265` does: 8 bits of PQ band, and are out of spec. Not
  // lossless (8-bit 4:2:0, as documented), nor while a worker that would encode 8 can take it.
  // Required of the segments' workers, as lossless is: a job planned before they are back (after a
  // restart) must not be planned 8-bit for good.
  const tenBit = deepPixels(video.pixFmt) && !params.lossless && TEN_BIT_ENCODERS.has(encoder);
  const hdr = video.colorTransfer === 'smpte2084' ? 'PQ' : video.colorTransfer === 'arib-std-b67' ? 'HLG' : '';
  if (hdr && !tenBit) {
    const why = params.lossless ? 'lossless is 8-bit' : `${encoder} writes 8 here; --codec h265, vp9 or av1 keeps 10`;
    ctx.warn(name, `an HDR (${hdr}) source encoded in 8 bits, still tagged ${hdr}: its picture may band (${why})`);
  }
  // Outputs are 4:2:0 without alpha, as ffmpeg writes h264, h265 and AV1: said, as every other thing left out is.
  // Only where it is used: a capture tool's 32-bit RGB is opaque (or all 0) and loses nothing.
  // VP8/VP9 alpha (WebM's alpha_mode) is read only by libvpx's decoder, not the one ffprobe and the
  // check use: taken as in use, as its encoder wrote it.
  // Looked at in the first picture and at seven more times through the clip: a title may turn transparent later.
  const alphaAt = Array.from({ length: 7 }, (_, k) => ((k + 1) * span) / 8);
  if (video.alphaMode || (hasAlpha(video.pixFmt) && (await alphaInUse(input.path, { signal, input: name, stream: video.index, at: alphaAt }).catch(() => false)))) {
    ctx.warn(name, `its alpha channel (${video.alphaMode ? `${video.codec} alpha` : video.pixFmt}) is left out: the output is opaque`);
  }
  // The source's colour description, told to each segment's frames (NUT chunks lose what the
  // codec's bitstream does not carry); a lossless full-range source stays full range.
  // Required of the workers only where the codec's bitstream does not carry it itself (H.264's,
  // HEVC's, AV1's and MPEG-2's usually does, and any worker's encode of them carries it, as before):
  // an upgraded coordinator must not hold such a job for upgraded workers. Told to them all the same
  // (a container's tags an H.264 stream lacks).
  const colour = videoColour(video);
  const colourNeeded = colour !== undefined && !BITSTREAM_COLOUR_CODECS.has(video.codec);
  const keepFullRange = params.lossless && (colour?.range === 'pc' || /^yuvj/.test(video.pixFmt));
  // What every segment's worker must have: NUT reading, lossless and 10-bit encoding when asked for.
  // A mirroring display matrix (a front camera's): filters of its own, which the angle does not give.
  const shown = orientationFilters(video.rotation, video.displayMatrix, video.tilt);
  const orient = shown.join() !== rotationFilters(video.rotation).join() ? shown : undefined;
  const features = [
    ...(format === 'nut' ? [NUT_CHUNKS_FEATURE] : format === 'mov' ? [MOV_CHUNKS_FEATURE] : []),
    ...(params.lossless ? [VIDEO_LOSSLESS_FEATURE] : []),
    ...(tenBit ? [VIDEO_10BIT_FEATURE] : []),
    ...(format === 'nut' && UNTIMED_CHUNK_CODECS.has(video.codec) ? [CHUNK_INPOINT_FEATURE] : []),
    ...(colourNeeded || keepFullRange ? [VIDEO_COLOUR_FEATURE] : []),
    ...(orient ? [VIDEO_ORIENT_FEATURE] : []),
    ...(twoPass ? [VIDEO_TWO_PASS_FEATURE] : []),
  ];
  const encodeAudio = audio && params.audioCodec !== 'copy';
  // The video split and each audio track's copy and measure only read the source: run them together.
  const [{ chunks, shift }, prepared] = await Promise.all([
    // Workers see chunk timestamps: every time in a segment plan is moved by the muxer's shift,
    // measured on chunk 0 (an ffprobe, 0.25-0.3 s) unless the source has no time it could move.
    cutVideoChunks(input.path, name, video.index, layout.cutTimes, chunkDir, signal, { format, lossless: ffv1Chunks, ...(!index.nonNegative && { sourceFirstPts: index.packets[0]!.pts, expectedShift: Math.max(0, -(index.firstKeyDts ?? 0)) }) }),
    // The first track's files beside the chunks (as plans from before further tracks name them), the others' in folders of their own.
    Promise.all(tracks.map((track, t) => prepareTrack(input.path, name, info.formatName, track, t === 0 ? chunkDir : path.join(chunkDir, `audio${t}`), `in${inputIndex}-audio${t === 0 ? '' : t}`, params, signal))),
  ]);
  const audioFile = prepared[0]?.file;
  const audioSpan = prepared[0]?.span;
  // Each chunk starts with the packet it was cut at (chunk 0 with the file's first), as the
  // segment muxer wrote it: the workers need not probe the chunks for it.
  const chunkStarts = [index.packets[0]!.pts, ...layout.cutTimes].map((t) => t + shift);

  const rate = params.fps;
  const slotOf = (t: number): number => Math.max(0, Math.ceil((t - first) * rate - 1e-6));
  const subtasks: SubtaskPlan[] = [];
  const segments: InputPlanRecord['segments'] = [];
  for (const seg of layout.segments) {
    const fromSlot = rate ? slotOf(seg.start) : 0;
    const frames = rate ? slotOf(seg.end) - fromSlot : seg.to - seg.from;
    // With a lower output rate a short range can own no output frame at all: nothing to encode.
    if (frames <= 0) continue;
    const number = segments.length;
    const plan: VideoSegmentPlan = {
      type: 'segment',
      input: inputIndex,
      source: name,
      segment: number,
      chunks: chunks.slice(seg.firstChunk, seg.lastChunk + 1).map((c) => c.name),
      // Matroska chunks start at those times rounded to 1 ms: workers probe them, as before.
      ...(format !== 'matroska' && { chunkStarts: chunkStarts.slice(seg.firstChunk, seg.lastChunk + 1) }),
      lo: seg.lo + shift,
      hi: rate || seg.hi === null ? null : seg.hi + shift,
      first: seg.start + shift,
      videoStart: first + shift,
      duration: rate ? frames / rate : seg.end - seg.start,
      frames,
      fps: rate ? { rate, firstSlot: first + fromSlot / rate + shift } : null,
      rotation: video.rotation,
      ...(orient && { orient }),
      width: size.width,
      height: size.height,
      encoder,
      ...(outFps > 0 && { outFps }),
      ...(twoPass && { passes: 2 as const }),
      ...(tenBit && { pixFmt: 'yuv420p10le' as const }),
      ...(colour && { colour }),
      ...(keepFullRange && { keepFullRange }),
      ...(features.length > 0 && { features }),
    };
    // In resampling mode a range reads on into the next chunk so the last slots see the frames after it.
    if (rate && seg.lastChunk + 1 < chunks.length) {
      plan.chunks.push(chunks[seg.lastChunk + 1]!.name);
      plan.chunkStarts?.push(chunkStarts[seg.lastChunk + 1]!);
    }
    const inputs = chunks.filter((c) => plan.chunks.includes(c.name));
    segments.push({ frames, duration: rate ? frames / rate : seg.end - seg.start });
    subtasks.push({
      label: `${name} segment ${number + 1} (${(seg.start - first).toFixed(1)}s-${(seg.end - first).toFixed(1)}s)`,
      inputs,
      plan,
      weight: (frames * size.width * size.height) / 1e6,
      items: [name],
      requires: { encoders: [encoder], ...(features.length > 0 && { features }) },
      // Generous: a veryslow 4K encode runs far below real time; the runtime's default may not fit.
      // A two-pass encode (a bitrate's) takes up to twice as long.
      timeoutMs: Math.max(600_000, (seg.end - seg.start) * 60_000 * (twoPass ? 2 : 1)),
    });
  }

  const carrier = subtasks[0];
  /** An audio track encoded as a subtask of its own. */
  const audioSubtask = (label: string, file: SpoolFile, plan: VideoAudioPlan): SubtaskPlan => ({
    label,
    inputs: [file],
    plan,
    // Audio is a small job: schedule it first so it overlaps the video segments instead of trailing them.
    weight: Math.max(...subtasks.map((s) => s.weight), 0) + 1,
    items: [name],
    requires: { encoders: [audioEncoder] },
    timeoutMs: Math.max(600_000, span * 10_000),
  });
  const audioEncoder = AUDIO_ENCODERS[params.audioCodec as keyof typeof AUDIO_ENCODERS];
  const besideSegment = ctx.cluster.features.has(AUDIO_BESIDE_SEGMENT_FEATURE) && ctx.cluster.encoderSets.some((s) => s.has(encoder) && s.has(audioEncoder));
  if (encodeAudio && audioFile && carrier && besideSegment) {
    // The audio is encoded beside the first segment dispatched, at the same time: it takes no slot
    // of its own, and every worker's share of the video stays the same size. (Only where one worker
    // has both encoders; else on whichever has the audio's, as a subtask of its own.)
    const segmentPlan = carrier.plan as VideoSegmentPlan;
    segmentPlan.audio = { input: inputIndex, source: name, file: audioFile.name, encoder: audioEncoder, channels: 0, sourceChannels: audio.channels, sourceLayout: audio.channelLayout, duration: audioSpan ? audioSpan.end - audioSpan.start : span };
    carrier.label += ' and audio';
    carrier.inputs = [...carrier.inputs, audioFile];
    carrier.weight = Math.max(...subtasks.map((s) => s.weight)) + 1;
    carrier.requires = { encoders: [encoder, audioEncoder], features: [...(carrier.requires?.features ?? []), AUDIO_BESIDE_SEGMENT_FEATURE] };
    carrier.timeoutMs = Math.max(carrier.timeoutMs ?? 0, span * 10_000);
  } else if (encodeAudio && audioFile) {
    subtasks.push(audioSubtask(`${name} audio`, audioFile, { type: 'audio', input: inputIndex, source: name, file: audioFile.name, encoder: audioEncoder, channels: 0, sourceChannels: audio.channels, sourceLayout: audio.channelLayout, duration: audioSpan ? audioSpan.end - audioSpan.start : span }));
  }

  // The source's further audio tracks: each encoded as a subtask of its own (every worker version
  // takes those), or copied into the output as the first one is.
  tracks.slice(1).forEach((track, k) => {
    const { file, span: trackSpan } = prepared[k + 1]!;
    if (file) subtasks.push(audioSubtask(`${name} audio track ${k + 2}`, file, { type: 'audio', input: inputIndex, source: name, track: k + 1, file: file.name, encoder: audioEncoder, channels: 0, sourceChannels: track.channels, sourceLayout: track.channelLayout, duration: trackSpan ? trackSpan.end - trackSpan.start : span }));
  });
  const [audioRecord = null, ...moreAudio] = tracks.map((track, t) => trackRecord(prepared[t]!, track, info.startTime, first));

  // Data streams (a timecode, a phone's or camera's metadata tracks) are in most camera files and
  // no transcoder carries them by default: a warning for each would be noise. The rest is told.
  const others = info.others.filter((o) => o.type !== 'data');
  if (others.length > 0) {
    const left = others.map((o) => `${o.type} (stream ${o.index}${o.codec ? `, ${o.codec}` : ''})`).join(', ');
    ctx.warn(name, `left out of the output: ${left}; a video job carries the picture, the audio and subtitle tracks, the chapters and the tags`);
  }
  const expectedFrames = segments.reduce((a, s) => a + s.frames, 0);
  const record: InputPlanRecord = {
    inputIndex,
    input: name,
    inputPath: input.path,
    container: params.container,
    codec: params.codec,
    videoOffset: first - info.startTime,
    audio: audioRecord,
    ...(moreAudio.length > 0 && { moreAudio }),
    subtitles: info.subtitles.map((t) => ({ streamIndex: t.index, codec: t.codec })),
    ...(info.timecode && { timecode: info.timecode }),
    videoStreamIndex: video.index,
    segments,
    expectedFrames,
    expectedDuration: rate ? expectedFrames / rate : index.end - first,
    frameDuration: rate ? 1 / rate : longestInterval(index.frameTimes, span),
    width: size.width,
    height: size.height,
  };
  return { subtasks, record };
}

/**
 * Why `codec` cannot encode `track` for its channels, or undefined: AAC holds at most 8; MP3 is
 * down-mixed to stereo, which ffmpeg does only from a layout it knows (up to 8 channels without one).
 */
function tooManyChannels(codec: string, track: { channels: number; channelLayout: string }): string | undefined {
  if (codec === 'aac' && track.channels > 8) return 'AAC holds at most 8';
  const known = track.channelLayout !== '' && !/channels|unknown/.test(track.channelLayout);
  if (codec === 'mp3' && track.channels > 8 && !known) return 'MP3 holds stereo, and ffmpeg has no down-mix for that many channels without a layout';
  return undefined;
}

/** An input's two probes, each its result or its error (the error thrown by the plan, in turn). */
interface Probes {
  info: MediaInfo | Error;
  index: VideoIndex | Error;
}

/**
 * Probes started when an input passed its submission check ({@link videoKind}'s `prefetch`), until
 * its plan takes them (it starts within a second of the check): a job cancelled before its plan,
 * or whose plan stopped at an earlier input, must not keep a long video's packet index.
 */
const prefetched = new HandOff<SpoolFile, { signal: AbortSignal; probes: Promise<Probes> }>(60_000);

/**
 * Both probes of an input: they read the file independently, so they run together. `header`: the
 * submission check's probe of the streams, which spares the first.
 */
async function probeInput(file: string, name: string, signal: AbortSignal, header: unknown): Promise<Probes> {
  const [info, first] = await Promise.all([
    probeMedia(file, { signal, input: name, given: header }).catch((err: unknown) => asError(err)),
    // The times the cut's chunks will carry (it makes up those a packet does not state).
    probeVideoIndex(file, { signal, input: name, genpts: true }).catch((err: unknown) => asError(err)),
  ]);
  // Read at once from the first video stream, the picture track nearly always; where it is not
  // (a cover or a proxy first), from the picture track itself.
  const index = info instanceof Error || !info.video || info.pictureIsFirst ? first : await probeVideoIndex(file, { signal, input: name, genpts: true, stream: info.video.index }).catch((err: unknown) => asError(err));
  return { info, index };
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** A video stream's rate as ffmpeg's av_guess_frame_rate gives it: the average where the nominal rate is implausibly high and the average plausible. */
function guessedRate(v: { rFps: number; avgFps: number }): number {
  if (v.rFps > 210 && v.avgFps > 0 && v.avgFps < 70) return v.avgFps;
  return v.rFps || v.avgFps;
}

/**
 * Copies the audio track for a worker to encode. An MP4/MOV track stays in its own family: its edit
 * list hides samples (the encoder's priming, the lead that a stream-copy trim keeps) that a Matroska
 * copy would make audible, shifting the sound against the picture.
 */
async function copyAudioTrack(src: string, name: string, formatName: string, audio: AudioStreamInfo, dir: string, base: string, signal: AbortSignal): Promise<SpoolFile> {
  if (isMovFamily(formatName)) {
    // ffmpeg's MOV muxer takes every codec of the family except Opus, which only MP4 holds.
    const muxer = audio.codec === 'opus' ? 'mp4' : 'mov';
    const dest = path.join(dir, `audio.${muxer}`);
    try {
      await mkdir(dir, { recursive: true });
      await runFfmpeg(['-y', '-copyts', '-i', src, '-map', `0:${audio.index}`, '-c', 'copy', '-f', muxer, dest], { signal, input: name });
      return await spoolFile(dest, `${base}.${muxer}`);
    } catch (err) {
      if (signal.aborted) throw err;
      // A codec neither muxer holds (FLAC): Matroska holds any, without the edits.
    }
  }
  return extractAudio(src, name, audio.index, path.join(dir, 'audio.mka'), `${base}.mka`, signal);
}

/** One audio track made ready for the job: its copy for a worker to encode, or its copy to mux without what an edit list hid; and where it starts and ends. */
interface PreparedTrack {
  mode: 'encode' | 'copy';
  file: SpoolFile | undefined;
  span: StreamSpan | undefined;
  copy: SpoolFile | undefined;
  /** Where that copy's first packet is (0 without one). */
  copyStart: number;
}

async function prepareTrack(src: string, name: string, formatName: string, track: AudioStreamInfo, dir: string, base: string, params: VideoJobParams, signal: AbortSignal): Promise<PreparedTrack> {
  const mode = params.audioCodec === 'copy' ? 'copy' : 'encode';
  // An MP4/MOV track copied into Matroska or WebM, which have no edit lists, would bring along the
  // packets its edit list hides, sounding before the picture starts. The encoder's priming (a
  // packet or two) stays within the A/V tolerance and is copied untouched; a longer lead (what a
  // stream-copy trim keeps) is left out: the track is copied once here without the packets
  // presented before 0 (whole packets: at most one packet's worth early).
  const withoutLead = mode === 'copy' && params.container !== 'mp4' && isMovFamily(formatName) && (await hiddenLead(src, String(track.index), { signal, input: name })) > HIDDEN_LEAD_KEPT_S;
  const [file, span, copy] = await Promise.all([
    mode === 'encode' ? copyAudioTrack(src, name, formatName, track, dir, base, signal) : undefined,
    audioSpanOf(src, name, formatName, track, signal),
    withoutLead ? extractAudio(src, name, track.index, path.join(dir, 'audio-copy.mka'), `${base}-copy.mka`, signal, { dropLead: true }) : undefined,
  ]);
  // The copy starts at its first whole packet after 0 (up to a packet late, at 8 kHz 128 ms): the
  // merge, which reads it from 0, puts it back there.
  const copyStart = copy ? ((await probePacketSpan(copy.path, 'a:0', { signal, input: name, firstPackets: 4 }))?.start ?? 0) : 0;
  return { mode, file, span, copy, copyStart };
}

/** What the merge needs of a track; `containerStart` is the source's start, `first` its first video frame's time. */
function trackRecord(p: PreparedTrack, track: AudioStreamInfo, containerStart: number, first: number): NonNullable<InputPlanRecord['audio']> {
  return {
    mode: p.mode,
    streamIndex: track.index,
    offset: track.startTime - containerStart,
    ...(track.disposition !== undefined && { disposition: track.disposition }),
    ...(p.copy && { file: p.copy.path, fileStart: Math.max(0, p.copyStart) }),
    // A copy without the hidden lead starts where its first whole packet does.
    ...(p.span && { span: { start: p.span.start - first + Math.max(0, p.copyStart), end: p.span.end - first } }),
  };
}

/** The most a copied track may carry of what its container hid (the merge's A/V check allows 50 ms). */
const HIDDEN_LEAD_KEPT_S = 0.025;

/** Codecs whose streams may flag recovery points (not random-access points) as keyframes. */
const RECOVERY_POINT_CODECS = new Set(['h264', 'hevc']);

/** An MP4/MOV-family container (ffmpeg's demuxer name lists every member). */
function isMovFamily(formatName: string): boolean {
  return formatName.split(',').some((f) => f === 'mov' || f === 'mp4');
}

/**
 * Where the source audio starts and ends: from the stream's own start and duration, or, where the
 * container gives no per-stream duration (Matroska, WebM), from its packets.
 */
async function audioSpanOf(file: string, name: string, formatName: string, audio: AudioStreamInfo, signal: AbortSignal): Promise<StreamSpan | undefined> {
  // Only MP4/MOV state a track's exact duration; MPEG-TS and the like give ffmpeg's estimate (0.2 s
  // short for 6 s of 44.1 kHz AAC), against which the stitched file, the source's audio to the
  // sample, would fail its own check.
  if (isMovFamily(formatName) && Number.isFinite(audio.duration)) return { start: audio.startTime, end: audio.startTime + audio.duration };
  return probePacketSpan(file, String(audio.index), { signal, input: name });
}

function longestInterval(times: readonly number[], span: number): number {
  let longest = times.length > 1 ? 0 : span;
  for (let k = 1; k < times.length; k++) longest = Math.max(longest, times[k]! - times[k - 1]!);
  return longest;
}

/** Whether a pixel format has an alpha channel (yuva420p, rgba, gbrap, ya8, ...). */
function hasAlpha(pixFmt: string): boolean {
  return /^(yuva|gbrap|ya\d|rgba|bgra|argb|abgr)/.test(pixFmt);
}

/** Codecs whose bitstream carries the colour description (primaries, transfer, matrix, range). */
const BITSTREAM_COLOUR_CODECS: ReadonlySet<string> = new Set(['h264', 'hevc', 'av1', 'mpeg2video']);

/** The rate of `rates` nearest `rate`, which an encoder that takes only those writes (as ffmpeg picks it). */
function nearestRate(rate: number, rates: readonly number[]): number {
  return rates.reduce((best, r) => (Math.abs(r - rate) < Math.abs(best - rate) ? r : best), rates[0]!);
}
