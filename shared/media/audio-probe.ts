/**
 * Probing of audio inputs with ffprobe: the first audio stream's rate, channels, layout and duration.
 * Non-media files and files without an audio stream fail with INVALID_ARGUMENT naming the input.
 * Also the truncation check, which needs to know whether that duration was announced or guessed.
 */
import { iso6392 } from 'iso-639-2';
import { invalidArgument, TesseraError } from '../errors.js';
import { runFfmpeg, runFfprobe, runFfprobeLines } from '../ffmpeg.js';
import type { AudioTrackChoice } from '../kinds/audio-params.js';

/** What the audio kind needs to know about an input. */
export interface AudioProbe {
  /** Container format name(s), e.g. "wav" or "mov,mp4,m4a,3gp,3g2,mj2". */
  container: string;
  codec: string;
  sampleRate: number;
  channels: number;
  /** ffmpeg channel layout name ("" when unknown). */
  layout: string;
  /** Decoder sample format, e.g. "s16", "fltp". */
  sampleFormat: string;
  /**
   * Duration in seconds (container or stream), 0 when unknown. An estimate from the bitrate when the
   * file states no length (see {@link durationIsEstimate}).
   */
  duration: number;
  /**
   * Whether `duration` is the audio's own: the stream states it, or the file holds nothing else.
   * Otherwise it is the container's, the longest stream's (Matroska's picture may run past its
   * sound), and says nothing about whether the audio is complete.
   */
  durationIsAudio: boolean;
  /**
   * Whether `duration` is a Matroska track tag's (to the millisecond, gaps in the track counted): a
   * bound to hold the decoded length to loosely, never to the sample as a FLAC's own count is.
   */
  durationFromTag?: boolean;
  /** The tags a listener knows the file by (title, artist, album...), see {@link listenerTags}. */
  tags: Record<string, string>;
  /** Its chapters (an audiobook's, a mix's), in seconds from its start, in order. */
  chapters: Chapter[];
  /**
   * The audio track taken (its stream index in the file), of `audioTracks`: the one ffmpeg takes,
   * the default one, else the one with the most channels, else the first.
   */
  stream: number;
  audioTracks: number;
  /** `stream` as `--track` counts: the file's Nth audio track, from 1; with its language tag ('' untagged). */
  track?: { number: number; language: string };
  /** `stream` is the job's choice (AudioJobParams.track), not ffmpeg's. */
  chosen?: boolean;
  /**
   * Seconds at the start that the stated length counts and the decoder skips: a bare MP3's gapless
   * delay (its stream's start time; more in a stream-copied cut), see CompletenessCheck.skipped.
   */
  statedSkip?: number;
  /** Where the track's sound starts on the file's timeline, in seconds (a video's audio may start after its picture). */
  startOffset: number;
}

/** A chapter mark: from `start` to `end` seconds, and its title ("" for none). */
export interface Chapter {
  start: number;
  end: number;
  title: string;
}

interface FfprobeOutput {
  streams?: Array<{ index?: number; codec_type?: string; codec_name?: string; sample_rate?: string; channels?: number; channel_layout?: string; sample_fmt?: string; duration?: string; start_time?: string; disposition?: Record<string, number>; tags?: Record<string, string> }>;
  format?: { format_name?: string; duration?: string; start_time?: string; tags?: Record<string, string> };
  chapters?: Array<{ start_time?: string; end_time?: string; tags?: Record<string, string> }>;
}

/** Most chapters carried (a cue sheet's tracks, an audiobook's chapters: far fewer). */
const MAX_CHAPTERS = 1000;

type ProbedStream = NonNullable<FfprobeOutput['streams']>[number];

/** Every form of an ISO 639 code (fr, fra, fre) to one key: containers tag French as any of them (mkvmerge `fre`, MP4 `fra`). */
const LANGUAGE_KEYS = new Map<string, string>(iso6392.flatMap((l) => [l.iso6392B, l.iso6392T, l.iso6391].filter((c): c is string => Boolean(c)).map((c) => [c, l.iso6392B] as const)));

/** A language tag's key for matching: its primary code in one form (`pt-BR` -> `por`), unknown codes as they are. */
export function languageKey(tag: string): string {
  const primary = tag.trim().toLowerCase().split('-')[0] ?? '';
  return LANGUAGE_KEYS.get(primary) ?? primary;
}

