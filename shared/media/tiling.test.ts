import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { applyPipeline } from './image-pipeline.js';
import { validateImageParams } from '../kinds/image-params.js';
import { balancedStripEnds, chainHalo, gaussMaskRadius, grow, mapRect, mapSize, opRadius, stripGrid, stripsEndingAt, tileGrid, unmapRect, type Orientation } from './tiling.js';
import { vipsHeader, writeVipsRect } from './tile-vips-file.js';

const ORIENTATIONS: Orientation[] = [0, 90, 180, 270].flatMap((angle) =>
  [false, true].flatMap((flip) => [false, true].map((flop) => ({ flip, flop, angle: angle as Orientation['angle'] }))),
);

describe('tile grid', () => {
  it('covers an odd-sized image exactly once, halos clipped at the border', () => {
    const tiles = tileGrid(1001, 777, 256, 10);
    const seen = new Uint8Array(1001 * 777);
    for (const t of tiles) {
      for (let y = t.core.y; y < t.core.y + t.core.h; y++) for (let x = t.core.x; x < t.core.x + t.core.w; x++) seen[y * 1001 + x]!++;
      expect(t.cut.x).toBe(Math.max(0, t.core.x - 10));
      expect(t.cut.x + t.cut.w).toBe(Math.min(1001, t.core.x + t.core.w + 10));
    }
    expect(tiles).toHaveLength(4 * 4);
    expect(seen.every((v) => v === 1)).toBe(true);
  });
});

describe('strip grid', () => {
  it.each(ORIENTATIONS)('strips are whole source rows, the short one last in the output, %o', (o) => {
    const [w, h] = [301, 203];
    const out = mapSize(w, h, o);
    const strips = stripGrid(out.width, out.height, 3, o, 0);
    expect(strips).toHaveLength(3);
    const seen = new Uint8Array(out.width * out.height);
    for (const t of strips) {
      for (let y = t.core.y; y < t.core.y + t.core.h; y++) for (let x = t.core.x; x < t.core.x + t.core.w; x++) seen[y * out.width + x]!++;
      const src = unmapRect(t.core, w, h, o);
      expect([src.x, src.w]).toEqual([0, w]);
    }
    expect(seen.every((v) => v === 1)).toBe(true);
    const sizes = strips.map((t) => (o.angle % 180 === 0 ? t.core.h : t.core.w));
    expect(sizes.slice(0, -1).every((s) => s === sizes[0])).toBe(true);
    expect(sizes.at(-1)).toBeLessThanOrEqual(sizes[0]!);
  });

  it('balanced strips even out decode + process cost, lower strips shorter, MCU-aligned', () => {
    const ends = balancedStripEnds(16_000, 2, 0.25);
    expect(ends[1]).toBe(16_000);
    const cost = (s: number, e: number): number => 0.25 * e + (e - s);
    expect(Math.abs(cost(0, ends[0]!) - cost(ends[0]!, 16_000))).toBeLessThan(1);
    expect(ends[0]).toBeGreaterThan(8_000);
    const strips = stripsEndingAt(16_000, 16_000, balancedStripEnds(16_000, 4, 0.25), 16);
    expect(strips).toHaveLength(4);
    expect(strips.slice(0, -1).every((t) => (t.core.y + t.core.h) % 16 === 0)).toBe(true);
    expect(strips.map((t) => t.core.h).every((h, i, a) => i === 0 || h < a[i - 1]!)).toBe(true);
    expect(strips.reduce((n, t) => n + t.core.h, 0)).toBe(16_000);
    expect(stripsEndingAt(100, 20, [3, 5, 20], 16).map((t) => t.core)).toEqual([{ x: 0, y: 0, w: 100, h: 20 }]);
  });

  it('never makes more strips than rows', () => {
    expect(stripGrid(100, 2, 8, { flip: false, flop: false, angle: 0 }, 0)).toHaveLength(2);
    expect(grow({ x: 0, y: 10, w: 100, h: 10 }, 4, 100, 30)).toEqual({ x: 0, y: 6, w: 100, h: 18 });
  });
});

