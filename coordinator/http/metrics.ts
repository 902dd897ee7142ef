/**
 * Prometheus metrics of a coordinator. Counters are derived from the job event stream
 * (`EventLog.subscribeAll`), gauges are read from the job manager and worker registry at scrape
 * time, so nothing in the scheduling path has to know that metrics exist.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobEvent } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import type { JobManager } from '../job-manager.js';
import { TERMINAL_JOB_STATES, type JobRecord, type JobState, type SubtaskState } from '../model.js';
import { slotsInUse, type WorkerState } from '../worker-registry.js';

const JOB_STATES: JobState[] = ['queued', 'running', 'succeeded', 'partially_succeeded', 'failed', 'cancelled'];
const SUBTASK_STATES: SubtaskState[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
const WORKER_STATES: WorkerState[] = ['active', 'draining', 'lost', 'quarantined'];

/** Lower-case state name from a wire enum such as `SUBTASK_STATE_RUNNING`. */
export function stateName(wire: string | number | undefined, prefix: string): string {
  return String(wire ?? '').replace(prefix, '').toLowerCase();
}

/** The coordinator's metric registry; `render()` is the body of `GET /metrics`. */
export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly kindOf = new Map<string, string>();
  private readonly unsubscribe: () => void;
  /**
   * Subtask transitions (by kind and wire state), counted here and handed to prom-client when
   * scraped: given labels, it hashes them on every call, and every subtask makes two or more.
   */
  private readonly transitionCounts = new Map<string, { kind: string; state: string; n: number }>();

  private readonly jobsSubmitted = new Counter({ name: 'tessera_jobs_submitted_total', help: 'Jobs accepted, by kind', labelNames: ['kind'], registers: [this.registry] });
  private readonly jobsDropped = new Counter({
    name: 'tessera_jobs_dropped_total',
    help: 'Jobs made for a submission that then failed (started on their first inputs, or not taken by the store) and dropped with it, by kind; not counted as submitted or finished',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  /**
   * Jobs whose submission has not settled (JobManager.submissionsSettled), and the final state of
   * those that ended meanwhile: counted once it is known whether the job is kept.
   */
  private readonly unsettled = new Map<string, { finished?: string }>();
  /** Jobs dropped with their submission whose final event has not come yet. */
  private readonly dropped = new Set<string>();
  /** Per unfinished job, each subtask's last counted state and attempt. */
  private readonly lastTransition = new Map<string, Map<string, string>>();
  private readonly jobsFinished = new Counter({ name: 'tessera_jobs_finished_total', help: 'Jobs that reached a final state, by kind and state', labelNames: ['kind', 'state'], registers: [this.registry] });
  private readonly subtaskTransitions: Counter<'kind' | 'state'> = new Counter({
    name: 'tessera_subtask_transitions_total',
    help: 'Subtask state changes (one per attempt start, success, failure, retry), by kind and new state',
    labelNames: ['kind', 'state'],
    registers: [this.registry],
    collect: () => {
      this.subtaskTransitions.reset();
      for (const { kind, state, n } of this.transitionCounts.values()) this.subtaskTransitions.inc({ kind, state }, n);
    },
  });
  private readonly retries: Counter<'kind'> = new Counter({
    name: 'tessera_subtask_retries_total',
    help: 'Subtask attempts that failed and were queued again',
    labelNames: ['kind'],
    registers: [this.registry],
    collect: () => {
      this.retries.reset();
      // The job manager's count: a subtask back in `pending` is not always a retry (one taken back
      // from a draining worker's queue before it started used no attempt).
      for (const [kind, n] of this.manager.retriesByKind) this.retries.inc({ kind }, n);
    },
  });
  private readonly freeRetries: Counter<'kind' | 'reason'> = new Counter({
    name: 'tessera_subtask_free_retries_total',
    help: "Of tessera_subtask_retries_total, those not counted against max_attempts, by why: the coordinator's disk full (disk_full), a worker's own temp folder full or read-only (worker_trouble), a worker stopped as planned (drain), a worker lost in the wake of the coordinator's own stall (coordinator_stall), a verdict of bad input another worker is to check (second_opinion)",
    labelNames: ['kind', 'reason'],
    registers: [this.registry],
    collect: () => {
      this.freeRetries.reset();
      for (const [key, n] of this.manager.freeRetries) {
        const [kind, reason] = key.split('\n');
        this.freeRetries.inc({ kind: kind!, reason: reason! }, n);
      }
    },
  });
  private readonly duration = new Histogram({
    name: 'tessera_subtask_duration_seconds',
    help: 'Duration of finished subtask attempts, by kind and outcome',
    labelNames: ['kind', 'outcome'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
    registers: [this.registry],
  });
  private readonly bytesOut = new Counter({ name: 'tessera_output_bytes_total', help: 'Bytes of job outputs published', labelNames: ['kind'], registers: [this.registry] });

  constructor(private readonly manager: JobManager) {
    // prom-client samples event-loop lag every 10 ms by default: 100 wake-ups a second that kept an
    // idle coordinator at 1.6% of a core (10 ms -> 100 ms: 1.0%). Lag of tenths of seconds, what
    // an operator looks for here, is still seen.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    const m = manager;
    new Gauge({
      name: 'tessera_jobs',
      help: 'Jobs known to the coordinator, by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const counts = new Map<string, number>(JOB_STATES.map((s) => [s, 0]));
        for (const j of m.list()) counts.set(j.state, (counts.get(j.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'tessera_subtasks',
      help: 'Subtasks of unfinished jobs, by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const counts = new Map<string, number>(SUBTASK_STATES.map((s) => [s, 0]));
        for (const j of m.list()) {
          if (TERMINAL_JOB_STATES.has(j.state)) continue;
          for (const s of m.subtasksOf(j.id)) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
        }
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'tessera_queue_depth',
      help: 'Subtasks waiting for a worker (pending, including those in retry backoff)',
      registers: [this.registry],
      collect() {
        let n = 0;
        for (const j of m.list()) if (!TERMINAL_JOB_STATES.has(j.state)) for (const s of m.subtasksOf(j.id)) if (s.state === 'pending') n++;
        this.set(n);
      },
    });
    new Gauge({
      name: 'tessera_workers',
      help: 'Workers by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const counts = new Map<string, number>(WORKER_STATES.map((s) => [s, 0]));
        for (const w of m.registry.all()) counts.set(w.state, (counts.get(w.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'tessera_worker_slots',
      help: 'Slots of workers that are not lost: total, and in use',
      labelNames: ['use'],
      registers: [this.registry],
      collect() {
        let total = 0;
        let used = 0;
        for (const w of m.registry.all()) {
          if (w.state === 'lost') continue;
          total += w.slots;
          used += slotsInUse(w);
        }
        this.set({ use: 'total' }, total);
        this.set({ use: 'used' }, used);
      },
    });
    new Gauge({
      name: 'tessera_stream_buffer_bytes',
      help: 'Bytes of outputs handed to gRPC for DownloadOutput and WatchJob readers and not yet written out (at most --stream-buffer-bytes; readers that do not read keep theirs)',
      registers: [this.registry],
      collect() {
        this.set(m.streamBuffers.held);
      },
    });
    // The job manager counts these itself: the events do not tell them (a lease taken back while
    // another copy runs on is told only as a view's correction); bytes served have none.
    const counted: [string, string, () => number][] = [
      ['tessera_speculative_copies_total', 'Speculative copies of straggling or stalled subtasks started', () => m.speculativeCopies],
      ['tessera_stalled_copies_total', 'Of the speculative copies, those of subtasks whose worker had reported no progress on them for --stall-ms (a worker that hangs while its heartbeats go on)', () => m.stalledCopies],
      ['tessera_queued_subtasks_moved_total', 'Assignments taken from a worker\'s prefetch queue before they started and given to an idle worker (end of a job of short subtasks)', () => m.queuedMoved],
      ['tessera_lease_expiries_total', 'Leases taken back from a worker that was lost, unreachable or draining past its grace', () => m.leaseExpiries],
      ['tessera_task_input_bytes_served_total', 'Bytes of subtask inputs streamed to workers (inputs a worker reads in place, from shared storage or the spool, add none)', () => m.inputBytesServed],
      ['tessera_task_output_bytes_received_total', 'Bytes of subtask outputs received from workers, inline or uploaded (outputs a worker writes in place add none)', () => m.outputBytesReceived],
      ['tessera_task_output_bytes_in_place_total', "Bytes of subtask outputs workers wrote in place: into a job's shared output folder, or into the spool from the coordinator's machine", () => m.outputBytesInPlace],
      ['tessera_output_downloads_total', 'DownloadOutput calls', () => m.outputDownloads],
      ['tessera_stream_buffer_refusals_total', 'Download messages sent small (64 KiB) and outputs sent without their bytes inside events, because --stream-buffer-bytes was held by other readers', () => m.streamBuffers.refusals],
      ['tessera_output_bytes_in_events_total', 'Bytes of small outputs sent inside their output events to watchers that asked for them (WatchJobRequest.inline_outputs_up_to)', () => m.outputBytesInEvents],
    ];
    for (const [name, help, read] of counted) {
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    }
    // Counted by the job manager, by kind: input bytes once a submission settles, kept (a dropped
    // one brought no input); jobs this process took over from its store, unfinished (with the
    // submitted ones, what its finished, dropped and unfinished jobs add up to).
    const byKind: [string, string, ReadonlyMap<string, number>][] = [
      ['tessera_input_bytes_total', 'Bytes of the inputs of submitted jobs (a submission dropped half-way counts none)', m.inputBytesAccepted],
      ['tessera_jobs_resumed_total', 'Unfinished jobs taken over from the store when this coordinator started (submitted to an earlier run)', m.resumedJobs],
    ];
    for (const [name, help, counts] of byKind) {
      new Counter({
        name,
        help,
        labelNames: ['kind'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [kind, n] of counts) this.inc({ kind }, n);
        },
      });
    }
    const unsubscribeEvents = manager.events.subscribeAll((e) => this.onEvent(e));
    const onSettled = (job: JobRecord, kept: boolean): void => this.onSettled(job, kept);
    manager.submissionsSettled.add(onSettled);
    const onAttempt = (kind: string, outcome: 'succeeded' | 'failed', ms: number): void => this.duration.observe({ kind, outcome }, ms / 1000);
    manager.attemptsEnded.add(onAttempt);
    this.unsubscribe = () => {
      unsubscribeEvents();
      manager.submissionsSettled.delete(onSettled);
      manager.attemptsEnded.delete(onAttempt);
    };
  }

  private kind(jobId: string): string {
    let k = this.kindOf.get(jobId);
    if (k === undefined) {
      k = this.manager.find(jobId)?.kind ?? 'unknown';
      this.kindOf.set(jobId, k);
    }
    return k;
  }

  private onEvent(e: JobEvent): void {
    const jobId = e.job_id ?? '';
    const kind = this.kind(jobId);
    if (e.type === 'job_state') {
      const state = stateName(e.job_state, 'JOB_STATE_');
      // A new job: counted once its submission settles.
      if (state === 'queued' && Number(e.seq) === 1) this.unsettled.set(jobId, {});
      if (e.final) {
        this.lastTransition.delete(jobId);
        const pending = this.unsettled.get(jobId);
        if (pending) pending.finished = state;
        else if (this.dropped.delete(jobId)) this.kindOf.delete(jobId);
        else {
          // A job removed meanwhile (its retention was 0) has no record to count from any more.
          const job = this.manager.find(jobId);
          if (job) this.countFinished(job, state);
          else this.kindOf.delete(jobId);
        }
      }
      return;
    }
    if (e.type !== 'subtask_state' || !e.subtask) return;
    const s = e.subtask;
    // A transition is a new state or a new attempt: an event that repeats both (a view corrected,
    // as when a speculative copy ends and the original runs on) is none.
    let seen = this.lastTransition.get(jobId);
    if (!seen) this.lastTransition.set(jobId, (seen = new Map()));
    const mark = `${s.state}\0${s.attempt}`;
    if (seen.get(s.id ?? '') === mark) return;
    seen.set(s.id ?? '', mark);
    const key = `${kind}\0${s.state}`;
    const counted = this.transitionCounts.get(key);
    if (counted) counted.n++;
    else this.transitionCounts.set(key, { kind, state: stateName(s.state, 'SUBTASK_STATE_'), n: 1 });
  }

  private countFinished(job: JobRecord, state: string): void {
    const kind = this.kind(job.id);
    this.jobsFinished.inc({ kind, state });
    this.bytesOut.inc({ kind }, job.outputs.reduce((n, o) => n + o.size, 0));
    this.kindOf.delete(job.id);
  }

  private onSettled(job: JobRecord, kept: boolean): void {
    const pending = this.unsettled.get(job.id);
    if (!pending) return;
    this.unsettled.delete(job.id);
    if (!kept) {
      // Its last events (its subtasks cancelled, its final one) come after this, once stored: they
      // keep its kind until the final one.
      this.kindOf.set(job.id, job.kind);
      this.dropped.add(job.id);
      this.jobsDropped.inc({ kind: job.kind });
      return;
    }
    this.jobsSubmitted.inc({ kind: this.kind(job.id) });
    if (pending.finished) this.countFinished(job, pending.finished);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  close(): void {
    this.unsubscribe();
  }
}
