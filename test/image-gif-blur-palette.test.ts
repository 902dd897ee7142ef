/**
 * Regression review K14 of 47b21d5 (a GIF reuses its source's palette unless a colour step is asked).
 * A blur (or sharpen) makes colours the source does not have: the edge between two flat colours
 * becomes a ramp. A GIF kept as GIF whose palette holds only those two colours (a logo, a diagram,
 * a two-colour animation) now has every blurred pixel snapped back to one of them: the output is
 * the unblurred picture, the asked blur gone without a word. Under e83e70c (a palette of the GIF's
 * own) the blur showed, as in the PNG of the same request.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runImageBatch } from './helpers/image-batch.js';

let dir: string;
let gif: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-k14-gif-blur-'));
  // 100x100: black left half, white right half (a two-colour palette).
  const [w, h] = [100, 100];
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.fill(x < 50 ? 0 : 255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  gif = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).gif().toBuffer();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The grey levels of row 50 from x 40 to 59, across the edge. */
async function edge(file: string): Promise<number[]> {
  return [...(await sharp(file).greyscale().extract({ left: 40, top: 50, width: 20, height: 1 }).raw().toBuffer())];
}

describe('a two-colour GIF kept as GIF through a blur', () => {
  it('shows the blur (a ramp across the edge), as the PNG of the same request does', async () => {
    const asPng = await runImageBatch(dir, { 'logo.gif': gif }, { blur: 3, format: 'png' });
    const asGif = await runImageBatch(dir, { 'logo.gif': gif }, { blur: 3 });
    expect([asPng.itemErrors, asGif.itemErrors]).toEqual([[], []]);
    const png = await edge(asPng.outputs[0]!.path);
    const out = await edge(asGif.outputs[0]!.path);
    const levels = (row: number[]): number => new Set(row).size;
    // The PNG: a ramp of many grey levels across the edge.
    expect(levels(png)).toBeGreaterThan(8);
    // Observed: only 0 and 255 - the blurred pixels snapped back to the source's two colours.
    expect(levels(out), `gif row ${out.join(',')}; png row ${png.join(',')}`).toBeGreaterThan(4);
  }, 30_000);
});
