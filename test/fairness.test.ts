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

/**
 * Submits `spec` and returns, on the coordinator's clock (its event times), when the job was made
 * and when its first subtask started running.
 */
async function startOf(spec: JobSpec, files: string[]): Promise<{ created: number; started: number }> {
  const job = await cluster.client.submit(spec, files);
  for await (const e of cluster.client.watch(job.id)) {
    if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_RUNNING') return { created: Number(job.created_at_ms), started: Number(e.time_ms) };
    if (e.final) break;
  }
  throw new Error(`job ${job.id} ended without a subtask running`);
}

describe('a job of short subtasks running', () => {
  it('leaves the next free slot to a job that does not use queue places, of its priority or higher', async () => {
    const photo = path.join(dir, 'p.jpg');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toFile(photo);
    // 100 subtasks of 100 ms over 2 slots, queue places full all along. When each of its subtasks
    // succeeded (the coordinator's event times).
    const BUSY = 100;
    const busySucceeded: number[] = [];
    const busy = await cluster.client.submit({ passthrough: { subtasks: BUSY, work_ms: 100 } }, []);
    const running = cluster.client.wait(busy.id, (e) => {
      if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED') busySucceeded.push(Number(e.time_ms));
    });
    // Running and measured: its subtasks have succeeded, so it uses the workers' queue places.
    await expect.poll(() => busySucceeded.length, { timeout: 30_000, interval: 10 }).toBeGreaterThanOrEqual(2);
    // A new image job (no subtask measured yet), then a higher-priority one of 1.5 s subtasks.
    const image = await startOf({ image: { width: 32 } }, [photo]);
    const urgent = await startOf({ priority: 10, passthrough: { subtasks: 1, work_ms: 1500 } }, []);
    const done = await running;
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(busySucceeded).toHaveLength(BUSY);
    const succeededBy = (t: number): number => busySucceeded.filter((x) => x <= t).length;
    const figures = { image: { ...image, atCreation: succeededBy(image.created), atStart: succeededBy(image.started) }, urgent: { ...urgent, atCreation: succeededBy(urgent.created), atStart: succeededBy(urgent.started) } };
    process.stdout.write(`[fairness] busy subtasks succeeded: ${JSON.stringify(figures)}\n`);
    for (const [name, f] of Object.entries(figures)) {
      // Each job came while most of the busy job was still to run: had it waited for the busy job's
      // queue to drain, nearly all of that would have succeeded before it started.
      expect(BUSY - f.atCreation, `${name}: busy subtasks left when it was made`).toBeGreaterThanOrEqual(30);
      // It did not wait for the busy job's queue to drain (then at least 96 of its subtasks, all but
      // those running or queued on the workers, would have succeeded first): it started while a
      // fifth of the busy job was still to run. Not tighter: the time from a job's creation to its
      // first slot includes its planning (probing the image), which on a loaded CI machine took
      // over half a second while the busy job's 100 ms subtasks kept ending. That it gets the very
      // next slot once planned is coordinator/scheduler.test.ts's "queues nothing ahead while...".
      expect(f.atStart, `${name}: busy subtasks that succeeded before it started`).toBeLessThanOrEqual(BUSY - 20);
    }
  });
});
