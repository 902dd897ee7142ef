/**
 * A tiny image asked for a huge size, on a real coordinator with no worker: the result's size is
 * refused from the header as the input's error, and the coordinator's data dir stays small. Before,
 * a 64 x 48 JPEG asked for 1,000,000 x 1,000,000 px was accepted and its coordinator decoded it
 * into a terabyte-sized intermediate in its data dir.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-output-limit-'));
  cluster = await startCluster({ workers: 0 });
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Bytes of every file under `folder` (files that vanish meanwhile count as 0). */
async function bytesUnder(folder: string): Promise<number> {
  const names = await readdir(folder, { recursive: true });
  const sizes = await Promise.all(names.map((n) => stat(path.join(folder, n)).then((s) => (s.isFile() ? s.size : 0), () => 0)));
  return sizes.reduce((a, b) => a + b, 0);
}

describe('the size of a result', () => {
  it('a 64 x 48 JPEG asked for 1,000,000 x 1,000,000 px is refused as its own error, naming it, the size and the limit; nothing is decoded', async () => {
    const tiny = path.join(dir, 'tiny.jpg');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toFile(tiny);
    // Refused at submission, from the header (the planner refuses it too, should a job get past).
    const err = (await cluster.client.submit({ image: { width: 1_000_000, height: 1_000_000, fit: 'fill' } }, [tiny]).then(
      () => undefined,
      (e: unknown) => e,
    )) as { code: number; details: string };
    expect(err.code).toBe(8); // RESOURCE_EXHAUSTED
    expect(err.details).toMatch(/tiny\.jpg.*1000000x1000000.*--max-pixels/);
    // The store, the spooled input and logs: well under the megabytes a decode would write.
    expect(await bytesUnder(cluster.dataDir)).toBeLessThan(4 * 1024 * 1024);
  });
});
