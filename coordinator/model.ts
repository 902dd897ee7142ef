/** The coordinator's records of jobs and subtasks, and their conversion to wire messages. */
import type { ItemFailure, ItemWarning, SpoolFile, SubtaskPlan } from '../shared/job-kind.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import type { Job } from '../shared/proto/generated/tessera/v1/Job.js';
import type { SubtaskInfo } from '../shared/proto/generated/tessera/v1/SubtaskInfo.js';
import type { OutputInfo } from '../shared/proto/generated/tessera/v1/OutputInfo.js';

export type JobState = 'queued' | 'running' | 'succeeded' | 'partially_succeeded' | 'failed' | 'cancelled';
export type SubtaskState = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const TERMINAL_JOB_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'partially_succeeded', 'failed', 'cancelled']);

export interface OutputRecord {
  name: string;
  path: string;
  size: number;
  sha256: string;
  source: string;
  contentType: string;
  /**
   * Published into the job's shared output folder (`path` is there), not the spool: the file's
   * identity then, so that a download can tell it from one put in its place since.
   */
  shared?: { dev: number; ino: number; mtimeMs: number; /** The file was there already, with these bytes (an uploaded input's own): never removed with the job. */ kept?: true };
}

export interface JobRecord {
  id: string;
  kind: string;
  state: JobState;
  spec: JobSpec__Output;
  inputs: SpoolFile[];
  outputs: OutputRecord[];
  errors: ItemFailure[];
  /** What its client should know of its result that is not an error. Absent (older records, or none). */
  warnings?: ItemWarning[];
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  message: string;
  owner: string;
  /** Current phase (0 = the planner's subtasks). */
  phase: number;
  /** Last event sequence number. */
  seq: number;
  maxAttempts: number;
  /**
   * False while phase 0 is still being planned (a kind's `later` subtasks are still coming); a
   * coordinator restarted then plans the job again. Absent (older records) means complete.
   */
  planComplete?: boolean;
  /**
   * True while the job runs on the inputs that have arrived and its upload is still going on (its
   * kind's `plansWhileReceiving`). A coordinator that restarts then drops the job: its submission
   * failed, and its client was told so.
   */
  receiving?: boolean;
}

export interface SubtaskRecord extends Omit<SubtaskPlan, 'plan'> {
  id: string;
  jobId: string;
  index: number;
  phase: number;
  plan: unknown;
  state: SubtaskState;
  /** Current attempt number (the fencing token); 0 = never assigned. */
  attempt: number;
  /** Worker id and name holding the current lease. */
  workerId: string;
  worker: string;
  progress: number;
  startedAt: number;
  durationMs: number;
  /** Earliest time of the next attempt (retry backoff). */
  notBefore: number;
  error?: ItemFailure | undefined;
  itemErrors: ItemFailure[];
  outputs: SpoolFile[];
  result: unknown;
  /** True while a speculative copy of a straggler runs beside the original attempt. */
  speculative: boolean;
  /** Live leases: the original attempt and, for a straggler, its speculative copy. */
  leases: Lease[];
  /** Failed attempts so far (bounded by the job's max attempts). */
  failures: number;
  /**
   * Attempts ended through no fault of the subtask or its worker (the coordinator's own full disk, a
   * planned drain) that did not count as failures; of drains at most the job's max_attempts, of the
   * coordinator's full disk as many as come within FULL_DISK_WAIT_MS (in memory only).
   */
  setbacks: number;
  /** Of the setbacks, the drains (in memory only): free up to the job's max_attempts times. */
  drains?: number;
  /**
   * The workers (session ids) whose own trouble (a full temp folder) failed this subtask (in memory
   * only): free while it is one worker's; a second's says the subtask is what fills them.
   */
  troubledOn?: string[];
  /** Of the setbacks, the coordinator's own stalls (in memory only): free up to the job's max_attempts times. */
  stalls?: number;
  /** When the coordinator's full disk first refused this subtask's outputs (in memory only). */
  diskFullSince?: number;
  /**
   * The worker (session id) its last counted attempt failed on (in memory only): the retry goes
   * at once to another worker with room, and to that one only after the backoff.
   */
  failedOn?: string;
  /**
   * Every worker (session id) a counted attempt of it failed on (in memory only): the retry goes at
   * once only to a worker it has not failed on; two broken workers bounced a subtask between them
   * until its attempts ran out, the healthy worker busy (review K28).
   */
  failedOnAll?: string[];
  /**
   * The worker (id and name) that called this subtask's input bad, while another worker is asked
   * for a second opinion (in memory only): it is not asked again, and if the other worker
   * succeeds, the verdict counts as that worker's failure.
   */
  blamedBy?: { id: string; name: string; instance: string; at: number; /** The input it called bad; none: every input of the subtask. */ input?: string };
  /** Failed for good and replaced by this many smaller subtasks (the kind's `split`): its failure is theirs to report. 0: not replaced. */
  replacedBy: number;
  /**
   * The plan and requirements as the kind pointed them at another encoder after planning
   * (CoordinatorKind.retarget): stored with the live state, which is all a state update writes,
   * and put back over the planned ones when the store is read.
   */
  retargeted?: { plan: unknown; requires?: SubtaskRecord['requires'] };
}

