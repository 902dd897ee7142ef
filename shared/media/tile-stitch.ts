/**
 * Stitching processed tiles into one output with bounded memory.
 *
 * The tiles are libvips `.v` files (raw pixels plus a header, read through mmap windows) joined with
 * libvips arrayjoin: the encoder pulls scanlines top to bottom and arrayjoin fetches only the tiles
 * those lines cross, so memory is about one row of tiles, not the image. JPEG is written with
 * standard Huffman tables: libjpeg's Huffman optimisation keeps the whole image's DCT coefficients in
 * memory (measured here: 1.5 GB and +3 s for 16,000 x 16,000), for a file 4-9% smaller for
 * photographic content and up to about 20% for flat synthetic images.
 * Decoded pixels are the same either way.
 */
import path from 'node:path';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { invalidArgument } from '../errors.js';
import { PYRAMID_TILE_FORMATS } from '../kinds/image-params.js';
import { FORMAT_EXTENSION, holdsSixteenBits, tiffResolution, type OutputFormat } from './image-pipeline.js';
import type { Rect } from './tiling.js';
import { GREY_FORMATS, type TiledOutput } from './tile-pipeline.js';

/** A processed tile on disk and where it goes in the output. */
export interface PlacedTile {
  path: string;
  rect: Rect;
}

/** Output formats of the tiled path: the image kind's. */
export type TiledFormat = OutputFormat;

/** Largest width/height each format can hold. */
export const FORMAT_MAX_EDGE: Record<TiledFormat, number> = {
  // libjpeg's JPEG_MAX_DIMENSION (65,501 px: "Maximum supported image dimension is 65500 pixels").
  jpeg: 65_500,
  png: 2 ** 31 - 1,
  webp: 16_383,
  avif: 16_384,
  tiff: 2 ** 31 - 1,
  gif: 65_535,
};

/** File extension for a tiled output: the format's, or `zip` for a pyramid. */
export function tiledExtension(format: TiledFormat, output: TiledOutput): string {
  return output === 'image' ? FORMAT_EXTENSION[format] : 'zip';
}

/** Throws INVALID_ARGUMENT when a width x height image cannot be written as `format`. */
export function checkFormatFits(format: TiledFormat, output: TiledOutput, width: number, height: number, input: string): void {
  if (output !== 'image') return;
  const max = FORMAT_MAX_EDGE[format];
  if (width > max || height > max) {
    throw invalidArgument(
      `format: ${format} holds at most ${max} x ${max} pixels, the result would be ${width} x ${height}; use --format tiff or --pyramid deepzoom (format tiff or tiled_output deepzoom)`,
      input,
    );
  }
}

/**
 * The format a tiled output is written in: `format` for one image; for a pyramid, `format` when
 * libvips can write its tiles in it (jpeg, png, webp), else JPEG tiles, or PNG when the image has
 * an alpha channel (a TIFF, AVIF/HEIF or GIF source that keeps its own format by default: an
 * explicit tiff or avif is refused at submission, image-params.ts).
 */
export function tileFormatFor(format: TiledFormat, output: TiledOutput, hasAlpha: boolean): TiledFormat {
  if (output === 'image' || (PYRAMID_TILE_FORMATS as readonly string[]).includes(format)) return format;
  return hasAlpha ? 'png' : 'jpeg';
}

/**
 * The name an IIIF pyramid's folder and `info.json` `id` end in: the output's, with every ASCII
 * character a URI path segment cannot hold as it is (a space, `#`, `%`, `?`...) made `_`. libvips
 * writes the same name as the folder and at the end of the `id`, and a viewer asks for
 * `id/region/size/...`: an encoded name would not be the folder's, a raw `#` would end the path.
 * Letters beyond ASCII stay (an IRI; browsers encode them and servers decode them back).
 */
export function iiifName(name: string): string {
  return name.replace(/[\x00-\x2c\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7d\x7f]/g, '_');
}

/**
 * Applies the encoder for `format` (and the pyramid layout for deepzoom/iiif), with the batch path's
 * settings (image-pipeline.ts `applyEncoding`) except JPEG Huffman optimisation (see the file's
 * comment) and tiled BigTIFF for TIFF.
 */
