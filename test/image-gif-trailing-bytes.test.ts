/**
 * A complete GIF (every frame, its 0x3B trailer) followed by a few more bytes, as GIFs come in the
 * wild: a CR LF added by a text-mode transfer, a comment or other data appended by a tool. libvips
 * (and so a plain sharp pipeline) decodes every frame of it; the README refuses only a GIF "cut
 * short (no trailer: libvips would decode it with frames missing)". The trailer check
 * (image-pipeline.ts `gifTruncation`) looks only at the file's last non-zero byte, so such a GIF was
 * refused as "cut short", at submission and on the worker alike; so was one padded with more than
 * 4 KiB of zeros (the check reads the last 4 KiB only, and finds no trailer in them).
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkInput } from '../coordinator/input-check.js';
import type { SpoolFile } from '../shared/job-kind.js';
import { resolveLimits } from '../shared/limits.js';
import { runImageBatch } from './helpers/image-batch.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-gif-trailing-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A 3-frame 40 x 30 animated GIF (red, green, blue frames). */
async function threeFrameGif(): Promise<Buffer> {
  const raw = Buffer.alloc(40 * 30 * 3 * 3);
  for (let f = 0; f < 3; f++) for (let i = 0; i < 40 * 30; i++) raw[(f * 40 * 30 + i) * 3 + f] = 220;
  return sharp(raw, { raw: { width: 40, height: 90, channels: 3, pageHeight: 30 } }).gif().toBuffer();
}

async function spoolFile(name: string, bytes: Buffer): Promise<SpoolFile> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return { name, path: file, size: (await stat(file)).size, sha256: '' };
}

describe('a complete GIF with bytes after its trailer', () => {
  const tails: Record<string, Buffer> = {
    'crlf.gif': Buffer.from('\r\n'),
    'appended.gif': Buffer.from('data appended after the GIF trailer'),
    // Zero padding, which the check means to tolerate, but only looks for in the last 4 KiB.
    'padded.gif': Buffer.alloc(8192),
  };

  it('decodes whole with a plain sharp pipeline (every frame)', async () => {
    const gif = await threeFrameGif();
    for (const tail of Object.values(tails)) {
      expect((await sharp(Buffer.concat([gif, tail]), { animated: true }).metadata()).pages).toBe(3);
    }
  });

  it('is accepted at submission, not refused as cut short', async () => {
    const gif = await threeFrameGif();
    for (const [name, tail] of Object.entries(tails)) {
      // Observed: { code: 'INVALID_ARGUMENT', message: 'crlf.gif: a GIF cut short (it does not end with its trailer): ...' }
      expect(await checkInput('image', await spoolFile(name, Buffer.concat([gif, tail])), resolveLimits())).toBeUndefined();
    }
  });

  it('is resized by the worker with all its frames, not failed as cut short', async () => {
    const gif = await threeFrameGif();
    const files = Object.fromEntries(Object.entries(tails).map(([name, tail]) => [name, Buffer.concat([gif, tail])]));
    const res = await runImageBatch(dir, files, { width: 20 });
    expect(res.itemErrors).toEqual([]);
    expect(res.outputs).toHaveLength(3);
    for (const o of res.outputs) {
      const m = await sharp(o.path, { animated: true }).metadata();
      expect({ format: m.format, pages: m.pages, width: m.width, pageHeight: m.pageHeight }).toEqual({ format: 'gif', pages: 3, width: 20, pageHeight: 15 });
    }
  });
});

describe('a GIF cut short, whatever follows the cut', () => {
  it('is refused at submission as before: cut in its last frame, with or without zeros or other bytes after the cut', async () => {
    const gif = await threeFrameGif();
    const cut = gif.subarray(0, gif.length - 20);
    const cases = { 'cut.gif': cut, 'cut-zeros.gif': Buffer.concat([cut, Buffer.alloc(8192)]), 'cut-crlf.gif': Buffer.concat([cut, Buffer.from('\r\n')]), 'header-only.gif': gif.subarray(0, 12) };
    for (const [name, bytes] of Object.entries(cases)) {
      expect(await checkInput('image', await spoolFile(name, bytes), resolveLimits()), name).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/(a GIF cut short \(it does not reach its trailer\)|not a decodable image)/) });
    }
  });
});
