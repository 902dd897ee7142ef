/**
 * A TIFF whose header lies (its ImageLength larger than its strips hold): libvips refuses it under
 * sharp's failOn, whose first line is "Warning treated as error due to failOn setting", and both
 * paths said that alone, naming a setting the user never chose and nothing of the file, where sharp's
 * own message goes on to the decoder's reason. The reason is said, as a decodable image's is not.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../coordinator/kinds/image.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { reasonLine } from '../shared/media/image-errors.js';
import { imageProcessor } from '../worker/processors/image.js';
import { runImageBatch } from './helpers/image-batch.js';
import { runKindInProcess } from './helpers/media.js';

let dir: string;
let lying: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-lying-tiff-'));
  const tiff = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } }).tiff({ compression: 'lzw' }).toBuffer();
  // ImageLength (tag 257, a SHORT here) said 800 where the strips hold 200 rows.
  const ifd = tiff.readUInt32LE(4);
  for (let i = 0; i < tiff.readUInt16LE(ifd); i++) {
    const e = ifd + 2 + i * 12;
    if (tiff.readUInt16LE(e) === 257) tiff.writeUInt16LE(800, e + 8);
  }
  lying = path.join(dir, 'lying.tif');
  await writeFile(lying, tiff);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a TIFF whose header lies', () => {
  it('is failed with the decoder\'s reason on the batch path, not the failOn banner alone', async () => {
    const res = await runImageBatch(dir, { 'lying.tif': await readFile(lying) }, { width: 100, format: 'png' });
    expect(res.itemErrors).toHaveLength(1);
    // Was: "lying.tif: Warning treated as error due to failOn setting".
    expect(res.itemErrors![0]!.message).toBe('lying.tif: not a decodable image (Incorrect count for "StripOffsets"; tag ignored)');
  });

  it('and on the tiled path', async () => {
    process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1';
    try {
      const spec = { label: 't', priority: 0, max_attempts: 1, params: 'image', image: { format: 'png', tile_size: 64 } } as unknown as JobSpec__Output;
      const r = await runKindInProcess(imageKind, imageProcessor, spec, [lying], { dir, slots: 2 });
      expect(r.errors.map((e) => e.message)).toEqual(['lying.tif: cannot decode image for tiling: Incorrect count for "StripOffsets"; tag ignored']);
    } finally {
      delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
    }
  });

  it('a decoder\'s reason is preferred to a tag it ignored, and either to "error in tile"', () => {
    const banner = 'Warning treated as error due to failOn setting';
    expect(reasonLine([banner, 'Incorrect count for "StripOffsets"; tag ignored', 'Improper JPEG strip/tile size, expected 60000x256, got 3001x256', 'error in tile 0 x 0'])).toBe('Improper JPEG strip/tile size, expected 60000x256, got 3001x256');
    expect(reasonLine([banner, 'error in tile 0 x 0'])).toBe('error in tile 0 x 0');
    expect(reasonLine(['VipsJpeg: Premature end of JPEG file', 'other'])).toBe('VipsJpeg: Premature end of JPEG file');
  });
});
