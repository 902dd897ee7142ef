/**
 * A minimal little-endian baseline TIFF of 16-bit samples (one strip, uncompressed), for sample
 * formats sharp cannot write itself, such as 16-bit CMYK (photometric 5, `[332, 3, 1, [1]]` for
 * InkSet CMYK).
 */
export function tiff16(w: number, h: number, spp: number, photometric: number, data: Uint16Array, extra: [number, number, number, number[]][] = []): Buffer {
  const pixBytes = w * h * spp * 2;
  // Tag, type (3 SHORT, 4 LONG), count, values; sorted by tag as TIFF requires.
  const entries: [number, number, number, number[]][] = (
    [
      [256, 3, 1, [w]], [257, 3, 1, [h]], [258, 3, spp, Array<number>(spp).fill(16)], [259, 3, 1, [1]], [262, 3, 1, [photometric]],
      [273, 4, 1, [0]], [277, 3, 1, [spp]], [278, 3, 1, [h]], [279, 4, 1, [pixBytes]], [284, 3, 1, [1]], ...extra,
    ] as [number, number, number, number[]][]
  ).sort((a, b) => a[0] - b[0]);
  const ifdOffset = 8;
  const ifdSize = 2 + entries.length * 12 + 4;
  let extraOffset = ifdOffset + ifdSize;
  const extraBufs: Buffer[] = [];
  const ifd = Buffer.alloc(ifdSize);
  ifd.writeUInt16LE(entries.length, 0);
  const stripOffsetAt = entries.findIndex((e) => e[0] === 273);
  entries.forEach(([tag, type, count, values], i) => {
    const o = 2 + i * 12;
    ifd.writeUInt16LE(tag, o);
    ifd.writeUInt16LE(type, o + 2);
    ifd.writeUInt32LE(count, o + 4);
    const size = type === 3 ? 2 : 4;
    const b = Buffer.alloc(Math.max(4, size * count));
    values.forEach((v, k) => (size === 2 ? b.writeUInt16LE(v, k * 2) : b.writeUInt32LE(v, k * 4)));
    if (size * count <= 4) b.copy(ifd, o + 8);
    else {
      ifd.writeUInt32LE(extraOffset, o + 8);
      extraBufs.push(b);
      extraOffset += b.length;
    }
  });
  ifd.writeUInt32LE(extraOffset, 2 + stripOffsetAt * 12 + 8);
  const head = Buffer.from([0x49, 0x49, 42, 0, 8, 0, 0, 0]);
  const pixels = Buffer.alloc(pixBytes);
  for (let i = 0; i < w * h * spp; i++) pixels.writeUInt16LE(data[i]!, i * 2);
  return Buffer.concat([head, ifd, ...extraBufs, pixels]);
}
