/**
 * A CMYK JPEG with its own embedded ICC profile, kept (keep_metadata), turned a quarter with a
 * cover or contain box: the batch path runs its geometry first into an intermediate
 * (image-pipeline.ts `needsGeometryPass`), and that first pass kept the metadata without the CMYK
 * fix of `applyEncoding` (convert through the source's own profile): libvips' built-in CMYK
 * profile converted the samples, and the colours came out as without the fix (review IC):
 * 196,56,33 instead of 206,77,30. Without the quarter turn, or with fit inside, they are right.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../coordinator/kinds/image.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { imageProcessor } from '../worker/processors/image.js';
import { runKindInProcess } from './helpers/media.js';
import { cmykIcc, withIcc } from './helpers/icc.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cmyk-quarter-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const imageSpec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;

/** A flat 256 x 128 CMYK JPEG (an orange-red) tagged with {@link cmykIcc}. */
async function cmykJpeg(): Promise<string> {
  const plain = await sharp({ create: { width: 256, height: 128, channels: 3, background: { r: 200, g: 60, b: 40 } } })
    .withIccProfile('cmyk', { attach: false })
    .jpeg({ quality: 100 })
    .toBuffer();
  const file = path.join(dir, 'press.jpg');
  await writeFile(file, withIcc(plain, await cmykIcc()));
  return file;
}

/** The output's mean colour as shown: through its own profile to sRGB where it carries one. */
async function shown(file: string): Promise<number[]> {
  const m = await sharp(file).metadata();
  const img = m.icc ? sharp(file).withIccProfile('srgb', { attach: false }) : sharp(file);
  const s = await sharp(await img.png().toBuffer()).stats();
  return s.channels.slice(0, 3).map((c) => Math.round(c.mean));
}

describe('keep_metadata on a CMYK JPEG with its own profile, turned a quarter into a cover or contain box', () => {
  it('shows the colours of its own profile, as without the turn', async () => {
    const src = await cmykJpeg();
    const reference = await shown(await sharp(src).png().toFile(path.join(dir, 'ref.png')).then(() => path.join(dir, 'ref.png')));
    const cases: [string, Record<string, unknown>][] = [
      ['no turn (one pass)', { format: 'jpeg', width: 100, height: 50, keep_metadata: true }],
      ['rotate 90, cover', { format: 'jpeg', rotate: 90, width: 100, height: 50, keep_metadata: true }],
      ['rotate 270, contain, png', { format: 'png', rotate: 270, width: 100, height: 50, fit: 'contain', keep_metadata: true }],
    ];
    const seen: string[] = [`reference (sharp, own profile): ${reference}`];
    const got: number[][] = [];
    for (const [what, params] of cases) {
      const r = await runKindInProcess(imageKind, imageProcessor, imageSpec(params), [src], { dir, slots: 2 });
      expect(r.errors).toEqual([]);
      const c = await shown(r.outputs[0]!.path);
      got.push(c);
      seen.push(`${what}: ${c}`);
    }
    // Observed: 206,77,30 without the turn; 196,56,33 (libvips' built-in CMYK profile) with it.
    for (const c of got) for (let b = 0; b < 3; b++) expect(Math.abs(c[b]! - reference[b]!), seen.join('\n')).toBeLessThanOrEqual(3);
  });
});
