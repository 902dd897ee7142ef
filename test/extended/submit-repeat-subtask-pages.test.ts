/**
 * A repeated submission (`spec.request_id`, `tessera submit --request-id`: "running the same
 * command again is safe: a coordinator that already has a job with this id answers with it") is
 * answered with the job it made, all its subtasks: a client from before pages gets them all in
 * the answer (it sends no `tessera-subtask-limit`), this one reads them a page at a time. The
 * answer gave the first page of 10,000 only, which both took for the whole job: `tessera submit
 * ... --request-id X --no-wait --json`, run again, printed 10,000 of 12,000 subtasks, exit 0.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { holdSubmission, rawJobService } from '../helpers/raw-grpc.js';

const SUBTASKS = 12_000;
let c: TestCluster;

beforeAll(async () => {
  // No workers: the job's no-op subtasks stay queued.
  c = await startCluster({ workers: 0 });
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

async function planned(id: string): Promise<void> {
  // Planning 12,000 subtasks took over 10 s on a loaded machine: up to 45 s. The job is QUEUED
  // from its acceptance on, while its plan is made ("planning", then "N subtask(s) so far"): its
  // subtasks are what says the plan is whole.
  const until = Date.now() + 45_000;
  while (Date.now() < until && (await c.client.getJob(id)).subtasks.length < SUBTASKS) await new Promise((r) => setTimeout(r, 250));
  expect((await c.client.getJob(id)).subtasks).toHaveLength(SUBTASKS);
}

it('`tessera submit --request-id X --no-wait --json` run again lists every subtask of the job it answers with (not the first 10,000)', async () => {
  const args = ['submit', 'passthrough', '--subtasks', String(SUBTASKS), '--work-ms', '0', '--request-id', 'repeat-cli', '--no-wait', '--json'];
  const first = await c.runCli(args);
  expect(first.code).toBe(0);
  const id = (JSON.parse(first.stdout) as { id: string }).id;
  await planned(id);
  const again = await c.runCli(args);
  expect(again.code).toBe(0);
  const job = JSON.parse(again.stdout) as { id: string; subtasks: unknown[] };
  expect(job.id).toBe(id);
  // Observed: 10,000, exit 0, nothing saying 2,000 more exist.
  expect(job.subtasks).toHaveLength(SUBTASKS);
}, 60_000);

it('a repeated SubmitJob from a client that knows no pages is answered with all the subtasks, as before pages (or fails): not the first 10,000 as the job', async () => {
  const raw = rawJobService(c.address);
  try {
    // What a client from before pages sends: the spec with its request_id, no inputs.
    const spec = { passthrough: { subtasks: SUBTASKS, work_ms: 0 }, request_id: 'repeat-raw', input_count: 0 };
    const submitOnce = async (): Promise<{ err: unknown; job?: { id: string; subtasks: unknown[] } }> => {
      const held = holdSubmission(raw, spec as never);
      held.call.end();
      return (await held.answer) as never;
    };
    const first = await submitOnce();
    expect(first.err).toBeNull();
    await planned(first.job!.id);
    const again = await submitOnce();
    if (again.err) return;
    expect(again.job!.id).toBe(first.job!.id);
    // Observed: 10,000 (and a next_subtask_page_token such a client has no field for).
    expect(again.job!.subtasks).toHaveLength(SUBTASKS);
  } finally {
    raw.close();
  }
}, 60_000);

it('a `tessera-subtask-limit` that is not a whole number is refused, naming it, not taken for none (review py)', async () => {
  const raw = rawJobService(c.address);
  try {
    for (const value of ['abc', '-1', '2.5', '']) {
      const md = new grpc.Metadata();
      md.set('tessera-subtask-limit', value);
      const answer = await new Promise<{ err: grpc.ServiceError | null }>((resolve) => {
        const call = raw.SubmitJob(md, (err) => resolve({ err }));
        call.write({ spec: { passthrough: { subtasks: 1, work_ms: 0 }, input_count: 0 } });
        call.end();
      });
      // Observed: every one accepted, the job made, its subtasks listed as if none was given.
      expect(answer.err?.code, value).toBe(grpc.status.INVALID_ARGUMENT);
      expect(answer.err?.details).toBe(`metadata tessera-subtask-limit: "${value}" is not a number of subtasks (a whole number, 0 for all of them)`);
    }
    // A number, however large, is a limit (the page holds at most 10,000).
    const md = new grpc.Metadata();
    md.set('tessera-subtask-limit', '99999999999999999999');
    const ok = await new Promise<{ err: grpc.ServiceError | null }>((resolve) => {
      const call = raw.SubmitJob(md, (err) => resolve({ err }));
      call.write({ spec: { passthrough: { subtasks: 1, work_ms: 0 }, input_count: 0 } });
      call.end();
    });
    expect(ok.err).toBeNull();
  } finally {
    raw.close();
  }
}, 30_000);
