/**
 * ffprobe-based media probing: streams, duration, start time, frame rate, rotation, pixel aspect, the
 * video packet index (keyframes, presentation times, open-GOP leading frames, edit-list discards), a
 * stream's span measured from its packets, and frame counting.
 *
 * Used by the video and thumbnails kinds (and read-only by others). Every function takes the input's
 * client-facing name so a failure reads "clip.mov: ffprobe failed: ..." (INVALID_ARGUMENT).
 */
import { invalidArgument } from '../errors.js';
import { decoderThreads, runFfmpeg, runFfprobe, runFfprobeLogged } from '../ffmpeg.js';

export interface ProbeOptions {
  signal?: AbortSignal | undefined;
  /** Client-facing name of the file, for error messages. */
  input?: string | undefined;
}

export interface VideoStreamInfo {
  /** Absolute stream index in the file. */
  index: number;
  codec: string;
  width: number;
  height: number;
  pixFmt: string;
  /** Transfer characteristic as ffprobe names it (smpte2084 for PQ, arib-std-b67 for HLG), "" when unknown. */
  colorTransfer: string;
  /** Colour primaries, matrix and range as ffprobe names them ('' where unknown). */
  colorPrimaries: string;
  colorSpace: string;
  colorRange: string;
  /** VP8/VP9 in WebM or Matroska with an alpha channel (`alpha_mode` 1): the decoder ffprobe uses shows none in the pixel format. */
  alphaMode?: boolean;
  /** Average frame rate (frames / duration), 0 when unknown. */
  avgFps: number;
  /** Container/codec nominal rate (r_frame_rate), 0 when unknown. */
  rFps: number;
  /** Clockwise degrees (0, 90, 180, 270) a player turns the picture to display it. */
  rotation: number;
  /** A display angle that is no quarter turn, clockwise degrees (then `rotation` is 0): turned within the frame. */
  tilt?: number | undefined;
  /**
   * The display matrix's first two rows (a, b, u / c, d, v) where the file has one: whether it also
   * mirrors the picture (a front camera's), which the angle alone does not say (see orientationFilters).
   */
  displayMatrix?: number[] | undefined;
  /** Sample (pixel) aspect ratio, a stored pixel's width over its height; 1 when the file does not say. */
  sar: number;
  /** Stream start time in seconds (0 when unknown). */
  startTime: number;
  /** Stream duration in seconds (NaN when the container does not say). */
  duration: number;
  /** Stream time base as [num, den]. */
  timeBase: [number, number];
  /** Packets in the stream, when counted ({@link probeMedia}'s `countPackets`; reads the whole file). */
  packets?: number;
}

export interface AudioStreamInfo {
  index: number;
  /** The track's disposition flags as ffmpeg names them, joined ("default", "comment", "default+forced"); "0" for none. */
  disposition?: string;
  codec: string;
  channels: number;
  channelLayout: string;
  sampleRate: number;
  startTime: number;
  duration: number;
}

export interface MediaInfo {
  /** Demuxer names, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "mpegts". */
  formatName: string;
  /**
   * The start timecode a camera or recorder wrote (`01:00:00:00`): the video stream's, a timecode
   * (tmcd) track's or the file's tag, as ffmpeg carries it over in a transcode; absent when none.
   */
  timecode?: string;
  /** Container duration in seconds (NaN when unknown). */
  duration: number;
  /** Container start time in seconds (the smallest stream start). */
  startTime: number;
  /**
   * The picture track: of the video streams that are no attached picture, the one `ffmpeg -i in
   * out` chooses (the largest picture, a default track counted 5 Mpx larger; the first of equals). Not always the first video stream (`v:0`,
   * which the probes that read one stream's packets select): see {@link pictureIsFirst}.
   */
  video: VideoStreamInfo | undefined;
  /** Whether `video` is the stream `v:0` selects (the first video stream, attached pictures included). */
  pictureIsFirst: boolean;
  audio: AudioStreamInfo[];
  /** Subtitle streams: their index in the file and codec name (subrip, mov_text, hdmv_pgs_subtitle...). */
  subtitles: Array<{ index: number; codec: string }>;
  /**
   * The other streams: data (a QuickTime timecode, a camera's telemetry), attachments (Matroska's
   * fonts), cover art and video streams after the first. `type` is ffprobe's codec_type, or
   * "cover art" for an attached picture.
   */
  others: Array<{ index: number; type: string; codec: string }>;
}

