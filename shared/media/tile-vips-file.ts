/**
 * Writes a rectangle of an 8-bit raw pixel buffer as a libvips `.v` file, the format the stitch
 * reads through mmap windows.
 *
 * Why by hand: a worker's processed tile is one raw buffer with the halo still on. Cropping it with
 * a second sharp pipeline costs another pass over every pixel (and sharp turns a one-band raw input
 * into three-band sRGB on the way); for a whole-width strip the core is one contiguous byte range
 * that can be written as is, behind a 64-byte header.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Rect } from './tiling.js';

/** libvips' magic number as it opens a little-endian `.v` file. */
const MAGIC_INTEL = 0xb6a6f208;
/** libvips' magic number as it opens a big-endian `.v` file. */
const MAGIC_SPARC = 0x08f2a6b6;
/** VipsInterpretation values of the header's Type field. */
const INTERPRETATION_B_W = 1;
const INTERPRETATION_SRGB = 22;
const HEADER_BYTES = 64;

/** An image's resolution as libvips keeps it, in pixels per millimetre (PNG pHYs, JPEG/TIFF DPI, DeepZoom's xres). */
export interface Resolution {
  xres: number;
  yres: number;
}

/** libvips' resolution of an image that has none (1 px/mm, 25.4 dpi). */
export const DEFAULT_RESOLUTION: Resolution = { xres: 1, yres: 1 };

/**
 * The 64-byte `.v` header of a width x height image of `channels` 8-bit bands (no compression, no
 * coding), with `res` (the source's: without it a PNG output would say 25.4 dpi).
 */
export function vipsHeader(width: number, height: number, channels: number, res: Resolution = DEFAULT_RESOLUTION): Buffer {
  if (!(channels >= 1 && channels <= 4)) throw new RangeError(`vipsHeader: ${channels} channels`);
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(MAGIC_INTEL, 0);
  h.writeUInt32LE(width, 4);
  h.writeUInt32LE(height, 8);
  h.writeUInt32LE(channels, 12);
  h.writeUInt32LE(8, 16); // bits per band (unused by libvips, written as it does)
  h.writeUInt32LE(0, 20); // BandFmt: VIPS_FORMAT_UCHAR
  h.writeUInt32LE(0, 24); // Coding: none
  h.writeUInt32LE(channels <= 2 ? INTERPRETATION_B_W : INTERPRETATION_SRGB, 28);
  h.writeFloatLE(res.xres, 32); // Xres, pixels per mm
  h.writeFloatLE(res.yres, 36); // Yres
  return h;
}

/** The resolution in the header of a `.v` file's first bytes (at least 64), or undefined when it is not a little-endian `.v`. */
export function vipsResolution(head: Buffer): Resolution | undefined {
  if (head.length < HEADER_BYTES || head.readUInt32BE(0) !== MAGIC_INTEL) return undefined;
  const [xres, yres] = [head.readFloatLE(32), head.readFloatLE(36)];
  return xres > 0 && yres > 0 ? { xres, yres } : undefined;
}

/**
 * The size a `.v` file's header gives (either byte order), or undefined when `file` is not a `.v`
 * at all. The stitch asks this of every tile a worker sent before libvips opens it: libvips picks a
 * loader by a file's content, and a tile that is not what it should be (a worker's fault, or a
 * hostile worker's SVG) must never reach another loader.
 */
export async function readVipsSize(file: string): Promise<{ width: number; height: number; channels: number; bandFormat: number } | undefined> {
  const fh = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(HEADER_BYTES), 0, HEADER_BYTES, 0);
    if (bytesRead < HEADER_BYTES) return undefined;
    const magic = buffer.readUInt32BE(0);
    if (magic !== MAGIC_INTEL && magic !== MAGIC_SPARC) return undefined;
    const le = magic === MAGIC_INTEL;
    const int = (at: number): number => (le ? buffer.readUInt32LE(at) : buffer.readUInt32BE(at));
    return { width: int(4), height: int(8), channels: int(12), bandFormat: int(20) };
  } finally {
    await fh.close();
  }
}

/** The resolution in a `.v` file's header; libvips' default when the file is not a little-endian `.v`. */
export async function readVipsResolution(file: string): Promise<Resolution> {
  const fh = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(HEADER_BYTES), 0, HEADER_BYTES, 0);
    return vipsResolution(buffer.subarray(0, bytesRead)) ?? DEFAULT_RESOLUTION;
  } finally {
    await fh.close();
  }
}

