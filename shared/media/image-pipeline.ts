/** The sharp pipeline of the `image` kind, shared by the batch path and the tiled path. */
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import sharp, { type OutputInfo, type Sharp } from 'sharp';
import { envInt } from '../config.js';
import type { ImageFormat, ImageParams } from '../kinds/image-params.js';
import { GREY_FORMATS, intermediateSpace, splitForTiles, type SourceSamples } from './tile-pipeline.js';

// libvips's operation cache keeps the files it opened open, inputs removed since among them (their
// disk space not given back for as long as the process lives); every image here is opened once.
sharp.cache(false);

/** Largest input accepted, in pixels (width x height x pages), checked from the header before decoding. */
export function maxInputPixels(): number {
  return envInt('TESSERA_MAX_INPUT_PIXELS', 1_000_000_000);
}

/**
 * Why a GIF is cut short, or undefined: it must reach its trailer (0x3B). libvips decodes a cut
 * animation without a word, its last frames missing or garbled; a cut still GIF it refuses. A file
 * whose last byte but zero padding is the trailer passes at once; any other is walked block by
 * block (sub-blocks skipped by their lengths, nothing decoded): bytes after the trailer (a CR LF of
 * a text-mode copy, data glued on, padding past a few KiB) were taken for a cut (review IWILD).
 */
export async function gifTruncation(file: string): Promise<string | undefined> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const tail = Buffer.alloc(Math.min(size, 4096));
    await fh.read(tail, 0, tail.length, size - tail.length);
    let end = tail.length;
    while (end > 0 && tail[end - 1] === 0) end--;
    if (end > 0 && tail[end - 1] === 0x3b) return undefined;
    return (await gifReachesTrailer(fh, size)) ? undefined : 'a GIF cut short (it does not reach its trailer): a copy or upload that stopped early?';
  } finally {
    await fh.close();
  }
}

/**
 * Why a TIFF is cut short, or undefined: a copy or upload that stopped early. A TIFF writer puts
 * the image directory (the tags: size, samples, where the strips are) after the pixels, so a file
 * cut short of its end mostly has none, and libvips says only that it is of an unsupported format;
 * cut in the tags' values or in the pixels (a directory written first), it opens, and a worker's
 * decode failed on a "read error". Looks at the first directory, its values stored apart, and the
 * extent of its strips or tiles, against the file's size.
 */
export async function tiffTruncation(file: string): Promise<string | undefined> {
  return withTiff(file, async ({ size, big, read, u16, u32, u64, countBytes, entryBytes, inline, first }) => {
    const cutAt = (what: string): string => `a TIFF cut short (${size} bytes, ${what} past the end): a copy or upload that stopped early?`;
    if (first === undefined) return cutAt('its header');
    const offset = first;
    const count = await read(offset, countBytes);
    if (!count) return cutAt(`its image directory (at byte ${offset})`);
    const n = big ? u64(count, 0) : u16(count, 0);
    if (n > 0xffff) return undefined;
    const entries = await read(offset + countBytes, n * entryBytes);
    if (!entries) return cutAt(`its image directory (at byte ${offset})`);
    /** Bytes of one value of each TIFF field type (TIFF 6.0, BigTIFF's 16-18). */
    const TYPE_BYTES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 };
    const values = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const e = i * entryBytes;
      const [tag, type] = [u16(entries, e), u16(entries, e + 2)];
      const items = big ? u64(entries, e + 4) : u32(entries, e + 4);
      const bytes = items * (TYPE_BYTES[type] ?? 0);
      const at = e + (big ? 12 : 8);
      let data: Buffer | undefined = entries.subarray(at, at + inline);
      // The strips' or tiles' offsets and byte counts are read (below), as SHORT, LONG or LONG8
      // (libvips refuses any other type with a reason of its own); other values only measured.
      const extent = (tag === 273 || tag === 279 || tag === 324 || tag === 325) && (type === 3 || type === 4 || type === 16);
      if (bytes > inline) {
        const apart = big ? u64(entries, at) : u32(entries, at);
        if (apart + bytes > size) return cutAt(`the values of its tag ${tag}`);
        data = extent ? await read(apart, bytes) : undefined;
      }
      if (!data || !extent || data.length < bytes) continue;
      const width = TYPE_BYTES[type]!;
      const read1 = (k: number): number => (width === 2 ? u16(data!, k * 2) : width === 4 ? u32(data!, k * 4) : u64(data!, k * 8));
      values.set(tag, Array.from({ length: items }, (_, k) => read1(k)));
    }
    for (const [offsets, counts] of [[273, 279], [324, 325]] as const) {
      const o = values.get(offsets);
      const c = values.get(counts);
      if (!o || !c) continue;
      for (let k = 0; k < Math.min(o.length, c.length); k++) {
        if (o[k]! + c[k]! > size) return cutAt(`its ${offsets === 273 ? 'strip' : 'tile'} ${k + 1} of ${o.length}`);
      }
    }
    return undefined;
  });
}

