/**
 * tessera_subtask_duration_seconds{outcome="failed"} is fed by JobManager.attemptsEnded. A failed
 * attempt's time must be what it ran, as a succeeded one's is (the worker's runMs, or the lease's
 * steady start), not the time since the subtask was assigned: an assignment that waited in the
 * worker's prefetch queue behind others reports its queue wait as run time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { delta, scrape } from '../helpers/metrics.js';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ workers: 0, slots: 1 });
  // Every passthrough subtask fails (retryably) after its work time on this worker.
  cluster.startWorker('broken', [], { env: { TESSERA_DIAG_FAIL: '1' } });
  await cluster.waitForWorkers(1);
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

describe('failed attempt durations', () => {
  it('observes what a failed attempt ran, not its wait in the prefetch queue', async () => {
    const c = cluster;
    const key = (s: string): string => `tessera_subtask_duration_seconds_${s}{kind="passthrough",outcome="failed"}`;
    const before = await scrape(c);
    // Short subtasks: the coordinator queues several on the one slot (prefetch).
    const job = await c.client.submit({ passthrough: { subtasks: 4, work_ms: 300 } }, []);
    let after = before;
    for (let i = 0; i < 200; i++) {
      after = await scrape(c);
      if (delta(before, after, key('count')) >= 4) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await c.client.cancel(job.id).catch(() => undefined);
    const n = delta(before, after, key('count'));
    const sum = delta(before, after, key('sum'));
    expect(n).toBeGreaterThanOrEqual(4);
    // Each attempt ran ~0.3 s; the mean must be near that, not inflated by the queue wait.
    expect(sum / n).toBeLessThan(0.45);
  }, 60_000);
});
