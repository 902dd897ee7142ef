/** Validation of `image` job params: the same function runs on the coordinator and the worker. */
import { createRequire } from 'node:module';
import { invalidArgument } from '../errors.js';
import { bool, num as readNum, record, str } from './param-checks.js';

// sharp's colour parser, so a colour reads here as sharp reads it. A CommonJS module whose types
// declare an ES default export, which an import of it under NodeNext does not find.
const colour = createRequire(import.meta.url)('@img/colour') as typeof import('@img/colour').default;

export const IMAGE_FITS = ['cover', 'contain', 'fill', 'inside', 'outside'] as const;
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'avif', 'tiff'] as const;
export type ImageFit = (typeof IMAGE_FITS)[number];
export type ImageFormat = (typeof IMAGE_FORMATS)[number];
/** Formats a pyramid's tiles can be written in (libvips dzsave: sharp's `tile` takes these only). */
export const PYRAMID_TILE_FORMATS = ['jpeg', 'png', 'webp'] as const;
/** Formats whose encoder has a quality setting the image kind applies (`quality`). */
export const QUALITY_FORMATS = ['jpeg', 'webp', 'avif'] as const;
/** Longest `iiif_id` accepted. */
export const MAX_IIIF_ID_LENGTH = 1024;

/** Normalised image pipeline. Zero/empty means "step off". */
export interface ImageParams {
  width: number;
  height: number;
  fit: ImageFit;
  noEnlarge: boolean;
  crop: { left: number; top: number; width: number; height: number } | undefined;
  rotate: number;
  flip: boolean;
  flop: boolean;
  blur: number;
  sharpen: boolean;
  grayscale: boolean;
  brightness: number;
  saturation: number;
  hue: number;
  /** '' = keep the input's format when it is one we write, else jpeg. */
  format: ImageFormat | '';
  quality: number;
  keepMetadata: boolean;
  autoOrient: boolean;
  tileSize: number;
  tiledOutput: '' | 'deepzoom' | 'iiif';
  /** Base URI of an IIIF pyramid (its info.json `id` is this plus the output's name); '' = sharp's default, https://example.com/iiif. */
  iiifId: string;
  /** 8: every result at 8 bits a sample; 0: as the source (16-bit RGB or grey sources keep 16 bits in PNG and TIFF). */
  bitDepth: 0 | 8;
  /**
   * '' (black bars, transparency kept where the format holds it, else laid on black), or a colour
   * as '#RRGGBBAA': the bars of `contain`, the corners of a turn off the right angles, and, in a
   * format without transparency (JPEG), what transparent pixels are laid on ({@link forFormat}).
   */
  background: string;
  /** Lay transparent pixels on `background` before the resize: set by `forFormat` for JPEG, never by a job. */
  flatten?: boolean;
}

const MAX_EDGE = 1_000_000;

