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
  /**
   * Largest strip (output pixels) a worker decodes straight from the source: its memory is about
   * one strip's raw pixels. Inputs that would need more than {@link MAX_SOURCE_STRIPS} strips go
   * through the coordinator's decoded intermediate instead.
   */
  maxStripPixels: number;
  /**
   * Where auto-tiled strips come from: `source` (default), each worker decoding the compressed
   * source down to its strip ((n + 1) / 2 decodes for n strips, but no raw pixels on the wire); or
   * `intermediate`, cut from the source decoded once on the coordinator and handed to the workers
   * as each strip is cut (one decode, as issue 4 asks, but about 0.8 GB of raw strips over gRPC
   * for 16,000 x 16,000: 24-30 CPU-s for the cluster against 16-23, bench ratio 1.00-1.15 against
   * 0.63-0.88 on the 2-core machine). Inputs the source read cannot take use the intermediate
   * either way.
   */
  stripRead: 'intermediate' | 'source';
}

/** Default automatic-tiling threshold: 40 Mpx (a 6,300 x 6,300 image). */
export const DEFAULT_TILE_THRESHOLD_PIXELS = 40_000_000;
/** Default pixel limit of the tiled path: 10 Gpx (100,000 x 100,000). */
export const DEFAULT_TILE_LIMIT_INPUT_PIXELS = 10_000_000_000;
/** Default largest strip: 150 Mpx (about 450 MB of 8-bit RGB). */
export const DEFAULT_TILE_MAX_STRIP_PIXELS = 150_000_000;
/**
 * Most strips read straight from the source. Strip k of n decodes the (k + 1) / n of a sequential
 * source (JPEG, PNG) above its end, so all strips together decode it (n + 1) / 2 times: 1.5 times
 * for 2 strips, 4.5 for 8. Beyond that one decode on the coordinator plus raw transfers is cheaper.
 */
export const MAX_SOURCE_STRIPS = 8;

/**
 * Reads TESSERA_TILE_THRESHOLD_PIXELS, TESSERA_TILE_LIMIT_INPUT_PIXELS and
 * TESSERA_TILE_MAX_STRIP_PIXELS (positive whole numbers), else the defaults, and
 * TESSERA_TILE_STRIP_READ (`intermediate` to cut strips from the source decoded once, `source`, the
 * default). A value that is none of those is an error naming the variable, never the default in
 * silence (`50M` gave 150 Mpx strips to workers sized for 50). The coordinator checks them at start.
 */
export function tileConfig(env: NodeJS.ProcessEnv = process.env): TileConfig {
  const read = env['TESSERA_TILE_STRIP_READ']?.trim() || 'source';
  if (read !== 'intermediate' && read !== 'source') throw new Error(`TESSERA_TILE_STRIP_READ=${env['TESSERA_TILE_STRIP_READ']}: expected source or intermediate`);
  return {
    thresholdPixels: positive(env, 'TESSERA_TILE_THRESHOLD_PIXELS', DEFAULT_TILE_THRESHOLD_PIXELS),
    limitInputPixels: positive(env, 'TESSERA_TILE_LIMIT_INPUT_PIXELS', DEFAULT_TILE_LIMIT_INPUT_PIXELS),
    maxStripPixels: positive(env, 'TESSERA_TILE_MAX_STRIP_PIXELS', DEFAULT_TILE_MAX_STRIP_PIXELS),
    stripRead: read,
  };
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}=${raw}: must be a whole number of pixels from 1 to ${Number.MAX_SAFE_INTEGER}`);
  return n;
}
