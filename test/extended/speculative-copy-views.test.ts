/**
 * SubtaskInfo.speculative is "a speculative copy is running", and SubtaskInfo.worker names where
 * the subtask runs. Once a straggler's copy ends without a result, neither may go on saying so:
 *
 * - a job cancelled while the copy ran ends both attempts (cancelRunning() left the flag set, in
 *   GetJob and in the event announcing the cancel);
 * - the copy's worker draining away (SIGTERM, its grace shorter than the copy) leaves the original
 *   attempt running alone on the straggler (releaseLease() left the subtask as the copy's lease set
 *   it: on the worker that had left, a copy running, and no event said otherwise).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
beforeAll(async () => {
  // worker-1 stops 100 ms after SIGTERM, cutting what it runs short.
  cluster = await startCluster({ workers: 1, slots: 1, workerArgs: ['--drain-grace-ms', '100'] });
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

it('a subtask whose speculative copy was cut by its worker draining says it runs where its original does, with no copy running', async () => {
  const c = cluster;
  const job = await c.client.submit({ passthrough: { subtasks: 6, work_ms: 1500 } }, []);
  const fast = c.workers.find((w) => w.name === 'worker-1')!;
  let copied: string | undefined;
  const messages: string[] = [];
  const watching = (async () => {
    for await (const e of c.client.watch(job.id)) {
      const s = e.subtask;
      if (!s) continue;
      messages.push(e.message);
      if (!copied && s.speculative && s.state === 'SUBTASK_STATE_RUNNING' && s.worker === 'worker-1') {
        copied = s.id;
        // The copy has 1.5 s to go; its worker stops in 0.1 s.
        fast.child.kill('SIGTERM');
      }
    }
  })();
  for (let i = 0; i < 600 && !copied; i++) await new Promise((r) => setTimeout(r, 50));
  expect(copied, 'a speculative copy of the straggler started on worker-1').toBeDefined();
  await fast.exited;
  // The coordinator has taken in the drained worker's going (waited for: was a fixed 1 s).
  await expect.poll(async () => (await c.client.listWorkers()).map((w) => w.name), { timeout: 10_000, interval: 100 }).toEqual(['slow']);
  const got = await c.client.getJob(job.id, { includeSubtasks: true });
  const s = got.subtasks.find((x) => x.id === copied)!;
  const api = (await (await fetch(`http://${c.httpAddress}/api/jobs/${job.id}`)).json()) as { subtaskList: { id: string; worker: string; speculative: boolean }[] };
  const shown = api.subtaskList.find((x) => x.id === copied)!;
  await c.client.cancel(job.id);
  await watching;
  // Only the original attempt runs now, on the straggler.
  expect({ state: s.state, worker: s.worker, speculative: s.speculative }).toEqual({ state: 'SUBTASK_STATE_RUNNING', worker: 'slow', speculative: false });
  expect({ worker: shown.worker, speculative: shown.speculative }).toEqual({ worker: 'slow', speculative: false });
  // Watchers are told.
  expect(messages.find((m) => m.startsWith('the speculative copy on worker-1 ended'))).toMatch(/^the speculative copy on worker-1 ended \(worker worker-1 stopped while draining: .*\); attempt \d+ on slow goes on$/);
}, 90_000);
