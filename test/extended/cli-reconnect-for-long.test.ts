/**
 * `--reconnect-for` takes any whole number of seconds of at least 1 (no upper bound is documented
 * or checked). The client library now refuses a `reconnectForMs` past 2^31 - 1 ms (24.8 days), so
 * `tessera submit ... --reconnect-for 2592000` (30 days: "wait out any restart") uploads its inputs,
 * makes the job, and only then fails with INVALID_ARGUMENT naming `reconnectForMs`, a library
 * option the user never gave. Before, the job was waited for and its outputs downloaded.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;
beforeAll(async () => {
  cluster = await startCluster({ workers: 1 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-reconnect-for-'));
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('tessera submit --reconnect-for past 24.8 days', () => {
  it('either refuses the flag before anything is submitted, or waits for the job and downloads it', async () => {
    const img = path.join(dir, 'a.png');
    await sharp({ create: { width: 32, height: 32, channels: 3, background: '#f00' } }).png().toFile(img);
    const out = path.join(dir, 'out');
    const r = await cluster.runCli(['submit', 'image', img, '--width', '16', '--reconnect-for', String(30 * 86400), '-o', out], { timeoutMs: 60_000 });
    const jobs = await cluster.client.listJobs();
    // Refused as a usage error with nothing submitted, or done as asked.
    if (r.code === 2) expect({ jobsMade: jobs.length, stderr: r.stderr }).toMatchObject({ jobsMade: 0 });
    else expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(r.stderr).not.toMatch(/reconnectForMs/);
  }, 60_000);
});
