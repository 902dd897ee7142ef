/**
 * Configuration of tiled image processing, read from the environment (so that coordinator and
 * workers of one deployment agree without a wire field).
 */

/** Limits and thresholds of the tiled path. */
export interface TileConfig {
  /** Inputs above this many pixels (after crop/resize) are tiled automatically. */
  thresholdPixels: number;
  /** sharp's `limitInputPixels` for the huge-image path (decode, tiles, stitch). Set explicitly, never sharp's default. */
  limitInputPixels: number;
}

/** Default automatic-tiling threshold: 40 Mpx (a 6,300 x 6,300 image). */
export const DEFAULT_TILE_THRESHOLD_PIXELS = 40_000_000;
/** Default pixel limit of the tiled path: 10 Gpx (100,000 x 100,000). */
export const DEFAULT_TILE_LIMIT_INPUT_PIXELS = 10_000_000_000;

/** Reads TESSERA_TILE_THRESHOLD_PIXELS and TESSERA_TILE_LIMIT_INPUT_PIXELS (positive integers), else the defaults. */
export function tileConfig(env: NodeJS.ProcessEnv = process.env): TileConfig {
  return {
    thresholdPixels: positive(env['TESSERA_TILE_THRESHOLD_PIXELS'], DEFAULT_TILE_THRESHOLD_PIXELS),
    limitInputPixels: positive(env['TESSERA_TILE_LIMIT_INPUT_PIXELS'], DEFAULT_TILE_LIMIT_INPUT_PIXELS),
  };
}

function positive(raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}
