/**
 * Geometry of tiled image processing: the tile grid, halos, and where a processed tile lands in the
 * output after flips and right-angle rotations. Pure functions, no I/O.
 *
 * Coordinates are integer pixels; a {@link Rect} is half-open ([x, x + w) x [y, y + h)).
 */

/** An axis-aligned pixel rectangle. */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** One tile of the grid: its core (the pixels it owns in the output) and the halo-extended cut. */
export interface TileGeometry {
  index: number;
  col: number;
  row: number;
  /** Pixels this tile owns, in intermediate-image coordinates. */
  core: Rect;
  /** `core` grown by the halo and clipped to the image: what the worker receives. */
  cut: Rect;
}

/**
 * The right-angle transforms the tile path applies per tile, in the order sharp applies them when no
 * resize or extract is chained in the same pipeline: flip (vertical mirror), then flop (horizontal
 * mirror), then the clockwise rotation.
 */
export interface Orientation {
  flip: boolean;
  flop: boolean;
  /** Clockwise degrees: 0, 90, 180 or 270. */
  angle: 0 | 90 | 180 | 270;
}

export const IDENTITY: Orientation = { flip: false, flop: false, angle: 0 };

/**
 * Splits a width x height image into a row-major grid of tiles of at most `tileSize` x `tileHeight`
 * pixels (square unless `tileHeight` is given), each cut with `halo`.
 */
export function tileGrid(width: number, height: number, tileSize: number, halo: number, tileHeight = tileSize): TileGeometry[] {
  if (!(width > 0 && height > 0 && tileSize > 0 && tileHeight > 0 && halo >= 0)) {
    throw new RangeError(`tileGrid: bad geometry ${width}x${height} tile ${tileSize}x${tileHeight} halo ${halo}`);
  }
  const cols = Math.ceil(width / tileSize);
  const rows = Math.ceil(height / tileHeight);
  const tiles: TileGeometry[] = [];
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) {
      const core = {
        x: col * tileSize,
        y: row * tileHeight,
        w: Math.min(tileSize, width - col * tileSize),
        h: Math.min(tileHeight, height - row * tileHeight),
      };
      tiles.push({ index: tiles.length, col, row, core, cut: grow(core, halo, width, height) });
    }
  }
  return tiles;
}

