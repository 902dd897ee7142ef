/**
 * Pieces of hand-made TIFF files, for the layouts sharp does not write (pages of different sizes,
 * extra channels): little-endian, uncompressed, laid out by the caller.
 */

/**
 * One IFD entry: tag, type (3 SHORT, 4 LONG), count, and its value or the offset of its values;
 * two SHORTs given as a pair stand in the entry itself.
 */
export type IfdEntry = [tag: number, type: 3 | 4, count: number, value: number | readonly [number, number]];

/** The 8-byte header of a little-endian TIFF whose first IFD is at `firstIfdAt`. */
export function tiffHeader(firstIfdAt: number): Buffer {
  const head = Buffer.alloc(8);
  head.write('II', 0, 'latin1');
  head.writeUInt16LE(42, 2);
  head.writeUInt32LE(firstIfdAt, 4);
  return head;
}

/** An IFD of `entries` (in tag order); its next-IFD offset, its last 4 bytes, is 0. */
export function tiffIfd(entries: readonly IfdEntry[]): Buffer {
  const ifd = Buffer.alloc(2 + entries.length * 12 + 4);
  ifd.writeUInt16LE(entries.length, 0);
  entries.forEach(([tag, type, count, value], k) => {
    const at = 2 + k * 12;
    ifd.writeUInt16LE(tag, at);
    ifd.writeUInt16LE(type, at + 2);
    ifd.writeUInt32LE(count, at + 4);
    if (typeof value !== 'number') {
      ifd.writeUInt16LE(value[0], at + 8);
      ifd.writeUInt16LE(value[1], at + 10);
    } else if (type === 3 && count === 1) ifd.writeUInt16LE(value, at + 8);
    else ifd.writeUInt32LE(value, at + 8);
  });
  return ifd;
}
