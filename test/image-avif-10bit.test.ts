/**
 * A 10-bit AVIF (HDR AVIF as Chrome, Android and libavif write them) on this build of sharp: its
 * prebuilt libheif/aom reads the header but cannot decode the pixels ("Bitstream not supported by
 * this decoder"). Like a phone's HEIC, it is refused at submission, saying why (it was accepted,
 * then failed on two workers as "not a decodable image (bad seek to NNN)"); a worker or the tiled
 * path that meets one says the decoder's reason, and never the coordinator's own spool path. Where
 * a libvips decodes it, it is simply processed.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpoolFile } from '../shared/job-kind.js';
import { resolveLimits } from '../shared/limits.js';
import { checkInput } from '../coordinator/input-check.js';
import { planTiledInputs } from '../coordinator/kinds/image-tiles.js';
import { runImageBatch } from './helpers/image-batch.js';
import { imageParams } from './tiles-helpers.js';

/** A 64 x 48 AVIF, AV1 10-bit 4:2:0 (ffmpeg -c:v libaom-av1 -pix_fmt yuv420p10le -still-picture 1), 532 bytes. */
const AVIF_10BIT = Buffer.from('AAAAIGZ0eXBhdmlmAAAAAGF2aWZtaWYxbWlhZk1BMUIAAAD5bWV0YQAAAAAAAAAvaGRscgAAAAAAAAAAcGljdAAAAAAAAAAAAAAAAFBpY3R1cmVIYW5kbGVyAAAAAA5waXRtAAAAAAABAAAAHmlsb2MAAAAARAAAAQABAAAAAQAAASEAAADzAAAAKGlpbmYAAAAAAAEAAAAaaW5mZQIAAAAAAQAAYXYwMUNvbG9yAAAAAGppcHJwAAAAS2lwY28AAAAUaXNwZQAAAAAAAABAAAAAMAAAABBwaXhpAAAAAAMKCgoAAAAMYXYxQ4EATAAAAAATY29scm5jbHgAAgACAAIAAAAAF2lwbWEAAAAAAAAAAQABBAECgwQAAAD7bWRhdAoGGBV/vbgIMugBRyAACzVxY/WBANtxWUBkBjfbytybe/G+bto2YbIMoyzr5V+oAkDkRrndpkYbBZfAPudfji2a3nYtwNDophAZOFfsshGUXuSLEpnsNcbu7POhsebKlC2GnZt9M4Ex6hrtPb/RbLK3tt6iVaQPDkm3bpKW9XCvV3eOXGZw4602GAOo85VcumCDJEnt90nu2stWQXZl1vHIHzo3i9uhzkyGA3/IGnyL6TaT2jRaDz+mOfmGtxrO32YxmJfF7de6L6aYLYhcCLasRkQGxfzM6wfmYNQ12N3vZxVL8JDbPSaGwDyaDHK2B+ljwg==', 'base64');

let dir: string;
let decodes: boolean;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-avif10-'));
  decodes = await sharp(AVIF_10BIT).raw().toBuffer().then(() => true, () => false);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spoolFile(name: string, bytes: Buffer): Promise<SpoolFile> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return { name, path: file, size: (await stat(file)).size, sha256: '' };
}

describe('10-bit AVIF where this libvips cannot decode it', () => {
  it('is refused at submission, saying why (as a HEIC is), not accepted to fail on the workers', async () => {
    const meta = await sharp(AVIF_10BIT).metadata();
    expect([meta.format, meta.compression, meta.bitsPerSample]).toEqual(['heif', 'av1', 10]);
    const verdict = await checkInput('image', await spoolFile('hdr.avif', AVIF_10BIT), resolveLimits());
    if (decodes) expect(verdict).toBeUndefined();
    else {
      expect(verdict).toMatchObject({ input: 'hdr.avif', code: 'INVALID_ARGUMENT' });
      expect(verdict?.message).toMatch(/10-bit|bit depth|cannot be decoded/i);
    }
  });

  it("a worker's error says what is wrong, not libvips' \"bad seek to N\"", async () => {
    const r = await runImageBatch(dir, { 'hdr.avif': AVIF_10BIT }, { format: 'png' });
    if (decodes) {
      expect(r.itemErrors).toEqual([]);
      return;
    }
    expect(r.itemErrors).toHaveLength(1);
    expect(r.itemErrors![0]!.message).toMatch(/^hdr\.avif: not a decodable image \(heif: .*Bitstream not supported by this decoder/);
  });

  it("the tiled path's refusal names the input, never the coordinator's spool path", async () => {
    const input = await spoolFile('hdr.avif', AVIF_10BIT);
    const r = await planTiledInputs([input], imageParams({ tile_size: 64, format: 'png' }), { workDir: path.join(dir, 'job'), slots: 2, signal: new AbortController().signal });
    if (decodes) {
      expect(r.errors).toEqual([]);
      return;
    }
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.code).toBe('INVALID_ARGUMENT');
    expect(r.errors[0]!.message).toMatch(/^hdr\.avif: cannot decode image for tiling: heif: /);
    expect(r.errors[0]!.message).not.toContain(dir);
  });
});
