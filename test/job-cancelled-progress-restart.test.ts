/**
 * A cancelled job's progress is "where it stopped" (progress-cancelled.test.ts): the final event
 * and GetJob agree. After a coordinator restart, GetJob, ListJobs and the dashboard say 0 for the
 * same job, while its replayed final event still says where it stopped: the figure lived only in
 * an in-memory cache, which a restart does not fill for finished jobs.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JobEvent__Output } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ workers: 1, slots: 2 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

it('a cancelled job keeps its progress through a coordinator restart (GetJob, ListJobs, dashboard, final event agree)', async () => {
  const c = cluster;
  const job = await c.client.submit({ passthrough: { subtasks: 6, work_ms: 500 } }, []);
  let cancelled = false;
  for await (const e of c.client.watch(job.id)) {
    if (!cancelled && Number(e.progress) > 0.3) {
      cancelled = true;
      await c.client.cancel(job.id);
    }
  }
  const before = await c.client.getJob(job.id);
  expect(before.state).toBe('JOB_STATE_CANCELLED');
  expect(before.progress).toBeGreaterThan(0.3);

  c.coordinator!.child.kill('SIGTERM');
  await c.coordinator!.exited;
  await c.startCoordinator();

  const replayed: JobEvent__Output[] = [];
  for await (const e of c.client.watch(job.id)) replayed.push(e);
  const final = replayed[replayed.length - 1]!;
  expect(final.final).toBe(true);
  expect(Number(final.progress)).toBe(before.progress);

  const after = await c.client.getJob(job.id);
  const listed = (await c.client.listJobs({ state: 'cancelled' })).find((j) => j.id === job.id);
  const dash = (await (await fetch(`http://${c.httpAddress}/api/jobs/${job.id}`)).json()) as { progress: number };
  expect({ getJob: after.progress, listJobs: listed?.progress, dashboard: dash.progress }).toEqual({ getJob: before.progress, listJobs: before.progress, dashboard: before.progress });
}, 60_000);
