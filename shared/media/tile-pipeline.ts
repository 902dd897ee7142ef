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
import sharp, { type Sharp } from 'sharp';
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

/** What {@link intermediateSpace} reads of the source's metadata (sharp's names). */
export interface SourceSamples {
  depth?: string;
  channels?: number;
  space?: string;
  hasAlpha?: boolean;
  hasProfile?: boolean;
}

/**
 * Whether a source is converted to sRGB into a copy before anything else ({@link writeSrgbCopy}):
 * a 16-bit one with its own profile whose metadata is not kept. sharp takes an RGB16 source into a
 * Display P3 working space and writes it out from there, untagged (a P3 (200,60,40) came out as
 * 201,60,40 where the same picture at 8 bits gives 217,42,23), and leaves a GREY16 one unconverted,
 * on every path (review IC). Also, its metadata kept, a 16-bit grey one `written` in a format
 * without a grey band (WebP, AVIF, GIF): converted through its profile as an 8-bit grey source is,
 * where libvips left its samples unconverted and the result was tagged sRGB ({@link convertedAhead}).
 */
export function needsSrgbFromSixteen(m: SourceSamples, keepMetadata: boolean, written?: string): boolean {
  if (m.depth !== 'ushort' || !m.hasProfile || m.space === 'cmyk') return false;
  return !keepMetadata || convertedAhead(m, written);
}

/**
 * A 16-bit grey source with its own profile whose metadata is kept, `written` in a format without
 * a grey band: converted to sRGB into a copy first ({@link needsSrgbFromSixteen}), and its result
 * tagged sRGB as an 8-bit grey source's is.
 */
export function convertedAhead(m: SourceSamples, written: string | undefined): boolean {
  return m.depth === 'ushort' && greyToColour(m, written);
}

/** A grey source with its own profile `written` in a format without a grey band (WebP, AVIF, GIF). */
function greyToColour(m: { hasProfile?: boolean | undefined; channels?: number | undefined }, written: string | undefined): boolean {
  return written !== undefined && Boolean(m.hasProfile) && (m.channels ?? 3) <= 2 && !GREY_FORMATS.has(written);
}

/**
 * Writes `dest` (a libvips `.v`): the 16-bit source `file` converted to sRGB through its own
 * profile ({@link needsSrgbFromSixteen}), nothing else done, its EXIF (orientation) and resolution
 * kept and no profile: every path then runs the pipeline on it as on an untagged 16-bit source,
 * so that colour steps (hue, saturation, greyscale) act on sRGB samples as they do for the same
 * picture at 8 bits, and the tiled and whole-image paths stay pixel-identical (converting at the
 * end of one and before the tile steps of the other made them differ by up to 50 levels: review
 * K8). RGB stays 16-bit; grey goes through 8-bit grey, the only way libvips converts it (its
 * 16-bit grey is never converted: the tones of a linear profile came out 60 levels too dark).
 * `allPages`: every page of a multi-page source (the copy keeps the page height), for a result
 * that keeps its frames.
 */
export async function writeSrgbCopy(file: string, dest: string, m: SourceSamples, limitInputPixels: number | boolean, allPages = false): Promise<void> {
  const grey = (m.channels ?? 3) <= 2;
  const img = sharp(file, { limitInputPixels, ...(allPages ? { pages: -1 } : {}) });
  await (grey ? img.toColourspace('b-w') : img.toColourspace('rgb16')).withIccProfile('srgb', { attach: false }).keepExif().keepXmp().toFile(dest);
}

/** Formats that write a one-band image as one band, and so can carry a grey ICC profile. */
export const GREY_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'tiff']);

/**
 * Whether the tiled path leaves a source's samples in its own colour space (`keep_metadata`), its
 * embedded profile ignored. Not a CMYK source's: its profile cannot stay with RGB samples, and,
 * ignored, libvips' built-in CMYK profile converted them instead of its own (review IC). Nor, where
 * the result is `written` in a format without a grey band (WebP, AVIF, GIF), a grey source's with
 * its own profile: converted through it at the start, as the batch path converts it.
 */
export function keepsOwnSpace(m: { space?: string | undefined; hasProfile?: boolean | undefined; channels?: number | undefined }, keepMetadata: boolean, written?: string): boolean {
  if (!keepMetadata || (m.space === 'cmyk' && m.hasProfile)) return false;
  return !greyToColour(m, written);
}

