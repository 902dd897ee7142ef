/**
 * SubtaskInfo.speculative is "a speculative copy is running". A job cancelled while a straggler's
 * copy runs ends both attempts, yet its subtask still says a copy is running, in GetJob (and in
 * the subtask event that announces the cancel), for good: cancelRunning() leaves the flag set.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JobEvent__Output } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ workers: 1, slots: 1 });
  // A straggler: its no-op subtasks take 20 s more than asked.
  cluster.startWorker('slow', [], { env: { TESSERA_DIAG_DELAY_MS: '20000' } });
  await cluster.waitForWorkers(2);
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

it('a subtask of a job cancelled while its speculative copy ran does not say a copy is running', async () => {
  const c = cluster;
  const job = await c.client.submit({ passthrough: { subtasks: 8, work_ms: 500 } }, []);
  const events: JobEvent__Output[] = [];
  let copied: string | undefined;
  for await (const e of c.client.watch(job.id)) {
    events.push(e);
    if (!copied && e.subtask?.speculative && e.subtask.state === 'SUBTASK_STATE_RUNNING') {
      copied = e.subtask.id;
      await c.client.cancel(job.id);
    }
  }
  expect(copied, 'a speculative copy of the straggler started').toBeDefined();
  const got = await c.client.getJob(job.id, { includeSubtasks: true });
  expect(got.state).toBe('JOB_STATE_CANCELLED');
  const s = got.subtasks.find((x) => x.id === copied)!;
  expect(s.state).toBe('SUBTASK_STATE_CANCELLED');
  // Neither attempt runs any more.
  expect({ state: s.state, speculative: s.speculative }).toEqual({ state: 'SUBTASK_STATE_CANCELLED', speculative: false });
  const ended = events.filter((e) => e.subtask?.id === copied && e.subtask?.state === 'SUBTASK_STATE_CANCELLED').map((e) => e.subtask!.speculative);
  expect(ended).toEqual([false]);
}, 60_000);
