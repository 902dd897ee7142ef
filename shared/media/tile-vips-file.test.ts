/**
 * The stitch's check of a tile a worker sent: a `.v` of either byte order gives its size; anything
 * else (an SVG, a PNG, a short file) is no `.v`, and libvips never gets to pick a loader for it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readVipsSize, vipsHeader } from './tile-vips-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-vips-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readVipsSize', () => {
  it("gives the size of a .v that libvips wrote, and of the workers' own 8-bit .v", async () => {
    const written = path.join(dir, 'sharp.v');
    await sharp({ create: { width: 37, height: 21, channels: 3, background: '#123456' } }).toFile(written);
    expect(await readVipsSize(written)).toEqual({ width: 37, height: 21, channels: 3, bandFormat: 0 });
    const own = path.join(dir, 'own.v');
    await writeFile(own, Buffer.concat([vipsHeader(5, 4, 4), Buffer.alloc(5 * 4 * 4)]));
    expect(await readVipsSize(own)).toEqual({ width: 5, height: 4, channels: 4, bandFormat: 0 });
  });

  it('says undefined of anything else: SVG, PNG, a short file', async () => {
    const svg = path.join(dir, 'tile.v');
    await writeFile(svg, '<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="9000"><image href="file:///etc/passwd"/></svg>');
    const png = path.join(dir, 'png.v');
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toFile(png);
    const short = path.join(dir, 'short.v');
    await writeFile(short, vipsHeader(5, 4, 3).subarray(0, 20));
    for (const f of [svg, png, short]) expect(await readVipsSize(f), f).toBeUndefined();
  });
});
