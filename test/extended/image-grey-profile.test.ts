/**
 * The image kind on a greyscale source with its own (grey) ICC profile, with keep_metadata, run
 * through the kind's real plan -> process -> merge (runKindInProcess). The README promises: "On the
 * batch path a grey source's own profile stays with a one-band JPEG, PNG or TIFF output; a WebP or
 * AVIF output ... is converted through it to sRGB and tagged sRGB", and "`--sharpen` into TIFF
 * writes 8-bit samples on both paths".
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../../coordinator/kinds/image.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { imageProcessor } from '../../worker/processors/image.js';
import { runKindInProcess } from '../helpers/media.js';
import { greyIcc, withIcc, withPngIcc } from '../helpers/icc.js';
import { fromSamples16 } from '../helpers/sixteen.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-grey-icc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const imageSpec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;


/** `length` grey samples of a sawtooth with a slow drift: detail at every level, unlike a flat fill. */
function greyPattern(length: number): Buffer {
  const raw = Buffer.alloc(length);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7 + (i >> 5)) % 256;
  return raw;
}

/** The three ways the tiled path reads a source: [name, extra params, TESSERA_TILE_STRIP_READ]. */
const TILED_MODES = [
  ['strips read from the source', {}, undefined],
  ['strips cut from the decoded intermediate', {}, 'intermediate'],
  ['a --tile grid', { tile_size: 96 }, undefined],
] as const;

/** A flat grey 64 x 32 JPEG of sample 120 tagged with a linear (gamma 1.0) grey profile: shown in sRGB, about 182. */
async function linearGreyJpeg(): Promise<string> {
  const plain = await sharp(Buffer.alloc(64 * 32, 120), { raw: { width: 64, height: 32, channels: 1 } }).toColourspace('b-w').jpeg({ quality: 100 }).toBuffer();
  const file = path.join(dir, 'grey.jpg');
  await writeFile(file, withIcc(plain, greyIcc(1.0)));
  return file;
}

/** The centre sample of `file` as shown in sRGB (sharp applies an embedded profile). */
async function shown(file: string): Promise<number> {
  const { data, info } = await sharp(file).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return data[(Math.floor(info.height / 2) * info.width + Math.floor(info.width / 2)) * info.channels]!;
}

