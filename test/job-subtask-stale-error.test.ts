/**
 * A subtask that failed an attempt and then succeeded on its retry: every view of the finished job
 * must show it as a plain success. GetJob(include_subtasks), `tessera job ID --json` and the dashboard's /api/jobs/ID read a
 * finished job's subtasks back from the store, whose row kept the first attempt's `error` (the
 * subtask's row was inserted after that attempt failed, and the later state update leaves out an
 * `error` that is undefined, so the insert's value survives).
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
