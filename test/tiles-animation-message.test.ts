/**
 * `--tile SIZE` (image.tile_size) on a small animated GIF kept as GIF: refused naming tile_size,
 * which forced the tiling. It said the result was "over the tiling threshold" and to "ask for a
 * smaller size", false for a 120 x 90 animation and no help.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SpoolFile } from '../shared/job-kind.js';
import { planTiledInputs } from '../coordinator/kinds/image-tiles.js';
import { imageParams } from './tiles-helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tile-anim-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('a forced tile size on a small animation is refused naming tile_size, not a threshold it is far below', async () => {
  const file = path.join(dir, 'anim.gif');
  const frames = await Promise.all([0, 1, 2].map((k) => sharp({ create: { width: 120, height: 90, channels: 3, background: { r: 80 * k, g: 40, b: 200 - 60 * k } } }).raw().toBuffer()));
  await sharp(Buffer.concat(frames), { raw: { width: 120, height: 270, channels: 3, pageHeight: 90 } }).gif({ delay: [100, 100, 100] }).toFile(file);
  const input: SpoolFile = { name: 'anim.gif', path: file, size: (await stat(file)).size, sha256: '' };
  const r = await planTiledInputs([input], imageParams({ tile_size: 64 }), { workDir: path.join(dir, 'job'), slots: 2, signal: new AbortController().signal });
  expect(r.errors).toHaveLength(1);
  expect(r.errors[0]!.code).toBe('INVALID_ARGUMENT');
  expect(r.errors[0]!.message).not.toMatch(/over the tiling threshold/);
  expect(r.errors[0]!.message).toMatch(/tile_size|--tile/);
});
