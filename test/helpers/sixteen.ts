/**
 * 16-bit test images. sharp takes raw samples' format from the typed array it is given: a Node
 * Buffer is read as 8-bit whatever `raw.depth` says (its first half, then widened by the colour
 * conversion), so 16-bit fixtures are made from a Uint16Array, and read back at 16 bits.
 */
import sharp, { type Sharp } from 'sharp';

/** An image of 16-bit `samples` (interleaved, `channels` per pixel): rgb16, or grey16 for one or two bands. */
export function fromSamples16(samples: Uint16Array, width: number, height: number, channels: 1 | 2 | 3 | 4, pageHeight?: number): Sharp {
  return sharp(samples, { raw: { width, height, channels, ...(pageHeight ? { pageHeight } : {}) } }).toColourspace(channels <= 2 ? 'grey16' : 'rgb16');
}

/** The samples of `file` at 16 bits: RGB (alpha kept), or grey where it has one or two bands. */
export async function samples16(file: string): Promise<Uint16Array> {
  const m = await sharp(file, { limitInputPixels: 1e9 }).metadata();
  const raw = await sharp(file, { limitInputPixels: 1e9 }).toColourspace((m.channels ?? 3) <= 2 ? 'grey16' : 'rgb16').raw({ depth: 'ushort' }).toBuffer();
  return new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2);
}
