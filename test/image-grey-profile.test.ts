/**
 * The image kind on a greyscale source with its own (grey) ICC profile, with keep_metadata, run
 * through the kind's real plan -> process -> merge (runKindInProcess). The README promises: "On the
 * batch path a grey source's own profile stays with a one-band JPEG, PNG or TIFF output; a WebP or
 * AVIF output ... is converted through it to sRGB and tagged sRGB", and "`--sharpen` into TIFF
 * writes 8-bit samples on both paths".
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

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-grey-icc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const imageSpec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;

/** A minimal ICC v2 greyscale display profile with a pure gamma curve (kTRC). */
function greyIcc(gamma: number): Buffer {
  const s15 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(Math.round(v * 65536));
    return b;
  };
  const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const descText = Buffer.from('Grey test\0', 'latin1');
  const descHead = Buffer.alloc(12);
  descHead.write('desc', 0);
  descHead.writeUInt32BE(descText.length, 8);
  const desc = pad4(Buffer.concat([descHead, descText, Buffer.alloc(4 + 4 + 2 + 1 + 67)]));
  const wtpt = Buffer.concat([Buffer.from('XYZ \0\0\0\0', 'latin1'), s15(0.9642), s15(1.0), s15(0.8249)]);
  const ktrc = Buffer.alloc(16);
  ktrc.write('curv', 0);
  ktrc.writeUInt32BE(1, 8);
  ktrc.writeUInt16BE(Math.round(gamma * 256), 12);
  const cprt = pad4(Buffer.from('text\0\0\0\0none\0', 'latin1'));
  const tags: [string, Buffer][] = [['desc', desc], ['wtpt', wtpt], ['kTRC', ktrc], ['cprt', cprt]];
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
  head.write('mntr', 12);
  head.write('GRAY', 16);
  head.write('XYZ ', 20);
  head.writeUInt16BE(2020, 24);
  head.writeUInt16BE(1, 26);
  head.writeUInt16BE(1, 28);
  head.write('acsp', 36);
  s15(0.9642).copy(head, 68);
  s15(1.0).copy(head, 72);
  s15(0.8249).copy(head, 76);
  return Buffer.concat([head, table, ...tags.map(([, d]) => d)]);
}

/** `jpeg` with `icc` embedded as one APP2 ICC_PROFILE segment. */
function withIcc(jpeg: Buffer, icc: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from('ICC_PROFILE\0', 'latin1'), Buffer.from([1, 1]), icc]);
  const marker = Buffer.from([0xff, 0xe2, 0, 0]);
  marker.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), marker, body, jpeg.subarray(2)]);
}

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
});
