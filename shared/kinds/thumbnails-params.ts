/**
 * Validation and normalisation of `ThumbnailParams` (kind `thumbnails`), shared by the coordinator's
 * `validate` and the worker's `params`. Pure: no I/O.
 */
import { checkFieldTypes } from './param-checks.js';
import { invalidArgument } from '../errors.js';
import type { ThumbnailParams__Output } from '../proto/generated/tessera/v1/ThumbnailParams.js';

export interface ThumbnailJobParams {
  /** Seconds between thumbnails (0 when `count` is used). */
  every: number;
  /** Number of evenly spaced thumbnails (0 when `every` is used). */
  count: number;
  /** Thumbnail width in pixels; the height follows the picture's aspect. */
  width: number;
  format: 'jpeg' | 'webp';
  /** Sprite grid, or null for no sprite sheets. */
  sprite: { cols: number; rows: number } | null;
}

/** Upper bound on thumbnails per job: a sprite index past this is no longer a preview. */
export const MAX_THUMBNAILS = 10_000;

/** Validates raw `ThumbnailParams` and returns normalised params. */
export function parseThumbnailParams(raw: Partial<ThumbnailParams__Output> | null | undefined): ThumbnailJobParams {
  const p = checkFieldTypes('thumbnails', raw, { every: 'number', count: 'number', width: 'number', format: 'string', sprite: 'string' }) as Partial<ThumbnailParams__Output>;
  const every = Number(p.every ?? 0);
  const count = p.count ?? 0;
  if (!Number.isFinite(every) || every < 0) throw invalidArgument(`every: ${p.every} is not a positive number of seconds`);
  if (every > 0 && count > 0) throw invalidArgument('every and count: give one or the other, not both');
  if (every === 0 && count === 0) throw invalidArgument('every or count: one of them is required');
  if (every > 0 && every < 0.04) throw invalidArgument(`every: ${every} is below 0.04 s (one frame at 25 fps)`);
  if (!Number.isInteger(count) || count < 0 || count > MAX_THUMBNAILS) throw invalidArgument(`count: ${count} is outside 1..${MAX_THUMBNAILS}`);
  const width = p.width || 320;
  if (!Number.isInteger(width) || width < 16 || width > 4096) throw invalidArgument(`width: ${width} is outside 16..4096`);
  const format = (p.format || 'jpeg').toLowerCase().replace(/^jpg$/, 'jpeg');
  if (format !== 'jpeg' && format !== 'webp') throw invalidArgument(`format: "${p.format}" is not one of jpeg, webp`);
  let sprite: ThumbnailJobParams['sprite'] = null;
  if (p.sprite) {
    const m = /^\s*(\d+)\s*[xX]\s*(\d+)\s*$/.exec(p.sprite);
    if (!m) throw invalidArgument(`sprite: "${p.sprite}" is not COLSxROWS such as 5x5`);
    const cols = Number(m[1]);
    const rows = Number(m[2]);
    if (cols < 1 || rows < 1 || cols > 100 || rows > 100) throw invalidArgument(`sprite: ${cols}x${rows} is outside 1x1..100x100`);
    // A sheet wider than 16384 px is beyond what JPEG/WebP and browsers accept. Of `count`
    // thumbnails a sheet has as many columns at most (`--count 5 --sprite 60x1` is 5 wide); how many
    // `every` makes is known once the video's length is.
    const widest = count > 0 ? Math.min(cols, count) : cols;
    if (widest * width > 16_383) throw invalidArgument(`sprite: ${widest} columns of ${width} px exceed the 16383-pixel sheet limit`);
    sprite = { cols, rows };
  }
  return { every, count, width, format, sprite };
}
