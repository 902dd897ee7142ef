/** A client in another language, generated only from proto/, drives a real cluster. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./python/tessera_client.py', import.meta.url));
// Debian's python3 with python3-grpcio and python3-grpc-tools (installed by .ci/run).
const PYTHON = '/usr/bin/python3';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  cluster = await startCluster({ workers: 2, slots: 1 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-py-test-'));
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('Python gRPC client generated from proto/', () => {
  it('submits an image job, watches it to the end and downloads the verified output', async () => {
    const input = path.join(dir, 'square.jpg');
    await sharp({ create: { width: 256, height: 128, channels: 3, background: '#3366cc' } }).jpeg().toFile(input);
    const { stdout } = await run(PYTHON, [SCRIPT, cluster.address, input, dir], { timeout: 120_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { state: string; events: string[]; outputs: string[] };
    expect(result.state).toBe('JOB_STATE_SUCCEEDED');
    expect(result.events).toContain('job_state');
    expect(result.outputs).toHaveLength(1);
    const meta = await sharp(result.outputs[0]!).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 32]);
  });
});
