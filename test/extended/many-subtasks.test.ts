/**
 * Many tiny subtasks through a real cluster: assignments and results travel in batches on the
 * control streams, the event log is written a batch per flush, and a late watcher still replays
 * every event of the job, in order, past the store's page size.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobEvent } from '../../client/client.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ workers: 2, slots: 16 });
});

afterAll(async () => {
  await cluster?.stop();
});

/**
 * The coordinator's count of second attempts that are not retries so far (/metrics): speculative
 * copies, and queued assignments moved to an idle worker at the end of a job.
 */
const speculativeCopies = async (): Promise<number> => (await cluster.metric('tessera_speculative_copies_total')) + (await cluster.metric('tessera_queued_subtasks_moved_total'));

describe('many tiny subtasks', () => {
  it('6,000 no-op subtasks all run (once, but for any straggler copy) across both workers, and a late watcher replays all 12,000+ events (more than a page) in order, batched or one by one', async () => {
    const n = 6_000;
    const copiesBefore = await speculativeCopies();
    const job = await cluster.client.submit({ label: 'many', passthrough: { subtasks: n, work_ms: 0 } }, []);
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // A loaded machine may stall a worker long enough for the straggler rule to copy a few, or for
    // the other to take over what waits in its queue at the end; each is one more attempt (and
    // RUNNING event) of its subtask. Nothing else runs twice.
    const copies = (await speculativeCopies()) - copiesBefore;
    const full = await cluster.client.getJob(job.id);
    expect(full.subtasks).toHaveLength(n);
    expect(full.subtasks.every((s) => s.state === 'SUBTASK_STATE_SUCCEEDED')).toBe(true);
    expect(full.subtasks.reduce((sum, s) => sum + s.attempt, 0)).toBe(n + copies);
    const perWorker = new Map<string, number>();
    for (const s of full.subtasks) perWorker.set(s.worker, (perWorker.get(s.worker) ?? 0) + 1);
    expect(perWorker.size).toBe(2);

    // Attach after the end: everything comes from the log, in several pages.
    const events: JobEvent[] = [];
    for await (const e of cluster.client.watch(job.id)) events.push(e);
    const seqs = events.map((e) => Number(e.seq));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(seqs.length).toBe(Number(full.last_event_seq));
    const states = events.filter((e) => e.type === 'subtask_state').map((e) => e.subtask?.state);
    expect(states.filter((s) => s === 'SUBTASK_STATE_RUNNING')).toHaveLength(n + copies);
    expect(states.filter((s) => s === 'SUBTASK_STATE_SUCCEEDED')).toHaveLength(n);
    expect(events.at(-1)?.final).toBe(true);

    // The library asks for batches; a plain gRPC stub that does not gets the same events one by one.
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure());
    const raw = async (batch: boolean): Promise<JobEvent__Output[]> => {
      const out: JobEvent__Output[] = [];
      for await (const m of stub.WatchJob({ job_id: job.id, after_seq: '0', batch }) as AsyncIterable<JobEvent__Output>) out.push(m);
      return out;
    };
    const plain = await raw(false);
    expect(plain.some((m) => m.type === 'batch')).toBe(false);
    expect(plain.map((e) => e.seq)).toEqual(events.map((e) => e.seq));
    const packed = await raw(true);
    expect(packed.length).toBeLessThan(plain.length / 10);
    expect(packed.flatMap((m) => (m.type === 'batch' ? m.batch : [m])).map((e) => e.seq)).toEqual(plain.map((e) => e.seq));
    stub.close();
  });
});
