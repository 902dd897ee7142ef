/**
 * The JSON the video planner attaches to each subtask (`SubtaskPlan.plan`) and the small results
 * workers send back. Shared by coordinator/kinds/video.ts and worker/processors/video.ts.
 */

/**
 * The containers of the stream-copied chunks. NUT holds any codec and keeps the source's time base
 * exactly; Matroska (what workers from before the `video-nut-chunks` feature read) rounds every
 * time to 1 ms. MOV, for a QuickTime source whose decoder reads the sample description (see
 * {@link SAMPLE_DESCRIPTION_CODECS}). Commands that read chunks name the demuxer, so that the format
 * allow-list opens them and nothing else.
 */
export type ChunkFormat = 'nut' | 'matroska' | 'mov';

/**
 * Codecs whose decoder reads what a QuickTime sample description holds beyond the codec (its bit
 * depth, its palette): QuickTime Animation (qtrle, screen recordings and motion-graphics exports),
 * raw video, and the old palette codecs. NUT and Matroska chunks lose it ("[qtrle] Unsupported
 * colorspace: 0 bits/sample?", every segment failed): such a MOV or MP4 source is cut into MOV.
 */
export const SAMPLE_DESCRIPTION_CODECS: ReadonlySet<string> = new Set(['qtrle', 'rawvideo', '8bps', 'msrle', 'qdraw', 'smc', 'rpza', 'cinepak', 'tscc', 'tscc2']);

/**
 * Workers that place each chunk at its planned start (`inpoint`): an older one placed a chunk of
 * MPEG-1/2 video, which reads no start of its own, its whole start too late, and the segment
 * failed (DATA_LOSS, frames lost). Such segments require it.
 */
export const CHUNK_INPOINT_FEATURE = 'video-chunk-inpoint';

/** Codecs whose NUT chunks read no start time (no decode time on their first packet). */
export const UNTIMED_CHUNK_CODECS: ReadonlySet<string> = new Set(['mpeg1video', 'mpeg2video']);

/** The worker feature that reads MOV chunks. */
export const MOV_CHUNKS_FEATURE = 'video-mov-chunks';

/** The worker feature that reads NUT chunks (`Capabilities.features`). */
export const NUT_CHUNKS_FEATURE = 'video-nut-chunks';

/** The worker feature that encodes a segment plan's `audio` beside the segment. */
export const AUDIO_BESIDE_SEGMENT_FEATURE = 'video-audio-beside-segment';
/**
 * Workers that know `VideoParams.lossless`. An older one would read past the field and encode at the
 * codec's default quality: a lossless job's segments go only to workers that have this.
 */
export const VIDEO_LOSSLESS_FEATURE = 'video-lossless';
/**
 * Workers that encode a segment plan's `pixFmt` (10-bit). An older one would encode 8 bits, and a
 * stitch of segments of both would not play: such segments go only to workers that have this.
 */
export const VIDEO_10BIT_FEATURE = 'video-10bit';
/**
 * `video-two-pass`: encodes a segment whose plan says `passes: 2` in two passes. The coordinator
 * decides it (its `--passes`, the encoder) and plans it only where every worker has this: an older
 * worker reads no `passes` and encodes one pass, which in one file would mix segments of two kinds.
 */
export const VIDEO_TWO_PASS_FEATURE = 'video-two-pass';

/**
 * Workers that apply a segment plan's `colour` and `keepFullRange`. An older one encodes as before
 * (untagged), and segments of both in one output would differ: such segments require it.
 */
export const VIDEO_COLOUR_FEATURE = 'video-colour';

/**
 * Workers that apply a segment plan's `orient` (a mirroring display matrix). An older one turns the
 * picture by the bare angle (a front camera's mirror upside down): such segments require it.
 */
export const VIDEO_ORIENT_FEATURE = 'video-orient';

/** A video stream's colour description, as ffmpeg's `setparams` filter takes it. */
export interface VideoColour {
  range?: string;
  primaries?: string;
  transfer?: string;
  space?: string;
}

const COLOUR_NAMES = {
  range: new Set(['tv', 'pc']),
  primaries: new Set(['bt709', 'bt470m', 'bt470bg', 'smpte170m', 'smpte240m', 'film', 'bt2020', 'smpte428', 'smpte431', 'smpte432', 'jedec-p22', 'ebu3213']),
  transfer: new Set(['bt709', 'bt470m', 'bt470bg', 'smpte170m', 'smpte240m', 'linear', 'log100', 'log316', 'iec61966-2-4', 'bt1361e', 'iec61966-2-1', 'bt2020-10', 'bt2020-12', 'smpte2084', 'smpte428', 'arib-std-b67']),
  space: new Set(['gbr', 'bt709', 'fcc', 'bt470bg', 'smpte170m', 'smpte240m', 'ycgco', 'bt2020nc', 'bt2020c', 'smpte2085', 'chroma-derived-nc', 'chroma-derived-c', 'ictcp']),
} as const;

