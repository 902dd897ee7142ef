/** Validation of `image` job params: the same function runs on the coordinator and the worker. */
import { invalidArgument } from '../errors.js';
import type { ImageParams__Output } from '../proto/generated/tessera/v1/ImageParams.js';

export const IMAGE_FITS = ['cover', 'contain', 'fill', 'inside', 'outside'] as const;
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'avif', 'tiff'] as const;
export type ImageFit = (typeof IMAGE_FITS)[number];
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

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
}

const MAX_EDGE = 1_000_000;

export function validateImageParams(raw: unknown): ImageParams {
  const p = (raw ?? {}) as Partial<ImageParams__Output>;
  const num = (field: string, v: number | undefined, min: number, max: number): number => {
    const n = v ?? 0;
    if (!Number.isFinite(n) || n < min || n > max) throw invalidArgument(`image.${field}: ${n} is out of range (${min}..${max})`);
    return n;
  };
  const width = num('width', p.width, 0, MAX_EDGE);
  const height = num('height', p.height, 0, MAX_EDGE);
  const fit = (p.fit || 'cover').toLowerCase();
  if (!(IMAGE_FITS as readonly string[]).includes(fit)) throw invalidArgument(`image.fit: "${p.fit}" is not one of ${IMAGE_FITS.join(', ')}`);
  const format = (p.format || '').toLowerCase().replace(/^jpg$/, 'jpeg');
  if (format && !(IMAGE_FORMATS as readonly string[]).includes(format)) throw invalidArgument(`image.format: "${p.format}" is not one of ${IMAGE_FORMATS.join(', ')}`);
  let crop: ImageParams['crop'];
  if (p.crop && (p.crop.width || p.crop.height || p.crop.left || p.crop.top)) {
    if (!p.crop.width || !p.crop.height) throw invalidArgument('image.crop: width and height must both be positive');
    crop = {
      left: num('crop.left', p.crop.left, 0, MAX_EDGE),
      top: num('crop.top', p.crop.top, 0, MAX_EDGE),
      width: num('crop.width', p.crop.width, 1, MAX_EDGE),
      height: num('crop.height', p.crop.height, 1, MAX_EDGE),
    };
  }
  const blur = num('blur', p.blur, 0, 1000);
  if (blur > 0 && blur < 0.3) throw invalidArgument(`image.blur: sigma ${blur} is below the minimum of 0.3 (use 0 for no blur)`);
  const tiledOutput = (p.tiled_output || '').toLowerCase();
  if (tiledOutput && tiledOutput !== 'deepzoom' && tiledOutput !== 'iiif') throw invalidArgument(`image.tiled_output: "${p.tiled_output}" is not one of deepzoom, iiif`);
  const tileSize = num('tile_size', p.tile_size, 0, 65_536);
  if (tileSize > 0 && tileSize < 64) throw invalidArgument(`image.tile_size: ${tileSize} is below the minimum of 64`);
  return {
    width,
    height,
    fit: fit as ImageFit,
    noEnlarge: Boolean(p.no_enlarge),
    crop,
    rotate: num('rotate', p.rotate, -360, 360),
    flip: Boolean(p.flip),
    flop: Boolean(p.flop),
    blur,
    sharpen: Boolean(p.sharpen),
    grayscale: Boolean(p.grayscale),
    brightness: num('brightness', p.brightness, 0, 100),
    saturation: num('saturation', p.saturation, 0, 100),
    hue: num('hue', p.hue, -360, 360),
    format: format as ImageFormat | '',
    quality: num('quality', p.quality, 0, 100),
    keepMetadata: Boolean(p.keep_metadata),
    autoOrient: !p.no_auto_orient,
    tileSize,
    tiledOutput: tiledOutput as ImageParams['tiledOutput'],
  };
}
