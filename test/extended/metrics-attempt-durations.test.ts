/**
 * tessera_subtask_duration_seconds is the histogram of attempt durations (README, "Operating a
 * cluster": "an attempt ended by its worker's loss or its timeout: the time it ran"). An attempt
 * that failed and was retried is an attempt that ended: it is observed, with outcome "failed",
 * as one that failed for good is.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { delta, scrape } from '../helpers/metrics.js';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '20000'] });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

it('observes every attempt that ended, the failed ones that were retried included', async () => {
  const k = 'kind="passthrough"';
  const before = await scrape(cluster);
  // Each of the 2 subtasks fails once (retryable), then succeeds: 4 attempts ended, 2 of them failed.
  const job = await cluster.client.submit({ passthrough: { subtasks: 2, work_ms: 200, fail_first_attempts: 1 } }, []);
  expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
  await new Promise((r) => setTimeout(r, 200));
  const after = await scrape(cluster);
  expect(delta(before, after, `tessera_subtask_retries_total{${k}}`)).toBe(2);
  expect(delta(before, after, `tessera_subtask_duration_seconds_count{${k},outcome="succeeded"}`)).toBe(2);
  // The two failed attempts ran too: before, the histogram had no trace of them.
  expect(delta(before, after, `tessera_subtask_duration_seconds_count{${k},outcome="failed"}`)).toBe(2);
}, 60_000);

it('observes the attempt of a worker killed mid-subtask (retried elsewhere) with the time it ran', async () => {
  const k = 'kind="passthrough"';
  const before = await scrape(cluster);
  const victim = cluster.workers[0]!;
  // One subtask on each worker.
  const job = await cluster.client.submit({ passthrough: { subtasks: 2, work_ms: 1500 } }, []);
  let killedAt = 0;
  const done = await cluster.client.wait(job.id, (e) => {
    if (!killedAt && e.type === 'subtask_state' && e.subtask?.worker === victim.name && e.subtask.state === 'SUBTASK_STATE_RUNNING') {
      killedAt = Date.now();
      setTimeout(() => victim.child.kill('SIGKILL'), 500);
    }
  });
  expect(killedAt).toBeGreaterThan(0);
  expect(done.state).toBe('JOB_STATE_SUCCEEDED');
  await new Promise((r) => setTimeout(r, 200));
  const after = await scrape(cluster);
  expect(delta(before, after, 'tessera_lease_expiries_total')).toBe(1);
  expect(delta(before, after, `tessera_subtask_retries_total{${k}}`)).toBe(1);
  // Three attempts ended: the lost one (about 0.5 s) and the two that succeeded.
  expect(delta(before, after, `tessera_subtask_duration_seconds_count{${k},outcome="succeeded"}`)).toBe(2);
  expect(delta(before, after, `tessera_subtask_duration_seconds_count{${k},outcome="failed"}`)).toBe(1);
  expect(delta(before, after, `tessera_subtask_duration_seconds_sum{${k},outcome="failed"}`)).toBeGreaterThanOrEqual(0.3);
}, 60_000);
