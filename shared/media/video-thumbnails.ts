/**
 * What the thumbnails planner sends to workers, and the file names both sides agree on.
 */
import type { ThumbnailJobParams } from '../kinds/thumbnails-params.js';

/** One time range of thumbnails (a subtask's `plan`). */
/** What a thumbnails subtask reports (ProcessResult.result). */
export interface ThumbnailsResult {
  count: number;
  /** The numbers of the thumbnails whose decode the decoder complained of, and its first complaint. */
  damaged?: number[];
  damage?: string;
}

export interface ThumbnailRangePlan {
  /** Client name of the input. */
  source: string;
  /** Seek positions in seconds from the start of the file, and the 1-based number of each thumbnail. */
  times: number[];
  numbers: number[];
  /** The time range (seconds from the start of the file) each thumbnail stands for, for the WebVTT index. */
  cues: Array<[number, number]>;
  /** Thumbnail size (after the source's display rotation). */
  width: number;
  height: number;
  /**
   * Where to start decoding for each time (seconds from the start of the file): the keyframe at or
   * before it, a little earlier. Only for sources whose demuxer seeks to any packet, not to a
   * keyframe (MPEG-TS, MPEG-PS, raw streams): a seek there to the time itself decoded from the next
   * keyframe on (the wrong frame), or, after the last one, nothing. Absent: seek to the time.
   */
  seekFrom?: number[] | undefined;
  /**
   * The frame of each time, by its number in display order from the first (0), for sources whose
   * demuxer neither seeks nor stamps frames reliably (FLV with B-frames, AVI): decoded from the
   * start and picked by number. Absent: by time.
   */
  frames?: number[] | undefined;
  /**
   * The picture track's stream index in the file, where it is not the first video stream (a cover
   * or a proxy before the clip; see MediaInfo.pictureIsFirst). Absent: the first video stream.
   */
  stream?: number | undefined;
}

/**
 * Workers that pick `ThumbnailRangePlan.frames` by number: an older one would seek to each time and
 * make the wrong frame, or none. Plans that set it require it.
 */
export const THUMBNAILS_FRAME_NUMBERS_FEATURE = 'thumbnails-frame-numbers';

/**
 * Workers that decode from `ThumbnailRangePlan.seekFrom`: an older one would seek to each time and
 * make the wrong frame (the next keyframe) with no error. Plans that set it require it.
 */
export const THUMBNAILS_SEEK_FROM_FEATURE = 'thumbnails-seek-from';

/**
 * Workers that take the picture from `ThumbnailRangePlan.stream`: an older one would take the first
 * video stream's (the cover). Plans that set it require it.
 */
export const THUMBNAILS_STREAM_FEATURE = 'thumbnails-stream';

/** Name of thumbnail `n` (1-based). */
export function thumbnailName(n: number, format: ThumbnailJobParams['format']): string {
  return `thumb-${String(n).padStart(5, '0')}.${format === 'jpeg' ? 'jpg' : 'webp'}`;
}