/**
 * The audio track a job asked for, among a file's `audios` (in file order): its `number`th, or the one
 * tagged `language` (the exact tag first, then any of the language: `fra` finds mkvmerge's `fre`,
 * `pt-BR` a `por`), the default one or the one with the most channels among several.
 */
function chosenTrack(audios: ProbedStream[], choice: AudioTrackChoice, input: string, prefer: (s: ProbedStream) => number): ProbedStream {
  const count = audios.length === 1 ? 'one audio track' : `${audios.length} audio tracks`;
  if ('number' in choice) {
    const a = audios[choice.number - 1];
    if (!a) throw invalidArgument(`${input}: audio track ${choice.number} asked, but it has ${count}`, input);
    return a;
  }
  const lang = (s: ProbedStream): string => s.tags?.['language'] ?? Object.entries(s.tags ?? {}).find(([k]) => /^language$/i.test(k))?.[1] ?? '';
  const exact = audios.filter((s) => lang(s).toLowerCase() === choice.language);
  const same = exact.length > 0 ? exact : audios.filter((s) => lang(s) && languageKey(lang(s)) === languageKey(choice.language));
  const best = same.reduce<ProbedStream | undefined>((b, s) => (!b || prefer(s) > prefer(b) ? s : b), undefined);
  if (!best) {
    const tags = audios.map((s, i) => `${i + 1} ${lang(s) || 'untagged'}`).join(', ');
    throw invalidArgument(`${input}: no audio track in language "${choice.language}" (it has ${count}: ${tags})`, input);
  }
  return best;
}

/**
 * Probes `path` (logical name `input` for messages); `given`: that probe's output already made (the
 * submission check's `-show_format -show_streams`), parsed instead of running ffprobe again.
 * `choice`: the job's audio track (AudioJobParams.track); absent, the one ffmpeg takes.
 */
