/**
 * A multi-page TIFF whose pages are all one size but not all one kind (a scan with a colour first
 * page and greyscale pages after it: 3 bands, then 1) cannot keep its pages in one libvips stack,
 * as pages of different sizes cannot. The worker takes every "page N differs from page 0" of
 * libvips for a difference of size, and told the user that its pages "are not all one size",
 * which they are: the message must not say so (it may say that the pages differ, or how).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runImageBatch } from './helpers/image-batch.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiff-mixed-bands-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An uncompressed little-endian TIFF of one IFD per page: `spp` 8-bit samples a pixel (3 = RGB, 1 = grey), every sample `v`. */
function multiPageTiff(pages: { w: number; h: number; spp: 1 | 3; v: number }[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x49, 0x49, 42, 0, 0, 0, 0, 0])];
  let off = 8;
  const at: { data: number; bps: number }[] = [];
  for (const p of pages) {
    const data = Buffer.alloc(p.w * p.h * p.spp, p.v);
    const bps = Buffer.alloc(2 * p.spp);
    for (let i = 0; i < p.spp; i++) bps.writeUInt16LE(8, i * 2);
    at.push({ data: off, bps: off + data.length });
    parts.push(data, bps);
    off += data.length + bps.length;
    if (off % 2) (parts.push(Buffer.alloc(1)), off++);
  }
  const ifds: number[] = [];
  pages.forEach((p, k) => {
    const entries: [number, number, number, number][] = [
      [256, 3, 1, p.w], [257, 3, 1, p.h], [258, 3, p.spp, p.spp > 2 ? at[k]!.bps : 8], [259, 3, 1, 1], [262, 3, 1, p.spp === 3 ? 2 : 1],
      [273, 4, 1, at[k]!.data], [277, 3, 1, p.spp], [278, 3, 1, p.h], [279, 4, 1, p.w * p.h * p.spp], [284, 3, 1, 1],
    ];
    const ifd = Buffer.alloc(2 + entries.length * 12 + 4);
    ifd.writeUInt16LE(entries.length, 0);
    entries.forEach(([tag, type, count, value], i) => {
      const o = 2 + i * 12;
      ifd.writeUInt16LE(tag, o);
      ifd.writeUInt16LE(type, o + 2);
      ifd.writeUInt32LE(count, o + 4);
      if (type === 3 && count === 1) ifd.writeUInt16LE(value, o + 8);
      else ifd.writeUInt32LE(value, o + 8);
    });
    ifds.push(off);
    parts.push(ifd);
    off += ifd.length;
  });
  const buf = Buffer.concat(parts);
  buf.writeUInt32LE(ifds[0]!, 4);
  ifds.forEach((o, k) => buf.writeUInt32LE(ifds[k + 1] ?? 0, o + 2 + 10 * 12));
  return buf;
}

describe('a multi-page TIFF of one page size, a colour page and a grey one, kept as TIFF', () => {
  it('is refused without saying that its pages are not all one size', async () => {
    const scan = multiPageTiff([
      { w: 40, h: 30, spp: 3, v: 200 },
      { w: 40, h: 30, spp: 1, v: 50 },
    ]);
    const m = await sharp(scan).metadata();
    expect({ pages: m.pages, width: m.width, height: m.height }).toEqual({ pages: 2, width: 40, height: 30 });
    const r = await runImageBatch(dir, { 'scan.tif': scan }, {});
    const errors = r.itemErrors ?? [];
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('INVALID_ARGUMENT');
    // Observed: "scan.tif: its 2 pages are not all one size, and its pages are kept only when they are; ..."
    expect(errors[0]!.message).not.toMatch(/not all one size/);
    // What differs, named.
    expect(errors[0]!.message).toContain('page 2 is 40x30, 1 band, uchar samples where page 1 is 40x30, 3 bands, uchar samples');
  });
});
