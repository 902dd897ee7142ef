/**
 * The image batch path (worker/processors/image.ts, shared/media/image-pipeline.ts) on inputs the
 * README makes promises about: multi-page TIFFs, cut-short animations, the source's resolution and
 * a grey image's own profile kept, the worker's pixel limit named, the worker's paths kept out of
 * messages.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { runImageBatch } from '../../test/helpers/image-batch.js';
import { tiffPages } from '../../shared/media/image-pipeline.js';
import { greyIcc, withIcc } from '../../test/helpers/icc.js';
import { tiffHeader, tiffIfd } from '../../test/helpers/tiff.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-image-inputs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (files: Record<string, Buffer>, params: Record<string, unknown>) => runImageBatch(dir, files, params);

async function writeTemp(name: string, bytes: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return file;
}

/** A noisy RGB image (every decoding error shows). */
function noise(width: number, height: number): sharp.Sharp {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919 + (i >> 5) * 31) & 255;
  return sharp(raw, { raw: { width, height, channels: 3 } });
}

/** A baseline TIFF of uncompressed 8-bit RGB (or, given `grey`, one-band) pages of any sizes, one strip each (libvips writes pages of one size only). */
function multiPageTiff(pages: { width: number; height: number; rgb: [number, number, number]; grey?: number }[]): Buffer {
  const header = tiffHeader(0);
  const parts: Buffer[] = [header];
  const ifds: Buffer[] = [];
  const ifdAt: number[] = [];
  let offset = header.length;
  for (const p of pages) {
    const bands = p.grey === undefined ? 3 : 1;
    const data = Buffer.alloc(p.width * p.height * bands, p.grey ?? 0);
    if (bands === 3) for (let i = 0; i < data.length; i += 3) data.set(p.rgb, i);
    const dataAt = offset;
    const bps = Buffer.alloc(6);
    for (let b = 0; b < 3; b++) bps.writeUInt16LE(8, b * 2);
    const bpsAt = dataAt + data.length;
    offset = bpsAt + bps.length;
    const ifd = tiffIfd([
      [256, 4, 1, p.width], [257, 4, 1, p.height], bands === 3 ? [258, 3, 3, bpsAt] : [258, 3, 1, 8], [259, 3, 1, 1], [262, 3, 1, bands === 3 ? 2 : 1],
      [273, 4, 1, dataAt], [277, 3, 1, bands], [278, 4, 1, p.height], [279, 4, 1, data.length], [284, 3, 1, 1],
    ]);
    ifdAt.push(offset);
    offset += ifd.length;
    ifds.push(ifd);
    parts.push(data, bps, ifd);
  }
  header.writeUInt32LE(ifdAt[0]!, 4);
  ifds.forEach((ifd, i) => ifd.writeUInt32LE(ifdAt[i + 1] ?? 0, ifd.length - 4));
  return Buffer.concat(parts);
}