export async function probeAudio(path: string, input: string, signal?: AbortSignal, given?: unknown, choice?: AudioTrackChoice): Promise<AudioProbe> {
  let out: FfprobeOutput;
  try {
    out = (given as FfprobeOutput | undefined) ?? (await runFfprobe<FfprobeOutput>(['-show_streams', '-show_format', '-show_chapters', '-i', path], { signal, input }));
  } catch (err) {
    if (err instanceof TesseraError && err.retryable) throw err;
    if (signal?.aborted) throw err;
    throw invalidArgument(`${input}: not a readable media file`, input);
  }
  // Of several audio tracks, the one ffmpeg takes (its -vn default): the default one, then the most
  // channels, then the first. The first was taken: a commentary track before the main one was
  // encoded in its place (review AVC).
  const audios = (out.streams ?? []).filter((s) => s.codec_type === 'audio');
  const score = (s: (typeof audios)[number]): number => (s.disposition?.['default'] ? 1e6 : 0) + (s.channels ?? 0);
  if (audios.length === 0) throw invalidArgument(`${input}: no audio stream`, input);
  const a = choice ? chosenTrack(audios, choice, input, score) : audios.reduce((best, s) => (score(s) > score(best) ? s : best));
  const sampleRate = Number(a.sample_rate ?? 0);
  const channels = a.channels ?? 0;
  if (!sampleRate || !channels) throw invalidArgument(`${input}: audio stream has no sample rate or channels`, input);
  // Matroska and WebM give no stream duration: each track's length is its DURATION tag. Without it
  // a file with a video track had no length of its audio's own, and one cut short made half its
  // sound and succeeded (review ERRUX).
  // The tag is where the track ends on the file's timeline (ffmpeg writes last timestamp + duration),
  // mkvmerge's with a language (`DURATION-eng`): a sound that starts after the picture is that much
  // shorter (review K14).
  // The muxer's own (no language) before one with a language: ffmpeg copies mkvmerge's
  // `DURATION-eng` into a file it cuts, stale, beside the one it writes (review K15).
  const tagKeys = Object.keys(a.tags ?? {});
  const tagKey = tagKeys.find((k) => /^duration$/i.test(k)) ?? tagKeys.find((k) => /^duration-[a-z]{2,3}$/i.test(k));
  const tagEnd = matroskaDuration(tagKey ? a.tags![tagKey] : undefined);
  // Matroska keeps no stream start or duration: ffprobe gives those of the packets it reads in its
  // first seconds, and for a track whose first packet comes later the file's (start 0, its whole
  // length): a sound starting at 6 s was refused as truncated and trimmed 6 s late (review K15).
  // Its start is its first packet's, one more read of a track that shares the file.
  const matroska = /matroska|webm/.test(out.format?.format_name ?? '');
  // Only beside another timed stream (not a cover picture or an attachment: an audio file's, which starts with the file).
  const timed = (out.streams ?? []).filter((x) => x.codec_type !== 'attachment' && !x.disposition?.['attached_pic']);
  const trackStart = matroska && timed.length > 1 ? await firstPacketTime(path, a.index ?? 0, input, signal) : undefined;
  const start = trackStart ?? (Number(a.start_time) || 0);
  const tagged = tagEnd > 0 ? Math.max(0, tagEnd - Math.max(0, start)) : 0;
  const streamDuration = matroska ? undefined : a.duration;
  const duration = Number(streamDuration) || tagged || Number(out.format?.duration) || 0;
  return {
    container: out.format?.format_name ?? '',
    codec: a.codec_name ?? '',
    sampleRate,
    channels,
    layout: a.channel_layout ?? '',
    sampleFormat: a.sample_fmt ?? '',
    duration,
    // An MPEG-TS or -PS states no length: its stream duration is the span of its timestamps, a
    // recorder's dropout in it, and a whole capture was refused as truncated (review AVC).
    durationIsAudio: !/^(mpegts|mpeg)$/.test(out.format?.format_name ?? '') && (streamDuration !== undefined || tagged > 0 || (out.streams?.length ?? 0) <= 1),
    ...(streamDuration === undefined && tagged > 0 && { durationFromTag: true }),
    // Ogg keeps its comments on the stream, the other containers on the file.
    tags: listenerTags({ ...a.tags, ...out.format?.tags }),
    chapters: (out.chapters ?? [])
      .map((c) => ({ start: Number(c.start_time), end: Number(c.end_time), title: (c.tags?.['title'] ?? '').slice(0, MAX_TAG_CHARS) }))
      .filter((c) => Number.isFinite(c.start) && Number.isFinite(c.end) && c.end > c.start)
      .slice(0, MAX_CHAPTERS),
    stream: a.index ?? 0,
    audioTracks: audios.length,
    track: { number: audios.indexOf(a) + 1, language: a.tags?.['language'] ?? '' },
    ...(/^mp3$/.test(out.format?.format_name ?? '') && start > 0 && { statedSkip: start }),
    ...(choice && { chosen: true }),
    startOffset: Math.max(0, start - (Number(out.format?.start_time) || 0)) || 0,
  };
}

/** When stream `index` of `path` starts: its first packet's time (demuxed up to it, nothing decoded); undefined when it has none. */
async function firstPacketTime(path: string, index: number, input: string, signal?: AbortSignal): Promise<number | undefined> {
  const r = await runFfprobe<{ packets?: Array<{ pts_time?: string; dts_time?: string }> }>(
    ['-select_streams', String(index), '-read_intervals', '%+#1', '-show_entries', 'packet=pts_time,dts_time', '-i', path],
    { signal, input },
  ).catch(() => undefined);
  const p = r?.packets?.[0];
  const t = Number(p?.pts_time ?? p?.dts_time);
  return Number.isFinite(t) ? t : undefined;
}

/** Seconds of a Matroska DURATION tag (`00:00:04.023000000`); 0 when there is none or it does not read. */
function matroskaDuration(tag: string | undefined): number {
  const m = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(tag?.trim() ?? '');
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : 0;
}

/**
 * A source's chapters on its output's timeline: the audio kept is `start` to `end` seconds of the
 * source (a trim), so a chapter moves back by `start` and is cut to what is kept; one wholly cut
 * away is dropped, as ffmpeg drops it.
 */
