/**
 * What the thumbnails planner sends to workers, and the file names both sides agree on.
 */
import type { ThumbnailJobParams } from '../kinds/thumbnails-params.js';

/** One time range of thumbnails (a subtask's `plan`). */
export interface ThumbnailRangePlan {
  /** Client name of the input. */
  source: string;
  /** Seek positions in seconds from the start of the file, and the 1-based number of each thumbnail. */
  times: number[];
  numbers: number[];
  /** The time range (seconds from the first frame) each thumbnail stands for, for the WebVTT index. */
  cues: Array<[number, number]>;
  /** Thumbnail size (after the source's display rotation). */
  width: number;
  height: number;
}

/** Name of thumbnail `n` (1-based). */
export function thumbnailName(n: number, format: ThumbnailJobParams['format']): string {
  return `thumb-${String(n).padStart(5, '0')}.${format === 'jpeg' ? 'jpg' : 'webp'}`;
}