/**
 * The colourspace to write the decoded intermediate in, or undefined for sharp's default (8-bit
 * sRGB or grey). sharp converts every output to 8 bits at the very end of a pipeline; the
 * whole-image pipeline does that once, after blur, sharpen and modulate, so a 16-bit source must
 * stay 16-bit through the intermediate and the tiles and be converted only by the tile's own
 * pipeline, else the tiles blur rounded samples (off by 1 or 2).
 */
export function intermediateSpace(m: SourceSamples, prefix: TileImageParams): 'rgb16' | 'grey16' | undefined {
  // sharp's greyscale (in the prefix) converts to 8-bit b-w before any tile op, as the whole-image
  // pipeline does: the default 8-bit intermediate is then the exact one.
  if (m.depth !== 'ushort' || prefix.grayscale) return undefined;
  return (m.channels ?? 3) <= 2 ? 'grey16' : 'rgb16';
}

/**
 * Sample formats the tiled path reproduces exactly (checked pixel by pixel in test/tiles.test.ts and
 * test/extended/tiles-16bit.test.ts): 8-bit (sRGB, grey, CMYK, with or without a profile), float scRGB
 * through geometry alone ({@link checkSampleFormat}), and 16-bit RGB or grey,
 * kept 16-bit ({@link intermediateSpace}).
 */
function exactSamples(m: SourceSamples): boolean {
  if (m.depth === 'uchar') return true;
  if (m.depth === 'ushort') return m.space === 'rgb16' || m.space === 'grey16';
  return m.depth === 'float' && m.space === 'scrgb';
}

/**
 * Throws INVALID_ARGUMENT for any other sample format (e.g. 16-bit CMYK or multiband, signed 16-bit
 * LAB): sharp runs some of those ops in the source's own space or depth, which the intermediate does
 * not model, so tiles would differ from the whole-image result (LAB by up to 61 levels).
 */
export function checkSampleFormat(m: SourceSamples, input: string, split?: TileSplit): void {
  // Extra channels beyond the colour space's and alpha (a TIFF's saved selection): tiles are cut,
  // read and spliced as grey, RGB or CMYK with or without alpha. RGB with two more failed every tile
  // (8-bit) or the merge (16-bit) as INTERNAL; CMYK with alpha is five bands, and tiles well.
  const grey = m.space === 'b-w' || m.space === 'grey16';
  const colour = grey ? 1 : m.space === 'cmyk' ? 4 : 3;
  const most = colour + (m.hasAlpha ? 1 : 0);
  if (m.channels !== undefined && m.channels > most) {
    const kind = grey ? 'grey' : m.space === 'cmyk' ? 'CMYK' : 'RGB';
    throw invalidArgument(
      `${input}: tiled processing takes ${kind} images of ${colour} band(s) and an alpha channel at most, this one has ${m.channels} (extra channels, such as a TIFF's saved selections); remove the extra channels first`,
      input,
    );
  }
  if (exactSamples(m)) {
    // The whole image blurs, sharpens and modulates float scRGB in linear light, converting to 8-bit
    // sRGB only at the end; the intermediate is 8-bit sRGB, so tiles blurred there were off by up to
    // 44 levels (modulated, by 2).
    const steps = split ? [...split.ops.map((o) => o.op), ...(['brightness', 'saturation', 'hue'] as const).filter((k) => split.tile[k])] : [];
    if (m.depth === 'float' && steps.length > 0) {
      throw invalidArgument(
        `${input}: tiled processing of a float scRGB (linear light) image is pixel-exact only for geometry (resize, crop, rotate, flip), not ${steps.join(', ')}, which the whole image applies in linear light; convert it to 8- or 16-bit RGB first`,
        input,
      );
    }
    return;
  }
  throw invalidArgument(
    `${input}: tiled processing is pixel-exact for 8-bit, 16-bit RGB or grey and float scRGB images, this one has ${m.depth ?? 'unknown'} samples in ${m.space ?? 'an unknown colourspace'}; convert it to 8- or 16-bit RGB first`,
    input,
  );
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
    // The intermediate is already upright, cropped, flattened, resized and (if asked) grey.
    autoOrient: false,
    crop: undefined,
    width: 0,
    height: 0,
    grayscale: false,
    flatten: false,
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