export function keptChapters(chapters: readonly Chapter[], start: number, end: number): Chapter[] {
  return chapters
    .filter((c) => c.end > start && c.start < end)
    .map((c) => ({ start: Math.max(0, c.start - start), end: Math.min(end, c.end) - start, title: c.title }));
}

/**
 * Tags that describe the file's own sound, and so do not hold for an output encoded afresh, or
 * describe the container: the encoder, gapless and gain data (iTunSMPB, ReplayGain, R128 gains),
 * Matroska's statistics, MP4's brands and handler, a FLAC cue sheet, embedded pictures.
 */
const NOT_CARRIED = /^(encoder|encoder_options|encoded_with|major_brand|minor_version|compatible_brands|handler_name|vendor_id|language|duration|bps|number_of_frames|number_of_bytes|_statistics_.*|itunsmpb|itunnorm|replaygain_.*|r128_.*|cuesheet|metadata_block_picture|coverart.*|id3v2_priv\..*)$/i;
/** A value past this is not a tag a listener reads (a picture or a cue sheet in a comment). */
const MAX_TAG_CHARS = 4096;
/** All of a file's tags together: the final encode's command line stays short. */
const MAX_TAGS_CHARS = 32 * 1024;

/**
 * The tags of a source to carry into its output, as `ffmpeg` carries a file's tags when it converts
 * it (title, artist, album, date, comment, ...), less those that would be wrong for the new encode
 * ({@link NOT_CARRIED}) and values too long to be anything a listener reads.
 */
export function listenerTags(all: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  let chars = 0;
  for (const [key, value] of Object.entries(all)) {
    // Matroska's statistics tags carry their language (mkvmerge writes `BPS-eng`, `DURATION-eng`).
    if (typeof value !== 'string' || NOT_CARRIED.test(key.replace(/-[a-z]{2,3}(-[A-Za-z]{2})?$/, '')) || value.length > MAX_TAG_CHARS || !/^[\w .:-]{1,64}$/.test(key)) continue;
    // One value per name whatever its case (Vorbis comments are case-blind; a file may hold TITLE and title).
    if (seen.has(key.toLowerCase())) continue;
    if (chars + key.length + value.length > MAX_TAGS_CHARS) break;
    seen.add(key.toLowerCase());
    chars += key.length + value.length;
    out[key] = value;
  }
  return out;
}

/**
 * Whether a source's stated length is exact enough to hold its decoded length to (CompletenessCheck.exact):
 * a FLAC's STREAMINFO count, an MP3's Info or Xing frame count (a length estimated from the bitrate
 * where there is none, which checkNotTruncated then tells apart); not a Matroska tag's.
 */
export function statedExactly(codec: string | undefined, durationFromTag: boolean | undefined): boolean {
  return /^(flac|mp[123])$/.test(codec ?? '') && !durationFromTag;
}

/** True when the input is a PCM WAV whose bytes can be cut directly into sample-exact segments. */
export function isCuttableWav(p: AudioProbe): boolean {
  return p.container === 'wav' && /^pcm_(s16le|s24le|s32le|f32le|u8)$/.test(p.codec);
}

/**
 * True when ffmpeg could not read the file's length from it and estimated it from the bitrate (an MP3
 * without a Xing/VBRI header, raw AAC or AC3, a FLAC without a sample count...): such a file announces
 * no length, so decoding less than the estimate proves nothing. ffmpeg says so only in its log (the
 * same warning since 2011, in every version we support), while opening the file: one packet is
 * demuxed, nothing decoded.
 */
export async function durationIsEstimate(path: string, input: string, signal?: AbortSignal, stream?: number): Promise<boolean> {
  const { stderr } = await runFfmpeg(['-v', 'warning', '-i', path, '-map', audioMap(stream), '-c', 'copy', '-frames:a', '1', '-f', 'null', '-'], { signal, input });
  return /Estimating duration from bitrate/.test(stderr);
}

/**
 * Whether a file of this container (ffprobe's format name) may state a length ffmpeg estimated from
 * its first frames' bitrate: bare streams of frames (ADTS AAC, an MP3 without a Xing or Info
 * header, as any VBR MP3 written to a pipe, AC-3, DTS). One that starts loud and ends quiet states
 * 7 s for its 10 s, one with a quiet intro 302 s (a review's ADTS files).
 */