/**
 * A new, pending subtask record. Every record is built with the same fields in the same order, so
 * they all share one V8 shape (a spread of the plan made each a dictionary, and every later access
 * slow).
 */
export function newSubtaskRecord(p: SubtaskPlan, at: { id: string; jobId: string; index: number; phase: number; timeoutMs: number }): SubtaskRecord {
  return {
    label: p.label,
    inputs: p.inputs,
    plan: p.plan,
    weight: p.weight,
    items: p.items,
    requires: p.requires,
    ...(p.of && { of: p.of }),
    id: at.id,
    jobId: at.jobId,
    index: at.index,
    phase: at.phase,
    state: 'pending',
    attempt: 0,
    workerId: '',
    worker: '',
    progress: 0,
    startedAt: 0,
    durationMs: 0,
    notBefore: 0,
    itemErrors: [],
    outputs: [],
    result: undefined,
    speculative: false,
    leases: [],
    failures: 0,
    setbacks: 0,
    replacedBy: 0,
    timeoutMs: p.timeoutMs ?? at.timeoutMs,
  };
}

/** One attempt of a subtask on one worker; `attempt` is the fencing token. */
export interface Lease {
  attempt: number;
  workerId: string;
  worker: string;
  startedAt: number;
  /**
   * When a slot of the worker took it: `startedAt`, or for an assignment placed in the worker's
   * prefetch queue, when an earlier lease there ended (the worker runs its queue in order);
   * undefined while it waits. The straggler rule counts from here, not from the assignment.
   */
  runningSince: number | undefined;
  /** When its worker last reported progress on it (undefined: not yet). */
  progressAt?: number | undefined;
  /** When it was found stalled (no progress for --stall-ms) and a copy of it started. */
  stalledAt?: number | undefined;
  speculative: boolean;
  /**
   * Where this lease may write its outputs itself ("": it uploads them): the job's shared output
   * folder, or the job's folder in the spool for a worker on the coordinator's machine. Its
   * temporary names there come from the lease's token (`leaseToken` in job-manager.ts).
   */
  outputDir: string;
}

const JOB_STATE_ENUM: Record<JobState, Job['state']> = {
  queued: 'JOB_STATE_QUEUED',
  running: 'JOB_STATE_RUNNING',
  succeeded: 'JOB_STATE_SUCCEEDED',
  partially_succeeded: 'JOB_STATE_PARTIALLY_SUCCEEDED',
  failed: 'JOB_STATE_FAILED',
  cancelled: 'JOB_STATE_CANCELLED',
};

