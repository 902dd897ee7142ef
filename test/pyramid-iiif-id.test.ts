/**
 * IIIF pyramids: the base URI (`iiif_id`) the info.json `id` is built from, and what the tiles of a
 * pyramid say about their orientation. In-process (the real planner, worker processor and merger).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageParams, makeSource, runTiledInProcess } from './tiles-helpers.js';

let dir: string;
let run = 0;
const next = (): string => path.join(dir, `run-${run++}`);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-pyramid-iiif-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The info.json `id` of an IIIF pyramid made with `iiif_id`, or the validation error. */
async function idFor(iiifId: string): Promise<string> {
  const src = path.join(dir, 'scan.png');
  await makeSource(src, 64, 48);
  const out = await runTiledInProcess(src, imageParams({ tiled_output: 'iiif', iiif_id: iiifId }), next());
  const id = /"id": "([^"]*)"/.exec((await readFile(out.output)).toString('latin1'))?.[1];
  return id!;
}

describe('iiif_id', () => {
  // README: `id` is `URL/NAME`, so that the zip unpacked under URL serves the tiles where info.json
  // says they are; image-params.ts `isHttpUrl` means to refuse a URL with a query or a fragment.
  // `new URL()` reports an empty query or fragment as '' (falsy): a bare '?' or '#' slips through,
  // and NAME lands in the query or the fragment; a viewer then asks `URL?/scan/full/...` or
  // `URL#/scan/...`, which a server answers as URL itself.
  it.each(['https://images.example.org/iiif?', 'https://images.example.org/iiif#', 'https://images.example.org/iiif/#'])(
    'a base URI ending in an empty query or fragment (%s) is refused, or the id names NAME in its path',
    async (base) => {
      let id: string;
      try {
        id = await idFor(base);
      } catch (err) {
        expect(err).toMatchObject({ codeName: 'INVALID_ARGUMENT', message: expect.stringMatching(/iiif_id/) });
        return;
      }
      const u = new URL(id);
      expect(u.pathname, `id ${id}`).toMatch(/\/scan$/);
      expect(u.search + u.hash, `id ${id}`).toBe('');
    },
  );
});

describe('tiles of a pyramid', () => {
  // Every tile is a separate image that a browser draws with its own EXIF orientation
  // (CSS image-orientation: from-image, the default, which canvas drawImage honours too): a tile
  // tagged 6 is turned on its own, and the mosaic falls apart. The descriptor's size is the stored
  // (unturned) one, so the tag can only be wrong in a tile.
  it('carry no EXIF orientation other than 1, with keep_metadata and no_auto_orient', async () => {
    const plain = await makeSource(path.join(dir, 'portrait0.png'), 300, 200);
    const src = path.join(dir, 'portrait.jpg');
    await sharp(plain).jpeg().withMetadata({ orientation: 6 }).toFile(src);
    const out = await runTiledInProcess(src, imageParams({ tiled_output: 'deepzoom', keep_metadata: true, no_auto_orient: true }), next());
    const unzipped = path.join(dir, `unz-${run}`);
    // Python's zipfile (CI installs python3; unzip may not be there).
    const zipList = execFileSync('/usr/bin/python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2]); print("\\n".join(z.namelist()))', out.output, unzipped])
      .toString()
      .split('\n')
      .filter((f) => /\.jpeg$/.test(f));
    expect(zipList.length).toBeGreaterThan(1);
    const dzi = await readFile(path.join(unzipped, 'portrait.dzi'), 'utf8');
    expect(dzi).toMatch(/Height="200"\s+Width="300"/);
    for (const f of zipList) expect((await sharp(path.join(unzipped, f)).metadata()).orientation ?? 1, f).toBe(1);
  });
});