export function lengthMayBeGuessed(container: string | undefined): boolean {
  return /^(mp3|aac|ac3|eac3|dts|truehd|mp2|loas)$/.test(container ?? '');
}

/** {@link durationIsEstimate} of a file that {@link lengthMayBeGuessed} (false for any other, without a run). */
export async function lengthIsGuessed(container: string | undefined, path: string, input: string, signal?: AbortSignal, stream?: number): Promise<boolean> {
  if (!lengthMayBeGuessed(container)) return false;
  return durationIsEstimate(path, input, signal, stream).catch((err: unknown) => {
    if (signal?.aborted) throw err;
    return false;
  });
}

/**
 * The length of stream `stream` of `path` in seconds, its packets' durations summed (demuxed, nothing
 * decoded: about 0.1 s a minute of Vorbis here); 0 when it has none. For a file whose stated length
 * is none or wrong: a FLAC written to a pipe states no sample count; a chained Ogg (two files
 * joined, a radio rip) states its last link's length (review AWILD).
 */
export async function packetLength(path: string, stream: number, input: string, signal?: AbortSignal): Promise<number> {
  let timeBase = 0;
  let ticks = 0;
  await runFfprobeLines(['-select_streams', String(stream), '-show_entries', 'packet=duration:stream=time_base', '-i', path], (line) => {
    // The field named, then any side data on the same line (`packet,960,side_data,`: a chained Ogg
    // link's skip samples; `stream,1/44100,side_data,`: ReplayGain tags) (review K19).
    const value = line.split(',')[1] ?? '';
    if (line.startsWith('packet,')) ticks += Number(value) || 0;
    else if (line.startsWith('stream,')) {
      const [num, den] = value.split('/').map(Number);
      timeBase = num && den ? num / den : 0;
    }
  }, { signal, input });
  return ticks * timeBase;
}

/**
 * The format of the first frame stream `stream` of `path` decodes to (one frame decoded), which ffmpeg
 * converts the whole stream to; undefined when none decodes. A stream's probed format is the last
 * its parser saw in the seconds ffprobe reads: a capture whose stereo turns 5.1 after a second
 * probes as 5.1 (review K17).
 */
export async function firstFrameFormat(path: string, stream: number | undefined, input: string, signal?: AbortSignal): Promise<{ sampleRate: number; channels: number; layout: string } | undefined> {
  const { stderr } = await runFfmpeg(['-i', path, '-map', audioMap(stream), '-vn', '-sn', '-dn', '-af', 'ashowinfo', '-frames:a', '1', '-f', 'null', '-'], { signal, input });
  const m = / channels:(\d+) chlayout:(.+?) rate:(\d+) /.exec(stderr);
  if (!m) return undefined;
  // An unnamed order ("6 channels", "unknown") is no layout, as ffprobe says "".
  const layout = /^(unknown|\d+ channels)$/.test(m[2]!) ? '' : m[2]!;
  return { sampleRate: Number(m[3]), channels: Number(m[1]), layout };
}

/** The -map of a source's audio track: stream `stream` of the file, else its first audio track. */
export function audioMap(stream: number | undefined): string {
  return stream === undefined ? '0:a:0' : `0:${stream}`;
}