interface RawStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  color_transfer?: string;
  color_primaries?: string;
  color_space?: string;
  color_range?: string;
  sample_aspect_ratio?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  time_base?: string;
  start_time?: string;
  duration?: string;
  channels?: number;
  channel_layout?: string;
  sample_rate?: string;
  tags?: Record<string, string>;
  nb_read_packets?: string;
  side_data_list?: Array<{ side_data_type?: string; rotation?: number; displaymatrix?: string }>;
  disposition?: Record<string, number> & { attached_pic?: number };
}

/** What `ffprobe -show_format -show_streams` gives, as far as it is read here. */
interface RawProbe {
  format?: { format_name?: string; duration?: string; start_time?: string; tags?: Record<string, string> };
  streams?: RawStream[];
}

/** Probes container and streams. Throws INVALID_ARGUMENT naming the input when it is not media. */
export async function probeMedia(file: string, opts: ProbeOptions & { countPackets?: boolean; given?: unknown } = {}): Promise<MediaInfo> {
  // `given`: this probe's output already made (the submission check's), parsed instead of running it again.
  const raw = (opts.given as RawProbe | undefined) ?? (await runFfprobe<RawProbe>([...(opts.countPackets ? ['-count_packets'] : []), '-show_format', '-show_streams', '-i', file], { signal: opts.signal, input: opts.input }));
  if (!raw.format) throw invalidArgument(`${opts.input ?? file}: not a media file ffprobe can read`, opts.input);
  const streams = raw.streams ?? [];
  // Cover art is a video stream of one frame: never the picture track we transcode. Of the others,
  // the one ffmpeg takes (ffmpeg_opt.c): the largest picture, a track flagged default counted 5
  // million pixels larger (the first of equals). The first was taken: a Matroska file with its
  // cover (ffmpeg writes it as a one-picture MJPEG track) or a proxy before the clip was transcoded
  // as that picture, one frame long beside the sound (review VWILD2); by area alone, an MP4's
  // default track lost to a larger second one (review K25).
  const score = (s: RawStream): number => (s.width ?? 0) * (s.height ?? 0) + (s.disposition?.['default'] ? 5_000_000 : 0);
  const v = streams.filter((s) => s.codec_type === 'video' && !s.disposition?.attached_pic).reduce<RawStream | undefined>((best, s) => (!best || score(s) > score(best) ? s : best), undefined);
  const tagged = [v, ...streams.filter((s) => s.codec_type === 'data'), raw.format];
  const timecode = tagged.map((t) => t?.tags?.['timecode'] ?? t?.tags?.['TIMECODE']).find((tc) => tc && /^\d{2}:\d{2}:\d{2}[:;.]\d{2,3}$/.test(tc));
  return {
    formatName: raw.format.format_name ?? '',
    ...(timecode && { timecode }),
    duration: num(raw.format.duration),
    startTime: num(raw.format.start_time) || 0,
    video: v ? videoInfo(v) : undefined,
    pictureIsFirst: v !== undefined && v === streams.find((s) => s.codec_type === 'video'),
    audio: streams.filter((s) => s.codec_type === 'audio').map((s) => ({
      index: s.index,
      codec: s.codec_name ?? '',
      channels: s.channels ?? 0,
      channelLayout: s.channel_layout ?? '',
      sampleRate: Number(s.sample_rate ?? 0),
      startTime: num(s.start_time) || 0,
      duration: num(s.duration),
      disposition: dispositionOf(s),
    })),
    subtitles: streams.filter((s) => s.codec_type === 'subtitle').map((s) => ({ index: s.index, codec: s.codec_name ?? '' })),
    others: streams
      .filter((s) => s !== v && s.codec_type !== 'audio' && s.codec_type !== 'subtitle')
      .map((s) => ({ index: s.index, type: s.disposition?.attached_pic ? 'cover art' : (s.codec_type ?? 'unknown'), codec: s.codec_name ?? '' })),
  };
}

/** A stream's disposition flags as `-disposition` takes them ("default+comment"), "0" for none. */
function dispositionOf(s: RawStream): string {
  const flags = Object.entries(s.disposition ?? {}).filter(([, v]) => v === 1).map(([k]) => k);
  return flags.length > 0 ? flags.join('+') : '0';
}