/** What walking a TIFF's directories needs: its size and layout, and reads of its bytes. */
interface TiffReader {
  size: number;
  /** BigTIFF (version 43): 64-bit offsets and counts. */
  big: boolean;
  /** `n` bytes at `pos`, or undefined where the file has fewer. */
  read(pos: number, n: number): Promise<Buffer | undefined>;
  u16(b: Buffer, o: number): number;
  u32(b: Buffer, o: number): number;
  u64(b: Buffer, o: number): number;
  /** Bytes of a directory's entry count, of one entry, and of the value (or offset) an entry holds. */
  countBytes: number;
  entryBytes: number;
  inline: number;
  /** The first directory's offset; undefined where the header is cut short (a BigTIFF's under 16 bytes). */
  first: number | undefined;
}

/** Runs `use` on `file` read as a TIFF, closing it after; undefined where it is none (no II/MM header of version 42 or 43). */
async function withTiff<T>(file: string, use: (t: TiffReader) => Promise<T>): Promise<T | undefined> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const read = async (pos: number, n: number): Promise<Buffer | undefined> => {
      if (pos < 0 || pos + n > size) return undefined;
      const b = Buffer.alloc(n);
      return (await fh.read(b, 0, n, pos)).bytesRead === n ? b : undefined;
    };
    const head = await read(0, Math.min(16, size));
    const order = head?.toString('latin1', 0, 2);
    if (!head || head.length < 8 || (order !== 'II' && order !== 'MM')) return undefined;
    const le = order === 'II';
    const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const u64 = (b: Buffer, o: number): number => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
    const version = u16(head, 2);
    if (version !== 42 && version !== 43) return undefined;
    const big = version === 43;
    const first = big ? (head.length < 16 ? undefined : u64(head, 8)) : u32(head, 4);
    return await use({ size, big, read, u16, u32, u64, countBytes: big ? 8 : 2, entryBytes: big ? 20 : 12, inline: big ? 8 : 4, first });
  } finally {
    await fh.close();
  }
}

/** Whether a GIF's blocks, walked from its header, lead to its trailer within the file. */
async function gifReachesTrailer(fh: Awaited<ReturnType<typeof open>>, size: number): Promise<boolean> {
  const buf = Buffer.alloc(64 * 1024);
  let start = 0;
  let length = 0;
  const byteAt = async (pos: number): Promise<number | undefined> => {
    if (pos >= size) return undefined;
    if (pos < start || pos >= start + length) {
      start = pos;
      length = (await fh.read(buf, 0, buf.length, pos)).bytesRead;
      if (length === 0) return undefined;
    }
    return buf[pos - start];
  };
  /** The position after a run of sub-blocks starting at `pos`, or undefined where the file ends first. */
  const afterSubBlocks = async (pos: number): Promise<number | undefined> => {
    for (;;) {
      const n = await byteAt(pos);
      if (n === undefined) return undefined;
      pos += 1 + n;
      if (n === 0) return pos;
    }
  };
  const colourTable = (flags: number): number => (flags & 0x80 ? 3 * (1 << ((flags & 7) + 1)) : 0);
  const screen = await byteAt(10);
  if (screen === undefined) return false;
  let pos: number | undefined = 13 + colourTable(screen);
  while (pos !== undefined) {
    const block = await byteAt(pos);
    if (block === 0x3b) return true;
    if (block === 0x21) {
      pos = await afterSubBlocks(pos + 2);
    } else if (block === 0x2c) {
      const flags = await byteAt(pos + 9);
      if (flags === undefined) return false;
      // The descriptor (10 bytes), its colour table, the LZW code size, then the image's sub-blocks.
      pos = await afterSubBlocks(pos + 10 + colourTable(flags) + 1);
    } else {
      return false;
    }
  }
  return false;
}

