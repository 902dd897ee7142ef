/**
 * The JSON a tile subtask carries between the coordinator's planner/merger and the worker.
 */
import type { TileImageParams, TiledOutput } from './tile-pipeline.js';
import type { TiledFormat } from './tile-stitch.js';
import type { Orientation, Rect } from './tiling.js';

/**
 * Feature (`Capabilities.features`) of workers that write 16-bit results (image-pipeline.ts `sixteenBitSpace`)
 * where their subtask's plan allows it (`sixteenBit` of a batch or tile plan). A coordinator allows
 * it only where every image worker has it, and such subtasks require it: an older worker writes
 * 8 bits, and a tiled image's strips of both kinds could not be stitched.
 */
export const IMAGE_16BIT_FEATURE = 'image-16bit';

/**
 * Feature of workers that apply an image job's `background` (image-pipeline.ts `forFormat`): an
 * older worker ignores it, its bars black. A batch with a background requires it; a tiled image's
 * bars and flattening are made by the coordinator's decode, its workers never read it.
 */
export const IMAGE_BACKGROUND_FEATURE = 'image-background';

/** The `plan` of a tile subtask (JSON). The worker recognises it by `type: 'tile'`. */
export interface TilePlan {
  type: 'tile';
  /** Job input (client file name) the tile belongs to. */
  source: string;
  index: number;
  /** Number of tiles of this input. */
  count: number;
  /**
   * What the worker's input is: `intermediate`, a raw cut of the coordinator's decoded
   * intermediate (run `params` on it); or `source`, the job's original input file, read with
   * `params` whose crop already selects this cut (the worker decodes only down to the cut's end).
   */
  read: 'intermediate' | 'source';
  /**
   * What the worker returns: the core as raw `.v` pixels for the stitch, or (horizontal strips of
   * a JPEG output) the core already encoded as the output JPEG's rows, joined without re-encoding.
   */
  deliver: 'raw' | 'jpeg';
  /** Where the cut sits in the intermediate, and the core inside the cut (cut-relative). */
  cut: Rect;
  coreInCut: Rect;
  /** Where the processed core lands in the output. */
  out: Rect;
  /** Output canvas size. */
  outWidth: number;
  outHeight: number;
  orientation: Orientation;
  /** Pipeline params for the tile: prefix ops neutralised (`intermediate`), or the job's own with the crop narrowed to the cut (`source`). */
  params: TileImageParams;
  format: TiledFormat;
  output: TiledOutput;
  quality: number;
  /** Name of the stitched output. */
  outputName: string;
  /** Bands of the processed tiles, or 0 when only the worker learns it (`source`: greyscale, alpha). */
  channels: number;
  /** Band format of the intermediate or source (sharp's `depth`, e.g. "uchar"). */
  depth: string;
  /**
   * A 16-bit intermediate or source is processed into 16-bit tiles for a 16-bit result
   * ({@link IMAGE_16BIT_FEATURE}; absent in older coordinators' plans: 8 bits).
   */
  sixteenBit?: boolean;
  limitInputPixels: number;
}

/** What the worker returns for a tile. */
export interface TileResult {
  index: number;
  width: number;
  height: number;
  channels: number;
}

/** True for a subtask plan made by {@link planTiles}. */
export function isTilePlan(plan: unknown): plan is TilePlan {
  return typeof plan === 'object' && plan !== null && (plan as { type?: unknown }).type === 'tile';
}
