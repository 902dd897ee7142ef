/**
 * Jobs sharing the cluster. Workers queue one short subtask beyond their slots (`--prefetch 1`);
 * a running job of short subtasks must not keep every slot to itself by refilling those queue
 * places: a job that does not use them (long or not yet measured subtasks), at the same or a higher
 * priority, gets the next slot that frees. Real coordinator and worker processes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSpec } from '../client/client.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-fairness-'));
  cluster = await startCluster({ workers: 2, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Milliseconds from submitting `spec` to its first subtask running. */
async function startDelay(spec: JobSpec, files: string[]): Promise<number> {
  const t0 = Date.now();
  const job = await cluster.client.submit(spec, files);
  for await (const e of cluster.client.watch(job.id)) {
    if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_RUNNING') return Date.now() - t0;
    if (e.final) break;
  }
  throw new Error(`job ${job.id} ended without a subtask running`);
}

describe('a job of short subtasks running', () => {
  it('leaves the next free slot to a job that does not use queue places, of its priority or higher', async () => {
    const photo = path.join(dir, 'p.jpg');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toFile(photo);
    // 100 subtasks of 100 ms over 2 slots: about 5 s, queue places full all along.
    const busy = await cluster.client.submit({ passthrough: { subtasks: 100, work_ms: 100 } }, []);
    const running = cluster.client.wait(busy.id);
    await new Promise((r) => setTimeout(r, 500));
    // A new image job (no subtask measured yet), then a higher-priority one of 1.5 s subtasks.
    const image = await startDelay({ image: { width: 32 } }, [photo]);
    const urgent = await startDelay({ priority: 10, passthrough: { subtasks: 1, work_ms: 1500 } }, []);
    const bothStarted = Date.now();
    const done = await running;
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // Both started while the busy job still ran (it was there to compete with), within a few of its subtasks.
    expect(Number(done.finished_at_ms)).toBeGreaterThan(bothStarted);
    expect(image).toBeLessThan(1500);
    expect(urgent).toBeLessThan(1000);
  });
});