/** The pages (frames) of an image as its header states them, a TIFF's reduced-resolution levels and masks not counted (see {@link tiffPages}). */
export async function imagePages(file: string, meta: Pick<sharp.Metadata, 'format' | 'pages'>): Promise<number> {
  return meta.format === 'tiff' ? tiffPages(file, meta.pages ?? 1) : (meta.pages ?? 1);
}

/**
 * The pages of a TIFF that are pages: libvips counts every directory of its chain, and a pyramidal
 * TIFF (libvips' own, a Cloud-Optimized GeoTIFF, a scanner's "TIFF with preview") follows its image
 * with the same image at half, quarter... size, each directory marked NewSubfileType bit 0 (a
 * reduced-resolution version of another image, TIFF 6.0). Where every directory after the first
 * is one of those, the file is one image: 1. Else (or unreadable here) `pages`, as libvips says.
 */
export async function tiffPages(file: string, pages: number): Promise<number> {
  if (pages <= 1) return pages;
  const walked = withTiff(file, async ({ big, read, u16, u32, u64, countBytes, entryBytes, inline, first }) => {
    if (first === undefined) return pages;
    let next = first;
    const seen = new Set<number>();
    for (let k = 0; next !== 0; k++) {
      if (seen.has(next) || k > pages) return pages;
      seen.add(next);
      const c = await read(next, countBytes);
      if (!c) return pages;
      const n = big ? u64(c, 0) : u16(c, 0);
      // A directory holds a few dozen tags: a count past a classic TIFF's own limit is not a TIFF's.
      if (n > 0xffff) return pages;
      const entries = await read(next + countBytes, n * entryBytes + inline);
      if (!entries) return pages;
      let subfileType = 0;
      for (let i = 0; i < n; i++) {
        const e = i * entryBytes;
        if (u16(entries, e) === 254) subfileType = u32(entries, e + (big ? 12 : 8));
      }
      // A reduced-resolution version (bit 0) or a transparency mask (bit 2: GDAL's COG writes one
      // after the image and after each overview) is no page of its own.
      if (k > 0 && (subfileType & 5) === 0) return pages;
      next = big ? u64(entries, n * entryBytes) : u32(entries, n * entryBytes);
    }
    return 1;
  });
  // Unreadable here (or not a TIFF after all): as libvips says.
  return (await walked.catch(() => undefined)) ?? pages;
}

/** Opens an input with explicit limits (never sharp's implicit default). */
export function openImage(input: string | Buffer, options: sharp.SharpOptions = {}): Sharp {
  return sharp(input, { limitInputPixels: maxInputPixels(), sequentialRead: true, ...options });
}

/**
 * The steps up to the resize: orient, extract, flatten onto the background ({@link forFormat}),
 * resize (sharp puts grayscale, given below, before the resize, and the flatten before both).
 */
export function applyGeometry(img: Sharp, p: ImageParams): Sharp {
  if (p.autoOrient) img = img.autoOrient();
  if (p.crop) img = img.extract(p.crop);
  // A grey source is processed in grey, and a background in colour with it: red bars came out grey
  // 54, a grey logo laid on blue in JPEG on black. Processed in sRGB where a colour is laid down.
  if (colourfulBackground(p)) img = img.pipelineColourspace('srgb');
  if (p.flatten && p.background) img = img.flatten({ background: p.background });
  if (p.width || p.height) {
    img = img.resize({ width: p.width || undefined, height: p.height || undefined, fit: p.fit, withoutEnlargement: p.noEnlarge, ...(p.background && { background: p.background }) });
  }
  return img;
}

/**
 * Whether a background given shows in the result: a `contain` box's bars, a turn's corners, or
 * transparency laid on it (`laidOn`: in JPEG, see {@link forFormat}).
 */