describe('.v tile files', () => {
  it.each([1, 3, 4])('a hand-written %i-band .v reads back as the same pixels, cropped', async (channels) => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(tmpdir(), 'tessera-v-'));
    try {
      const [w, h] = [13, 7];
      const data = Buffer.from(Array.from({ length: w * h * channels }, (_, i) => (i * 37) % 256));
      const file = path.join(dir, 't.v');
      const rect = { x: 2, y: 1, w: 9, h: 5 };
      await writeVipsRect(file, data, { width: w, height: h, channels }, rect);
      expect((await sharp(file).metadata()).channels).toBe(channels);
      // sharp's raw output is sRGB unless told otherwise.
      const img = sharp(file);
      const back = await (channels === 1 ? img.toColourspace('b-w') : img).raw().toBuffer({ resolveWithObject: true });
      expect([back.info.width, back.info.height, back.info.channels]).toEqual([9, 5, channels]);
      const want = Buffer.alloc(9 * 5 * channels);
      for (let y = 0; y < 5; y++) data.copy(want, y * 9 * channels, ((y + 1) * w + 2) * channels, ((y + 1) * w + 11) * channels);
      expect(back.data.equals(want)).toBe(true);
      expect(vipsHeader(9, 5, channels).length).toBe(64);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('orientation mapping', () => {
  it.each(ORIENTATIONS)('unmapRect inverts mapRect for %o', (o) => {
    const r = { x: 13, y: 7, w: 40, h: 21 };
    const out = mapSize(300, 200, o);
    const m = mapRect(r, 300, 200, o);
    expect(m.x + m.w).toBeLessThanOrEqual(out.width);
    expect(m.y + m.h).toBeLessThanOrEqual(out.height);
    expect(unmapRect(m, 300, 200, o)).toEqual(r);
  });

  it.each(ORIENTATIONS)('mapRect puts a marked pixel where sharp does, %o', async (o) => {
    const [w, h] = [7, 5];
    const px = Buffer.alloc(w * h);
    px[2 * w + 5] = 255; // (5, 2)
    const p = validateImageParams({ rotate: o.angle, flip: o.flip, flop: o.flop, no_auto_orient: true });
    const { data, info } = await applyPipeline(sharp(px, { raw: { width: w, height: h, channels: 1 } }), p).raw().toBuffer({ resolveWithObject: true });
    const at = Math.floor(data.indexOf(255) / info.channels);
    const m = mapRect({ x: 5, y: 2, w: 1, h: 1 }, w, h, o);
    expect({ x: at % info.width, y: Math.floor(at / info.width) }).toEqual({ x: m.x, y: m.y });
  });
});

describe('halo', () => {
  it('Gaussian mask radius is about 1.8 sigma (min_ampl 0.2)', () => {
    expect(gaussMaskRadius(8)).toBe(15);
    expect(gaussMaskRadius(1)).toBe(2);
    expect(chainHalo([{ op: 'blur', sigma: 8 }, { op: 'sharpen' }])).toBe(16);
  });

  // The real kernel extent, measured: a vertical step edge (50 | 200, so sharpening overshoot is not
  // clipped) through the image kind's pipeline changes pixels exactly as far as the chain reaches;
  // the halo must be at least that.
  it.each([
    [{ blur: 0.5 }, [{ op: 'blur', sigma: 0.5 }]],
    [{ blur: 3 }, [{ op: 'blur', sigma: 3 }]],
    [{ blur: 8 }, [{ op: 'blur', sigma: 8 }]],
    [{ sharpen: true }, [{ op: 'sharpen' }]],
    [{ blur: 4, sharpen: true }, [{ op: 'blur', sigma: 4 }, { op: 'sharpen' }]],
  ] as const)('halo >= measured reach of %o', async (params, ops) => {
    const n = 101;
    const edge = 50;
    const px = Buffer.alloc(n * n);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) px[y * n + x] = x < edge ? 50 : 200;
    const p = validateImageParams({ ...params, no_auto_orient: true });
    const { data, info } = await applyPipeline(sharp(px, { raw: { width: n, height: n, channels: 1 } }), p).raw().toBuffer({ resolveWithObject: true });
    let reach = 0;
    const row = 50;
    // Far from the edge each side settles to its flat-field response (integer masks may shift it by one).
    const flat = (x: number): number => data[(row * n + (x < edge ? 0 : n - 1)) * info.channels]!;
    for (let x = 0; x < n; x++) {
      if (data[(row * n + x) * info.channels] !== flat(x)) reach = Math.max(reach, x < edge ? edge - 1 - x : x - edge);
    }
    const halo = chainHalo(ops as never);
    expect(halo).toBeGreaterThanOrEqual(reach + 1);
    expect(ops.every((op) => opRadius(op as never) >= 1)).toBe(true);
  });
});