/** A decoded length to check against what the file announces. */
export interface CompletenessCheck {
  /** Local path of the file (to ask ffmpeg whether its length is stated). */
  path: string;
  /** Job input name, for messages. */
  input: string;
  /** Frames decoded. */
  frames: number;
  /** Frames the announced duration gives at `rate`. */
  expected: number;
  /** False when that duration is the container's rather than the audio's: nothing to compare with. */
  durationIsAudio?: boolean | undefined;
  rate: number;
  /**
   * The file states its length to the sample, or to a frame (statedExactly): more than that short
   * is audio lost. A FLAC or MP3 decoder skips a damaged frame without an error (MP3 is decoded
   * without -xerror, see audio-render.ts corruptPacketsFail), so nothing else tells of it.
   */
  exact?: boolean | undefined;
  /** The codec, for how exact: an MP3's count is its frames', padding and all (three frames allowed). */
  codec?: string | undefined;
  /** The source's sample rate (an MP3's frame is 1152 samples from 32 kHz up, 576 under); default `rate`. */
  sourceRate?: number | undefined;
  /** Seconds of `expected` the decoder skips at the start (AudioProbe.statedSkip). */
  skipped?: number | undefined;
  /** The audio track checked (AudioProbe.stream; absent: the first). */
  stream?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * A container can claim more audio than its file holds (e.g. an MP3 whose tail was cut off decodes
 * cleanly to half the length its Xing header states). Less than 90 % of the expected frames (and over a
 * second missing) means a truncated file, provided the length was stated by the file rather than
 * estimated from its bitrate: a complete VBR MP3 without a Xing header decodes to far less than that
 * estimate. The estimate question costs an ffmpeg run, so it is asked only on a shortfall.
 */
export async function checkNotTruncated(c: CompletenessCheck): Promise<void> {
  if (c.durationIsAudio === false || !(c.expected > 0)) return;
  const missing = c.expected - c.frames;
  // An MP3's Info frame counts its frames: the encoder's delay, which the decoder skips (`skipped`),
  // and its last frame's padding, which it trims, are in it; a stream-copied cut holds frames its
  // decoder cannot decode for want of their predecessors' bits (review K19).
  const sourceRate = c.sourceRate ?? c.rate;
  const allowed = /^mp[123]$/.test(c.codec ?? '') ? ((c.skipped ?? 0) + (3 * (sourceRate >= 32000 ? 1152 : 576)) / sourceRate) * c.rate : c.rate / 100;
  const lost = c.exact === true && missing > allowed;
  if (!lost && !(c.frames < c.expected * 0.9 && missing > c.rate)) return;
  if (await durationIsEstimate(c.path, c.input, c.signal, c.stream)) return;
  if (/^mp[123]$/.test(c.codec ?? '') && (await allMpegFramesPresent(c))) return;
  if (lost && c.frames >= c.expected * 0.9) {
    throw invalidArgument(`${c.input}: corrupt file: decoded ${(c.frames / c.rate).toFixed(2)} s of the ${(c.expected / c.rate).toFixed(2)} s it states: ${(missing / c.rate).toFixed(2)} s could not be decoded`, c.input);
  }
  throw invalidArgument(`${c.input}: truncated file: decoded ${(c.frames / c.rate).toFixed(2)} s of the ${(c.expected / c.rate).toFixed(2)} s it announces`, c.input);
}

/**
 * Whether an MPEG audio file holds every frame its Info/Xing frame counts (its stated length is that
 * count at its first frame's duration), and its decoded shortfall is all the later frames' shorter
 * durations: a 44.1 kHz intro joined to a 48 kHz episode with the concat demuxer (`-c copy`: one Xing
 * frame counting both parts' frames) decodes to less than its stated length with no frame lost. One
 * cut short has fewer frames than it counts; one damaged inside its frames (headers intact) has them
 * all, but its decoder drops those it cannot decode: that shortfall no frame length explains (review
 * A, review K). The first packet's duration is the first frame's (ffprobe's stream rate is the last
 * its parser saw: a short intro's is the episode's).
 */
async function allMpegFramesPresent(c: CompletenessCheck): Promise<boolean> {
  let timeBase = 0;
  let packets = 0;
  let ticks = 0;
  let first = 0;
  let stated = 0;
  await runFfprobeLines(['-select_streams', c.stream === undefined ? 'a:0' : String(c.stream), '-show_entries', 'packet=duration:stream=time_base:format=duration', '-i', c.path], (line) => {
    const [kind, value = ''] = line.split(',');
    if (kind === 'packet') {
      const d = Number(value) || 0;
      if (packets === 0) first = d;
      packets++;
      ticks += d;
    } else if (kind === 'stream') {
      const [num, den] = value.split('/').map(Number);
      timeBase = num && den ? num / den : 0;
    } else if (kind === 'format') stated = Number(value);
  }, { signal: c.signal, input: c.input });
  const perFrame = first * timeBase;
  if (!(stated > 0 && perFrame > 0)) return false;
  if (packets < Math.round(stated / perFrame) - 3) return false;
  const missing = (c.expected - c.frames) / c.rate;
  return missing <= stated - ticks * timeBase + 3 * perFrame + (c.skipped ?? 0);
}