export function backgroundShows(p: ImageParams, laidOn = Boolean(p.flatten)): boolean {
  return p.background !== '' && (laidOn || (p.fit === 'contain' && (p.width > 0 || p.height > 0)) || p.rotate % 90 !== 0);
}

/** Whether the params lay down a background that is not a grey ({@link backgroundShows}). */
function colourfulBackground(p: ImageParams): boolean {
  const hex = p.background;
  return backgroundShows(p) && !(hex.slice(1, 3) === hex.slice(3, 5) && hex.slice(3, 5) === hex.slice(5, 7));
}

/**
 * The params as an image written in `format` takes them: in a format without transparency (JPEG)
 * a background given is opaque and the transparent pixels are laid on it (`flatten`), as they are
 * on black without one (libvips' writer); in the others they stay transparent, and the background
 * colours only the bars and corners the pipeline adds.
 */
export function forFormat(p: ImageParams, format: string): ImageParams {
  if (!p.background || format !== 'jpeg') return p;
  return { ...p, background: `${p.background.slice(0, 7)}FF`, flatten: true };
}

/**
 * The steps after the resize. sharp runs them in its own order whatever the order of the calls:
 * grayscale (before the resize), flip/flop, rotate, blur, modulate, sharpen (README, "Order of the steps").
 */
