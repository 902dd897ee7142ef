/**
 * A sprite sheet of many small thumbnails (--sprite up to 100x100, --count up to 10,000) is made by
 * one sharp composite of every thumbnail at once (before): libvips opened and kept a decoder, buffers and
 * a pipeline per overlay, so the coordinator's memory grows by ~0.2 MB per thumbnail of a sheet,
 * whatever their size. A 100x100 sheet of 32x18 px thumbnails (an image of 17 MB) took the
 * coordinator to 2.1 GB RSS (measured through a real cluster: 10,000 thumbnails, 45 s).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { writeSprites } from './video-sprite.js';

describe('sprite sheets of many thumbnails', () => {
  it('one 50x40 sheet of 2,000 thumbnails of 32x18 px (a 3.5 MB image) does not take hundreds of MB', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-sprite-scale-'));
    try {
      const thumb = path.join(dir, 't.jpg');
      await sharp({ create: { width: 32, height: 18, channels: 3, background: '#38a' } }).jpeg().toFile(thumb);
      const n = 2_000;
      // Warm sharp up first, so that only the sheet's own memory is counted.
      await writeSprites(dir, { files: [thumb, thumb], cues: [[0, 1], [1, 2]], width: 32, height: 18, cols: 2, rows: 1, format: 'jpeg', prefix: 'warm-' }, new AbortController().signal);
      const before = process.resourceUsage().maxRSS / 1024;
      const t = performance.now();
      const names = await writeSprites(
        dir,
        { files: Array<string>(n).fill(thumb), cues: Array.from({ length: n }, (_, i) => [i, i + 1] as [number, number]), width: 32, height: 18, cols: 50, rows: 40, format: 'jpeg', prefix: '' },
        new AbortController().signal,
      );
      const ms = performance.now() - t;
      const grewMb = process.resourceUsage().maxRSS / 1024 - before;
      expect(names).toEqual(['sprite.jpg', 'thumbnails.vtt']);
      expect(await sharp(path.join(dir, 'sprite.jpg')).metadata()).toMatchObject({ width: 1600, height: 720 });
      // The sheet is 1600x720x3 = 3.5 MB of pixels; allow 40x that.
      expect(grewMb, `peak memory grew ${grewMb.toFixed(0)} MB in ${ms.toFixed(0)} ms`).toBeLessThan(150);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
