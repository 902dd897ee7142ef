import { writeFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cutStripsWhileDecoding, decodeAndCutStrips } from './tile-strip-cutter.js';

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

  it('yields a strip as soon as its rows are written, while the decode is still going', async () => {
    const intermediate = path.join(dir, 'held.v');
    const bytes = await readFile(whole);
    const stride = 301 * 3;
    // The decode writes the header and rows 0..99, then waits until strip 0 (rows 0..80) has come out.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let decodeDone = false;
    const decode = async (): Promise<string> => {
      const fh = await open(intermediate, 'w');
      try {
        await fh.write(bytes, 0, 64 + 100 * stride);
        await held;
        await fh.write(bytes, 64 + 100 * stride, bytes.length - (64 + 100 * stride), 64 + 100 * stride);
      } finally {
        await fh.close();
      }
      decodeDone = true;
      return 'done';
    };
    const cuts = cutStripsWhileDecoding({
      intermediate,
      decode,
      signal: new AbortController().signal,
      plan: () => [
        { y0: 0, y1: 80, path: path.join(dir, 'held-0.v') },
        { y0: 60, y1: 203, path: path.join(dir, 'held-1.v') },
      ],
    });
    const first = await cuts.next();
    expect(first.done).toBe(false);
    expect(decodeDone).toBe(false);
    const strip0 = first.value as { index: number; path: string };
    expect(strip0.index).toBe(0);
    const got = await sharp(strip0.path).raw().toBuffer();
    expect(got.equals(await sharp(whole).extract({ left: 0, top: 0, width: 301, height: 80 }).raw().toBuffer())).toBe(true);
    release();
    const second = await cuts.next();
    expect([second.done, (second.value as { index: number }).index]).toEqual([false, 1]);
    const end = await cuts.next();
    expect(end.done).toBe(true);
    expect(decodeDone).toBe(true);
    expect(end.value).toMatchObject({ decoded: 'done', header: { width: 301, height: 203 } });
  });

  it('stopping early waits for the decode to finish writing', async () => {
    const intermediate = path.join(dir, 'abandoned.v');
    let decodeDone = false;
    const cuts = cutStripsWhileDecoding({
      intermediate,
      decode: async () => {
        await slowCopy(intermediate);
        decodeDone = true;
      },
      signal: new AbortController().signal,
      plan: () => [
        { y0: 0, y1: 20, path: path.join(dir, 'abandoned-0.v') },
        { y0: 20, y1: 203, path: path.join(dir, 'abandoned-1.v') },
      ],
    });
    for await (const s of cuts) {
      expect(s.index).toBe(0);
      break;
    }
    expect(decodeDone).toBe(true);
  });

  it('a decode that wrote some rows and failed between two of the cutter\'s looks still hands out the complete strips, then its error', async () => {
    // Under load the cutter's next poll can come after a fast decode has already failed: the rows
    // it wrote are there all the same, and which strips come out must not depend on that timing.
    // The file appears and the decode fails within one turn of the event loop, between two polls.
    const intermediate = path.join(dir, 'failed-early.v');
    const bytes = await readFile(whole);
    const stride = 301 * 3;
    const cuts = cutStripsWhileDecoding({
      intermediate,
      decode: async () => {
        await sleep(25);
        writeFileSync(intermediate, bytes.subarray(0, 64 + 120 * stride));
        throw new Error('premature end of JPEG image');
      },
      signal: new AbortController().signal,
      plan: () => [
        { y0: 0, y1: 100, path: path.join(dir, 'failed-early-0.v') },
        { y0: 90, y1: 203, path: path.join(dir, 'failed-early-1.v') },
      ],
    });
    const first = await cuts.next();
    expect([first.done, (first.value as { index: number }).index]).toEqual([false, 0]);
    const got = await sharp((first.value as { path: string }).path).raw().toBuffer();
    expect(got.equals(await sharp(whole).extract({ left: 0, top: 0, width: 301, height: 100 }).raw().toBuffer())).toBe(true);
    await expect(cuts.next()).rejects.toThrow('premature end of JPEG image');
  });

  it('the decode\'s error wins over a plan that cannot make sense of its partial output', async () => {
    const intermediate = path.join(dir, 'failed-plan.v');
    const bytes = await readFile(whole);
    await expect(
      decodeAndCutStrips({
        intermediate,
        decode: async () => {
          writeFileSync(intermediate, bytes.subarray(0, 64 + 10 * 301 * 3));
          throw new Error('corrupt JPEG data');
        },
        signal: new AbortController().signal,
        plan: () => {
          throw new RangeError('the output does not fit');
        },
      }),
    ).rejects.toThrow('corrupt JPEG data');
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