function videoInfo(s: RawStream): VideoStreamInfo {
  const tb = (s.time_base ?? '1/1').split('/').map(Number);
  return {
    index: s.index,
    codec: s.codec_name ?? '',
    width: s.width ?? 0,
    height: s.height ?? 0,
    pixFmt: s.pix_fmt ?? '',
    alphaMode: s.tags?.['alpha_mode'] === '1' || s.tags?.['ALPHA_MODE'] === '1',
    colorTransfer: s.color_transfer ?? '',
    colorPrimaries: s.color_primaries ?? '',
    colorSpace: s.color_space ?? '',
    colorRange: s.color_range ?? '',
    avgFps: rate(s.avg_frame_rate),
    rFps: rate(s.r_frame_rate),
    rotation: rotationOf(s),
    ...(tiltOf(s) !== 0 && { tilt: tiltOf(s) }),
    ...(displayMatrixOf(s) && { displayMatrix: displayMatrixOf(s) }),
    sar: aspect(s.sample_aspect_ratio),
    startTime: num(s.start_time) || 0,
    duration: num(s.duration),
    timeBase: [tb[0] || 1, tb[1] || 1],
    ...(s.nb_read_packets !== undefined && { packets: Number(s.nb_read_packets) }),
  };
}

/**
 * Clockwise display angle, whole degrees in 0..359, as ffmpeg's autorotate takes it: from the display
 * matrix's own values, rounded (ffprobe's `rotation` is cut toward zero: a 30 degree turn read 29,
 * a 90.6 one a quarter turn where ffmpeg tilts it by 91; review K21), else ffprobe's `rotation`, else
 * the legacy `rotate` tag.
 */
function displayAngle(s: RawStream): number {
  const m = displayMatrixOf(s);
  const side = s.side_data_list?.find((d) => d.side_data_type === 'Display Matrix' && typeof d.rotation === 'number');
  // av_display_rotation_get's angle is counter-clockwise; players turn the picture the other way.
  const scale = m ? [Math.hypot(m[0]!, m[3]!), Math.hypot(m[1]!, m[4]!)] : [0, 0];
  // A matrix that maps nothing (all zeros) has no angle: ffmpeg turns nothing, and ffprobe's
  // `rotation` for it is garbage (-9223372036854775808, review K22).
  if (m && !(scale[0]! > 0 && scale[1]! > 0)) return 0;
  const deg = m ? Math.round((Math.atan2(m[1]! / scale[1]!, m[0]! / scale[0]!) * 180) / Math.PI) : side ? -(side.rotation ?? 0) : Number(s.tags?.['rotate'] ?? 0);
  return Number.isFinite(deg) && Math.abs(deg) <= 3600 ? ((Math.round(deg) % 360) + 360) % 360 : 0;
}

/** Clockwise display rotation, 0/90/180/270 (another angle: 0, and VideoStreamInfo.tilt). */
function rotationOf(s: RawStream): number {
  const deg = displayAngle(s);
  return deg % 90 === 0 ? deg : 0;
}

/**
 * A display angle that is no quarter turn (a "straightened" video), which ffmpeg turns by `rotate`
 * within the picture's frame, changing no size; 0 for none (as ffmpeg: a degree off none is none).
 */
function tiltOf(s: RawStream): number {
  const deg = displayAngle(s);
  return deg % 90 === 0 || deg === 1 ? 0 : deg;
}

/** The display matrix's nine values, from ffprobe's dump of it ("00000000: 0 65536 0" a row); undefined without one. */
function displayMatrixOf(s: RawStream): number[] | undefined {
  const dump = s.side_data_list?.find((d) => d.side_data_type === 'Display Matrix')?.displaymatrix;
  const values = (dump ?? '').split('\n').flatMap((row) => row.replace(/^\s*[0-9a-f]+:/i, '').trim().split(/\s+/)).filter(Boolean).map(Number);
  return values.length === 9 && values.every(Number.isFinite) ? values : undefined;
}

/** One video packet = one frame (for the codecs Tessera transcodes). */
export interface VideoPacket {
  /** Presentation time in seconds. */
  pts: number;
  /** Duration in seconds (0 when unknown). */
  duration: number;
  /** Bytes (0 when unknown). */
  size?: number;
  keyframe: boolean;
  /**
   * A keyframe's decode time in seconds, where it is decoded before it is shown (B-frames): a
   * demuxer that seeks by decode time (MPEG-TS) must be sent before it. Absent otherwise.
   */
  dts?: number;
  /**
   * True for a frame an edit list hides (ffprobe's `D` flag: MP4/MOV trimmed by stream copy). It is
   * decoded, as a reference for the frames after it, but never shown.
   */
  discard?: boolean;
}

