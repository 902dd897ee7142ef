/**
 * A GIF source kept as GIF with a colour step (`--hue`, `--brightness`, `--saturation`): the output
 * must show the step, as the same request into PNG (and the same request through the tiled path,
 * `--tile 64`) does.
 *
 * On the batch path sharp's GIF writer reuses the palette the decoder left on the image (sharp's
 * `gif()` defaults to `reuse: true`): the changed pixels are quantised back to the source's own
 * 256 colours, and most of the colour change is lost (a hue of 40 came out up to 111 levels off,
 * 20 on average). The tiled path, whose stitched image has no such palette, is right.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageParams, runTiledInProcess } from './tiles-helpers.js';
import { runImageBatch } from './helpers/image-batch.js';

let dir: string;
let gif: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-gif-colour-'));
  const [w, h] = [150, 100];
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([Math.round((x / w) * 255), Math.round((y / h) * 255), 128], (y * w + x) * 3);
  gif = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).gif().toBuffer();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rgb(file: string): Promise<Buffer> {
  return sharp(file).removeAlpha().raw().toBuffer();
}

function diff(a: Buffer, b: Buffer): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / a.length };
}

describe('a GIF kept as GIF through a colour step', () => {
  it.each([
    ['hue 40', { hue: 40 }],
    ['brightness 1.5', { brightness: 1.5 }],
  ])('%s: the batch output shows the step, as the PNG and the tiled GIF do', async (_label, step) => {
    const asPng = await runImageBatch(dir, { 'grad.gif': gif }, { ...step, format: 'png' });
    const asGif = await runImageBatch(dir, { 'grad.gif': gif }, step);
    expect([asPng.itemErrors, asGif.itemErrors]).toEqual([[], []]);
    const srcFile = path.join(dir, 'grad.gif');
    await sharp(gif).toFile(srcFile);
    const tiled = await runTiledInProcess(srcFile, imageParams({ ...step, tile_size: 64 }), path.join(dir, `tiled-${_label.replace(/\W/g, '')}`));
    expect((await sharp(asGif.outputs[0]!.path).metadata()).format).toBe('gif');

    const [png, batchGif, tiledGif] = await Promise.all([rgb(asPng.outputs[0]!.path), rgb(asGif.outputs[0]!.path), rgb(tiled.output)]);
    // The tiled path gets it right (0 here).
    expect(diff(tiledGif, png).max).toBeLessThanOrEqual(16);
    // Observed on the batch path: hue 40 max 111 / mean 19.8; brightness 1.5 max 127 / mean 29.
    const d = diff(batchGif, png);
    expect(d.mean).toBeLessThan(0.5);
    expect(d.max).toBeLessThanOrEqual(16);
  });
});
