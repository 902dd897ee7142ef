/**
 * A higher-priority job arriving while a worker's prefetch queue (`--prefetch N`) is full of a
 * lower-priority job's short subtasks. README/docs/performance.md: while a job that does not use
 * queue places waits at the same or a higher priority, none are filled, "so the next subtask to
 * finish frees a real slot for it". Assignments already waiting in the queue are not taken back:
 * the worker runs every queued low-priority subtask first. Real coordinator and worker processes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  // One worker, one slot, four queue places (the worker allows up to 4 per slot).
  cluster = await startCluster({ workers: 1, slots: 1, workerArgs: ['--prefetch', '4'] });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('priority and prefetch queues', () => {
  it('a higher-priority job takes the next slot that frees, not the one after every queued lower-priority subtask', async () => {
    const client = cluster.client;
    // 30 subtasks of 400 ms: short, so once measured they fill the worker's queue places.
    const lowSucceeded: number[] = [];
    const low = await client.submit({ priority: 0, passthrough: { subtasks: 30, work_ms: 400 } }, []);
    const lowDone = client
      .wait(low.id, (e) => {
        if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED') lowSucceeded.push(Number(e.time_ms));
      })
      .catch(() => undefined);
    await expect.poll(() => lowSucceeded.length, { timeout: 30_000, interval: 20 }).toBeGreaterThanOrEqual(4);
    // A priority-10 job of one 1 s subtask: it does not use queue places.
    const high = await client.submit({ priority: 10, passthrough: { subtasks: 1, work_ms: 1000 } }, []);
    let highStarted = 0;
    for await (const e of client.watch(high.id)) {
      if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_RUNNING') {
        highStarted = Number(e.time_ms);
        break;
      }
      if (e.final) break;
    }
    await client.cancel(low.id).catch(() => undefined);
    await lowDone;
    const created = Number(high.created_at_ms);
    const before = lowSucceeded.filter((t) => t > created && t <= highStarted).length;
    process.stdout.write(`[priority-prefetch] low-priority subtasks that finished while the priority-10 job waited: ${before}, waited ${highStarted - created} ms\n`);
    // The one running when it came, and at most one more: not every queued one (5 x 400 ms).
    expect(before, 'lower-priority subtasks that ran to the end while the priority-10 job waited').toBeLessThanOrEqual(2);
  });
});