export interface VideoIndex {
  /** Packets in decode (file) order, discarded ones included (cutting and decoding need them). */
  packets: VideoPacket[];
  /** Presentation times of the frames shown (discarded ones left out), sorted. */
  frameTimes: number[];
  /**
   * Decode-order indexes of keyframes where a stream-copy cut is safe for the frames that follow:
   * every later packet of that GOP presents at or after the keyframe. A keyframe followed by packets
   * that present before it (open-GOP leading B-frames) is listed in `openKeyframes` instead.
   */
  cleanKeyframes: number[];
  openKeyframes: number[];
  /** End of the last frame shown (its pts + its duration) in seconds. */
  end: number;
  /** True when frame intervals vary by more than 1% (variable frame rate). */
  vfr: boolean;
  /**
   * True when every packet (those before the first keyframe too) has a decode time and no time is
   * negative: a stream copy into a muxer that refuses negative decode times (NUT, Matroska) moves
   * nothing. Where decode times are missing (Matroska stores none) ffmpeg derives them, negative
   * before B-frames, and the copy is moved.
   */
  nonNegative: boolean;
  /**
   * True when the decode times step back (by more than a second) somewhere: the stream's clock
   * restarted. Its times then do not place its frames, and it is not cut into segments.
   */
  discontinuous?: boolean;
  /**
   * True when the demuxer met the end of the file inside the data it announced (Matroska's "File
   * ended prematurely", an element running past its parent): a copy or upload cut short, whose
   * packets stop where its bytes do.
   */
  endsEarly?: boolean;
  /**
   * True when the decode times step back by more than 0.1 s or forward by more than 10 s somewhere:
   * where the container's clock may jump (MPEG-TS and -PS), ffmpeg runs its clock on across such a
   * step rather than keep it.
   */
  jumps?: boolean;
  /**
   * Decode time of the first keyframe in decode order (seconds), where the file states one: the
   * first packet a stream copy writes, whose negative time a muxer refusing those shifts away.
   */
  firstKeyDts?: number;
}

/** The stream specifier of the picture track: stream `stream` of the file, else its first video stream. */
function pictureSpecifier(stream: number | undefined): string {
  return stream === undefined ? 'v:0' : String(stream);
}

/**
 * Reads the packet index of the first video stream (or of stream `stream`) (demux only, no decoding: fast). `genpts`: with
 * the presentation times the demuxer makes up for packets that state none (an AVI's, an MPEG-PS's),
 * as a stream copy with `-fflags +genpts` writes them (the video kind's cut).
 */
