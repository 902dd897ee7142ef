import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAndCutStrips } from './tile-strip-cutter.js';

let dir: string;
let whole: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-strip-cutter-'));
  whole = path.join(dir, 'whole.v');
  await sharp({ create: { width: 301, height: 203, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).toFile(whole);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `whole` to `file` in small pieces with pauses, as a decode in progress would. */
async function slowCopy(file: string): Promise<string> {
  const bytes = await readFile(whole);
  const fh = await open(file, 'w');
  try {
    for (let i = 0; i < bytes.length; i += 7001) {
      await fh.write(bytes, i, Math.min(7001, bytes.length - i));
      if (i % 5 === 0) await sleep(1);
    }
  } finally {
    await fh.close();
  }
  return 'done';
}

describe('decodeAndCutStrips', () => {
  it('cuts overlapping whole-width bands while the intermediate is being written, each equal to an extract', async () => {
    const intermediate = path.join(dir, 'growing.v');
    const bands = [
      [0, 80],
      [64, 150],
      [140, 203],
    ] as const;
    const r = await decodeAndCutStrips({
      intermediate,
      decode: () => slowCopy(intermediate),
      signal: new AbortController().signal,
      plan: (h) => {
        expect(h).toEqual({ width: 301, height: 203, channels: 3, depth: 'uchar' });
        return bands.map(([y0, y1], k) => ({ y0, y1, path: path.join(dir, `strip-${k}.v`) }));
      },
    });
    expect(r.decoded).toBe('done');
    for (const [k, [y0, y1]] of bands.entries()) {
      const got = await sharp(r.files[k]!.path).raw().toBuffer({ resolveWithObject: true });
      const want = await sharp(whole).extract({ left: 0, top: y0, width: 301, height: y1 - y0 }).raw().toBuffer();
      expect([got.info.width, got.info.height]).toEqual([301, y1 - y0]);
      expect(got.data.equals(want)).toBe(true);
      expect(r.files[k]!.size).toBe((await readFile(r.files[k]!.path)).length);
    }
  });

  it('a failed decode rejects with its own error', async () => {
    const intermediate = path.join(dir, 'never.v');
    await expect(
      decodeAndCutStrips({
        intermediate,
        decode: () => Promise.reject(new Error('corrupt JPEG')),
        signal: new AbortController().signal,
        plan: () => [],
      }),
    ).rejects.toThrow('corrupt JPEG');
  });
});
