/**
 * The submit-time input checks on real files made by sharp: JPEG and PNG headers read from the
 * bytes already in memory give the same verdicts as reading the file, a header longer than that
 * head still gets its real size, and formats whose frames lie further in are counted in full.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpoolFile } from '../shared/job-kind.js';
import { resolveLimits } from '../shared/limits.js';
import { checkInput, inputChecker } from './input-check.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-input-check-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spoolFile(name: string, bytes: Buffer): Promise<SpoolFile> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return { name, path: file, size: (await stat(file)).size, sha256: '' };
}

/** Rewrites the frame size in a JPEG's SOF0 marker: a header that claims far more pixels than the data holds. */
function claimSize(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  const sof = out.indexOf(Buffer.from([0xff, 0xc0]));
  out.writeUInt16BE(height, sof + 5);
  out.writeUInt16BE(width, sof + 7);
  return out;
}

/** Two 64 KiB application segments (APP15) right after SOI: the frame header starts past the first 128 KiB. */
function padHeader(jpeg: Buffer): Buffer {
  const segment = Buffer.alloc(2 + 65535, 0x20);
  segment.writeUInt16BE(0xffef, 0);
  segment.writeUInt16BE(65535, 2);
  return Buffer.concat([jpeg.subarray(0, 2), segment, segment, jpeg.subarray(2)]);
}

describe('image header checks', () => {
  it('a JPEG claiming 60000 x 50000 is refused naming its size and the limit, whether its header fits in the head or not', async () => {
    const small = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toBuffer();
    const limits = resolveLimits({ maxPixels: 100_000_000 });
    for (const [name, bytes] of [
      ['bomb.jpg', claimSize(small, 60000, 50000)],
      ['padded-bomb.jpg', padHeader(claimSize(small, 60000, 50000))],
    ] as const) {
      const verdict = await checkInput('image', await spoolFile(name, bytes), limits);
      expect(verdict).toEqual({ input: name, code: 'RESOURCE_EXHAUSTED', message: `${name}: 60000x50000 = 3000000000 pixels is over the limit --max-pixels=100000000` });
    }
  });

  it('a camera-sized JPEG and a PNG are accepted with their pixel count; a header past the head is read from the file', async () => {
    const limits = resolveLimits();
    const photo = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#843' } }).jpeg().toBuffer();
    const png = await sharp({ create: { width: 1500, height: 1000, channels: 4, background: '#8438' } }).png().toBuffer();
    for (const [name, bytes, pixels] of [
      ['photo.jpg', photo, 12_000_000],
      ['padded.jpg', padHeader(photo), 12_000_000],
      ['image.png', png, 1_500_000],
    ] as const) {
      const file = await spoolFile(name, bytes);
      expect(await checkInput('image', file, limits)).toBeUndefined();
      expect(file.pixels).toBe(pixels);
    }
  });

  it('an animated GIF larger than the head has every frame counted', async () => {
    // 40 frames of noise, 160 x 120: well over 64 KiB, so its frame count is read from the file.
    const frames = 40;
    const raw = Buffer.alloc(160 * 120 * frames * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
    const gif = await sharp(raw, { raw: { width: 160, height: 120 * frames, channels: 3, pageHeight: 120 } }).gif().toBuffer();
    expect(gif.length).toBeGreaterThan(64 * 1024);
    const verdict = await checkInput('image', await spoolFile('anim.gif', gif), resolveLimits({ maxFrames: 30 }));
    expect(verdict).toEqual({ input: 'anim.gif', code: 'RESOURCE_EXHAUSTED', message: 'anim.gif: 40 frames is over the limit --max-frames=30' });
  });

  it('a broken image fails as its own input, by name', async () => {
    const photo = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toBuffer();
    const verdict = await checkInput('image', await spoolFile('cut.jpg', photo.subarray(0, 40)), resolveLimits());
    expect(verdict).toMatchObject({ input: 'cut.jpg', code: 'INVALID_ARGUMENT', message: expect.stringContaining('cut.jpg: not a decodable image') });
  });
});

describe('inputChecker', () => {
  it('checks inputs as they are added and gives the verdicts in the order asked; after stop there are none', async () => {
    const good = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } }).png().toBuffer();
    const files = await Promise.all([
      spoolFile('a.png', good),
      spoolFile('b.txt', Buffer.from('plain text, not an image\n')),
      spoolFile('c.png', good),
    ]);
    const checks = inputChecker('image', resolveLimits());
    // Added out of order (as shared-storage lookups may finish), one never added: all are checked.
    checks.add(files[2]!);
    checks.add(files[0]!);
    const r = await checks.result(files);
    expect(r.accepted.map((f) => f.name)).toEqual(['a.png', 'c.png']);
    expect(r.errors).toEqual([{ input: 'b.txt', code: 'INVALID_ARGUMENT', message: expect.stringContaining('b.txt: content is not an accepted image format') }]);

    const stopped = inputChecker('image', resolveLimits());
    for (const f of files) stopped.add(f);
    await stopped.stop();
    // What had not been checked yet was never checked: there is no verdict to give.
    await expect(stopped.result(files)).rejects.toThrow('the input checks were stopped');
  });
});