/** A stream's colour description from ffprobe's names, each only where ffmpeg's setparams knows it; undefined when none is known. */
export function videoColour(v: { colorRange: string; colorPrimaries: string; colorTransfer: string; colorSpace: string }): VideoColour | undefined {
  const c: VideoColour = {};
  if (COLOUR_NAMES.range.has(v.colorRange)) c.range = v.colorRange;
  if (COLOUR_NAMES.primaries.has(v.colorPrimaries)) c.primaries = v.colorPrimaries;
  if (COLOUR_NAMES.transfer.has(v.colorTransfer)) c.transfer = v.colorTransfer;
  if (COLOUR_NAMES.space.has(v.colorSpace)) c.space = v.colorSpace;
  return Object.keys(c).length > 0 ? c : undefined;
}

/** What is wrong with a colour description read from a plan (an unknown field or name), or undefined. */
export function colourProblem(c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'colour is not an object';
  const entries = Object.entries(c);
  if (entries.length === 0) return 'colour is empty';
  for (const [k, v] of entries) {
    const names: ReadonlySet<string> | undefined = Object.hasOwn(COLOUR_NAMES, k) ? COLOUR_NAMES[k as keyof typeof COLOUR_NAMES] : undefined;
    if (!names) return `colour has a field ${JSON.stringify(k)} ffmpeg does not know`;
    if (typeof v !== 'string' || !names.has(v)) return `colour.${k} ${JSON.stringify(v)} is not a name ffmpeg knows`;
  }
  return undefined;
}

/** The `setparams` filter that tells frames `c`. */
export function colourFilter(c: VideoColour): string {
  const opts = [c.range && `range=${c.range}`, c.primaries && `color_primaries=${c.primaries}`, c.transfer && `color_trc=${c.transfer}`, c.space && `colorspace=${c.space}`].filter(Boolean);
  return `setparams=${opts.join(':')}`;
}

/**
 * Whether a decoder pixel format holds more than 8 bits a sample (yuv420p10le, p010le, gbrp12le...):
 * ffmpeg names them by their depth, ending in le/be, or as the p0xx/p2xx/p4xx/y2xx packed ones.
 */
export function deepPixels(pixFmt: string): boolean {
  // Packed 16-bit RGB is named by its bits a pixel (rgb48be, bgra64le: 16-bit PNG or TIFF video, MOV's "trillions of colours").
  return /(9|10|12|14|16)(le|be)$/.test(pixFmt) || /^(p01[026]|p21[06]|p41[06]|y21[026]|rgb48|bgr48|rgba64|bgra64)/.test(pixFmt);
}

/** Encoders that write 10-bit 4:2:0 (Main 10, VP9 profile 2, AV1 Main): a deep source keeps 10 bits through them. */
export const TEN_BIT_ENCODERS: ReadonlySet<string> = new Set(['libx265', 'libvpx-vp9', 'libaom-av1', 'libsvtav1']);

const CHUNK_EXTENSION: Readonly<Record<ChunkFormat, string>> = { nut: 'nut', matroska: 'mkv', mov: 'mov' };

/** File extension of a chunk in `format`. */
export function chunkExtension(format: ChunkFormat): string {
  return CHUNK_EXTENSION[format];
}

/** The container of a chunk, from its name (plans from before NUT chunks name `.mkv` files). */
export function chunkFormatOf(name: string): ChunkFormat {
  return name.endsWith('.nut') ? 'nut' : name.endsWith('.mov') ? 'mov' : 'matroska';
}