export function encodeTiled(
  img: Sharp,
  format: TiledFormat,
  output: TiledOutput,
  quality: number,
  width: number,
  height: number,
  /** Bytes of a pixel's samples (bands x 1 or 2), for TIFF's choice of BigTIFF. */
  bytesPerPixel: number,
  iiif?: { id: string; name: string },
  density?: number,
): Sharp {
  if (output !== 'image' && format !== tileFormatFor(format, output, false)) {
    // sharp's tile() takes jpeg, png and webp only; the planner chose one (tileFormatFor).
    throw invalidArgument(`format: a ${output} pyramid cannot have ${format} tiles (${PYRAMID_TILE_FORMATS.join(', ')} only)`);
  }
  const q = quality > 0 ? { quality } : {};
  switch (format) {
    case 'jpeg':
      img = img.jpeg({ ...q, mozjpeg: false, optimiseCoding: false });
      break;
    case 'png':
      img = img.png();
      break;
    case 'webp':
      img = img.webp(q);
      break;
    case 'avif':
      img = img.avif({ ...q, effort: 2 });
      break;
    case 'gif':
      // Its own palette: the source's kept with --keep-metadata is cut short in the metadata's
      // carrier (about 113 of 256 colours), and colours came out up to 107 levels off (review TILEOPT).
      img = img.gif({ reuse: false });
      break;
    case 'tiff':
      // Lossless, tiled, and BigTIFF once the raw data nears classic TIFF's 4 GiB offsets.
      img = img.tiff({
        compression: 'lzw',
        predictor: 'horizontal',
        tile: true,
        tileWidth: 256,
        tileHeight: 256,
        bigtiff: width * height * bytesPerPixel > 3.5 * 2 ** 30,
        ...tiffResolution(density),
      });
      break;
  }
  if (output === 'deepzoom') img = img.tile({ size: 256, layout: 'dz' });
  if (output === 'iiif') img = img.tile({ size: 256, layout: 'iiif3', ...(iiif ? { basename: iiifName(iiif.name), ...(iiif.id ? { id: iiif.id } : {}) } : {}) });
  return img;
}

/**
 * Checks that `tiles` cover a width x height canvas as a grid and returns them in row-major output
 * order with the number of columns. Throws when they do not (a planning or worker bug).
 */
export function gridOrder(tiles: readonly PlacedTile[], width: number, height: number): { ordered: PlacedTile[]; across: number } {
  const ordered = [...tiles].sort((a, b) => a.rect.y - b.rect.y || a.rect.x - b.rect.x);
  const across = ordered.filter((t) => t.rect.y === 0).length;
  if (across === 0 || ordered.length % across !== 0) throw new Error(`tile grid: ${ordered.length} tiles do not form rows of ${across}`);
  let y = 0;
  for (let r = 0; r < ordered.length / across; r++) {
    let x = 0;
    const rowH = ordered[r * across]!.rect.h;
    for (let c = 0; c < across; c++) {
      const t = ordered[r * across + c]!;
      if (t.rect.x !== x || t.rect.y !== y || t.rect.h !== rowH) throw new Error(`tile grid: tile at ${t.rect.x},${t.rect.y} breaks the grid`);
      x += t.rect.w;
    }
    if (x !== width) throw new Error(`tile grid: row ${r} is ${x} pixels wide, expected ${width}`);
    y += rowH;
  }
  if (y !== height) throw new Error(`tile grid: ${y} pixels tall, expected ${height}`);
  return { ordered, across };
}

/**
 * Joins the tiles into `outPath` (a `.zip` for pyramids). Returns the output's dimensions as read
 * back. `metadata`: a `.v` carrier of the source's metadata (tile-vips-file.ts `writeVipsCarrier`),
 * for `keep_metadata`: the output keeps the source's ICC profile, EXIF and XMP, and its pixels
 * (the source's own, never converted to sRGB) are written as they are, as the batch path does.
 */
