/**
 * How the image pipeline is split for tiled processing, and the checks that keep the split exact.
 *
 * sharp runs one fixed internal order whatever the call order: (auto-orient) extract, greyscale,
 * resize, flip, flop, rotate, blur, modulate, sharpen. We cut that order in two:
 *  - the **prefix** (auto-orient, extract, greyscale, resize) runs once on the coordinator while it
 *    decodes the source into the random-access intermediate. These are geometric or point ops, and
 *    resize there is exact by construction (shrink-on-load and kernel see the whole image, exactly as
 *    in the one-process pipeline), at the price of running it on one machine: it is a streaming,
 *    mostly-shrinking pass next to the decode, which dominates anyway;
 *  - the **tile ops** (flip, flop, rotate by right angles, blur, modulate, sharpen) run per tile on
 *    the workers, each tile cut with a halo covering the chain's neighbourhood radius.
 * Both halves call the image kind's own pipeline function (`applyPipeline` in image-pipeline.ts) with
 * the other half's fields neutralised, so the per-pixel arithmetic is the same code as the batch path.
 */
import type { Sharp } from 'sharp';
import type { ImageParams } from '../kinds/image-params.js';
import { invalidArgument } from '../errors.js';
import { chainHalo, type NeighbourhoodOp, type Orientation } from './tiling.js';

/** The image params the tiled path reads: the image kind's normalised params. */
export type TileImageParams = ImageParams;

/** A pipeline builder: applies `params` to `img` (no encoding) and returns it. */
export type PipelineFn = (img: Sharp, params: TileImageParams) => Sharp;

/** Output layouts of the tiled path. */
export type TiledOutput = 'image' | 'deepzoom' | 'iiif';

/** The tiled plan of one job's params. */
export interface TileSplit {
  /** Params for the coordinator's decode pass (tile ops neutralised). */
  prefix: TileImageParams;
  /** Params for each tile (prefix ops neutralised). */
  tile: TileImageParams;
  /** Right-angle transform the tile ops apply: where each tile lands. */
  orientation: Orientation;
  /** Neighbourhood ops of the tile chain, in order. */
  ops: NeighbourhoodOp[];
  /** Halo in pixels (sum of the chain's radii). */
  halo: number;
  output: TiledOutput;
}

/** Splits validated image params for the tiled path; throws INVALID_ARGUMENT for what tiling cannot do exactly. */
export function splitForTiles(p: TileImageParams): TileSplit {
  const angle = ((p.rotate % 360) + 360) % 360;
  if (angle % 90 !== 0) {
    // An arbitrary angle moves every output pixel's source off the tile grid and needs the whole
    // canvas for its background fill: refuse rather than stitch seams.
    throw invalidArgument(
      `rotate: tiled processing supports multiples of 90 degrees only, got ${p.rotate} (rotate the image in a non-tiled job, or rotate by a right angle)`,
    );
  }
  const output = tiledOutputOf(p.tiledOutput);
  const ops: NeighbourhoodOp[] = [];
  if (p.blur > 0) ops.push({ op: 'blur', sigma: p.blur });
  if (p.sharpen) ops.push({ op: 'sharpen' });
  const prefix: TileImageParams = {
    ...p,
    rotate: 0,
    flip: false,
    flop: false,
    blur: 0,
    sharpen: false,
    brightness: 0,
    saturation: 0,
    hue: 0,
  };
  const tile: TileImageParams = {
    ...p,
    // The intermediate is already upright, cropped, resized and (if asked) grey.
    autoOrient: false,
    crop: undefined,
    width: 0,
    height: 0,
    grayscale: false,
  };
  return {
    prefix,
    tile,
    orientation: { flip: p.flip, flop: p.flop, angle: angle as Orientation['angle'] },
    ops,
    halo: chainHalo(ops),
    output,
  };
}

function tiledOutputOf(v: string): TiledOutput {
  switch (v) {
    case '':
    case 'image':
      return 'image';
    case 'deepzoom':
    case 'dz':
      return 'deepzoom';
    case 'iiif':
      return 'iiif';
    default:
      throw invalidArgument(`tiled_output: expected "", "deepzoom" or "iiif", got "${v}"`);
  }
}
