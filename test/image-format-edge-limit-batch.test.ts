/**
 * A result over its output format's edge limit (WebP 16,383 px, AVIF 16,384, JPEG 65,535) on the
 * batch path (a small image, well below the tiling threshold). Its size is known from the header
 * as the crop, animation and result-size refusals are (coordinator/input-check.ts), and the tiled
 * path names the limit (tile-stitch.ts `checkFormatFits`). Observed on the batch path: the job is
 * accepted, a worker decodes and resizes the photo and then fails it with sharp's words, "Processed
 * image is too large for the HEIF format" (for an AVIF asked for), with neither the size nor the
 * limit nor a way out.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-format-edge-'));
  // No worker: what is not refused at submission waits in the queue.
  cluster = await startCluster({ workers: 0 });
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a batch result over its format edge limit', () => {
  it.each([
    ['webp', 16, /webp.*16383/i],
    ['avif', 16, /avif.*16384/i],
    ['jpeg', 60, /jpeg.*65535/i],
  ] as const)('%s: refused at submission as INVALID_ARGUMENT naming the input, the format and its limit', async (format, width, names) => {
    // 4 x 5000 px, resized to width 16 (60): 16 x 20,000 px (60 x 75,000), a few hundred thousand pixels.
    const tall = path.join(dir, `tall-${format}.png`);
    await sharp({ create: { width: 4, height: 5000, channels: 3, background: '#123456' } }).png().toFile(tall);
    const outcome = await cluster.client.submit({ image: { width, format } }, [tall]).then(
      (job) => ({ accepted: job.id }),
      (e: unknown) => e as { code: number; details: string },
    );
    expect(outcome).toMatchObject({ code: 3 }); // INVALID_ARGUMENT, not a job that fails later
    const err = outcome as { details: string };
    expect(err.details).toMatch(new RegExp(`tall-${format}\\.png`));
    expect(err.details).toMatch(names);
  });
});