describe('the image batch path on inputs at the edges', () => {
  let anim: Buffer;
  beforeAll(async () => {
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=120x90:rate=10:duration=0.5', '-loop', '0', path.join(dir, 'anim.gif')]);
    anim = await readFile(path.join(dir, 'anim.gif'));
  });

  it('a multi-page TIFF kept as TIFF keeps its pages (not silently cut to its first); one whose pages differ in size or bands is refused, named', async () => {
    const tif = await sharp(anim, { animated: true }).tiff({ compression: 'lzw' }).toBuffer();
    expect((await sharp(tif).metadata()).pages).toBe(5);
    for (const params of [{ width: 60 }, { width: 60, format: 'tiff' }]) {
      const r = await run({ 'scan.tif': tif }, params);
      expect(r.itemErrors).toEqual([]);
      const out = await sharp(r.outputs[0]!.path).metadata();
      expect([out.pages, out.width, out.height], JSON.stringify(params)).toEqual([5, 60, 45]);
      // The pages are those of one direct sharp call on all of them.
      const want = await sharp(tif, { animated: true }).resize({ width: 60 }).raw().toBuffer();
      const got = await sharp(r.outputs[0]!.path, { pages: -1 }).raw().toBuffer();
      expect(got.equals(want)).toBe(true);
    }
    // In a still format, its first page (as an animation's first frame).
    const jpeg = await run({ 'scan.tif': tif }, { width: 60, format: 'jpeg' });
    expect((await sharp(jpeg.outputs[0]!.path).metadata()).pages).toBeUndefined();
    const mixed = multiPageTiff([
      { width: 40, height: 30, rgb: [255, 0, 0] },
      { width: 20, height: 50, rgb: [0, 255, 0] },
    ]);
    const refused = await run({ 'mixed.tif': mixed, 'scan.tif': tif }, { width: 20 });
    expect(refused.outputs.map((o) => o.name)).toEqual(['scan.tif']);
    expect(refused.itemErrors).toEqual([
      { input: 'mixed.tif', code: 'INVALID_ARGUMENT', message: 'mixed.tif: its 2 pages are not all alike (page 2 is 20x50, 3 bands, uchar samples where page 1 is 40x30, 3 bands, uchar samples), and its pages are kept only when they are of one size, bands and sample format; ask for another format (jpeg, png) for its first page' },
    ]);
    // One size, a colour page and a grey one (a scan): told so, where it was said to be of pages of
    // different sizes (review IMGOPT).
    const scan = multiPageTiff([
      { width: 40, height: 30, rgb: [200, 200, 200] },
      { width: 40, height: 30, rgb: [0, 0, 0], grey: 50 },
    ]);
    const bands = await run({ 'colour-and-grey.tif': scan }, {});
    expect((bands.itemErrors ?? []).map((e) => e.message)).toEqual([
      'colour-and-grey.tif: its 2 pages are not all alike (page 2 is 40x30, 1 band, uchar samples where page 1 is 40x30, 3 bands, uchar samples), and its pages are kept only when they are of one size, bands and sample format; ask for another format (jpeg, png) for its first page',
    ]);
  });

  it('a pyramidal TIFF (its image, then the same at half and quarter size) is one image, not pages that differ (review I)', async () => {
    // As libvips, a Cloud-Optimized GeoTIFF or a scanner's "TIFF with preview" write it: every
    // directory after the first marked NewSubfileType 1, a reduced-resolution version of the image.
    const photo = noise(1024, 768);
    for (const bigtiff of [false, true]) {
      const tif = await photo.clone().tiff({ pyramid: true, tile: true, tileWidth: 256, tileHeight: 256, bigtiff }).toBuffer();
      expect((await sharp(tif).metadata()).pages).toBe(3);
      expect(await tiffPages(await writeTemp(`pyramid-${bigtiff}.tif`, tif), 3)).toBe(1);
      for (const params of [{ width: 500 }, { width: 500, format: 'webp' }]) {
        const r = await run({ 'scan.tif': tif }, params);
        // Before: "scan.tif: its 3 pages are not all alike (page 2 is 512x384 ...)".
        expect(r.itemErrors, JSON.stringify({ bigtiff, params })).toEqual([]);
        const out = await sharp(r.outputs[0]!.path, { animated: true }).metadata();
        expect([out.width, out.pageHeight ?? out.height, out.pages ?? 1]).toEqual([500, 375, 1]);
      }
    }
    // Pages of one size are pages still (the directories after the first are not reduced versions).
    const pages = await sharp(anim, { animated: true }).tiff().toBuffer();
    expect(await tiffPages(await writeTemp('pages.tif', pages), 5)).toBe(5);
  });

  it('a truncated animated GIF is refused as a truncated still GIF is, not written with frames lost or garbled', async () => {
    const still = await noise(200, 150).gif().toBuffer();
    const cut = (b: Buffer, f: number): Buffer => b.subarray(0, Math.floor(b.length * f));
    const r = await run({ 'still.gif': cut(still, 0.99), 'half.gif': cut(anim, 0.5), 'most.gif': cut(anim, 0.99), 'ok.gif': anim }, { width: 60 });
    expect(r.outputs.map((o) => o.name)).toEqual(['ok.gif']);
    expect(r.itemErrors!.map((e) => [e.input, e.code])).toEqual([
      ['still.gif', 'INVALID_ARGUMENT'],
      ['half.gif', 'INVALID_ARGUMENT'],
      ['most.gif', 'INVALID_ARGUMENT'],
    ]);
  });

  it('a TIFF output keeps the source resolution (README: "TIFF and EXIF resolution ... as the batch path does")', async () => {
    const src = await noise(64, 32).withMetadata({ density: 300 }).tiff().toBuffer();
    expect((await sharp(src).metadata()).density).toBe(300);
    for (const params of [{ format: 'png' }, { format: 'tiff' }, { format: 'tiff', keep_metadata: true }]) {
      const r = await run({ 'print.tif': src }, params);
      expect(r.itemErrors).toEqual([]);
      expect((await sharp(r.outputs[0]!.path).metadata()).density, JSON.stringify(params)).toBe(300);
    }
  });

  it('keep_metadata on a greyscale JPEG with its own ICC profile keeps the profile, or converts the samples: its tones stay', async () => {
    // A linear (gamma 1.0) grey ramp: shown right, sample 120 is about sRGB 183.
    const raw = Buffer.alloc(64 * 32);
    for (let i = 0; i < raw.length; i++) raw[i] = (i % 64) * 4;
    const plain = await sharp(raw, { raw: { width: 64, height: 32, channels: 1 } }).toColourspace('b-w').jpeg({ quality: 100 }).toBuffer();
    const src = withIcc(plain, greyIcc(1.0));
    const meta = await sharp(src).metadata();
    expect([meta.space, meta.hasProfile]).toEqual(['b-w', true]);
    // What the source looks like in sRGB (sharp applies the embedded profile).
    const shown = async (b: Buffer | string): Promise<number> => (await sharp(b).png().toBuffer().then((png) => sharp(png).raw().toBuffer()))[30 * 3]!;
    const expected = await shown(src);
    expect(expected).toBeGreaterThan(170);
    for (const format of ['jpeg', 'png']) {
      const r = await run({ 'grey.jpg': src }, { format, keep_metadata: true });
      expect(r.itemErrors).toEqual([]);
      const out = r.outputs[0]!.path;
      const m = await sharp(out).metadata();
      expect(Math.abs((await shown(out)) - expected), `${format}: profile ${m.hasProfile ? 'kept' : 'dropped'}, sample shown as ${await shown(out)}`).toBeLessThan(6);
    }
  });

  it('a still image over TESSERA_MAX_INPUT_PIXELS fails as RESOURCE_EXHAUSTED naming the limit (as an animation does), not INVALID_ARGUMENT', async () => {
    const png = await sharp({ create: { width: 400, height: 300, channels: 3, background: '#357' } }).png().toBuffer();
    const saved = process.env['TESSERA_MAX_INPUT_PIXELS'];
    process.env['TESSERA_MAX_INPUT_PIXELS'] = '100000';
    try {
      const r = await run({ 'big.png': png }, { width: 60, format: 'jpeg' });
      expect(r.itemErrors).toEqual([
        { input: 'big.png', code: 'RESOURCE_EXHAUSTED', message: 'big.png: image of 400x300 pixels is over the limit of 100000 pixels (TESSERA_MAX_INPUT_PIXELS)' },
      ]);
    } finally {
      if (saved === undefined) delete process.env['TESSERA_MAX_INPUT_PIXELS'];
      else process.env['TESSERA_MAX_INPUT_PIXELS'] = saved;
    }
  });

  it("an item error names the input, never the worker's own path to it", async () => {
    const tif = await noise(300, 200).tiff().toBuffer();
    const avif = await noise(300, 200).avif().toBuffer();
    const r = await run({ 'cut.tif': tif.subarray(0, Math.floor(tif.length * 0.99)), 'cut.avif': avif.subarray(0, avif.length >> 1) }, { width: 60, format: 'jpeg' });
    expect(r.itemErrors!.map((e) => e.input)).toEqual(['cut.tif', 'cut.avif']);
    for (const e of r.itemErrors!) expect(e.message).not.toContain(dir);
  });
});