export function applyFilters(img: Sharp, p: ImageParams): Sharp {
  if (p.rotate % 360 !== 0) img = img.rotate(p.rotate, p.background ? { background: p.background } : {});
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

/**
 * The whole pipeline short of encoding, in one sharp call. Exact unless {@link needsGeometryPass}:
 * then {@link renderImage} runs it in two.
 */
export function applyPipeline(img: Sharp, p: ImageParams): Sharp {
  return applyFilters(applyGeometry(img, p), p);
}

/**
 * Whether one sharp call would make the wrong image: sharp crops a `cover` resize to its box, and
 * pads a `contain` one, only *after* rotating and mirroring, with the box unturned. After a quarter
 * turn a 400 x 200 photo stored sideways (EXIF 6) asked for width 100 comes out 100 x 100, not
 * 200 x 100; a 100 x 80 cover box gives 80 x 80. After a half turn or a flip the centred crop or
 * padding of an odd overflow lands a row off the one the same crop mirrored gives, which the tiled
 * path makes (review TILEOPT). Such params run the geometry first ({@link renderImage}).
 */
export function needsGeometryPass(p: ImageParams): boolean {
  const turn = (((p.rotate % 360) + 360) % 360);
  const mirrors = turn === 90 || turn === 180 || turn === 270 || p.flip || p.flop;
  return mirrors && (p.width > 0 || p.height > 0) && (p.fit === 'cover' || p.fit === 'contain');
}

/** Whether auto-orientation turns a source with this EXIF orientation a quarter (5-8): its sides swap. */
export const turnsQuarter = (p: Pick<ImageParams, 'autoOrient'>, orientation = 1): boolean => p.autoOrient && orientation >= 5;

/**
 * Width and height of the image the pipeline makes from a source of `dims` (sharp's geometry, to
 * the pixel or near it; fractional after a rotation by an angle that is not a right angle).
 */
export function outputSize(dims: { width: number; height: number; orientation: number }, p: ImageParams): { width: number; height: number } {
  let w = dims.width;
  let h = dims.height;
  if (turnsQuarter(p, dims.orientation)) [w, h] = [h, w];
  if (p.crop) [w, h] = [Math.min(p.crop.width, w), Math.min(p.crop.height, h)];
  if (p.width || p.height) {
    // sharp's ResolveShrink: one scale for both axes except with fill (which leaves an axis not
    // given as it is); cover and outside scale to the larger factor, contain and inside to the smaller.
    let sx: number;
    let sy: number;
    if (p.width && p.height) {
      const [fx, fy] = [p.width / w, p.height / h];
      if (p.fit === 'cover' || p.fit === 'outside') sx = sy = Math.max(fx, fy);
      else if (p.fit === 'contain' || p.fit === 'inside') sx = sy = Math.min(fx, fy);
      else [sx, sy] = [fx, fy];
    } else if (p.fit === 'fill') [sx, sy] = p.width ? [p.width / w, 1] : [1, p.height / h];
    else sx = sy = p.width ? p.width / w : p.height / h;
    // withoutEnlargement clamps each axis on its own.
    if (p.noEnlarge) [sx, sy] = [Math.min(1, sx), Math.min(1, sy)];
    [w, h] = [Math.max(1, Math.round(w * sx)), Math.max(1, Math.round(h * sy))];
    // Then cover crops down to the box, contain pads up to it: to each side given, also with one
    // alone (which only shows with noEnlarge: `--width 800 --fit contain --no-enlarge` on 400x300 is 800x300).
    if (p.width && p.height && p.fit === 'cover') [w, h] = [Math.min(w, p.width), Math.min(h, p.height)];
    if (p.fit === 'contain') [w, h] = [Math.max(w, p.width || 0), Math.max(h, p.height || 0)];
  }
  const angle = ((p.rotate % 360) + 360) % 360;
  if (angle % 90 !== 0) {
    const a = (p.rotate * Math.PI) / 180;
    const [c, s] = [Math.abs(Math.cos(a)), Math.abs(Math.sin(a))];
    [w, h] = [w * c + h * s, w * s + h * c];
  } else if (angle % 180 === 90) {
    [w, h] = [h, w];
  }
  return { width: w, height: h };
}

/** Pixels of the image the pipeline makes from a source of `dims` ({@link outputSize}), per frame. */
export function outputPixels(dims: { width: number; height: number; orientation: number }, p: ImageParams): number {
  const { width, height } = outputSize(dims, p);
  return Math.round(width * height);
}

/** Formats the image kind writes: those a job may ask for, and GIF, which a GIF input keeps (same family). */
export type OutputFormat = ImageFormat | 'gif';

/** Output formats that hold an animation: an animated input keeps every frame in these, and only its first in the others. */
export const ANIMATED_FORMATS: ReadonlySet<OutputFormat> = new Set<OutputFormat>(['webp', 'gif']);

/**
 * Whether an input of several frames (pages) keeps them all in `output`: an animation in a format
 * that holds one, and a multi-page TIFF (scanned pages) kept as TIFF too; else its first frame is
 * the image.
 */
export function keepsFrames(inputFormat: string | undefined, output: OutputFormat): boolean {
  return ANIMATED_FORMATS.has(output) || (output === 'tiff' && inputFormat === 'tiff');
}

/**
 * Why the frames of an animation (sharp's pages, stacked top to bottom) cannot go through `p`
 * frame by frame, or undefined when they can. sharp runs each step on the whole stack: resize,
 * crop, flop, greyscale and colour work per frame; a rotation other than 180 degrees is refused by
 * sharp, and 180 degrees or a flip reverses the frames' order; blur and sharpen mix the edges of
 * neighbouring frames.
 */
export function animationRefusal(p: ImageParams, orientation: number): string | undefined {
  const steps = [
    p.rotate % 360 !== 0 ? 'rotate' : '',
    p.flip ? 'flip' : '',
    p.blur > 0 ? 'blur' : '',
    p.sharpen ? 'sharpen' : '',
    p.autoOrient && orientation !== 1 ? `auto-orientation (EXIF orientation ${orientation})` : '',
  ].filter(Boolean);
  if (steps.length === 0) return undefined;
  return `an animated or multi-page image keeps its frames only through resize, crop, flop, greyscale and colour steps, not ${steps.join(', ')}; ask for a still format (jpeg, png) to process its first frame`;
}

/**
 * Why `p.crop` does not fit an image of these header figures (one frame's height for an animation),
 * or undefined. The crop applies after auto-orientation (applyGeometry), to one frame.
 */
export function cropProblem(p: ImageParams, meta: { width?: number | undefined; height?: number | undefined; pageHeight?: number | undefined; orientation?: number | undefined }): string | undefined {
  const c = p.crop;
  if (!c) return undefined;
  const quarter = turnsQuarter(p, meta.orientation);
  const [w, h] = quarter ? [meta.pageHeight ?? meta.height ?? 0, meta.width ?? 0] : [meta.width ?? 0, meta.pageHeight ?? meta.height ?? 0];
  if (c.left + c.width <= w && c.top + c.height <= h) return undefined;
  return `the crop (${c.width}x${c.height} at ${c.left},${c.top}) reaches outside the image, which is ${w}x${h}${quarter ? ' once auto-oriented' : ''}`;
}

const WRITABLE: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'avif', 'tiff', 'gif']);

