import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spliceJpegStrips } from './tile-jpeg-splice.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-splice-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Noise with some blur: every coefficient and DC difference matters. */
async function pixels(width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  const rgb = await sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
    .blur(0.7)
    .raw()
    .toBuffer();
  if (channels === 3) return rgb;
  const grey = Buffer.alloc(width * height);
  for (let i = 0; i < grey.length; i++) grey[i] = rgb[i * 3]!;
  return grey;
}

function encode(px: Buffer, width: number, height: number, channels: 1 | 3, opts: sharp.JpegOptions): sharp.Sharp {
  const img = sharp(px, { raw: { width, height, channels } });
  return (channels === 1 ? img.toColourspace('b-w') : img).jpeg({ mozjpeg: false, optimiseCoding: false, ...opts });
}

/** Encodes `px` whole and as strips of `stripRows`, joins the strips; returns both files' bytes. */
async function wholeAndJoined(width: number, height: number, channels: 1 | 3, stripRows: number, opts: sharp.JpegOptions = {}) {
  const px = await pixels(width, height, channels);
  const whole = await encode(px, width, height, channels, opts).toBuffer();
  const files: string[] = [];
  for (let y = 0; y < height; y += stripRows) {
    const rows = Math.min(stripRows, height - y);
    const f = path.join(dir, `s-${width}-${channels}-${y}.jpg`);
    await writeFile(f, await encode(px.subarray(y * width * channels, (y + rows) * width * channels), width, rows, channels, opts).toBuffer());
    files.push(f);
  }
  const out = path.join(dir, `joined-${width}-${height}-${channels}-${stripRows}.jpg`);
  const info = await spliceJpegStrips(files, out);
  return { whole, joined: await readFile(out), info, files };
}

describe('JPEG strip splice', () => {
  it.each([
    ['colour 4:2:0, odd size, 3 strips', 1237, 911, 3, 320],
    ['colour 4:2:0, 2 strips', 640, 96, 3, 48],
    ['grey, 4 strips', 517, 333, 1, 96],
    ['one strip', 300, 200, 3, 200],
  ] as const)('%s: byte-identical to the whole-image encode', async (_name, w, h, ch, rows) => {
    const r = await wholeAndJoined(w, h, ch, rows);
    expect([r.info.width, r.info.height]).toEqual([w, h]);
    expect(r.joined.equals(r.whole)).toBe(true);
  });

  it('4:4:4 with quality 95 (8-row MCUs, other tables)', async () => {
    const r = await wholeAndJoined(401, 203, 3, 64, { quality: 95, chromaSubsampling: '4:4:4' });
    expect(r.joined.equals(r.whole)).toBe(true);
  });

  it('refuses strips off the MCU grid, other settings, and progressive files', async () => {
    const px = await pixels(64, 40, 3);
    const a = path.join(dir, 'a.jpg');
    const b = path.join(dir, 'b.jpg');
    await writeFile(a, await encode(px.subarray(0, 64 * 20 * 3), 64, 20, 3, {}).toBuffer());
    await writeFile(b, await encode(px.subarray(64 * 20 * 3), 64, 20, 3, {}).toBuffer());
    await expect(spliceJpegStrips([a, b], path.join(dir, 'x.jpg'))).rejects.toThrow(/not a multiple of the 16-row MCU/);
    await writeFile(b, await encode(px.subarray(64 * 16 * 3, 64 * 32 * 3), 64, 16, 3, { quality: 50 }).toBuffer());
    await writeFile(a, await encode(px.subarray(0, 64 * 16 * 3), 64, 16, 3, {}).toBuffer());
    await expect(spliceJpegStrips([a, b], path.join(dir, 'x.jpg'))).rejects.toThrow(/other settings/);
    await writeFile(a, await encode(px, 64, 40, 3, { progressive: true }).toBuffer());
    await expect(spliceJpegStrips([a], path.join(dir, 'x.jpg'))).rejects.toThrow(/only baseline/);
  });
});
