/**
 * A worker stopping as planned does not use up its subtasks' attempts: when its drain grace ends
 * before a long subtask does, the subtask runs again elsewhere as if it had never started there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../../client/local-cluster.js';
import { startCluster } from '../helpers/cluster.js';

let dir: string;
let cluster: LocalCluster | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-drain-attempts-'));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('drain', () => {
  it('re-runs a subtask cut short by a drain elsewhere without counting the attempt', async () => {
    cluster = await startCluster({ workers: 2, slots: 1, workerArgs: ['--drain-grace-ms', '300'] });
    // One attempt allowed: before, the drained attempt used it up and the job failed.
    const job = await cluster.client.submit({ max_attempts: 1, passthrough: { subtasks: 1, work_ms: 4000 } }, []);
    let drained: string | undefined;
    const messages: string[] = [];
    const done = await cluster.client.wait(job.id, (e) => {
      messages.push(e.message ?? '');
      const m = /^attempt 1 on (worker-\d)/.exec(e.message ?? '');
      if (e.type === 'subtask_state' && m && !drained) {
        drained = m[1]!;
        cluster!.workers.find((w) => w.name === drained)!.child.kill('SIGTERM');
      }
    });
    expect(drained).toBeDefined();
    // The retry says it is free: the log and its alerts read every one as a failure (review OPS13).
    expect(messages.filter((m) => m.startsWith('attempt 1 failed'))).toEqual([expect.stringMatching(/; retrying \(not counted against max_attempts: its worker was stopped as planned\)$/)]);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks).toHaveLength(1);
    const s = done.subtasks[0];
    expect(s?.attempt).toBe(2);
    expect(s?.worker).not.toBe(drained);
    await cluster.stop();
    cluster = undefined;
  });

  it.each([[['SIGHUP']], [['SIGINT', 'SIGHUP']]] as const)('drains a worker whose terminal hangs up (%j): its subtask finishes there on its first attempt, and it then ends by SIGHUP', async (signals) => {
    cluster = await startCluster({ workers: 2, slots: 1 });
    const job = await cluster.client.submit({ max_attempts: 1, passthrough: { subtasks: 1, work_ms: 2500 } }, []);
    let hungUp: LocalCluster['workers'][number] | undefined;
    const done = await cluster.client.wait(job.id, (e) => {
      const m = /^attempt 1 on (worker-\d)/.exec(e.message ?? '');
      if (e.type === 'subtask_state' && m && !hungUp) {
        const w = cluster!.workers.find((x) => x.name === m[1])!;
        hungUp = w;
        // Ctrl-C, then the window closed: the hangup was taken for the "signal again" that stops
        // at once (review SELF3).
        signals.forEach((sig, i) => setTimeout(() => w.child.kill(sig), 300 * i));
      }
    });
    // Node's default ended it at once: the subtask's only attempt was lost with it, and the job failed.
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks[0]).toMatchObject({ attempt: 1, worker: hungUp!.name });
    const child = hungUp!.child;
    const ended = child.exitCode !== null || child.signalCode !== null ? [child.exitCode, child.signalCode] : await new Promise((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    expect(ended).toEqual([null, 'SIGHUP']);
    await cluster.stop();
    cluster = undefined;
  });

  it('still counts the attempt of a worker that dies without draining (SIGKILL)', async () => {
    cluster = await startCluster({ workers: 2, slots: 1 });
    const job = await cluster.client.submit({ max_attempts: 1, passthrough: { subtasks: 1, work_ms: 4000 } }, []);
    let killed: string | undefined;
    const done = await cluster.client.wait(job.id, (e) => {
      const m = /^attempt 1 on (worker-\d)/.exec(e.message ?? '');
      if (e.type === 'subtask_state' && m && !killed) {
        killed = m[1]!;
        cluster!.workers.find((w) => w.name === killed)!.child.kill('SIGKILL');
      }
    });
    expect(killed).toBeDefined();
    // A crash is no planned stop: the only attempt is used up, and the job fails.
    expect(done.state).toBe('JOB_STATE_FAILED');
    expect(done.subtasks[0]?.attempt).toBe(1);
    expect(done.errors[0]?.message).toMatch(/lost/);
  });
});