/** Output format: the requested one, else the input's own when we can write it, else JPEG. */
export function outputFormat(p: ImageParams, inputFormat: string | undefined): OutputFormat {
  if (p.format) return p.format;
  if (inputFormat === 'heif') return 'avif';
  return inputFormat && WRITABLE.has(inputFormat) ? (inputFormat as OutputFormat) : 'jpeg';
}

export const FORMAT_EXTENSION: Record<OutputFormat, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', avif: 'avif', tiff: 'tif', gif: 'gif' };

/**
 * sharp's TIFF writer sets its own resolution (1 px/mm, 25.4 dpi) unless given one: the source's
 * `density` (dots per inch, sharp's metadata) in its terms, pixels per millimetre.
 */
export function tiffResolution(density: number | undefined): { xres?: number; yres?: number } {
  return density && density > 0 ? { xres: density / 25.4, yres: density / 25.4 } : {};
}

/**
 * Whether the params pad the picture (a `contain` box, a turn off the right angles) of a source
 * with an alpha band, or with a background given: sharp scales a background to 16 bits by 256,
 * so a 16-bit alpha's padding is 255 x 256, 0.4% transparent, white bars are 65280 (254 once read
 * at 8 bits) and a translucent background's added alpha band leaves the picture 0.4% transparent,
 * which the 8-bit cast hid. Such results stay 8-bit.
 */
export function padsAlpha(m: { hasAlpha?: boolean | undefined }, p: Pick<ImageParams, 'fit' | 'width' | 'height' | 'rotate' | 'background'>): boolean {
  return (Boolean(m.hasAlpha) || p.background !== '') && ((p.fit === 'contain' && p.width > 0 && p.height > 0) || p.rotate % 90 !== 0);
}

/** Formats written at 16 bits a sample where the source has them: JPEG, WebP, GIF and sharp's AVIF hold 8. */
export function holdsSixteenBits(format: OutputFormat): boolean {
  return format === 'png' || format === 'tiff';
}

/**
 * The 16-bit space a result is written in, or undefined for 8 bits. A 16-bit RGB or grey source
 * (sharp's `ushort` in `rgb16` or `grey16`, after any conversion through its own profile) written
 * as PNG or TIFF keeps its 16 bits, in the bands it would have at 8 (RGB, or one grey band where
 * `oneBand`); made grey it is 8-bit, as sharp's greyscale is, and so is one {@link padsAlpha}.
 * sharp itself converts every result to 8-bit sRGB at the very end unless told a 16-bit space: the
 * pipeline before that runs at 16 bits.
 */
export function sixteenBitSpace(
  m: { depth?: string | undefined; space?: string | undefined; hasAlpha?: boolean | undefined },
  p: Pick<ImageParams, 'grayscale' | 'fit' | 'width' | 'height' | 'rotate' | 'background'>,
  format: OutputFormat,
  oneBand = false,
): 'rgb16' | 'grey16' | undefined {
  if (!isSixteenBitRgbOrGrey(m) || p.grayscale || !holdsSixteenBits(format) || padsAlpha(m, p)) return undefined;
  return oneBand ? 'grey16' : 'rgb16';
}

/** sharp's `ushort` samples in `rgb16` or `grey16`. */
export function isSixteenBitRgbOrGrey(m: { depth?: string | undefined; space?: string | undefined }): boolean {
  return m.depth === 'ushort' && (m.space === 'rgb16' || m.space === 'grey16');
}