export async function stitchTiles(opts: {
  tiles: readonly PlacedTile[];
  width: number;
  height: number;
  channels: number;
  format: TiledFormat;
  output: TiledOutput;
  quality: number;
  outPath: string;
  limitInputPixels: number;
  metadata?: string;
  /** IIIF base URI (image params `iiif_id`), for `output` iiif. */
  iiifId?: string;
}): Promise<{ width: number; height: number }> {
  const { ordered, across } = gridOrder(opts.tiles, opts.width, opts.height);
  const first = await sharp(ordered[0]!.path).metadata();
  // 16-bit tiles (a 16-bit source into PNG or TIFF: image-tile.ts) are written at 16 bits, as the
  // batch path writes the same image; sharp would cast them to 8-bit sRGB.
  const sixteen = first.depth === 'ushort' && opts.output === 'image' && holdsSixteenBits(opts.format);
  let space: 'rgb16' | 'grey16' | 'b-w' | undefined = sixteen ? (opts.channels === 1 ? 'grey16' : 'rgb16') : undefined;
  // A grey source's own profile, kept: the tiles hold its grey samples in RGB bands (all three
  // alike), to which a grey profile cannot be attached, and libvips dropped it, the samples left
  // unconverted (a linear profile's tones about 90 levels too dark). As on the batch path
  // (applyEncoding), one grey band carries it where the format holds one: the bands give it back
  // exactly, at 8 and 16 bits. In a format without a grey band (WebP, AVIF, GIF) the samples were
  // converted through it to sRGB at the start (tile-pipeline.ts keepsOwnSpace), and are tagged sRGB.
  const written = opts.output === 'image' ? opts.format : tileFormatFor(opts.format, opts.output, opts.channels === 2 || opts.channels === 4);
  const greyProfile = opts.metadata !== undefined && isGreyProfile((await sharp(opts.metadata).metadata()).icc);
  if (greyProfile && GREY_FORMATS.has(written)) space = sixteen ? 'grey16' : 'b-w';
  // The carrier joins as one more cell, below the grid: arrayjoin gives the result the metadata of
  // all its inputs, and the extract below cuts the carrier's row off again.
  const paths = [...ordered.map((t) => t.path), ...(opts.metadata ? [opts.metadata] : [])];
  // Written in colour, a grey source's samples were converted through its profile where they were
  // read (tile-pipeline.ts keepsOwnSpace): the profile the carrier brings is not applied again, and
  // the result is tagged sRGB.
  const ignoreIcc = greyProfile && !GREY_FORMATS.has(written);
  let img =
    paths.length === 1
      ? sharp(paths[0]!, { limitInputPixels: opts.limitInputPixels, ignoreIcc })
      : sharp(paths, { join: { across }, limitInputPixels: opts.limitInputPixels, ignoreIcc }).extract({
          // arrayjoin pads every cell to the largest tile; the short last row/column are at the
          // bottom/right, so the padding lies outside this rectangle.
          left: 0,
          top: 0,
          width: opts.width,
          height: opts.height,
        });
  // arrayjoin gives one-band (grey) cells an alpha band for its background: drop it. The grey
  // (`grayscale`: sharp's raw output keeps one band of it) is then written as three-band sRGB,
  // as the whole-image pipeline writes it.
  if (opts.channels === 1) img = img.removeAlpha();
  // Kept, the profile is attached as it is and the pixels are not converted.
  if (opts.metadata) img = img.keepMetadata();
  // A pyramid's tiles cannot carry the source's EXIF orientation (a viewer would turn each tile
  // on its own, the picture scrambled): upright, as the descriptor's size is.
  if (opts.metadata && opts.output !== 'image') img = uprightTag(img);
  if (space) img = img.toColourspace(space);
  if (ignoreIcc) img = img.withIccProfile('srgb');
  // TIFF is told the resolution the tiles carry (the source's), or sharp writes its own 25.4 dpi.
  const density = opts.format === 'tiff' && opts.output === 'image' ? first.density : undefined;
  img = encodeTiled(img, opts.format, opts.output, opts.quality, opts.width, opts.height, opts.channels * (sixteen ? 2 : 1), { id: opts.iiifId ?? '', name: path.basename(opts.outPath, '.zip') }, density);
  const info = await img.toFile(opts.outPath);
  return { width: info.width, height: info.height };
}

/**
 * `img` written with EXIF orientation 1, its kept metadata otherwise as it is. sharp sets the tag
 * only through withMetadata, which also converts the samples to sRGB and tags them so: a P3
 * source's pyramid tiles lost their profile, and a grey source's were three bands of unconverted
 * grey samples tagged sRGB (too dark). The EXIF entry alone (withExifMerge) is overridden by the
 * image's own orientation, which libvips writes. So the orientation sharp's withMetadata sets is
 * set alone, on sharp's options (sharp 0.34); where they are not as expected, withMetadata.
 */
function uprightTag(img: sharp.Sharp): sharp.Sharp {
  const options = (img as unknown as { options?: Record<string, unknown> }).options;
  if (options && typeof options['withMetadataOrientation'] === 'number') {
    options['withMetadataOrientation'] = 1;
    return img;
  }
  return img.withMetadata({ orientation: 1 });
}

/** Whether an ICC profile is of grey samples (its header's data colour space, bytes 16-19, `GRAY`). */
export function isGreyProfile(icc: Buffer | undefined): boolean {
  return icc !== undefined && icc.length >= 20 && icc.toString('latin1', 16, 20) === 'GRAY';
}
