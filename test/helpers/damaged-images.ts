/** Damaged images as they come in the wild, made here rather than committed. */
import sharp from 'sharp';

/**
 * A `width` x `height` uncompressed TIFF whose last `damaged` strip offsets point past the end of the
 * file (a scan cut short, a bad copy): the header reads, the pixels do not ("bad seek to ...").
 */
export async function damagedTiff(width = 300, height = 200, damaged = 5): Promise<Buffer> {
  const tif = await sharp({ create: { width, height, channels: 3, background: '#888', noise: { type: 'gaussian', mean: 100, sigma: 30 } } })
    .tiff({ compression: 'none' })
    .toBuffer();
  const ifd = tif.readUInt32LE(4);
  for (let k = 0; k < tif.readUInt16LE(ifd); k++) {
    const entry = ifd + 2 + 12 * k;
    if (tif.readUInt16LE(entry) !== 273) continue; // StripOffsets
    const count = tif.readUInt32LE(entry + 4);
    // One strip: its offset is the entry's value itself; more: the value points at the offsets.
    if (count === 1) tif.writeUInt32LE(0x7ffffff0, entry + 8);
    else for (let s = Math.max(0, count - damaged); s < count; s++) tif.writeUInt32LE(0x7ffffff0, tif.readUInt32LE(entry + 8) + 4 * s);
  }
  return tif;
}
