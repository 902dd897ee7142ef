/** The sharp pipeline of the `image` kind, shared by the batch path and the tiled path. */
import sharp, { type Sharp } from 'sharp';
import { envInt } from '../config.js';
import type { ImageFormat, ImageParams } from '../kinds/image-params.js';

/** Largest input accepted, in pixels (width x height x pages), checked from the header before decoding. */
export function maxInputPixels(): number {
  return envInt('TESSERA_MAX_INPUT_PIXELS', 1_000_000_000);
}

/** Opens an input with explicit limits (never sharp's implicit default). */
export function openImage(input: string | Buffer, options: sharp.SharpOptions = {}): Sharp {
  return sharp(input, { limitInputPixels: maxInputPixels(), sequentialRead: true, ...options });
}

/** Geometry and colour steps, in a fixed order: orient, extract, resize, rotate, flip/flop. */
export function applyGeometry(img: Sharp, p: ImageParams): Sharp {
  if (p.autoOrient) img = img.autoOrient();
  if (p.crop) img = img.extract(p.crop);
  if (p.width || p.height) {
    img = img.resize({ width: p.width || undefined, height: p.height || undefined, fit: p.fit, withoutEnlargement: p.noEnlarge });
  }
  return img;
}

/** Steps after resize: rotate, flip/flop, neighbourhood filters, colour. */
export function applyFilters(img: Sharp, p: ImageParams): Sharp {
  if (p.rotate % 360 !== 0) img = img.rotate(p.rotate);
  if (p.flip) img = img.flip();
  if (p.flop) img = img.flop();
  if (p.blur > 0) img = img.blur(p.blur);
  if (p.sharpen) img = img.sharpen();
  if (p.grayscale) img = img.grayscale();
  if (p.brightness || p.saturation || p.hue) {
    img = img.modulate({ ...(p.brightness ? { brightness: p.brightness } : {}), ...(p.saturation ? { saturation: p.saturation } : {}), ...(p.hue ? { hue: p.hue } : {}) });
  }
  return img;
}

/** The whole pipeline short of encoding. */
export function applyPipeline(img: Sharp, p: ImageParams): Sharp {
  return applyFilters(applyGeometry(img, p), p);
}

const WRITABLE: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'avif', 'tiff']);

/** Output format: the requested one, else the input's own when we can write it, else JPEG. */
export function outputFormat(p: ImageParams, inputFormat: string | undefined): ImageFormat {
  if (p.format) return p.format;
  if (inputFormat === 'heif') return 'avif';
  return inputFormat && WRITABLE.has(inputFormat) ? (inputFormat as ImageFormat) : 'jpeg';
}

export const FORMAT_EXTENSION: Record<ImageFormat, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', avif: 'avif', tiff: 'tif' };

/** Encoder settings; metadata is stripped unless asked to keep it. */
export function applyEncoding(img: Sharp, p: ImageParams, format: ImageFormat): Sharp {
  if (p.keepMetadata) img = img.keepMetadata();
  const quality = p.quality || undefined;
  switch (format) {
    case 'jpeg':
      return img.jpeg({ quality, mozjpeg: false });
    case 'png':
      return img.png();
    case 'webp':
      return img.webp({ quality });
    case 'avif':
      return img.avif({ quality, effort: 2 });
    case 'tiff':
      return img.tiff({ quality, compression: 'lzw' });
  }
}