/** Encodes the frames of one time range of the video stream. */
export interface VideoSegmentPlan {
  type: 'segment';
  /** Index and client name of the job input this segment belongs to. */
  input: number;
  source: string;
  /** Segment number within that input (0-based, in presentation order). */
  segment: number;
  /** Names of the stream-copied chunk files (the subtask's inputs), in decode order. */
  chunks: string[];
  /**
   * Where each of `chunks` starts (its first packet's presentation time, in the chunk files'
   * timestamps), which the concat demuxer takes as the file's start. Absent in plans from before
   * 2026-12-02: the worker probes each chunk.
   */
  chunkStarts?: number[];
  /**
   * Keep frames presenting in [lo, hi) seconds, in the chunk files' timestamps (hi = null: to the end).
   * Bounds sit half-way between frames so millisecond rounding of timestamps cannot move a frame.
   */
  lo: number;
  hi: number | null;
  /** Presentation time of the segment's first source frame (source timestamps). */
  first: number;
  /**
   * Presentation time of the video's first frame (source timestamps, as `first`): where a player's
   * timeline starts, for the times a message gives. Absent from plans made before it.
   */
  videoStart?: number | undefined;
  /** Length of the range in seconds (for progress). */
  duration: number;
  /** Frames the encoded segment must contain. */
  frames: number;
  /** Output frame-rate resampling: first grid time (source timestamps) and rate; null = keep timing. */
  fps: { rate: number; firstSlot: number } | null;
  /** Clockwise rotation to apply (source display matrix), 0/90/180/270. */
  rotation: number;
  /**
   * The filters that show the picture as its display matrix says, where they are not the rotation's
   * own (a mirroring matrix, video-encode.ts orientationFilters); requires VIDEO_ORIENT_FEATURE.
   */
  orient?: string[] | undefined;
  /** Output picture size (after rotation and scaling), even. */
  width: number;
  height: number;
  /** The one encoder every segment uses (e.g. libx264). */
  encoder: string;
  /**
   * The output's frame rate the encoder was chosen for (the asked --fps, else the source's): what
   * another encoder must take too where the segments are moved to one (ENCODER_LIMITS in video-params.ts).
   * Absent from plans made before it.
   */
  outFps?: number | undefined;
  /**
   * 2: the segment is encoded in two passes (a bitrate's, by an encoder in TWO_PASS_ENCODERS),
   * decided by the coordinator; absent: one pass (plans of an earlier release, or one pass asked).
   */
  passes?: 2 | undefined;
  /**
   * The pixel format every segment is encoded in: 'yuv420p10le' for a source of more than 8 bits
   * through an encoder that keeps 10 ({@link TEN_BIT_ENCODERS}); absent: 8-bit yuv420p.
   */
  pixFmt?: 'yuv420p10le' | undefined;
  /**
   * The source's colour description (ffmpeg's names), where it has one: its frames are told it
   * before anything converts them, so that a full range is converted as ffmpeg converts it and the
   * encoder writes the tags. NUT chunks carry none of it (VP9's primaries and transfer, FFV1's and
   * VP8's everything, full range included), and outputs came out untagged (HDR10 as SDR).
   */
  colour?: VideoColour | undefined;
  /**
   * A lossless segment of a full-range source: kept full range (no conversion to limited, which
   * changed every picture), tagged so.
   */
  keepFullRange?: boolean | undefined;
  /** The worker features the segment requires (a re-run requires them again); absent in older plans. */
  features?: string[] | undefined;
  /**
   * The audio track to encode beside this segment, at the same time (the first segment dispatched
   * carries it): it then takes no slot of its own, where as a subtask of its own it put its whole
   * encode time on one worker's share. Its file is among the subtask's inputs; its output follows
   * the segment's.
   */
  audio?: Omit<VideoAudioPlan, 'type'>;
}

/** Encodes the whole (first) audio track once. */
export interface VideoAudioPlan {
  type: 'audio';
  input: number;
  source: string;
  /**
   * Which of the source's audio tracks, from 0 (absent: 0). Only the coordinator reads it: a worker
   * encodes the one track of `file`, whichever it is.
   */
  track?: number;
  /** Name of the stream-copied audio file among the subtask's inputs. */
  file: string;
  encoder: string;
  /** Down-mix to this many channels (0 = keep). */
  channels: number;
  /** Channels of the source track (plans from before 2026-12-02 leave it out: the worker probes). */
  sourceChannels?: number;
  /** The source track's channel layout, ffmpeg's name ("" or absent: not known), for Opus's choice (opusLayoutFor). */
  sourceLayout?: string;
  /** Expected duration in seconds, for progress. */
  duration: number;
}

export type VideoSubtaskPlan = VideoSegmentPlan | VideoAudioPlan;

/** What a worker reports for a segment (checked again at merge). */
export interface VideoSegmentResult {
  frames: number;
  /** Name of the output file. */
  file: string;
  /** The audio encoded beside the segment (`VideoSegmentPlan.audio`), the subtask's second output. */
  audio?: { channels: number };
  /**
   * The decoder's first complaint about the segment's source frames, where every planned frame still
   * came out (concealed, or held by `--fps`'s resampling); absent for a clean read.
   */
  damage?: string;
  /** Where the decoder first complained, seconds from the video's start (about: a frame or two). */
  damageAt?: number;
}

/**
 * A time on a segment plan's clock (source timestamps) as a player shows it, from the video's first
 * frame: an MPEG-TS's clock starts where its capture did (8.9 s for a file that plays from 0).
 */
export function shownTime(plan: Pick<VideoSegmentPlan, 'videoStart'>, t: number): number {
  return Math.max(0, t - (plan.videoStart ?? 0));
}
