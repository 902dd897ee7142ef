/**
 * A TIFF cut short (a copy or upload that stopped early) has no image directory: its writer puts
 * the tags after the pixels. libvips then said only "Input file contains unsupported image format",
 * and the user was told "not a decodable image (unsupported or unrecognised format)" of a file
 * that is a TIFF. It is refused as cut short instead, at submission and on the worker, in classic
 * TIFF and BigTIFF, wherever the cut falls after the header; a whole TIFF still goes through.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkInput } from '../coordinator/input-check.js';
import type { SpoolFile } from '../shared/job-kind.js';
import { resolveLimits } from '../shared/limits.js';
import { runImageBatch } from './helpers/image-batch.js';

let dir: string;
const tiffs: Record<string, Buffer> = {};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tiff-cut-'));
  const img = sharp({ create: { width: 300, height: 200, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } });
  tiffs['scan.tif'] = await img.clone().tiff().toBuffer();
  tiffs['big.tif'] = await img.clone().tiff({ bigtiff: true, compression: 'lzw' }).toBuffer();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spoolFile(name: string, bytes: Buffer): Promise<SpoolFile> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return { name, path: file, size: (await stat(file)).size, sha256: '' };
}

/** The TIFF cut at these fractions of its length (each past its 8- or 16-byte header). */
const cuts = (name: string): Record<string, Buffer> => {
  const whole = tiffs[name]!;
  return Object.fromEntries([0.02, 0.5, 0.999].map((f) => [`${f}-${name}`, whole.subarray(0, Math.max(16, Math.floor(whole.length * f)))]));
};

describe('a TIFF cut short', () => {
  it('is refused at submission as cut short, not as of an unsupported format', async () => {
    for (const name of ['scan.tif', 'big.tif']) {
      expect(await checkInput('image', await spoolFile(name, tiffs[name]!), resolveLimits())).toBeUndefined();
      for (const [cutName, bytes] of Object.entries(cuts(name))) {
        const failure = await checkInput('image', await spoolFile(cutName, bytes), resolveLimits());
        expect(failure, cutName).toMatchObject({ input: cutName, code: 'INVALID_ARGUMENT' });
        expect(failure!.message, cutName).toMatch(new RegExp(`^${cutName.replace(/\./g, '\\.')}: a TIFF cut short \\(${bytes.length} bytes, `));
      }
    }
  });

  it('fails its item on the worker as cut short, the whole ones beside it resized', async () => {
    const files = { ...cuts('scan.tif'), ...cuts('big.tif'), 'scan.tif': tiffs['scan.tif']!, 'big.tif': tiffs['big.tif']! };
    const res = await runImageBatch(dir, files, { width: 100, format: 'png' });
    expect(res.outputs.map((o) => path.basename(o.path)).sort()).toEqual(['big.png', 'scan.png']);
    expect(res.itemErrors).toHaveLength(6);
    for (const e of res.itemErrors ?? []) expect(e.message, e.input).toMatch(/a TIFF cut short \(\d+ bytes.*: a copy or upload that stopped early\?/);
  });

  it('a strip tag of a type it does not read (BYTE) is left to libvips, not failed on a buffer error', async () => {
    const tif = Buffer.from(tiffs['scan.tif']!);
    const ifd = tif.readUInt32LE(4);
    for (let i = 0; i < tif.readUInt16LE(ifd); i++) {
      const e = ifd + 2 + i * 12;
      if (tif.readUInt16LE(e) === 279) tif.writeUInt16LE(1, e + 2);
    }
    const res = await runImageBatch(dir, { 'odd.tif': tif }, { width: 100, format: 'png' });
    // Was: "odd.tif: Attempt to access memory outside buffer bounds".
    for (const e of res.itemErrors ?? []) expect(e.message).not.toMatch(/buffer bounds|RangeError/);
  });
});