/** What {@link applyEncoding} needs to know of the source beyond its pixels. */
export interface EncodingSource {
  /** Dots per inch (sharp's metadata), which TIFF must be told. */
  density?: number | undefined;
  /**
   * An animation's loop count (0: for ever) and frame delays (ms), given to the GIF and WebP
   * writers: an image written through the geometry pass's intermediate lost the loop (a GIF that
   * looped for ever played once).
   */
  loop?: number | undefined;
  delay?: number[] | undefined;
  /** A one-band (grey) image with an embedded ICC profile. */
  greyWithProfile?: boolean | undefined;
  /**
   * Samples that sharp's mild sharpen leaves in float unless cast: any but 16-bit RGB or grey
   * (which sharp casts back to 16 bits), e.g. 8-bit, or 16-bit CMYK converted to sRGB.
   */
  sharpenedInFloat?: boolean | undefined;
  /** The grey source's own ICC profile as a file, where a sharpened TIFF must be cast through it. */
  profile?: string | undefined;
  /** A CMYK source with its own profile (sharp's `space` cmyk, `hasProfile`). */
  cmykWithProfile?: boolean | undefined;
  /** The 16-bit space to write the result in ({@link sixteenBitSpace}); 8 bits where undefined. */
  sixteenBit?: 'rgb16' | 'grey16' | undefined;
  /**
   * Converted to sRGB through the source's own profile into a copy, rendered instead, the metadata
   * kept (a 16-bit grey source written without a grey band: tile-pipeline.ts convertedAhead): the
   * result is tagged sRGB, as an 8-bit grey source's is.
   */
  convertedAhead?: boolean | undefined;
}


/** Encoder settings; metadata is stripped unless asked to keep it. */
export function applyEncoding(img: Sharp, p: ImageParams, format: OutputFormat, source: EncodingSource = {}): Sharp {
  const density = source.density;
  if (p.keepMetadata) {
    img = img.keepMetadata();
    // A CMYK source's own profile cannot stay with RGB samples, and sharp, told to keep it, ignores
    // it: the samples were converted with libvips' built-in CMYK profile instead (a press profile
    // far from it: 206,77,30 came out 196,56,33). Converted through its own, tagged sRGB (review IC).
    if (source.cmykWithProfile) img = img.withIccProfile('srgb');
    // sharp writes sRGB, to which a grey profile cannot be attached: it was dropped, the samples
    // left unconverted (the image much darker or lighter). Kept one band where the format holds it;
    // else converted through the profile and tagged sRGB.
    if (source.greyWithProfile) img = GREY_FORMATS.has(format) ? img.toColourspace(source.sixteenBit ?? 'b-w') : img.withIccProfile('srgb');
    if (source.convertedAhead) img = img.withIccProfile('srgb');
  }
  // Last, so that every step before runs at 16 bits and only the writer's cast is left out.
  if (source.sixteenBit && !(p.keepMetadata && source.greyWithProfile)) img = img.toColourspace(source.sixteenBit);
  const quality = p.quality || undefined;
  switch (format) {
    case 'jpeg':
      return img.jpeg({ quality, mozjpeg: false });
    case 'png':
      return img.png();
    case 'webp':
      return img.webp({ quality, ...animation(source) });
    case 'avif':
      return img.avif({ quality, effort: 2 });
    case 'tiff':
      // sharp's mild sharpen (no sigma) leaves the samples in float, which the other writers cast
      // to 8 bits and libvips' TIFF writer writes as they are: a 32-bit float TIFF of 0..255 values
      // that reads back white. A transform to sRGB casts them (the same pixels, as the tiled path
      // writes them); with keep_metadata it tags the output sRGB, converting a source's own profile.
      // Of samples left in float when sharpened: an 8-bit source, a 16-bit CMYK one (converted to
      // sRGB, it came out as the float TIFF too), or any made grey first (greyscale is 8-bit b-w,
      // as in the tiled path; a 16-bit source turned grey came out as the float TIFF, review
      // IMGOPT). A 16-bit RGB or grey one is cast back to 16 bits by sharp (and written so, or at 8
      // bits), and the transform would convert its colours. A grey source whose profile is kept is
      // cast through that profile (one band, its tones and its profile kept): skipped, it came out
      // as the 32-bit float TIFF.
      if (p.sharpen && (source.sharpenedInFloat || p.grayscale)) {
        if (!(p.keepMetadata && source.greyWithProfile)) img = img.withIccProfile('srgb', { attach: p.keepMetadata });
        else if (source.profile) img = img.withIccProfile(source.profile, { attach: true });
      }
      return img.tiff({ quality, compression: 'lzw', ...tiffResolution(density) });
    case 'gif':
      // After a step that makes colours the source has not (grey, hue, brightness, saturation, a
      // blur's ramps, a sharpen's halos) a palette of its own: told to reuse the source's (sharp's
      // default), libvips snapped them back to the old ones (hue 40: up to 111 levels off; review
      // TILEOPT; a two-colour GIF's blur undone, K14). Otherwise the source's, as sharp does: a
      // palette of its own costs an animation's resize 4-5 times the time and nearly twice the
      // bytes (review K13).
      return img.gif({ reuse: !(p.grayscale || p.brightness || p.saturation || p.hue || p.blur || p.sharpen), ...animation(source) });
  }
}

