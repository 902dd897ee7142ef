/**
 * A finished job as every view reads it back (GetJob, ListJobs, the CLI, the dashboard), against
 * what its events said, before and after a coordinator restart; one cluster for both cases.
 * - A subtask that failed an attempt and then succeeded: GetJob(include_subtasks), `tessera job
 *   --json` and the dashboard read its row back from the store, which kept the first attempt's
 *   `error` (the row was inserted after that attempt failed; the later update left out the
 *   cleared field, so the insert's value survived).
 * - A cancelled job's progress is where it stopped (progress-cancelled.test.ts): after a restart
 *   GetJob, ListJobs and the dashboard said 0, while its replayed final event said where it had
 *   stopped (the figure lived only in an in-memory cache that a restart did not fill).
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

it('a subtask retried once and then succeeded carries no error in GetJob, the dashboard or the CLI, as its watch event said', async () => {
  const c = cluster;
  // Each no-op subtask fails its first attempt (at once) and succeeds on the second.
  const job = await c.client.submit({ max_attempts: 3, passthrough: { subtasks: 4, fail_first_attempts: 1 } }, []);
  const events: JobEvent__Output[] = [];
  const done = await c.client.wait(job.id, (e) => events.push(e));
  expect(done.state).toBe('JOB_STATE_SUCCEEDED');
  expect(done.errors).toEqual([]);

  // What the watcher was told as each subtask succeeded: no error (the live record had it cleared).
  const told = events.filter((e) => e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED').map((e) => `${e.subtask!.label}: ${e.subtask!.error}`);
  expect(told.sort()).toEqual(['no-op 0: ', 'no-op 1: ', 'no-op 2: ', 'no-op 3: ']);

  const got = await c.client.getJob(job.id, { includeSubtasks: true });
  const shown = got.subtasks.map((s) => `${s.label}: ${s.state} attempt ${s.attempt} error "${s.error}"`).sort();
  expect.soft(shown).toEqual([0, 1, 2, 3].map((i) => `no-op ${i}: SUBTASK_STATE_SUCCEEDED attempt 2 error ""`));

  const dash = (await (await fetch(`http://${c.httpAddress}/api/jobs/${job.id}`)).json()) as { subtaskList: { label: string; state: string; error: string }[] };
  expect.soft(dash.subtaskList.map((s) => `${s.label}: ${s.state} "${s.error}"`).sort()).toEqual([0, 1, 2, 3].map((i) => `no-op ${i}: succeeded ""`));

  // `tessera job ID --json` (GetJob with its subtasks) says the same.
  const cli = await c.runCli(['job', job.id, '--json']);
  expect(cli.code).toBe(0);
  const printed = JSON.parse(cli.stdout) as { subtasks: { label: string; state: string; error: string }[] };
  expect(printed.subtasks.map((s) => `${s.label}: ${s.state} "${s.error}"`).sort()).toEqual([0, 1, 2, 3].map((i) => `no-op ${i}: succeeded ""`));
}, 60_000);

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
