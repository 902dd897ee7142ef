/**
 * A `tessera submit` whose process is paused mid-upload (Ctrl-Z, a laptop asleep) past the
 * coordinator's upload idle limit: the coordinator gives the submission up and keeps nothing of it
 * (DEADLINE_EXCEEDED "... nothing of it was kept"). The CLI, which still has the files and the
 * request id, exited 1 (a failed job, where none was made) and sent nothing again; it now sends the
 * submission again, as after a coordinator restart, and one job is made (review chaos).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH } from '../../client/local-cluster.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let cluster: TestCluster;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-paused-client-'));
  cluster = await startCluster({ workers: 1, env: { TESSERA_UPLOAD_IDLE_MS: '1500' } });
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a submit paused mid-upload past the idle limit', () => {
  it('sends the submission again once it goes on, and one job is made', async () => {
    const file = path.join(dir, 'big.bin');
    await writeFile(file, Buffer.alloc(256 * 1024 * 1024, 7));
    const child = spawn(process.execPath, [CLI_PATH, 'submit', 'passthrough', '--coordinator', cluster.address, file, '-o', path.join(dir, 'out'), '--json', '--no-progress'], {
      env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Paused once its upload is under way: 32 MiB of the file read (and sent: the window is 2 MiB).
    const read = async (): Promise<number> => Number(/rchar: (\d+)/.exec(await readFile(`/proc/${child.pid}/io`, 'utf8').catch(() => ''))?.[1] ?? 0);
    for (let i = 0; i < 400 && (await read()) < 32 * 1024 * 1024; i++) await sleep(10);
    child.kill('SIGSTOP');
    expect(await read()).toBeLessThan(200 * 1024 * 1024);
    await sleep(4000);
    child.kill('SIGCONT');
    const code = await exited;
    // Was 1: "DEADLINE_EXCEEDED: the submission sent only ... bytes in 1.5 s: the coordinator gave up on it; nothing of it was kept".
    expect(code, stderr).toBe(0);
    const job = JSON.parse(stdout.trim().split('\n').at(-1)!) as { id: string; state: string };
    expect(job.state).toBe('succeeded');
    expect(stderr).toMatch(/nothing of it was kept/);
    expect((await cluster.client.listJobs()).map((j) => j.id)).toEqual([job.id]);
  }, 120_000);
});