export const jobStateEnum = (s: JobState): NonNullable<Job['state']> => JOB_STATE_ENUM[s]!;

export function jobStateFromEnum(name: string): JobState | undefined {
  const found = (Object.entries(JOB_STATE_ENUM) as [JobState, string][]).find(([, v]) => v === name || v === `JOB_STATE_${name.toUpperCase()}`);
  return found?.[0];
}

export function toSubtaskInfo(s: SubtaskRecord): SubtaskInfo {
  return {
    id: s.id,
    index: s.index,
    phase: s.phase,
    state: `SUBTASK_STATE_${s.state.toUpperCase()}` as SubtaskInfo['state'],
    worker: s.worker,
    attempt: s.attempt,
    label: s.label,
    progress: s.progress,
    duration_ms: String(s.durationMs),
    speculative: s.speculative,
    // A subtask that succeeded with some of its items failed (a photo of a batch that does not
    // decode) says so too: it read as a plain success, and the item's failure showed only in the
    // job's errors once it had ended.
    error: s.error ? `${s.error.code}: ${s.error.message}` : (s.itemErrors ?? []).map((e) => `${e.code}: ${e.message}`).join('; ').slice(0, 4096),
  };
}

export function toOutputInfo(o: OutputRecord): OutputInfo {
  return { name: o.name, size: String(o.size), sha256: o.sha256, source: o.source, content_type: o.contentType, shared_path: o.shared ? o.path : '' };
}

/**
 * A job as GetJob answers: `page`, the subtasks asked for (none when undefined); `all`, every
 * subtask where they are at hand (a running job's, for its progress); `lists`, its inputs, outputs,
 * errors and warnings as far as the answer carries them (subtask-pages.ts jobListsPage).
 */
export function toJobMessage(job: JobRecord, page: { subtasks: SubtaskInfo[]; next: string } | undefined, all: SubtaskRecord[] | undefined, lists: Pick<Job, 'inputs' | 'outputs' | 'errors' | 'warnings'> & { next: string }): Job {
  return {
    ...toJobSummary(job),
    // (A failed job's message is a summary of at most 16 KiB; one stored before then may hold every error.)
    message: job.message.length > ANSWER_MESSAGE_CHARS ? `${job.message.slice(0, ANSWER_MESSAGE_CHARS - 3)}...` : job.message,
    inputs: lists.inputs ?? [],
    outputs: lists.outputs ?? [],
    subtasks: page?.subtasks ?? [],
    next_subtask_page_token: page?.next ?? '',
    errors: lists.errors ?? [],
    warnings: lists.warnings ?? [],
    next_list_page_token: lists.next,
    progress: jobProgress(job, all),
  };
}

/** Longest `message` in GetJob's answer (its lists take up to 2 MiB of a default client's 4 MiB). */
const ANSWER_MESSAGE_CHARS = 64 * 1024;

/** Longest `message` in a summary: a failed job's joins its errors. */
const SUMMARY_MESSAGE_CHARS = 500;

/**
 * A job without its lists (ListJobs): fifty jobs of 10,000 inputs each would not fit in one
 * message, and a listing must never fail because of what one job holds.
 */
export function toJobSummary(job: JobRecord): Job {
  return {
    id: job.id,
    kind: job.kind,
    state: jobStateEnum(job.state),
    spec: job.spec,
    progress: jobProgress(job, undefined),
    created_at_ms: String(job.createdAt),
    started_at_ms: String(job.startedAt),
    finished_at_ms: String(job.finishedAt),
    message: job.message.length > SUMMARY_MESSAGE_CHARS ? `${job.message.slice(0, SUMMARY_MESSAGE_CHARS - 3)}...` : job.message,
    last_event_seq: String(job.seq),
    owner: job.owner,
    input_count: job.inputs.length,
    output_count: job.outputs.length,
    error_count: job.errors.length,
    warning_count: job.warnings?.length ?? 0,
  };
}

