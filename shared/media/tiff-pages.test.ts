/**
 * `tiffPages` (image-pipeline.ts) against TIFFs written by hand (review K): big-endian pyramids,
 * broken chains, and a Cloud-Optimized GeoTIFF with internal masks (GDAL's COG driver writes a mask
 * IFD, NewSubfileType 4, after the image and after each overview, NewSubfileType 5): one image, as
 * the README says.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tiffPages } from './image-pipeline.js';
import { runImageBatch } from '../../test/helpers/image-batch.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiff-pages-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Ifd {
  width: number;
  height: number;
  /** 3: RGB 8-bit; 1: a 1-bit transparency mask (Photometric 4). */
  kind: 'rgb' | 'mask';
  newSubfileType: number;
}

/**
 * An uncompressed classic TIFF of `ifds` (one strip each), `le` little-endian else big-endian;
 * `nextOf` overrides a directory's next-IFD offset (index -> offset, or 'first' for the first IFD's).
 */
function writeTiff(ifds: Ifd[], le: boolean, nextOf: Record<number, number | 'first'> = {}): Buffer {
  const parts: Buffer[] = [];
  let at = 8;
  const u16 = (v: number): Buffer => { const b = Buffer.alloc(2); if (le) b.writeUInt16LE(v); else b.writeUInt16BE(v); return b; };
  const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); if (le) b.writeUInt32LE(v); else b.writeUInt32BE(v); return b; };
  const header = Buffer.concat([Buffer.from(le ? 'II' : 'MM', 'latin1'), u16(42), u32(0)]);
  const ifdOffsets: number[] = [];
  const nextSlots: number[] = [];
  for (const d of ifds) {
    const rgb = d.kind === 'rgb';
    const data = rgb ? Buffer.alloc(d.width * d.height * 3, 0x80) : Buffer.alloc(Math.ceil(d.width / 8) * d.height, 0xff);
    if (rgb) for (let i = 0; i < data.length; i += 3) data[i] = (i / 3) % 251;
    const dataAt = at;
    parts.push(data);
    at += data.length;
    if (at % 2) { parts.push(Buffer.alloc(1)); at++; }
    const bpsAt = at;
    if (rgb) { parts.push(Buffer.concat([u16(8), u16(8), u16(8)])); at += 6; }
    const entries: Array<[number, number, number, Buffer]> = [
      [254, 4, 1, u32(d.newSubfileType)],
      [256, 4, 1, u32(d.width)],
      [257, 4, 1, u32(d.height)],
      [258, 3, rgb ? 3 : 1, rgb ? u32(bpsAt) : Buffer.concat([u16(1), u16(0)])],
      [259, 3, 1, Buffer.concat([u16(1), u16(0)])],
      [262, 3, 1, Buffer.concat([u16(rgb ? 2 : 4), u16(0)])],
      [273, 4, 1, u32(dataAt)],
      [277, 3, 1, Buffer.concat([u16(rgb ? 3 : 1), u16(0)])],
      [278, 4, 1, u32(d.height)],
      [279, 4, 1, u32(data.length)],
      [284, 3, 1, Buffer.concat([u16(1), u16(0)])],
    ];
    ifdOffsets.push(at);
    const ifd = Buffer.concat([u16(entries.length), ...entries.map(([tag, type, count, value]) => Buffer.concat([u16(tag), u16(type), u32(count), value])), u32(0)]);
    nextSlots.push(at + 2 + entries.length * 12);
    parts.push(ifd);
    at += ifd.length;
  }
  const file = Buffer.concat([header, ...parts]);
  const put = (pos: number, v: number): void => { if (le) file.writeUInt32LE(v, pos); else file.writeUInt32BE(v, pos); };
  put(4, ifdOffsets[0]!);
  ifds.forEach((_, i) => {
    const next = nextOf[i];
    put(nextSlots[i]!, next === 'first' ? ifdOffsets[0]! : next !== undefined ? next : i + 1 < ifds.length ? ifdOffsets[i + 1]! : 0);
  });
  return file;
}

async function temp(name: string, bytes: Buffer): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, bytes);
  return f;
}

const pyramid: Ifd[] = [
  { width: 64, height: 48, kind: 'rgb', newSubfileType: 0 },
  { width: 32, height: 24, kind: 'rgb', newSubfileType: 1 },
  { width: 16, height: 12, kind: 'rgb', newSubfileType: 1 },
];

describe('tiffPages on hand-written TIFFs', () => {
  it('a big-endian pyramid is one image; a broken chain is left at libvips\' count', async () => {
    for (const le of [true, false]) {
      const tif = writeTiff(pyramid, le);
      expect((await sharp(tif).metadata()).pages, String(le)).toBe(3);
      expect(await tiffPages(await temp(`p-${le}.tif`, tif), 3), String(le)).toBe(1);
      const r = await runImageBatch(dir, { 'scan.tif': tif }, { width: 32 });
      expect(r.itemErrors, String(le)).toEqual([]);
      // A loop back to the first directory, and a next offset past the end: libvips' count.
      expect(await tiffPages(await temp(`loop-${le}.tif`, writeTiff(pyramid, le, { 2: 'first' })), 3)).toBe(3);
      expect(await tiffPages(await temp(`past-${le}.tif`, writeTiff(pyramid, le, { 1: 1 << 30 })), 3)).toBe(3);
    }
  });

  it("a Cloud-Optimized GeoTIFF with internal masks is one image (README: a Cloud-Optimized GeoTIFF's levels are not pages)", async () => {
    // GDAL's COG layout with a mask: image, its mask (4), overview (1), the overview's mask (5).
    const cog = writeTiff([
      { width: 64, height: 48, kind: 'rgb', newSubfileType: 0 },
      { width: 64, height: 48, kind: 'mask', newSubfileType: 4 },
      { width: 32, height: 24, kind: 'rgb', newSubfileType: 1 },
      { width: 32, height: 24, kind: 'mask', newSubfileType: 5 },
    ], true);
    expect((await sharp(cog).metadata()).pages).toBe(4);
    const r = await runImageBatch(dir, { 'ortho.tif': cog }, { width: 32 });
    // Observed: "ortho.tif: its 4 pages are not all alike (page 2 is 64x48, 1 band ...)".
    expect(r.itemErrors).toEqual([]);
    expect(await tiffPages(await temp('cog.tif', cog), 4)).toBe(1);
  });

  it("a file that cannot be opened is left at libvips' count, not an error", async () => {
    expect(await tiffPages(path.join(dir, 'gone.tif'), 3)).toBe(3);
  });
});
