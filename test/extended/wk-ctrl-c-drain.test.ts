/**
 * Ctrl-C on a `tessera worker` run in a terminal: the terminal sends SIGINT to the worker's whole
 * foreground process group. The worker drains ("finishing running subtasks"); with in-process
 * processors (`--memory-limit-mb 0`) the ffmpeg it runs was in that same group and was interrupted
 * too: the running subtask failed at once (as DATA_LOSS "encode failed"), using up an attempt. Its
 * ffmpeg now has a group of its own. Simulated here with a worker that leads its own process group
 * and a SIGINT to that group, as a terminal does.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_PATH, startCluster, type TestCluster } from '../helpers/cluster.js';
import { makeVideo } from '../helpers/media.js';

let dir = '';
let cluster: TestCluster | undefined;
let stopWorker: (() => void) | undefined;

afterEach(async () => {
  stopWorker?.();
  stopWorker = undefined;
  await cluster?.stop();
  cluster = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

/** Whether an ffmpeg runs under `pid` (its child, or a wrapper's). */
function encodesUnder(pid: number): boolean {
  try {
    const children = execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split(/\s+/).filter(Boolean).map(Number);
    return children.some((c) => /ffmpeg/.test(execFileSync('ps', ['-o', 'args=', '-p', String(c)]).toString()) || encodesUnder(c));
  } catch {
    return false;
  }
}

describe('Ctrl-C on a worker in a terminal (SIGINT to its process group)', () => {
  it('drains: the running subtask finishes on it, without a failed attempt', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-wk-ctrlc-'));
    const src = await makeVideo(dir, 'src.mp4', { duration: 4, width: 640, height: 480 });
    cluster = await startCluster({ workers: 0 });
    const worker = spawn(process.execPath, [CLI_PATH, 'worker', '--coordinator', cluster.address, '--name', 'terminal', '--slots', '1', '--prefetch', '0', '--memory-limit-mb', '0', '--drain-grace-ms', '60000'], {
      detached: true, // leads its own process group, as a shell's foreground job does
      stdio: 'ignore',
      env: { ...process.env, TESSERA_LOG_LEVEL: 'error' },
    });
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    stopWorker = () => {
      try {
        process.kill(-worker.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    };
    await cluster.waitForWorkers(1);
    const job = await cluster.client.submit({ max_attempts: 1, video: { preset: 'veryslow', segment_seconds: 4 } }, [src]);
    const done = cluster.client.wait(job.id);
    for (const end = Date.now() + 20_000; !encodesUnder(worker.pid!) && Date.now() < end; ) await sleep(50);
    expect(encodesUnder(worker.pid!), 'the worker encodes').toBe(true);
    await sleep(300);
    process.kill(-worker.pid!, 'SIGINT'); // Ctrl-C
    const finished = await done;
    expect(await exited).toBe(0);
    expect(finished.state, JSON.stringify(finished.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(finished.subtasks[0]?.worker).toBe('terminal');
    expect(finished.subtasks[0]?.attempt).toBe(1);
  }, 60_000);
});
