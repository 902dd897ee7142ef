/**
 * A client in another language, generated only from proto/, drives a real cluster, and holds the
 * coordinator to what jobs.proto's comments promise (review Q2).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./python/tessera_client.py', import.meta.url));
const PROBE = fileURLToPath(new URL('./python/api_probe.py', import.meta.url));
// Debian's python3 with python3-grpcio and python3-grpc-tools (installed by .ci/run).
const PYTHON = '/usr/bin/python3';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-py-test-')));
  for (const d of ['a', 'b']) await mkdir(path.join(dir, 'renders', d), { recursive: true });
  cluster = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--shared-output-root', path.join(dir, 'renders')] });
});

async function probe(...args: string[]): Promise<Record<string, any>> {
  const { stdout } = await run(PYTHON, [PROBE, ...args], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, any>;
}

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

  it('a request_id used again with another shared_output_dir is ALREADY_EXISTS, not the first job (writing to the first folder) answered as the second', async () => {
    const [a, b] = ['a', 'b'].map((d) => path.join(dir, 'renders', d));
    const r = await probe('rid-outdir', cluster.address, a!, b!);
    expect(r['first'].shared_output_dir).toBe(a);
    expect(r['second'], JSON.stringify(r)).toMatchObject({ code: 'ALREADY_EXISTS', details: expect.stringMatching(/request_id/) });
    expect(await readdir(b!)).toEqual([]);
  });

  it('a request_id used again with its output folder spelled otherwise (a trailing slash, a dot) is the same submission, answered with its job', async () => {
    const a = path.join(dir, 'renders', 'a');
    const f = path.join(dir, 'same.bin');
    await writeFile(f, 'same');
    const first = await cluster.client.submit({ request_id: 'rid-same-folder', shared_output_dir: a, passthrough: {} }, [f]);
    for (const spelled of [`${a}/`, path.join(dir, 'renders', '.', 'a') + '/.']) {
      expect((await cluster.client.submit({ request_id: 'rid-same-folder', shared_output_dir: spelled, passthrough: {} }, [f])).id, spelled).toBe(first.id);
    }
  });

  it("SubmitJob's answer of a job of 70,000 subtasks fits a default client (4 MiB): its first page and a token, not all of them", async () => {
    const r = await probe('submit-many', cluster.address, '70000');
    // It was RESOURCE_EXHAUSTED ("Received message larger than max (4651502 vs. 4194304)"), the job made all the same.
    expect(r['code'], JSON.stringify(r)).toBeUndefined();
    expect(r['subtasks'], JSON.stringify(r)).toBeGreaterThan(0);
    expect(r['subtasks'], JSON.stringify(r)).toBeLessThanOrEqual(10_000);
    expect(r['next_subtask_page_token'], JSON.stringify(r)).not.toBe('');
    expect(r['jobs_made']).toBe(r['attempts']);
  });
});
