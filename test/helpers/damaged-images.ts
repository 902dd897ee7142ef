/** Damaged images as they come in the wild, made here rather than committed. */
import sharp from 'sharp';

/**
 * A `width` x `height` uncompressed TIFF whose last `damaged` strip offsets point past the end of the
 * file (a bad copy: the header reads, the pixels do not, libvips says "<file>: bad seek to ...").
 * `secondPage`: a TIFF of two such pages, the damage in the second one's strips. A first page's
 * strips past the end are taken for a file cut short before libvips opens it (image-pipeline.ts
 * `tiffTruncation`); a second page's are libvips' to find, when it reads every page (a TIFF
 * written as TIFF keeps its pages).
 */
export async function damagedTiff(width = 300, height = 200, damaged = 5, secondPage = false): Promise<Buffer> {
  const pages = secondPage ? 2 : 1;
  const raw = await sharp({ create: { width, height: height * pages, channels: 3, background: '#888', noise: { type: 'gaussian', mean: 100, sigma: 30 } } }).raw().toBuffer();
  const tif = await sharp(raw, { raw: { width, height: height * pages, channels: 3, ...(secondPage && { pageHeight: height }) } })
    .tiff({ compression: 'none' })
    .toBuffer();
  let ifd = tif.readUInt32LE(4);
  if (secondPage) ifd = tif.readUInt32LE(ifd + 2 + 12 * tif.readUInt16LE(ifd));
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

/**
 * A `width` x `height` LZW TIFF whose strips hold garbage (a corrupted copy): header and strips all
 * within the file, so it passes the submission's checks, and libvips fails decoding it ("tiff2vips:
 * Using code not yet in table", "read error").
 */
export async function garbledTiff(width = 300, height = 200): Promise<Buffer> {
  const tif = await sharp({ create: { width, height, channels: 3, background: '#888', noise: { type: 'gaussian', mean: 100, sigma: 30 } } })
    .tiff({ compression: 'lzw' })
    .toBuffer();
  // The pixels lie between the 8-byte header and the directory, which libvips writes last.
  for (let i = 16; i < tif.readUInt32LE(4) - 16; i++) tif[i] = (i * 37) & 255;
  return tif;
}