export async function probeVideoIndex(file: string, opts: ProbeOptions & { genpts?: boolean; stream?: number } = {}): Promise<VideoIndex> {
  const { result: raw, stderr } = await runFfprobeLogged<{ packets?: Array<{ pts_time?: string; dts_time?: string; duration_time?: string; size?: string; flags?: string }> }>(
    [...(opts.genpts ? ['-fflags', '+genpts'] : []), '-select_streams', pictureSpecifier(opts.stream), '-show_entries', 'packet=pts_time,dts_time,duration_time,size,flags', '-i', file],
    { signal: opts.signal, input: opts.input },
  );
  // An MP4/MOV whose index (at the front, "faststart") lists samples past the end of the file: a
  // copy or upload cut short. The packets stop where the bytes do; encoding what is there would
  // come out short of the frames the index promises, and no retry would help.
  if (/partial file/.test(stderr)) {
    const stops = Math.max(0, ...(raw.packets ?? []).map((p) => num(p.pts_time ?? p.dts_time)).filter(Number.isFinite));
    throw invalidArgument(`${opts.input ?? file}: truncated file: its video data stops at ${stops.toFixed(2)} s, inside a frame its index lists (a copy or upload cut short?)`, opts.input);
  }
  const packets: VideoPacket[] = [];
  let nonNegative = true;
  let discontinuous = false;
  let jumps = false;
  let lastDts = -Infinity;
  let firstKeyDts: number | undefined;
  let keySeen = false;
  for (const p of raw.packets ?? []) {
    const dts = num(p.dts_time);
    if (!(dts >= 0) || num(p.pts_time) < 0) nonNegative = false;
    // Decode times run forward; a step back of more than a second is a clock that restarted (two
    // recordings joined end to end, a DVD recorder's new cell).
    if (Number.isFinite(dts)) {
      if (dts < lastDts - 1) discontinuous = true;
      if (lastDts > -Infinity && (dts < lastDts - 0.1 || dts > lastDts + 10)) jumps = true;
      lastDts = dts;
    }
    if (!keySeen && (p.flags ?? '').includes('K')) {
      keySeen = true;
      if (Number.isFinite(dts)) firstKeyDts = dts;
    }
    const pts = num(p.pts_time ?? p.dts_time);
    if (!Number.isFinite(pts)) continue; // packets without timestamps cannot be placed; the decoder drops them too
    const flags = p.flags ?? '';
    const packet: VideoPacket = { pts, duration: num(p.duration_time) || 0, size: num(p.size) || 0, keyframe: flags.includes('K') };
    if (flags.includes('D')) packet.discard = true;
    if (packet.keyframe && dts < pts) packet.dts = dts;
    packets.push(packet);
  }
  // Frames before the first keyframe (a stream cut mid-GOP), and leading frames that reference
  // pictures before it, cannot be decoded: ffmpeg drops them, so they are not part of the video.
  const firstKey = packets.findIndex((p) => p.keyframe);
  if (firstKey > 0 || (firstKey === 0 && packets.some((p) => p.pts < packets[0]!.pts))) {
    const keyPts = packets[firstKey]!.pts;
    packets.splice(0, packets.length, ...packets.slice(firstKey).filter((p) => p.pts >= keyPts));
  }
  // Frames an edit list discards are decoded but never shown: the first frame shown is the first
  // one kept, and counts (which the output is checked against) leave them out.
  const frameTimes = packets.filter((p) => !p.discard).map((p) => p.pts).sort((a, b) => a - b);
  if (frameTimes.length === 0 || firstKey < 0) throw invalidArgument(`${opts.input ?? file}: the video stream has no decodable frames`, opts.input);
  const cleanKeyframes: number[] = [];
  const openKeyframes: number[] = [];
  for (let i = 0; i < packets.length; i++) {
    if (!packets[i]!.keyframe) continue;
    let leading = false;
    for (let j = i + 1; j < packets.length && !packets[j]!.keyframe; j++) {
      if (packets[j]!.pts < packets[i]!.pts) {
        leading = true;
        break;
      }
      // Leading frames come right after their keyframe in decode order; once past a few, stop looking.
      if (j - i > 16) break;
    }
    (leading ? openKeyframes : cleanKeyframes).push(i);
  }
  const last = frameTimes[frameTimes.length - 1]!;
  const intervals = frameTimes.slice(1).map((t, i) => t - frameTimes[i]!);
  const lastDuration = packets.reduce((d, p) => (p.pts === last && !p.discard ? p.duration : d), 0) || median(intervals) || 0;
  const lo = intervals.reduce((a, b) => Math.min(a, b), Infinity);
  const hi = intervals.reduce((a, b) => Math.max(a, b), 0);
  // Millisecond containers (mkv, webm) jitter by 1 ms: that is rounding, not a variable rate.
  const vfr = intervals.length > 1 && hi - lo > 0.0015 + 0.01 * hi;
  const endsEarly = /File ended prematurely|exceeds containing master element/.test(stderr);
  return { packets, frameTimes, cleanKeyframes, openKeyframes, end: last + lastDuration, vfr, nonNegative, discontinuous, jumps, ...(firstKeyDts !== undefined && { firstKeyDts }), ...(endsEarly && { endsEarly }) };
}

/**
 * What a kind tells the job of a video whose file ends inside its data ({@link VideoIndex.endsEarly}),
 * where what is there is made: how much of what the container states its picture has.
 */
export function endsEarlyWarning(index: VideoIndex, stated: number): string {
  const of = Number.isFinite(stated) && stated > index.end ? ` of the ${stated.toFixed(2)} s it states` : '';
  return `the file ends early (cut short?): its picture stops at ${index.end.toFixed(2)} s${of}; what is there is made`;
}

/** Presentation span of a stream in seconds: its first timestamp and its end (last pts + duration). */
export interface StreamSpan {
  start: number;
  end: number;
}

