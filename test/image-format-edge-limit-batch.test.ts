/**
 * A result over its output format's edge limit (WebP 16,383 px, AVIF 16,384, JPEG 65,535) on the
 * batch path (a small image, well below the tiling threshold). Its size is known from the header
 * as the crop, animation and result-size refusals are (coordinator/input-check.ts), and the tiled
 * path names the limit (tile-stitch.ts `checkFormatFits`). Observed on the batch path: the job is
 * accepted, a worker decodes and resizes the photo and then fails it with sharp's words, "Processed
 * image is too large for the HEIF format" (for an AVIF asked for), with neither the size nor the
 * limit nor a way out. JPEG's edge is libjpeg's 65,500 px, not the 65,535 its header holds: a
 * result between them passed the check and failed on the worker (review K12).
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { runImageBatch } from './helpers/image-batch.js';

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
    ['jpeg', 60, /jpeg.*65500/i],
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

  it('jpeg 65,520 px high: refused at submission, as a worker cannot write it (libjpeg holds 65,500)', async () => {
    // 2 x 1000 px asked --height 65520: 131 x 65,520 px (8.6 M pixels).
    const tall = path.join(dir, 'tall-65520.png');
    await sharp({ create: { width: 2, height: 1000, channels: 3, background: '#123456' } }).png().toFile(tall);
    const params = { height: 65520, format: 'jpeg' };
    // What a worker makes of it: sharp's words.
    await mkdir(path.join(dir, 'batch'));
    const worker = await runImageBatch(path.join(dir, 'batch'), { 'tall.png': await readFile(tall) }, params).then(
      (r) => (r.itemErrors ?? []).map((e) => e.message).join('; ') || 'made',
      (e: Error) => e.message,
    );
    expect(worker).toMatch(/65500/);
    const outcome = await cluster.client.submit({ image: params }, [tall]).then(
      (job) => ({ accepted: job.id }),
      (e: unknown) => e as { code: number; details: string },
    );
    // It was: accepted (then failed on the worker as above).
    expect(outcome).toMatchObject({ code: 3 });
    expect((outcome as { details: string }).details).toMatch(/jpeg.*65500/i);
  });
});