export function validateImageParams(raw: unknown): ImageParams {
  const p = record('image', raw);
  const num = (field: string, min: number, max: number, v: unknown = p[field]): number => {
    const n = readNum(`image.${field}`, v);
    if (!Number.isFinite(n) || n < min || n > max) throw invalidArgument(`image.${field}: ${n} is out of range (${min}..${max})`);
    return n;
  };
  const text = (field: string): string => str(`image.${field}`, p[field]);
  const flag = (field: string): boolean => bool(`image.${field}`, p[field]);
  const width = num('width', 0, MAX_EDGE);
  const height = num('height', 0, MAX_EDGE);
  const fit = (text('fit') || 'cover').toLowerCase();
  if (!(IMAGE_FITS as readonly string[]).includes(fit)) throw invalidArgument(`image.fit: "${text('fit')}" is not one of ${IMAGE_FITS.join(', ')}`);
  const format = text('format').toLowerCase().replace(/^jpg$/, 'jpeg');
  if (format && !(IMAGE_FORMATS as readonly string[]).includes(format)) throw invalidArgument(`image.format: "${text('format')}" is not one of ${IMAGE_FORMATS.join(', ')}`);
  let crop: ImageParams['crop'];
  const c = record('image.crop', p['crop']);
  // A crop given is a crop, zeros too (they were taken for none, and the whole image came back).
  if (p['crop'] != null) {
    if (!c['width'] || !c['height']) throw invalidArgument('image.crop: width and height must both be positive');
    crop = {
      left: num('crop.left', 0, MAX_EDGE, c['left']),
      top: num('crop.top', 0, MAX_EDGE, c['top']),
      width: num('crop.width', 1, MAX_EDGE, c['width']),
      height: num('crop.height', 1, MAX_EDGE, c['height']),
    };
  }
  const blur = num('blur', 0, 1000);
  if (blur > 0 && blur < 0.3) throw invalidArgument(`image.blur: sigma ${blur} is below the minimum of 0.3 (use 0 for no blur)`);
  const tiledOutput = text('tiled_output').toLowerCase();
  if (tiledOutput && tiledOutput !== 'deepzoom' && tiledOutput !== 'iiif') throw invalidArgument(`image.tiled_output: "${text('tiled_output')}" is not one of deepzoom, iiif`);
  const quality = readNum('image.quality', p['quality']);
  if (!Number.isFinite(quality) || quality < 0 || quality > 100) throw invalidArgument(`image.quality: ${quality} is out of range (1..100; unset for the encoder's default)`);
  const iiifId = text('iiif_id');
  if (iiifId) {
    if (tiledOutput !== 'iiif') throw invalidArgument('image.iiif_id: applies only to tiled_output iiif (CLI: --iiif-id with --pyramid iiif)');
    if (iiifId.length > MAX_IIIF_ID_LENGTH) throw invalidArgument(`image.iiif_id: ${iiifId.length} characters, at most ${MAX_IIIF_ID_LENGTH}`);
    if (!isHttpUrl(iiifId)) throw invalidArgument(`image.iiif_id: "${iiifId}" is not an absolute http(s) URL`);
  }
  const bitDepth = readNum('image.bit_depth', p['bit_depth']);
  if (bitDepth !== 0 && bitDepth !== 8 && bitDepth !== 16) throw invalidArgument(`image.bit_depth: ${bitDepth} is not 8 or 16 (unset or 16: as the source, 16-bit RGB or grey sources keeping 16 bits in png and tiff; 8: every result at 8 bits)`);
  const background = text('background').trim();
  let backgroundHex = '';
  if (background) {
    if (background.length > 100) throw invalidArgument(`image.background: ${background.length} characters is not a colour (at most 100)`);
    try {
      // sharp's own parser (CSS names, #rgb[a], #rrggbb[aa], rgb(), rgba(), hsl()...): it reads the same colour.
      backgroundHex = colour(background).hexa();
    } catch {
      throw invalidArgument(`image.background: "${background}" is not a colour (a CSS colour: white, #f0f0f0, #00000080, rgba(0,0,0,0.5), transparent)`);
    }
  }
  const tileSize = num('tile_size', 0, 65_536);
  if (tileSize > 0 && tileSize < 64) throw invalidArgument(`image.tile_size: ${tileSize} is below the minimum of 64`);
  return {
    width,
    height,
    fit: fit as ImageFit,
    noEnlarge: flag('no_enlarge'),
    crop,
    rotate: num('rotate', -360, 360),
    flip: flag('flip'),
    flop: flag('flop'),
    blur,
    sharpen: flag('sharpen'),
    grayscale: flag('grayscale'),
    brightness: num('brightness', 0, 100),
    saturation: num('saturation', 0, 100),
    hue: num('hue', -360, 360),
    format: format as ImageFormat | '',
    quality,
    keepMetadata: flag('keep_metadata'),
    autoOrient: !flag('no_auto_orient'),
    tileSize,
    tiledOutput: tiledOutput as ImageParams['tiledOutput'],
    iiifId: iiifId.replace(/\/+$/, ''),
    bitDepth: bitDepth === 8 ? 8 : 0,
    background: backgroundHex,
  };
}

/** An absolute http(s) URL with a host and no query, fragment, credentials, spaces or control characters (it is written into info.json). */
function isHttpUrl(s: string): boolean {
  if (/[\s\u0000-\u001f\u007f"\\]/.test(s)) return false;
  try {
    const u = new URL(s);
    // A bare `?` or `#` reads as an empty query or fragment (''): the name would land in it.
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && !u.username && !u.password && !u.search && !u.hash && !/[?#]/.test(s);
  } catch {
    return false;
  }
}

/**
 * Refusals of new submissions only (`CoordinatorKind.checkNew`): jobs accepted before them still
 * resume and run on workers of any version, as they did then.
 */
export function checkNewImageParams(p: ImageParams): void {
  // A pyramid is written by libvips dzsave, whose tiles are JPEG, PNG or WebP: refused here rather
  // than after every tile has run. A source whose own format cannot be a tile format gets JPEG tiles
  // (PNG with alpha) instead (tile-stitch.ts `tileFormatFor`).
  if (p.tiledOutput && p.format && !(PYRAMID_TILE_FORMATS as readonly string[]).includes(p.format)) {
    throw invalidArgument(`image.format: a pyramid (tiled_output ${p.tiledOutput}; CLI: --pyramid) is made of ${PYRAMID_TILE_FORMATS.join(', ')} tiles, not ${p.format} (CLI: --format)`);
  }
  // PNG and TIFF are written losslessly (TIFF with LZW): a quality would be silently ignored.
  if (p.quality > 0 && p.format && !(QUALITY_FORMATS as readonly string[]).includes(p.format)) {
    throw invalidArgument(`image.quality: ${p.format} output is lossless and takes no quality; quality applies to ${QUALITY_FORMATS.join(', ')}`);
  }
}