/** `r` grown by `by` on every side, clipped to a width x height image (the outer border gets no halo). */
export function grow(r: Rect, by: number, width: number, height: number): Rect {
  const x0 = Math.max(0, r.x - by);
  const y0 = Math.max(0, r.y - by);
  const x1 = Math.min(width, r.x + r.w + by);
  const y1 = Math.min(height, r.y + r.h + by);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

/** Where rectangle `r` of a width x height image lands after `o` (see {@link Orientation} for the order). */
export function mapRect(r: Rect, width: number, height: number, o: Orientation): Rect {
  let { x, y } = r;
  const { w, h } = r;
  if (o.flip) y = height - y - h;
  if (o.flop) x = width - x - w;
  switch (o.angle) {
    case 0:
      return { x, y, w, h };
    case 90:
      return { x: height - y - h, y: x, w: h, h: w };
    case 180:
      return { x: width - x - w, y: height - y - h, w, h };
    case 270:
      return { x: y, y: width - x - w, w: h, h: w };
  }
}

/**
 * Inverse of {@link mapRect}: which rectangle of the width x height source (before `o`) lands on
 * rectangle `r` of the output.
 */
export function unmapRect(r: Rect, width: number, height: number, o: Orientation): Rect {
  let x: number;
  let y: number;
  let w: number;
  let h: number;
  switch (o.angle) {
    case 0:
      ({ x, y, w, h } = r);
      break;
    case 90:
      [x, y, w, h] = [r.y, height - r.x - r.w, r.h, r.w];
      break;
    case 180:
      [x, y, w, h] = [width - r.x - r.w, height - r.y - r.h, r.w, r.h];
      break;
    case 270:
      [x, y, w, h] = [width - r.y - r.h, r.x, r.h, r.w];
      break;
  }
  if (o.flop) x = width - x - w;
  if (o.flip) y = height - y - h;
  return { x, y, w, h };
}

/** Size of a width x height image after `o`. */
export function mapSize(width: number, height: number, o: Orientation): { width: number; height: number } {
  return o.angle === 90 || o.angle === 270 ? { width: height, height: width } : { width, height };
}

/**
 * Radius of the Gaussian mask libvips builds for `sigma` (vips_gaussmat): it grows the mask while
 * exp(-x^2 / 2 sigma^2) >= minAmpl and keeps 2 * (x - 1) + 1 taps. We return x, one more than the
 * real radius, so that a rounding difference in a future libvips cannot leave a seam.
 * sharp's blur() and sharpen({ sigma }) both use min_ampl 0.2 (radius about 1.8 sigma).
 */
export function gaussMaskRadius(sigma: number, minAmpl = 0.2): number {
  if (!(sigma > 0)) return 0;
  const sig2 = 2 * sigma * sigma;
  const maxX = Math.min(5000, 8 * sigma);
  let x = 0;
  while (x < maxX && Math.exp(-(x * x) / sig2) >= minAmpl) x++;
  return x;
}

/** A neighbourhood operation of the per-tile chain, for halo purposes. */
export type NeighbourhoodOp =
  | { op: 'blur'; sigma: number; minAmpl?: number }
  /** sharp's mild sharpen (3x3 kernel) when sigma is absent, else the LAB unsharp mask. */
  | { op: 'sharpen'; sigma?: number }
  /** A generic convolution kernel of this radius (a 3x3 kernel has radius 1). */
  | { op: 'convolve'; radius: number };

/** Radius of influence of one op: how far an output pixel looks. */
export function opRadius(op: NeighbourhoodOp): number {
  switch (op.op) {
    case 'blur':
      return gaussMaskRadius(op.sigma, op.minAmpl ?? 0.2);
    case 'sharpen':
      return op.sigma === undefined ? 1 : gaussMaskRadius(op.sigma, 0.2);
    case 'convolve':
      return Math.ceil(op.radius);
  }
}

/**
 * Halo for a chain of neighbourhood ops. Radii add up: after op 1 the outer r1 pixels of a cut are
 * wrong (they saw the cut edge instead of real neighbours), op 2 spreads that error r2 further in.
 */
export function chainHalo(ops: readonly NeighbourhoodOp[]): number {
  return ops.reduce((sum, op) => sum + opRadius(op), 0);
}

/** Picks a tile edge: `forced` when set, else about 4 tiles per slot, kept between 512 and 4096 pixels. */
export function chooseTileSize(width: number, height: number, slots: number, forced = 0): number {
  if (forced > 0) return forced;
  const wanted = Math.max(1, slots) * 4;
  const edge = Math.sqrt((width * height) / wanted);
  // Multiples of 256 keep tiles aligned with libvips' and JPEG's internal blocks.
  return Math.min(4096, Math.max(512, Math.floor(edge / 256) * 256));
}

/**
 * `count` strips covering a width x height *output* canvas, laid so that each strip is a band of
 * whole rows of the source before `o`: horizontal strips for 0/180 degrees, vertical ones for
 * 90/270. A JPEG or PNG decodes top to bottom, so a worker reading such a band straight from the
 * source stops decoding at the band's last row. The short remainder strip is the last one (bottom
 * or right of the output), where the stitch's arrayjoin expects it. Strip sizes are rounded up to a
 * multiple of `align` (16: JPEG's largest MCU height, so strips encoded apart can be joined).
 */
export function stripGrid(width: number, height: number, count: number, o: Orientation, halo: number, align = 1): TileGeometry[] {
  const across = o.angle === 90 || o.angle === 270;
  const along = across ? width : height;
  const n = Math.max(1, Math.min(Math.floor(count), along));
  const size = Math.min(along, Math.ceil(Math.ceil(along / n) / align) * align);
  return across ? tileGrid(width, height, size, halo, height) : tileGrid(width, height, width, halo, size);
}

/**
 * Where `n` strips of a `rows`-row sequential source should end (source rows, top to bottom) so
 * that each costs the same when strip k's worker also decodes every row above it:
 * cost(k) = decodeShare * end(k) + (end(k) - start(k)), with `decodeShare` the cost of decoding a
 * row relative to processing it. Equal costs C give end(k) = (C + end(k - 1)) / (1 + decodeShare).
 */
export function balancedStripEnds(rows: number, n: number, decodeShare: number): number[] {
  const f: number[] = [];
  let prev = 0;
  for (let k = 0; k < n; k++) {
    prev = (1 + prev) / (1 + decodeShare);
    f.push(prev);
  }
  const scale = rows / f[n - 1]!;
  return f.map((v, k) => (k === n - 1 ? rows : Math.round(v * scale)));
}

/**
 * Horizontal whole-width strips of a width x height canvas ending at `ends` (ascending, the last
 * = height), each end except the last rounded to a multiple of `align`; strips that rounding
 * empties are dropped.
 */
export function stripsEndingAt(width: number, height: number, ends: readonly number[], align = 1): TileGeometry[] {
  const tiles: TileGeometry[] = [];
  let y = 0;
  for (const [k, e] of ends.entries()) {
    const end = k === ends.length - 1 ? height : Math.min(height, Math.round(e / align) * align);
    if (end <= y) continue;
    const core = { x: 0, y, w: width, h: end - y };
    tiles.push({ index: tiles.length, col: 0, row: tiles.length, core, cut: core });
    y = end;
  }
  return tiles;
}
