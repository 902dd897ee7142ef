/**
 * A job whose every attempt times out everywhere (its inputs at fault) must quarantine none of the
 * healthy workers. The rule compares counts, not rates: a worker of 4 slots fails the job 4 times
 * a round where two workers of 1 slot fail it twice together, so "failed elsewhere at least half as
 * many times as here" never holds for it, and the cluster's biggest worker is quarantined (review K28).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('a job timing out on every worker, workers of different sizes', () => {
  it('quarantines none of the healthy workers', async () => {
    cluster = await startCluster({ workers: 0, slots: 1, workerArgs: ['--prefetch', '0'], coordinatorArgs: ['--quarantine-failures', '5', '--subtask-timeout-ms', '1000'] });
    cluster.startWorker('big', ['--slots', '4']);
    cluster.startWorker('small-1');
    cluster.startWorker('small-2');
    await cluster.waitForWorkers(3);
    // Every attempt sleeps 60 s and is stopped at 1 s: the job fails wherever it runs.
    const job = await cluster.client.submit({ max_attempts: 3, passthrough: { subtasks: 12, work_ms: 60_000 } }, []);
    const done = await cluster.client.wait(job.id);
    const workers = Object.fromEntries((await cluster.client.listWorkers()).map((w) => [w.name, w.state]));
    expect(done.state).toBe('JOB_STATE_FAILED');
    expect(workers).toEqual({ big: 'active', 'small-1': 'active', 'small-2': 'active' });
  }, 60_000);
});