/** The source animation's loop and delays, for the GIF and WebP writers (none for a still). */
function animation(source: EncodingSource): { loop?: number; delay?: number[] } {
  return { ...(source.loop !== undefined && { loop: source.loop }), ...(source.delay && source.delay.length > 0 && { delay: source.delay }) };
}

/** What {@link renderImage} needs besides the params. */
export interface RenderOptions {
  format: OutputFormat;
  /** Keep every frame of an animated or multi-page input (the format must hold them: {@link keepsFrames}). */
  animated: boolean;
  /** The source's samples (sharp metadata), for the geometry pass's intermediate. */
  samples: SourceSamples;
  /** The source's resolution and profile (sharp's metadata), kept in the output. */
  source?: EncodingSource;
  /** Scratch folder for the geometry pass's intermediate. */
  workDir: string;
  signal: AbortSignal;
}

/**
 * Runs the image kind's pipeline on `file` and writes `dest`. In one sharp call, unless that would
 * make the wrong image ({@link needsGeometryPass}): then the geometry (orient, crop, greyscale,
 * resize with its crop or padding) is written to a libvips intermediate first and the rest runs on
 * it, exactly as the tiled path splits them (tile-pipeline.ts), so that both paths agree. With
 * `keep_metadata` the intermediate keeps the source's profile and EXIF, and its pixels are not
 * converted, as in one call.
 */
export async function renderImage(file: string, p: ImageParams, dest: string, o: RenderOptions): Promise<OutputInfo> {
  const source = openImage(file, o.animated ? { animated: true } : {});
  if (!needsGeometryPass(p)) return written(applyEncoding(applyPipeline(source, p), p, o.format, o.source), dest, o.signal);
  const split = splitForTiles(p);
  const intermediate = path.join(o.workDir, `.geometry-${path.basename(dest)}.v`);
  try {
    let first = applyPipeline(source, split.prefix);
    // Without the space, sharp would write a 16-bit source's geometry as 8-bit before the filters.
    const space = intermediateSpace(o.samples, split.prefix);
    if (space) first = first.toColourspace(space);
    if (p.keepMetadata) first = first.keepMetadata();
    // Told to keep a CMYK source's own profile, sharp ignores it and converts with libvips'
    // built-in one (see applyEncoding): the intermediate is converted through its own, as the
    // one-call path converts the output (review IMGOPT).
    if (p.keepMetadata && o.source?.cmykWithProfile) first = first.withIccProfile('srgb');
    // One band, as the second pass finds it: written as sRGB, the intermediate dropped a grey source's
    // own profile (which sRGB cannot carry) with its samples unconverted, and the output's tones were wrong.
    if (p.keepMetadata && o.source?.greyWithProfile && !space) first = first.toColourspace('b-w');
    await written(first, intermediate, o.signal);
    o.signal.throwIfAborted();
    // Random access: the turn reads the intermediate's columns.
    return await written(applyEncoding(applyPipeline(openImage(intermediate, { sequentialRead: false }), split.tile), p, o.format, o.source), dest, o.signal);
  } finally {
    await rm(intermediate, { force: true });
  }
}

/** Writes `img` to `dest`, stopping it when `signal` aborts. */
async function written(img: Sharp, dest: string, signal: AbortSignal): Promise<OutputInfo> {
  signal.throwIfAborted();
  // sharp has no cancellation: destroying the stream stops libvips at the next region.
  const onAbort = (): void => void img.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await img.toFile(dest);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