describe('keep_metadata on a grey source with its own ICC profile', () => {
  it('keeps its tones when a quarter-turn rotate is combined with a cover/contain resize (the two-pass geometry path), as without the resize', async () => {
    const src = await linearGreyJpeg();
    const expected = await shown(src);
    expect(expected).toBeGreaterThan(170);
    const seen: string[] = [];
    for (const format of ['jpeg', 'png', 'webp']) {
      for (const extra of [{}, { width: 32, height: 32 }, { width: 32, height: 32, fit: 'contain' }]) {
        const params = { format, keep_metadata: true, rotate: 90, ...extra };
        const run = await runKindInProcess(imageKind, imageProcessor, imageSpec(params), [src], { dir, slots: 1 });
        expect(run.errors).toEqual([]);
        const out = run.outputs[0]!.path;
        const m = await sharp(out).metadata();
        seen.push(`${JSON.stringify(params)}: shown ${await shown(out)}, profile ${m.icc ? m.icc.length : 'none'}`);
      }
    }
    // Observed: every resized case shows 120 (the linear samples read as sRGB, the profile dropped).
    for (const line of seen) expect(Number(/shown (\d+)/.exec(line)![1]), seen.join('\n')).toBeGreaterThanOrEqual(expected - 5);
  });

  it('--sharpen into TIFF writes 8-bit samples (README), not a 32-bit float TIFF of 0..255 values', async () => {
    const src = await linearGreyJpeg();
    const run = await runKindInProcess(imageKind, imageProcessor, imageSpec({ format: 'tiff', sharpen: true, keep_metadata: true }), [src], { dir, slots: 1 });
    expect(run.errors).toEqual([]);
    const m = await sharp(run.outputs[0]!.path).metadata();
    expect({ depth: m.depth, bitsPerSample: m.bitsPerSample }).toEqual({ depth: 'uchar', bitsPerSample: 8 });
  });

  it('a 16-bit grey source converted ahead into WebP keeps its EXIF and XMP, as at 8 bits, on both paths', async () => {
    const raw = Buffer.alloc(96 * 64);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 5) % 256;
    const xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>tessera</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>';
    const seen: string[] = [];
    for (const space of ['b-w', 'grey16'] as const) {
      const png = await sharp(raw, { raw: { width: 96, height: 64, channels: 1 } }).toColourspace(space).withExif({ IFD0: { Copyright: 'tessera' } }).withXmp(xmp).png().toBuffer();
      const src = path.join(dir, `meta-${space}.png`);
      await writeFile(src, withPngIcc(png, greyIcc(1.8)));
      for (const tiled of [false, true]) {
        if (tiled) process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
        const run = await runKindInProcess(imageKind, imageProcessor, imageSpec({ format: 'webp', keep_metadata: true }), [src], { dir, slots: 2 }).finally(() => delete process.env['TESSERA_TILE_THRESHOLD_PIXELS']);
        expect(run.errors).toEqual([]);
        const m = await sharp(run.outputs[0]!.path).metadata();
        seen.push(`${space} ${tiled ? 'tiled' : 'batch'}: exif ${m.exif?.includes('tessera') ? 'kept' : 'lost'}, xmp ${m.xmp?.includes('tessera') ? 'kept' : 'lost'}`);
      }
    }
    // Observed: the batch path's copy in sRGB kept the EXIF only ("grey16 batch: ..., xmp lost").
    expect(seen).toEqual(['b-w batch', 'b-w tiled', 'grey16 batch', 'grey16 tiled'].map((k) => `${k}: exif kept, xmp kept`));
  });

  it('a truncated 16-bit grey source converted ahead fails alone, naming it, and leaves no copy in the work folder', async () => {
    const raw = greyPattern(301 * 203);
    const whole = withPngIcc(await sharp(raw, { raw: { width: 301, height: 203, channels: 1 } }).toColourspace('grey16').png({ compressionLevel: 0 }).toBuffer(), greyIcc(1.8));
    const runDir = await mkdtemp(path.join(dir, 'truncated-'));
    const good = path.join(runDir, 'good16.png');
    const cut = path.join(runDir, 'cut16.png');
    await writeFile(good, whole);
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length * 0.6)));
    const run = await runKindInProcess(imageKind, imageProcessor, imageSpec({ format: 'webp', keep_metadata: true }), [good, cut], { dir: runDir, slots: 1 });
    expect(run.outputs.map((o) => o.name)).toEqual(['good16.webp']);
    expect(run.errors).toEqual([expect.objectContaining({ input: 'cut16.png', code: 'INVALID_ARGUMENT', message: expect.stringContaining('cut16.png: ') })]);
    // Observed: the partial sRGB copy of the truncated source stayed (".srgb-cut16.webp.v").
    const left = (await readdir(runDir, { recursive: true })).filter((f) => path.basename(f).startsWith('.srgb-'));
    expect(left).toEqual([]);
  });

  it.each([
    ['its metadata kept', { keep_metadata: true }],
    ['its metadata kept, resized and brightened', { keep_metadata: true, width: 120, brightness: 1.3 }],
    ['its metadata not kept', {}],
  ])('a multi-page 16-bit grey TIFF with its own profile into WebP (%s) keeps its frames and is what the same pages at 8 bits give', async (_name, extra) => {
    const [w, h] = [151, 101];
    const px = new Uint16Array(w * h * 2);
    px.set(Array.from(greyPattern(px.length), (v) => v * 257));
    const icc = path.join(dir, 'grey-1.8.icc');
    await writeFile(icc, greyIcc(1.8));
    const sources = {
      16: fromSamples16(px, w, h * 2, 1, h),
      8: sharp(Buffer.from(Array.from(px, (v) => v >> 8)), { raw: { width: w, height: h * 2, channels: 1, pageHeight: h } }).toColourspace('b-w'),
    };
    const shown: Record<string, Buffer> = {};
    for (const [bits, img] of Object.entries(sources)) {
      const src = path.join(dir, `pages-${bits}.tif`);
      await img.withIccProfile(icc).tiff({ compression: 'lzw' }).toFile(src);
      expect((await sharp(src, { pages: -1 }).metadata()).pages).toBe(2);
      const run = await runKindInProcess(imageKind, imageProcessor, imageSpec({ format: 'webp', ...extra }), [src], { dir, slots: 1 });
      expect(run.errors).toEqual([]);
      const out = run.outputs[0]!.path;
      expect((await sharp(out, { pages: -1 }).metadata()).pages).toBe(2);
      shown[bits] = await sharp(out, { pages: -1 }).toColourspace('srgb').raw().toBuffer();
    }
    // Observed: the 16-bit pages' samples left as they were (tagged sRGB with the metadata kept),
    // 12.8 levels off on average; then, converted at the end, resize and brightness acted on
    // unconverted samples (about 5 off). Converted ahead, page by page, as a single page is, they
    // are 1.6 to 2.3 off.
    // Before the encoder they are within 2 levels (the 16-bit samples are converted more precisely),
    // which lossy WebP spreads: compared on average.
    const [a, b] = [shown['16']!, shown['8']!];
    expect(a.length).toBe(b.length);
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
    expect(sum / a.length).toBeLessThan(3);
  });

  it.each(TILED_MODES)('tiled (%s): the profile stays with one grey band in JPEG, PNG and TIFF, WebP and AVIF are converted through it, the samples the batch path\'s', async (_mode, extra, read) => {
    // A 16-bit one too: one 16-bit grey band in PNG.
    const raw = greyPattern(301 * 203);
    const eight = await sharp(raw, { raw: { width: 301, height: 203, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    const sources = {
      jpg: withIcc(await sharp(eight).toColourspace('b-w').jpeg({ quality: 95 }).toBuffer(), greyIcc(1.8)),
      png16: withPngIcc(await sharp(eight).toColourspace('grey16').png().toBuffer(), greyIcc(1.8)),
      // The same samples as png16 at 8 bits: what its WebP and AVIF must show.
      png8: withPngIcc(eight, greyIcc(1.8)),
    };
    const formats = { jpg: ['jpeg', 'png', 'tiff', 'webp', 'avif'], png16: ['png', 'tiff', 'webp', 'avif'], png8: ['webp', 'avif'] };
    const seen: string[] = [];
    const batchSamples = new Map<string, Buffer>();
    for (const [name, bytes] of Object.entries(sources)) {
      const src = path.join(dir, `tiled-grey-${name}.${name === 'jpg' ? 'jpg' : 'png'}`);
      await writeFile(src, bytes);
      for (const format of formats[name as keyof typeof formats]) {
        const params = { format, keep_metadata: true, blur: 1.2, ...extra };
        const out: { path: string; m: sharp.Metadata; samples: Buffer }[] = [];
        for (const tiled of [false, true]) {
          if (tiled) process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
          if (tiled && read) process.env['TESSERA_TILE_STRIP_READ'] = read;
          const spec = imageSpec(tiled ? params : { format, keep_metadata: true, blur: 1.2 });
          const run = await runKindInProcess(imageKind, imageProcessor, spec, [src], { dir, slots: 2 }).finally(() => {
            delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
            delete process.env['TESSERA_TILE_STRIP_READ'];
          });
          expect(run.errors).toEqual([]);
          const file = run.outputs[0]!.path;
          const m = await sharp(file).metadata();
          const grey = m.channels === 1;
          out.push({ path: file, m, samples: await sharp(file).toColourspace(m.depth === 'ushort' ? 'grey16' : grey ? 'b-w' : 'srgb').raw({ depth: m.depth === 'ushort' ? 'ushort' : 'uchar' }).toBuffer() });
        }
        const [batch, tiled] = out as [(typeof out)[0], (typeof out)[0]];
        batchSamples.set(`${name} -> ${format}`, batch.samples);
        const srgb = (await sharp(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).withIccProfile('srgb').png().toBuffer()).metadata()).icc!;
        const describe = (o: (typeof out)[0]): string => `${o.m.channels} band(s) ${o.m.depth}, profile ${o.m.icc?.equals(greyIcc(1.8)) ? 'kept' : o.m.icc?.equals(srgb) ? 'sRGB' : o.m.icc ? 'another' : 'none'}`;
        seen.push(`${name} -> ${format}: batch ${describe(batch)}, tiled ${describe(tiled)}, samples ${batch.samples.equals(tiled.samples) ? 'the same' : 'differ'}`);
      }
    }
    // Observed before: tiled, three bands and no profile: the samples unconverted, read as sRGB.
    expect(seen.join('\n')).toBe(
      [
        'jpg -> jpeg: batch 1 band(s) uchar, profile kept, tiled 1 band(s) uchar, profile kept, samples the same',
        'jpg -> png: batch 1 band(s) uchar, profile kept, tiled 1 band(s) uchar, profile kept, samples the same',
        'jpg -> tiff: batch 1 band(s) uchar, profile kept, tiled 1 band(s) uchar, profile kept, samples the same',
        // Converted through the grey profile to sRGB, and tagged sRGB.
        'jpg -> webp: batch 3 band(s) uchar, profile sRGB, tiled 3 band(s) uchar, profile sRGB, samples the same',
        'jpg -> avif: batch 3 band(s) uchar, profile sRGB, tiled 3 band(s) uchar, profile sRGB, samples the same',
        'png16 -> png: batch 1 band(s) ushort, profile kept, tiled 1 band(s) ushort, profile kept, samples the same',
        'png16 -> tiff: batch 1 band(s) ushort, profile kept, tiled 1 band(s) ushort, profile kept, samples the same',
        // Converted through the grey profile too, by way of 8-bit grey (libvips converts 16-bit grey
        // no other way): before, the samples were left unconverted and tagged sRGB, on both paths.
        'png16 -> webp: batch 3 band(s) uchar, profile sRGB, tiled 3 band(s) uchar, profile sRGB, samples the same',
        'png16 -> avif: batch 3 band(s) uchar, profile sRGB, tiled 3 band(s) uchar, profile sRGB, samples the same',
        'png8 -> webp: batch 3 band(s) uchar, profile sRGB, tiled 3 band(s) uchar, profile sRGB, samples the same',
        'png8 -> avif: batch 3 band(s) uchar, profile sRGB, tiled 3 band(s) uchar, profile sRGB, samples the same',
      ].join('\n'),
    );
    // The 16-bit source shows what the same picture at 8 bits shows.
    for (const format of ['webp', 'avif']) expect(batchSamples.get(`png16 -> ${format}`)!.equals(batchSamples.get(`png8 -> ${format}`)!), format).toBe(true);
  });
});

