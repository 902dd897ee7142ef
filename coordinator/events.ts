/** Per-job event log with live subscribers; persisted through the store. */
import type { JobEvent } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import type { JobStore } from './store.js';
import { jobProgress, jobStateEnum, toOutputInfo, toSubtaskInfo, type JobRecord, type OutputRecord, type SubtaskRecord } from './model.js';

type Listener = (event: JobEvent) => void;

export class EventLog {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly global = new Set<Listener>();
  /** Last progress event time per subtask, to throttle progress events. */
  private readonly lastProgress = new Map<string, number>();

  constructor(private readonly store: JobStore) {}

  subscribe(jobId: string, listener: Listener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
    };
  }

  private readonly goneListeners = new Set<(jobId: string) => void>();

  /**
   * Called with the id of each job that leaves the coordinator (past its retention, or a submission
   * that failed): its watchers end, the dashboard drops it. Returns the unsubscribe function.
   */
  onGone(listener: (jobId: string) => void): () => void {
    this.goneListeners.add(listener);
    return () => this.goneListeners.delete(listener);
  }

  /** A job left the coordinator (see onGone). */
  gone(jobId: string): void {
    for (const l of [...this.goneListeners]) l(jobId);
  }

  /** Every event of every job (metrics, dashboard). Returns the unsubscribe function. */
  subscribeAll(listener: Listener): () => void {
    this.global.add(listener);
    return () => this.global.delete(listener);
  }

  private emit(job: JobRecord, partial: Omit<JobEvent, 'seq' | 'time_ms' | 'job_id'>): JobEvent {
    job.seq += 1;
    const event: JobEvent = { seq: String(job.seq), time_ms: String(Date.now()), job_id: job.id, job_state: jobStateEnum(job.state), ...partial };
    this.store.appendEvent(event);
    this.store.saveJob(job);
    // Told once on disk (the store commits within ~20 ms): a crash must not take back what a
    // watcher was told (a job's end, an output it announced). In order: commits are.
    this.store.whenStored(() => {
      const set = this.listeners.get(job.id);
      if (set) for (const l of [...set]) l(event);
      for (const l of this.global) l(event);
    });
    return event;
  }

  jobState(job: JobRecord, message: string, final = false): void {
    this.emit(job, { type: 'job_state', message, final, progress: jobProgress(job, undefined) });
  }

  subtaskState(job: JobRecord, s: SubtaskRecord, message = '', progress = jobProgress(job, undefined)): void {
    this.lastProgress.delete(s.id);
    this.emit(job, { type: 'subtask_state', subtask: toSubtaskInfo(s), message, progress });
  }

  /** Progress events, at most 4 per second per subtask. */
  progress(job: JobRecord, s: SubtaskRecord, jobProgress: number, message: string): void {
    const now = Date.now();
    if (now - (this.lastProgress.get(s.id) ?? 0) < 250) return;
    this.lastProgress.set(s.id, now);
    this.emit(job, { type: 'progress', subtask: toSubtaskInfo(s), progress: jobProgress, message });
  }

  /** A subtask that ends without a subtask event of its own (its job ended): no progress to rate-limit. */
  forgetSubtask(subtaskId: string): void {
    this.lastProgress.delete(subtaskId);
  }

  /** An output was published: downloadable from now on, also while the job still runs. */
  output(job: JobRecord, o: OutputRecord): void {
    this.emit(job, { type: 'output', output: toOutputInfo(o), message: o.name, progress: jobProgress(job, undefined) });
  }

  log(job: JobRecord, message: string): void {
    this.emit(job, { type: 'log', message, progress: jobProgress(job, undefined) });
  }
}
