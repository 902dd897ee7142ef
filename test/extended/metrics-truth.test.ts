/**
 * What /metrics says against what really happened, on a real cluster:
 *
 * - a speculative copy cut short (its worker drained away) starts no attempt: the "running"
 *   transitions count the attempts started, not the event that says the copy ended;
 * - a submission dropped half-way while one of its subtasks ran: that subtask's "cancelled" is
 *   counted under the job's kind, never under a `kind="unknown"` label.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import { sha256 } from '../../shared/streams.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { delta, scrape } from '../helpers/metrics.js';
import { holdSubmission, rawJobService, sendInput, until } from '../helpers/raw-grpc.js';

let cluster: TestCluster;
let raw: JobServiceClient;
beforeAll(async () => {
  // worker-1 stops 100 ms after SIGTERM, cutting what it runs short.
  cluster = await startCluster({ workers: 1, slots: 1, workerArgs: ['--drain-grace-ms', '100'] });
  // A straggler: its no-op subtasks take 20 s more than asked.
  cluster.startWorker('slow', [], { env: { TESSERA_DIAG_DELAY_MS: '20000' } });
  await cluster.waitForWorkers(2);
  raw = rawJobService(cluster.address);
}, 60_000);
afterAll(async () => {
  raw?.close();
  await cluster?.stop();
});

describe('/metrics against what happened', () => {
  it('tessera_subtask_transitions_total{state="running"}: a speculative copy cut short by its worker draining starts no attempt of its own', async () => {
    const c = cluster;
    const k = 'kind="passthrough"';
    const before = await scrape(c);
    const job = await c.client.submit({ passthrough: { subtasks: 6, work_ms: 1500 } }, []);
    const fast = c.workers.find((w) => w.name === 'worker-1')!;
    let copied: string | undefined;
    let started = 0;
    let cancelled = 0;
    const watching = (async () => {
      for await (const e of c.client.watch(job.id)) {
        const s = e.subtask;
        if (!s || e.type !== 'subtask_state') continue;
        // Every attempt (and copy) that starts is announced "attempt N on W" / "speculative copy, attempt N on W".
        if (s.state === 'SUBTASK_STATE_RUNNING' && /^(speculative copy, )?attempt \d+ on /.test(e.message)) started++;
        if (s.state === 'SUBTASK_STATE_CANCELLED') cancelled++;
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
    // The coordinator has taken in the drained worker's going before the cancel (was: a fixed 1 s).
    await expect.poll(async () => (await c.client.listWorkers()).map((w) => w.name), { timeout: 10_000, interval: 100 }).toEqual(['slow']);
    await c.client.cancel(job.id);
    await watching;
    await new Promise((r) => setTimeout(r, 300));
    const after = await scrape(c);
    // Attempts: 6 first attempts and 1 copy (plus any queued assignment moved, each a new attempt).
    expect(delta(before, after, 'tessera_speculative_copies_total')).toBe(1);
    const attempts = 6 + 1 + delta(before, after, 'tessera_queued_subtasks_moved_total');
    expect(started).toBe(attempts);
    expect(delta(before, after, `tessera_subtask_transitions_total{${k},state="running"}`)).toBe(attempts);
    // The original, still running on the straggler when the job was cancelled.
    expect(cancelled).toBe(1);
    expect(delta(before, after, `tessera_subtask_transitions_total{${k},state="cancelled"}`)).toBe(1);
  }, 90_000);

  it('counts the cancelled subtask of a submission dropped half-way under its kind, with no kind="unknown"', async () => {
    const c = cluster;
    // Bring the fast worker back (the test above stopped it).
    if (!c.workers.some((w) => w.name === 'worker-1' && w.child.exitCode === null)) {
      c.startWorker('worker-1b');
      await c.waitForWorkers(2);
    }
    const before = await scrape(c);
    const { call, answer } = holdSubmission(raw, { label: 'dropped-mid-run', passthrough: { work_ms: 30_000 } });
    call.on('error', () => undefined);
    const first = { name: 'a.bin', data: randomBytes(1000) };
    sendInput(call, first);
    const id = (await until('the job to be listed', async () => (await c.client.listJobs({ limit: 100 })).find((j) => j.spec?.label === 'dropped-mid-run'))).id;
    await until('its subtask to run', async () => ((await c.client.getJob(id, { includeSubtasks: true })).subtasks.some((s) => s.state === 'SUBTASK_STATE_RUNNING') ? true : undefined));
    // An input that arrives damaged: the submission fails, and the job it started is dropped.
    sendInput(call, { name: 'b.bin', data: randomBytes(1000) }, sha256(Buffer.from('something else')));
    call.end();
    const { err } = await answer;
    expect(err?.code).toBe(grpc.status.DATA_LOSS);
    await until('the job to be gone', async () => ((await c.client.getJob(id).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError).code === grpc.status.NOT_FOUND || undefined);
    await new Promise((r) => setTimeout(r, 500));
    const after = await scrape(c);
    expect(delta(before, after, 'tessera_jobs_dropped_total{kind="passthrough"}')).toBe(1);
    expect(delta(before, after, 'tessera_jobs_submitted_total{kind="passthrough"}')).toBe(0);
    const unknown = [...after.keys()].filter((key) => key.includes('kind="unknown"'));
    expect(unknown).toEqual([]);
    // Its one attempt started and was cancelled with the job: both under kind="passthrough".
    expect(delta(before, after, 'tessera_subtask_transitions_total{kind="passthrough",state="running"}')).toBe(1);
    expect(delta(before, after, 'tessera_subtask_transitions_total{kind="passthrough",state="cancelled"}')).toBe(1);
  }, 60_000);
});
