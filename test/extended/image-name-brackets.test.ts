/**
 * README, "Security": input names must be plain file names; `[`, `]` and spaces are none of the
 * characters refused, so `scan [1]` or `a.png[x]` is an ordinary name (the image kind takes a file
 * with no extension too: `photo` gives `photo.png`), and each input is "recognised by its content".
 *
 * libvips reads a file name ending in `[...]` as a file name plus load options (`x.jpg[shrink=2]`):
 * sharp opened with such a path loads another file (`a.png[x]` loads `a.png`, here another input
 * of the same job) or fails with "Input file is missing". The photo must be read from its own bytes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { runImageBatch } from '../helpers/image-batch.js';

let dir: string;
let red: Buffer;
let blue: Buffer;
let cluster: TestCluster | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-brackets-'));
  red = await sharp({ create: { width: 10, height: 10, channels: 3, background: 'red' } }).png().toBuffer();
  blue = await sharp({ create: { width: 20, height: 30, channels: 3, background: 'blue' } }).png().toBuffer();
});
async function file(name: string, bytes: Buffer): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, bytes);
  return p;
}

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('an image input whose name ends in [...]', () => {
  it('is read from its own bytes on the worker, not from the input named before the bracket', async () => {
    const r = await runImageBatch(dir, { 'a.png': red, 'a.png[x]': blue }, {});
    const item = (r.result as { items: Array<{ input: string; width: number; height: number }> }).items.find((i) => i.input === 'a.png[x]');
    // Observed: 10 x 10, the pixels of a.png.
    expect(item && [item.width, item.height]).toEqual([20, 30]);
  });

  it('is checked and processed by a real cluster from its own bytes (alone, without an extension; beside the file its name would be read as)', async () => {
    cluster ??= await startCluster({ workers: 1 });
    const alone = await file('scan [1]', blue);
    const job = await cluster.client.submit({ image: {} }, [alone]);
    const { job: done } = await cluster.client.collect(job.id, path.join(dir, 'out-alone'));
    // Observed: failed, INVALID_ARGUMENT "scan [1]: Input file is missing: scan [1]".
    expect(done.errors.map((e) => e.message)).toEqual([]);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // Larger than the head the submission check reads (it then opens the file), beside the file its
    // name would be read as: checked and made from its own bytes.
    // (A TIFF: its header is read from the file, not from the head it sent ahead.)
    const noisy = await sharp({ create: { width: 300, height: 200, channels: 3, background: 'blue', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).tiff({ compression: 'none' }).toBuffer();
    expect(noisy.length).toBeGreaterThan(128 * 1024);
    const [plain, bracketed] = [await file('b.tif', await sharp(red).tiff().toBuffer()), await file('b.tif[2]', noisy)];
    const two = await cluster.client.submit({ image: { format: 'png' } }, [plain, bracketed]);
    const { job: both, paths } = await cluster.client.collect(two.id, path.join(dir, 'out-two'));
    expect(both.errors).toEqual([]);
    const sizes = await Promise.all([...paths.values()].map(async (p) => (({ width, height }) => `${width}x${height}`)(await sharp(p).metadata())));
    expect(sizes.sort()).toEqual(['10x10', '300x200']);
    // Its header is its own at submission too: a crop inside it (outside b.tif) is taken.
    const cropped = await cluster.client.submit({ image: { format: 'png', crop: { left: 100, top: 100, width: 50, height: 40 } } }, [bracketed]);
    const { job: crop } = await cluster.client.collect(cropped.id, path.join(dir, 'out-crop'));
    expect([crop.state, crop.errors]).toEqual(['JOB_STATE_SUCCEEDED', []]);
  }, 60_000);

  it('is tiled from its own bytes beside the input named before the bracket', async () => {
    cluster ??= await startCluster({ workers: 1 });
    const a = await file('a.png', red);
    const b = await file('a.png[x]', await sharp(blue).jpeg().toBuffer());
    const tiled = await cluster.client.submit({ image: { tile_size: 256 } }, [a, b]);
    const { job: t } = await cluster.client.collect(tiled.id, path.join(dir, 'out-tiled'));
    // Observed: the whole job failed, INTERNAL "two outputs are named a.png" (a.png[x] was read as a.png).
    expect(t.errors.map((e) => `${e.code} ${e.message}`)).toEqual([]);
    expect(t.state).toBe('JOB_STATE_SUCCEEDED');
  }, 60_000);
});
