/**
 * Submits diagnostic `passthrough` jobs to a running cluster, follows their event streams and
 * turns the events into the figures the scheduler benchmarks report: end-to-end subtasks/s and
 * dispatch latency (how long a free worker slot waits for its next assignment while work is ready).
 */
import pLimit from 'p-limit';
import type { JobEvent, TesseraClient } from '../client/client.js';
import { percentile } from './proc-stats.js';

export interface NoopRun {
  /** Wall seconds from the first submit until every job's final event. */
  seconds: number;
  subtasks: number;
  succeeded: number;
  jobsSucceeded: number;
  /** Dispatch latency samples in ms (coordinator clock). */
  dispatchMs: number[];
  /** Subtasks run per worker name. */
  perWorker: Record<string, number>;
}

/**
 * Runs `jobs` passthrough jobs of `perJob` no-op subtasks each (optionally `workMs` of simulated
 * work), submitted concurrently, and waits for all of them.
 */
/** What the timeline needs of an event: kept instead of the event, so that the client does not hold 40,000 whole events (and collect them again and again) while it measures. */
export interface TimelineEvent {
  type: string;
  job_id: string;
  time_ms: string;
  message: string;
  subtask?: { state: string; worker: string } | null;
}

export async function runNoopJobs(client: TesseraClient, opts: { jobs: number; perJob: number; workMs?: number; slotsPerWorker: number; signal?: AbortSignal }): Promise<NoopRun> {
  const events: TimelineEvent[] = [];
  const submit = pLimit(16);
  const t0 = performance.now();
  const finals = await Promise.all(
    Array.from({ length: opts.jobs }, (_, i) =>
      submit(async () => {
        const job = await client.submit({ label: `bench noop ${i}`, passthrough: { subtasks: opts.perJob, work_ms: opts.workMs ?? 0 } }, [], opts.signal ? { signal: opts.signal } : {});
        // Watching is part of the cost a user pays: every subtask's events cross the wire.
        let final: JobEvent | undefined;
        for await (const e of client.watch(job.id, opts.signal ? { signal: opts.signal } : {})) {
          if (e.type === 'subtask_state' && e.subtask) events.push({ type: e.type, job_id: e.job_id, time_ms: e.time_ms, message: '', subtask: { state: e.subtask.state, worker: e.subtask.worker } });
          else if (e.type === 'log') events.push({ type: e.type, job_id: e.job_id, time_ms: e.time_ms, message: e.message });
          if (e.final) final = e;
        }
        return final;
      }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const timeline = analyse(events, opts.slotsPerWorker);
  return {
    seconds,
    subtasks: opts.jobs * opts.perJob,
    succeeded: timeline.succeeded,
    jobsSucceeded: finals.filter((e) => e?.job_state === 'JOB_STATE_SUCCEEDED').length,
    dispatchMs: timeline.dispatchMs,
    perWorker: timeline.perWorker,
  };
}

/**
 * Replays the events per worker: each worker starts with `slots` free slots; a finished subtask
 * frees one at its event time, an assignment takes the earliest free one. The latency of an
 * assignment is its time minus the later of (slot freed, its job's subtasks ready).
 */
export function analyse(events: readonly TimelineEvent[], slots: number): { dispatchMs: number[]; perWorker: Record<string, number>; succeeded: number } {
  const ready = new Map<string, number>();
  for (const e of events) if (e.type === 'log' && e.message.startsWith('phase 0:')) ready.set(e.job_id, Number(e.time_ms));
  // Same millisecond: a slot is freed before it is refilled (that is the order on the coordinator).
  const order = (e: TimelineEvent): number => (e.subtask?.state === 'SUBTASK_STATE_RUNNING' ? 1 : 0);
  const sorted = events.filter((e) => e.type === 'subtask_state' && e.subtask).sort((a, b) => Number(a.time_ms) - Number(b.time_ms) || order(a) - order(b));
  const free = new Map<string, number[]>();
  const perWorker: Record<string, number> = {};
  const dispatchMs: number[] = [];
  let succeeded = 0;
  for (const e of sorted) {
    const s = e.subtask!;
    const t = Number(e.time_ms);
    let q = free.get(s.worker);
    if (!q) free.set(s.worker, (q = Array.from({ length: slots }, () => 0)));
    if (s.state === 'SUBTASK_STATE_RUNNING') {
      const freedAt = q.shift() ?? t;
      dispatchMs.push(Math.max(0, t - Math.max(freedAt, ready.get(e.job_id) ?? 0)));
      perWorker[s.worker] = (perWorker[s.worker] ?? 0) + 1;
    } else if (s.state === 'SUBTASK_STATE_SUCCEEDED' || s.state === 'SUBTASK_STATE_FAILED' || s.state === 'SUBTASK_STATE_PENDING') {
      if (s.state === 'SUBTASK_STATE_SUCCEEDED') succeeded++;
      q.push(t);
    }
  }
  return { dispatchMs, perWorker, succeeded };
}

/** p50 / p99 / max of latency samples, in ms. */
export function latencySummary(ms: readonly number[]): { p50: number; p99: number; max: number } {
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms.length ? Math.max(...ms) : NaN };
}