/**
 * Whether a decoder can start at each of `cuts` (times of packets flagged as keyframes): a packet
 * read at each, one ffprobe for them all. True where that packet gave a frame of its own time,
 * false where it gave none, undefined where the seek landed on another packet and nothing can be
 * said (ffprobe's seek may land a keyframe early: in an MP4 trimmed by stream copy, on the first
 * packet, which the edit list discards). An intra-refresh H.264's recovery points (x264
 * --intra-refresh, as drones, dashcams and IP cameras write) are flagged as keyframes, yet a decode
 * begun there gives nothing until the refresh has passed. `seekTo`: where to seek for each cut
 * (the cut itself by default; later, towards the next keyframe, to land on it after all).
 */
export async function decoderStartsAt(file: string, cuts: readonly number[], opts: ProbeOptions & { genpts?: boolean; seekTo?: readonly number[]; stream?: number } = {}): Promise<Array<boolean | undefined>> {
  if (cuts.length === 0) return [];
  const intervals = (opts.seekTo ?? cuts).map((t) => `${t.toFixed(6)}%+#1`).join(',');
  const r = await runFfprobe<{ packets_and_frames?: Array<{ type?: string; pts_time?: string; flags?: string }> }>(
    [...(opts.genpts ? ['-fflags', '+genpts'] : []), '-read_intervals', intervals, '-select_streams', pictureSpecifier(opts.stream), '-show_entries', 'packet=pts_time,flags:frame=pts_time', '-i', file],
    { signal: opts.signal, input: opts.input },
  );
  const entries = r.packets_and_frames ?? [];
  // One packet per interval, in their order (frames come as the decoder gives them, by their times).
  const packets = entries.filter((e) => e.type === 'packet');
  const frames = entries.filter((e) => e.type === 'frame').map((e) => num(e.pts_time));
  if (packets.length !== cuts.length) return cuts.map(() => undefined);
  const same = (a: number, b: number): boolean => Math.abs(a - b) <= 0.0005;
  return cuts.map((t, i) => {
    const pts = num(packets[i]!.pts_time);
    if (!Number.isFinite(pts) || !same(pts, t) || (packets[i]!.flags ?? '').includes('D')) return undefined;
    return frames.some((f) => same(f, pts));
  });
}

/**
 * Measures the span of stream `stream` (an ffprobe specifier: "a:0", or an absolute index such as
 * "1") from its packets, demux only. For containers that give no per-stream duration (Matroska,
 * WebM), where a track shorter or later than the video is otherwise invisible. Packets an edit list
 * discards are left out. Undefined when the stream has no timed packet.
 */
export async function probePacketSpan(file: string, stream: string, opts: ProbeOptions & { firstPackets?: number } = {}): Promise<StreamSpan | undefined> {
  // Only the first packets when only the start matters (a full dump of a 2 h file is ~0.5M packets).
  const head = opts.firstPackets ? ['-read_intervals', `%+#${opts.firstPackets}`] : [];
  const raw = await runFfprobe<{ packets?: Array<{ pts_time?: string; dts_time?: string; duration_time?: string; flags?: string }> }>(
    ['-select_streams', stream, ...head, '-show_entries', 'packet=pts_time,dts_time,duration_time,flags', '-i', file],
    { signal: opts.signal, input: opts.input },
  );
  let start = Infinity;
  let end = -Infinity;
  // A packet without a duration (Matroska's first AAC packet) lasts as long as the one before it.
  let lastDuration = 0;
  for (const p of raw.packets ?? []) {
    if ((p.flags ?? '').includes('D')) continue;
    const pts = Number.isFinite(num(p.pts_time)) ? num(p.pts_time) : num(p.dts_time);
    if (!Number.isFinite(pts)) continue;
    const d = num(p.duration_time);
    if (d > 0) lastDuration = d;
    start = Math.min(start, pts);
    end = Math.max(end, pts + (d > 0 ? d : lastDuration));
  }
  return Number.isFinite(start) ? { start, end } : undefined;
}

/**
 * Seconds of stream `stream` (an index or specifier) that the container hides at its start: the
 * packets an MP4 edit list marks to discard (the encoder's priming, the lead a stream-copy trim
 * keeps). 0 when none are. Reads the first packets only.
 */
export async function hiddenLead(file: string, stream: string, opts: ProbeOptions = {}): Promise<number> {
  const raw = await runFfprobe<{ packets?: Array<{ pts_time?: string; flags?: string }> }>(
    ['-select_streams', stream, '-read_intervals', '%+#256', '-show_entries', 'packet=pts_time,flags', '-i', file],
    { signal: opts.signal, input: opts.input },
  );
  const packets = (raw.packets ?? []).map((p) => ({ pts: num(p.pts_time), hidden: (p.flags ?? '').includes('D') })).filter((p) => Number.isFinite(p.pts));
  const shown = packets.find((p) => !p.hidden);
  const first = packets[0];
  return shown && first ? Math.max(0, shown.pts - first.pts) : 0;
}