/**
 * Last computed progress per job: progress is a display figure, recomputed at most every
 * PROGRESS_TTL_MS, and for a big job at most every millisecond per 50 subtasks (each look reads
 * them all: a job of 100,000 is summed every 2 s, not 10 times a second).
 */
const progressCache = new WeakMap<JobRecord, { at: number; phase: number; count: number; value: number }>();
const PROGRESS_TTL_MS = 200;
/** Jobs of up to this many subtasks are summed on every call (a few microseconds). */
const PROGRESS_EXACT_UP_TO = 1000;

/**
 * Fraction done of a job, for progress bars and events. Summing over every subtask is O(n), and
 * it is asked on every subtask event: with 20,000 subtasks that made the coordinator O(n^2)
 * (20 s of CPU for 5,000 no-op subtasks). So the sum of a job of more than PROGRESS_EXACT_UP_TO
 * subtasks is cached for PROGRESS_TTL_MS. Without `subtasks`: the last sum made, 0 before any.
 *
 * It never goes back while the job runs: work done again (a retry, what ran when the coordinator
 * stopped, a segment encoded again in a later phase) and inputs planned later would otherwise
 * move a client's bar backwards. It stays where it was until the sum passes it.
 */
/**
 * Where a job's progress stood before the coordinator restarted (the last figure its events gave),
 * so that it goes on from there.
 */
export function resumeProgress(job: JobRecord, value: number): void {
  if (TERMINAL_JOB_STATES.has(job.state) || !(value > 0)) return;
  const cached = progressCache.get(job);
  progressCache.set(job, { at: 0, phase: job.phase, count: 0, value: Math.max(cached?.value ?? 0, Math.min(0.99, value)) });
}

/** A cancelled job's progress as its final event gave it (read back after a restart). */
export function keepCancelledProgress(job: JobRecord, value: number): void {
  if (job.state === 'cancelled' && value > 0) progressCache.set(job, { at: 0, phase: job.phase, count: 0, value });
}

export function jobProgress(job: JobRecord, subtasks: SubtaskRecord[] | undefined): number {
  // A cancelled job stays where it stopped (it dropped to 0 in the events of its stopped subtasks,
  // then its final event said 1): what it had done is what a watcher last saw.
  if (TERMINAL_JOB_STATES.has(job.state)) return job.state === 'cancelled' ? (progressCache.get(job)?.value ?? 0) : 1;
  // Without the subtasks at hand (a listing, an event about something else): the last figure computed.
  if (!subtasks) return progressCache.get(job)?.value ?? 0;
  if (subtasks.length === 0) return progressCache.get(job)?.value ?? 0;
  const now = Date.now();
  const cached = progressCache.get(job);
  // A small job is summed afresh every time: its events then say exactly how far it is.
  if (cached && subtasks.length > PROGRESS_EXACT_UP_TO && cached.phase === job.phase && cached.count === subtasks.length && now - cached.at < Math.max(PROGRESS_TTL_MS, subtasks.length / 50)) return cached.value;
  let n = 0;
  let sum = 0;
  // Groups of subtasks still being made: each counts as many as it will have.
  let groups: Map<string, { count: number; made: number }> | undefined;
  for (const s of subtasks) {
    if (s.phase !== job.phase) continue;
    n++;
    sum += s.state === 'succeeded' || s.state === 'failed' ? 1 : s.progress;
    if (s.of) {
      const g = (groups ??= new Map()).get(s.of.group) ?? { count: s.of.count, made: 0 };
      g.made++;
      groups.set(s.of.group, g);
    }
  }
  for (const g of groups?.values() ?? []) n += Math.max(0, g.count - g.made);
  // Later phases (merges) are usually short: the current phase carries 95% of the bar.
  const value = Math.max(cached?.value ?? 0, n === 0 ? 0 : Math.min(0.99, (sum / n) * 0.95));
  progressCache.set(job, { at: now, phase: job.phase, count: subtasks.length, value });
  return value;
}
