/** The JSON shapes the dashboard receives: compact views of workers, jobs and subtasks. */
import type { JobManager } from '../job-manager.js';
import { stateName } from './metrics.js';
import { jobProgress, TERMINAL_JOB_STATES, toSubtaskInfo, type JobRecord, type SubtaskRecord } from '../model.js';
import { slotsInUse, type WorkerSession } from '../worker-registry.js';
import { wallTimeOf } from '../../shared/clock.js';

/** One worker row. */
export interface WorkerView {
  id: string;
  name: string;
  address: string;
  state: string;
  slots: number;
  slotsUsed: number;
  load: number;
  lastHeartbeatMs: number;
  done: number;
  failed: number;
  kinds: string[];
}

/** One job row. */
export interface JobView {
  id: string;
  kind: string;
  label: string;
  state: string;
  progress: number;
  owner: string;
  message: string;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  inputs: number;
  /** Subtasks of the current phase by state (running jobs only). */
  subtasks: Record<string, number>;
}

/** One tile of the mosaic. */
export interface SubtaskView {
  id: string;
  index: number;
  phase: number;
  state: string;
  worker: string;
  attempt: number;
  label: string;
  progress: number;
  durationMs: number;
  speculative: boolean;
  error: string;
}

export function workerView(w: WorkerSession): WorkerView {
  return {
    id: w.id,
    name: w.name,
    address: w.address,
    state: w.state,
    slots: w.slots,
    slotsUsed: slotsInUse(w),
    load: w.load,
    lastHeartbeatMs: wallTimeOf(w.lastHeartbeat),
    done: w.done,
    failed: w.failed,
    kinds: [...w.kinds],
  };
}

export function jobView(manager: JobManager, job: JobRecord): JobView {
  // Finished jobs' subtasks live in SQLite only: do not read them for every row update.
  const subtasks = TERMINAL_JOB_STATES.has(job.state) ? undefined : manager.subtasksOf(job.id);
  const counts: Record<string, number> = {};
  for (const s of subtasks ?? []) if (s.phase === job.phase) counts[s.state] = (counts[s.state] ?? 0) + 1;
  return {
    id: job.id,
    kind: job.kind,
    label: job.spec.label ?? '',
    state: job.state,
    progress: jobProgress(job, subtasks),
    owner: job.owner,
    message: job.message,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    inputs: job.inputs.length,
    subtasks: counts,
  };
}

/** From the live record (or from a subtask_state event's SubtaskInfo). */
export function subtaskView(s: SubtaskRecord): SubtaskView {
  const info = toSubtaskInfo(s);
  return fromInfo(info);
}

export function fromInfo(info: ReturnType<typeof toSubtaskInfo>): SubtaskView {
  return {
    id: info.id ?? '',
    index: Number(info.index ?? 0),
    phase: Number(info.phase ?? 0),
    state: stateName(info.state, 'SUBTASK_STATE_'),
    worker: info.worker ?? '',
    attempt: Number(info.attempt ?? 0),
    label: info.label ?? '',
    progress: Number(info.progress ?? 0),
    durationMs: Number(info.duration_ms ?? 0),
    speculative: info.speculative ?? false,
    error: info.error ?? '',
  };
}

/** Most recent jobs first, at most `limit`. */
export function recentJobs(manager: JobManager, limit: number): JobRecord[] {
  const jobs: JobRecord[] = [];
  for (const job of manager.newestFirst()) {
    if (jobs.length === limit) break;
    jobs.push(job);
  }
  return jobs;
}