/**
 * Whether the video stream uses its alpha channel: anything but all opaque (a capture tool's 32-bit
 * RGB, which loses nothing) in its first picture or in one at any of `at` (seconds from the file's
 * start: a title that turns transparent later, a fade-out). Decodes those pictures only, in one run.
 */
export async function alphaInUse(file: string, opts: ProbeOptions & { stream?: number; at?: readonly number[] } = {}): Promise<boolean> {
  const at = (opts.at ?? []).filter((t) => Number.isFinite(t) && t > 0);
  // The first picture read from the start, as it is; the others each from a seek of their own.
  const inputs = [['-i', file], ...at.map((t) => ['-ss', t.toFixed(3), '-i', file])];
  // Through 8-bit RGBA first: alphaextract of a deeper alpha gives a plane signalstats reads scaled
  // (an opaque 10-bit alpha measured 60314), and every opaque ProRes 4444 was said to lose it.
  const graph = inputs.map((_, k) => `[${k}:${pictureSpecifier(opts.stream)}]format=rgba,alphaextract,signalstats,metadata=mode=print[a${k}]`).join(';');
  const outputs = inputs.flatMap((_, k) => ['-map', `[a${k}]`, '-frames:v', '1', '-f', 'null', '-']);
  const { stderr } = await runFfmpeg(['-v', 'info', ...inputs.flat(), '-filter_complex', graph, ...outputs], { signal: opts.signal, input: opts.input });
  const mins = [...stderr.matchAll(/lavfi\.signalstats\.YMIN=(\d+)/g)].map((m) => Number(m[1]));
  const maxes = [...stderr.matchAll(/lavfi\.signalstats\.YMAX=(\d+)/g)].map((m) => Number(m[1]));
  if (mins.length === 0 || maxes.length === 0) return false;
  // Fully transparent is in use too (an overlay that fades in): only all opaque means nothing.
  return !mins.concat(maxes).every((v) => v === 255);
}

/** Number of video packets in the first video stream (demux only). */
export async function countVideoPackets(file: string, opts: ProbeOptions = {}): Promise<number> {
  const raw = await runFfprobe<{ streams?: Array<{ nb_read_packets?: string }> }>(
    ['-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-i', file],
    { signal: opts.signal, input: opts.input },
  );
  return Number(raw.streams?.[0]?.nb_read_packets ?? 0);
}

export interface DecodeCheck {
  /** Decoded video frames. */
  frames: number;
  /** Error lines ffmpeg printed while decoding (empty = clean). */
  errors: string[];
}

/** Decodes every stream of a file, counting video frames and collecting decoder errors. */
export async function decodeCheck(file: string, opts: ProbeOptions & { threads?: number } = {}): Promise<DecodeCheck> {
  const threads = decoderThreads(opts.threads ?? 0);
  // A null output plus the progress report's frame counter: hashing every frame (framemd5) would
  // cost more than the decoding itself.
  const { stderr, stdout } = await runFfmpeg(
    ['-v', 'error', '-threads', threads, '-i', file, '-map', '0:v:0?', '-map', '0:a?', '-f', 'null', '-', '-progress', 'pipe:1', '-nostats'],
    { signal: opts.signal, input: opts.input, captureStdout: true },
  );
  const counts = [...stdout.matchAll(/^frame=(\d+)/gm)];
  const frames = Number(counts[counts.length - 1]?.[1] ?? 0);
  return { frames, errors: stderr.split('\n').filter((l) => l.trim().length > 0) };
}

function num(v: string | number | undefined): number {
  if (v === undefined || v === 'N/A') return Number.NaN;
  return Number(v);
}

function rate(r: string | undefined): number {
  if (!r) return 0;
  const [n, d] = r.split('/').map(Number);
  return n && d ? n / d : 0;
}

/** A ratio such as "64:45" as a number; 1 for "0:1", "N/A" or nothing (ffprobe's "unknown"). */
function aspect(r: string | undefined): number {
  const [n, d] = (r ?? '').split(':').map(Number);
  return n && d && n > 0 && d > 0 ? n / d : 1;
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
