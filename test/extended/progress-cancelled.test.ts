/**
 * What a watcher is told of a cancelled job's progress: the final event and GetJob must agree, and
 * the figure must not jump back to 0 in the events of the subtasks the cancel stops.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ workers: 2, slots: 1 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

it('a cancelled job: progress never goes back in its events, and its final event says what GetJob says', async () => {
  const job = await cluster.client.submit({ passthrough: { subtasks: 6, work_ms: 800 } }, []);
  const events: JobEvent__Output[] = [];
  let cancelled = false;
  for await (const e of cluster.client.watch(job.id)) {
    events.push(e);
    if (!cancelled && Number(e.progress) > 0.3) {
      cancelled = true;
      await cluster.client.cancel(job.id);
    }
  }
  const ended = await cluster.client.getJob(job.id);
  expect(ended.state).toBe('JOB_STATE_CANCELLED');
  const final = events[events.length - 1]!;
  expect(final.final).toBe(true);
  // The final event and GetJob (and ListJobs) describe the same finished job.
  expect(Number(final.progress)).toBe(Number(ended.progress));
  // "never goes back while the job runs": the subtask events of the cancel went from 0.317 to 0.
  const figures = events.filter((e) => !e.final).map((e) => Number(e.progress));
  for (let i = 1; i < figures.length; i++) expect(figures[i], `event ${i}: ${figures.join(', ')}`).toBeGreaterThanOrEqual(figures[i - 1]!);
}, 60_000);