describe('keep_metadata and --grayscale on a grey source with its own profile, written in colour', () => {
  it.each(TILED_MODES)('tiled (%s): WebP and AVIF are the batch result, sample for sample, tagged sRGB', async (_mode, extra, read) => {
    const raw = greyPattern(301 * 203);
    const src = path.join(dir, 'grey-grayscale.png');
    await writeFile(src, withPngIcc(await sharp(raw, { raw: { width: 301, height: 203, channels: 1 } }).toColourspace('b-w').png().toBuffer(), greyIcc(1.8)));
    const srgb = (await sharp(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).withIccProfile('srgb').png().toBuffer()).metadata()).icc!;
    for (const format of ['webp', 'avif']) {
      const out: { samples: Buffer; srgb: boolean }[] = [];
      for (const tiled of [false, true]) {
        if (tiled) process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
        if (tiled && read) process.env['TESSERA_TILE_STRIP_READ'] = read;
        const params = { format, keep_metadata: true, grayscale: true, blur: 1, ...(tiled ? extra : {}) };
        const run = await runKindInProcess(imageKind, imageProcessor, imageSpec(params), [src], { dir, slots: 2 }).finally(() => {
          delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
          delete process.env['TESSERA_TILE_STRIP_READ'];
        });
        expect(run.errors).toEqual([]);
        const file = run.outputs[0]!.path;
        out.push({ samples: await sharp(file).toColourspace('srgb').raw().toBuffer(), srgb: Boolean((await sharp(file).metadata()).icc?.equals(srgb)) });
      }
      // Observed (strips read from the source): up to 38 levels off, the grey samples converted
      // through the profile where they were read and again at the stitch.
      expect({ format, same: out[0]!.samples.equals(out[1]!.samples), tagged: out.map((o) => o.srgb) }).toEqual({ format, same: true, tagged: [true, true] });
    }
  });
});
