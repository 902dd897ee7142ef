/**
 * A CMYK JPEG with its own embedded ICC profile (any press profile other than libvips' built-in
 * one: Fogra39, Japan Color, a newspaper profile...) is converted to sRGB through its own profile,
 * with or without keep_metadata, on the batch path and the tiled ones. With keep_metadata sharp's
 * keepMetadata() made the pipeline ignore the embedded profile, and the image was converted with
 * libvips' built-in CMYK profile instead (the output tagged sRGB): asking to keep metadata changed
 * the colours (review IC).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../coordinator/kinds/image.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { imageProcessor } from '../worker/processors/image.js';
import { runKindInProcess } from './helpers/media.js';
import { withIcc } from './helpers/icc.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cmyk-icc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
});

const imageSpec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;

/**
 * A minimal ICC v2 CMYK output profile, not libvips' built-in one: A2B0 is a lut8 with a 2-point
 * CLUT holding the naive mix (R = (1-C)(1-K), ...) of each of the 16 corners, in Lab.
 */
async function ownCmykProfile(): Promise<Buffer> {
  const s15 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(Math.round(v * 65536));
    return b;
  };
  const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const rgb = Buffer.alloc(16 * 3);
  for (let i = 0; i < 16; i++) {
    const [c, m, y, k] = [(i >> 3) & 1, (i >> 2) & 1, (i >> 1) & 1, i & 1];
    [rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]] = [255 * (1 - c) * (1 - k), 255 * (1 - m) * (1 - k), 255 * (1 - y) * (1 - k)];
  }
  const lab = await sharp(rgb, { raw: { width: 16, height: 1, channels: 3 } }).toColourspace('lab').raw({ depth: 'float' }).toBuffer();
  const f = new Float32Array(lab.buffer, lab.byteOffset, 48);
  const byte = (v: number): number => Math.max(0, Math.min(255, Math.round(v)));
  const clut = Buffer.from(Array.from({ length: 48 }, (_, i) => (i % 3 === 0 ? byte((f[i]! / 100) * 255) : byte(f[i]! + 128))));
  const ramp = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const lutHead = Buffer.alloc(12);
  lutHead.write('mft1', 0);
  [lutHead[8], lutHead[9], lutHead[10]] = [4, 3, 2];
  const matrix = Buffer.concat([1, 0, 0, 0, 1, 0, 0, 0, 1].map(s15));
  const a2b0 = pad4(Buffer.concat([lutHead, matrix, ramp, ramp, ramp, ramp, clut, ramp, ramp, ramp]));
  const descText = Buffer.from('Own CMYK test\0', 'latin1');
  const descHead = Buffer.alloc(12);
  descHead.write('desc', 0);
  descHead.writeUInt32BE(descText.length, 8);
  const desc = pad4(Buffer.concat([descHead, descText, Buffer.alloc(4 + 4 + 2 + 1 + 67)]));
  const wtpt = Buffer.concat([Buffer.from('XYZ \0\0\0\0', 'latin1'), s15(0.9642), s15(1.0), s15(0.8249)]);
  const cprt = pad4(Buffer.from('text\0\0\0\0none\0', 'latin1'));
  const tags: [string, Buffer][] = [['desc', desc], ['wtpt', wtpt], ['cprt', cprt], ['A2B0', a2b0]];
  const table = Buffer.alloc(4 + tags.length * 12);
  table.writeUInt32BE(tags.length, 0);
  let offset = 128 + table.length;
  tags.forEach(([sig, data], i) => {
    table.write(sig, 4 + i * 12, 'latin1');
    table.writeUInt32BE(offset, 8 + i * 12);
    table.writeUInt32BE(data.length, 12 + i * 12);
    offset += data.length;
  });
  const head = Buffer.alloc(128);
  head.writeUInt32BE(offset, 0);
  head.writeUInt32BE(0x02100000, 8);
  head.write('prtr', 12);
  head.write('CMYK', 16);
  head.write('Lab ', 20);
  [2020, 1, 1].forEach((v, i) => head.writeUInt16BE(v, 24 + i * 2));
  head.write('acsp', 36);
  s15(0.9642).copy(head, 68);
  s15(1.0).copy(head, 72);
  s15(0.8249).copy(head, 76);
  return Buffer.concat([head, table, ...tags.map(([, d]) => d)]);
}

/** A flat 256 x 128 CMYK JPEG (an orange-red) tagged with {@link ownCmykProfile}. */
async function cmykJpeg(): Promise<string> {
  const plain = await sharp({ create: { width: 256, height: 128, channels: 3, background: { r: 200, g: 60, b: 40 } } })
    .withIccProfile('cmyk', { attach: false })
    .jpeg({ quality: 100 })
    .toBuffer();
  const file = path.join(dir, 'press.jpg');
  await writeFile(file, withIcc(plain, await ownCmykProfile()));
  const m = await sharp(file).metadata();
  expect({ space: m.space, profile: m.icc?.subarray(16, 20).toString('latin1') }).toEqual({ space: 'cmyk', profile: 'CMYK' });
  return file;
}

/** The output's mean colour as shown: through its own profile to sRGB where it carries one. */
async function shown(file: string): Promise<number[]> {
  const m = await sharp(file).metadata();
  const img = m.icc ? sharp(file).withIccProfile('srgb', { attach: false }) : sharp(file);
  const s = await sharp(await img.png().toBuffer()).stats();
  return s.channels.slice(0, 3).map((c) => Math.round(c.mean));
}

async function run(file: string, params: Record<string, unknown>): Promise<number[]> {
  const r = await runKindInProcess(imageKind, imageProcessor, imageSpec(params), [file], { dir, slots: 2 });
  expect(r.errors).toEqual([]);
  return shown(r.outputs[0]!.path);
}

describe('keep_metadata on a CMYK JPEG with its own embedded profile', () => {
  it('shows the same colours as without keep_metadata (converted through its own profile, not the built-in one)', async () => {
    const src = await cmykJpeg();
    // Through its own profile, as sharp's whole-image default and the image kind without keep_metadata convert it.
    const reference = await shown(await sharp(src).png().toFile(path.join(dir, 'ref.png')).then(() => path.join(dir, 'ref.png')));
    const seen: string[] = [`reference (sharp, own profile): ${reference}`];
    const cases: [string, Record<string, unknown>, string | undefined][] = [
      ['batch', { format: 'jpeg' }, undefined],
      ['batch, keep_metadata', { format: 'jpeg', keep_metadata: true }, undefined],
      ['batch, keep_metadata, png', { format: 'png', keep_metadata: true }, undefined],
      ['tiled (--tile), keep_metadata', { format: 'png', keep_metadata: true, tile_size: 64 }, undefined],
      ['tiled (source strips), keep_metadata', { format: 'png', keep_metadata: true }, '1'],
    ];
    for (const [what, params, threshold] of cases) {
      if (threshold) process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = threshold;
      else delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
      seen.push(`${what}: ${await run(src, params)}`);
    }
    delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
    // Observed: about 206,77,30 without keep_metadata and 196,55,33 (libvips' built-in CMYK profile) with it, on every path.
    for (const line of seen.slice(1)) {
      const got = line.split(': ')[1]!.split(',').map(Number);
      for (let b = 0; b < 3; b++) expect(Math.abs(got[b]! - reference[b]!), seen.join('\n')).toBeLessThanOrEqual(3);
    }
  });
});