/**
 * Writes `rect` of `data` (row-major, `width` x `height` x `channels` bytes, 8 bits a band) to
 * `file` as a `.v` image. Whole-width rectangles are one write; others are copied row by row in
 * blocks of about 16 MiB.
 */
export async function writeVipsRect(
  file: string,
  data: Buffer,
  image: { width: number; height: number; channels: number },
  rect: Rect,
  res: Resolution = DEFAULT_RESOLUTION,
): Promise<void> {
  const { width, height, channels } = image;
  if (data.length !== width * height * channels) throw new RangeError(`writeVipsRect: ${data.length} bytes for ${width}x${height}x${channels}`);
  if (rect.x < 0 || rect.y < 0 || rect.w <= 0 || rect.h <= 0 || rect.x + rect.w > width || rect.y + rect.h > height) {
    throw new RangeError(`writeVipsRect: ${rect.w}x${rect.h} at ${rect.x},${rect.y} is outside ${width}x${height}`);
  }
  const fh = await open(file, 'w');
  try {
    await writeAll(fh, vipsHeader(rect.w, rect.h, channels, res), 0, HEADER_BYTES);
    const stride = width * channels;
    const rowBytes = rect.w * channels;
    if (rect.x === 0 && rect.w === width) {
      await writeAll(fh, data, rect.y * stride, rect.h * stride);
      return;
    }
    const rowsPerBlock = Math.max(1, Math.floor((16 << 20) / rowBytes));
    const block = Buffer.allocUnsafe(Math.min(rect.h, rowsPerBlock) * rowBytes);
    for (let y = 0; y < rect.h; y += rowsPerBlock) {
      const rows = Math.min(rowsPerBlock, rect.h - y);
      for (let r = 0; r < rows; r++) {
        const from = (rect.y + y + r) * stride + rect.x * channels;
        data.copy(block, r * rowBytes, from, from + rowBytes);
      }
      await writeAll(fh, block, 0, rows * rowBytes);
    }
  } finally {
    await fh.close();
  }
}

/** One write(2) moves at most about 2 GiB: loop until `length` bytes are written. */
async function writeAll(fh: FileHandle, buf: Buffer, offset: number, length: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(buf, offset + done, Math.min(length - done, 1 << 30));
    done += bytesWritten;
  }
}

/** Bytes per sample of each VipsBandFormat (uchar, char, ushort, short, uint, int, float, complex, double, dpcomplex). */
const SAMPLE_BYTES = [1, 1, 2, 2, 4, 4, 4, 8, 8, 16];

/**
 * The extension block of a `.v` file: the XML after its pixels, where libvips keeps the image's
 * metadata (ICC profile, EXIF, XMP); empty when there is none.
 */
export function vipsExtension(file: Buffer): Buffer {
  if (file.length < HEADER_BYTES || file.readUInt32BE(0) !== MAGIC_INTEL) throw new RangeError('vipsExtension: not a little-endian .v file');
  const [width, height, bands, format] = [file.readUInt32LE(4), file.readUInt32LE(8), file.readUInt32LE(12), file.readUInt32LE(20)];
  const sample = SAMPLE_BYTES[format];
  if (sample === undefined || file.readUInt32LE(24) !== 0) throw new RangeError(`vipsExtension: band format ${format} or coding not supported`);
  return file.subarray(Math.min(file.length, HEADER_BYTES + width * height * bands * sample));
}

/**
 * Writes a 1 x 1 `.v` image of `channels` 8-bit bands carrying the metadata `extension` (from
 * {@link vipsExtension}). Joined with the tiles, it hands the metadata to the stitched image:
 * libvips' arrayjoin gives its result the metadata of all its inputs.
 */
export async function writeVipsCarrier(file: string, channels: number, extension: Buffer, res: Resolution = DEFAULT_RESOLUTION): Promise<void> {
  const fh = await open(file, 'w');
  try {
    const bytes = Buffer.concat([vipsHeader(1, 1, channels, res), Buffer.alloc(channels), extension]);
    await writeAll(fh, bytes, 0, bytes.length);
  } finally {
    await fh.close();
  }
}
