/**
 * A real cluster: two broken machines (TESSERA_DIAG_FAIL, failing at once) and one healthy worker
 * whose subtasks of the same job take a few seconds. The two broken ones excuse each other's
 * failures (the job "fails on the other workers together", the healthy one has no result yet):
 * neither is quarantined, and they use up the attempts of the subtasks the healthy worker would
 * have run well, so the job fails (review K28).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('two broken workers beside a slow healthy one, real cluster', () => {
  it('the broken pair is quarantined and the job succeeds on the healthy worker', async () => {
    cluster = await startCluster({ workers: 0, slots: 1, workerArgs: ['--prefetch', '0'], coordinatorArgs: ['--quarantine-failures', '5'] });
    cluster.startWorker('healthy', [], { env: { TESSERA_DIAG_DELAY_MS: '1500' } });
    cluster.startWorker('broken-1', [], { env: { TESSERA_DIAG_FAIL: '1' } });
    cluster.startWorker('broken-2', [], { env: { TESSERA_DIAG_FAIL: '1' } });
    await cluster.waitForWorkers(3);
    const job = await cluster.client.submit({ max_attempts: 4, passthrough: { subtasks: 6, work_ms: 0 } }, []);
    const done = await cluster.client.wait(job.id);
    const workers = Object.fromEntries((await cluster.client.listWorkers()).map((w) => [w.name, `${w.state} failed=${w.subtasks_failed}`]));
    expect({ state: done.state, message: done.message, workers }).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', workers: { 'broken-1': expect.stringMatching(/^quarantined/), 'broken-2': expect.stringMatching(/^quarantined/), healthy: expect.stringMatching(/^active/) } });
  }, 60_000);
});
