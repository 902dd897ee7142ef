/**
 * Job lifecycle on the coordinator: plan -> schedule -> collect results -> merge (-> next phase)
 * -> publish. Owns the in-memory records, persists them through the store, emits events.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Stats } from 'node:fs';
import { constants as fsConstants, existsSync } from 'node:fs';
import { access, lstat, open, readdir, readlink, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { status } from '../shared/grpc-status.js';
import pLimit from 'p-limit';
import { TesseraError, dataLoss, isOwnTroubleToWaitOut, hasLocalTroubleCode, describeError, isAbortError, notFound, failedPrecondition, withInput } from '../shared/errors.js';
import { loadTesseraRoot } from '../shared/proto.js';
import { Channel } from '../shared/channel.js';
import { isPlanErrors, type ClusterView, type CoordinatorKind, type FinalOutput, type ItemFailure, type PlanErrors, type SpoolFile, type SubtaskOutcome, type SubtaskPlan } from '../shared/job-kind.js';
import type { Logger } from '../shared/logger.js';
import { safeOutputName } from '../shared/names.js';
import type { Assignment } from '../shared/proto/generated/tessera/v1/Assignment.js';
import type { JobEvent } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import type { OutputRef__Output } from '../shared/proto/generated/tessera/v1/OutputRef.js';
import type { TaskInput } from '../shared/proto/generated/tessera/v1/TaskInput.js';
import { jobOfSharedTemp, moveInto, removeSharedTemps, sharedOutputTemp } from '../shared/shared-output.js';
import { sha256File } from '../shared/streams.js';
import { EventLog } from './events.js';
import { coordinatorKinds } from './kinds/index.js';
import { JobOrder } from './job-list.js';
import { TERMINAL_JOB_STATES, jobProgress, keepCancelledProgress, newSubtaskRecord, resumeProgress, type JobRecord, type JobState, type Lease, type OutputRecord, type SubtaskRecord } from './model.js';
import { Scheduler } from './scheduler.js';
import { SHARED_LOOKUPS, SharedRoots } from './shared-inputs.js';
import type { Spool } from './spool.js';
import { RESUME_SEQ_GAP, type JobStore } from './store.js';
import { FAILURE_WINDOW_MS, WorkerRegistry, type WorkerSession } from './worker-registry.js';
import { limitDefault, resolveLimits, type Limits } from '../shared/limits.js';
import { StreamBuffers } from './stream-buffers.js';
import { MAX_SUBTASK_TIMEOUT_MS, STALL_MS, envInt } from '../shared/config.js';
import { steadyNow } from '../shared/clock.js';
import { makeDir } from '../shared/make-dir.js';

/** How long a worker with repeated failures is left out. */
const QUARANTINE_MS = 30_000;
/**
 * A worker quarantined again within this long of its last quarantine's end is quarantined twice as
 * long as that one, up to QUARANTINE_MAX_MS (or the quarantine set, if longer): a worker that fails
 * whatever it is given, or takes work and never does it, would otherwise be back every 30 s to fail
 * or hold five more subtasks. Kubernetes backs off a crash loop the same way, and forgets it after
 * ten minutes of running well.
 */
const QUARANTINE_RESET_MS = 10 * 60_000;
const QUARANTINE_MAX_MS = 10 * 60_000;
/** Longest job label (it travels in every listing). */
const MAX_LABEL_BYTES = 1024;
const MAX_REQUEST_ID_BYTES = 128;

/** What is wrong with a request id (a job's `spec.request_id`, or one `ListJobs` looks for), if anything. */
export function requestIdProblem(requestId: string): string | undefined {
  if (Buffer.byteLength(requestId) > MAX_REQUEST_ID_BYTES) return `longer than ${MAX_REQUEST_ID_BYTES} bytes`;
  // Printable ASCII only: it is logged and compared byte for byte.
  if (!/^[\x21-\x7e]*$/.test(requestId)) return 'only printable ASCII characters, no spaces';
  return undefined;
}
/** Wait before starting a job again whose start failed (its store could not write). */
const START_RETRY_MS = 5_000;
/** How long past its timeout (at least; 10% of the timeout for long ones) a lease runs before the coordinator takes it back. */
const OVERDUE_GRACE_MS = 30_000;
/**
 * How long the coordinator's full or unwritable disk may refuse a subtask's outputs before those
 * attempts count (10 min; TESSERA_FULL_DISK_WAIT_MS, checked at start): a disk that fills for a while costs no job its
 * finished work, one that stays full fails the jobs in the end rather than running them for ever.
 */
const fullDiskWaitMs = (): number => envInt('TESSERA_FULL_DISK_WAIT_MS', 10 * 60_000);
/** How the event of an assignment taken back from a worker's queue before it started begins: no attempt was used. */
export const TAKEN_BACK = 'taken back before it started';

/** Cancelled leases remembered per worker (WorkerSession.cancelled), the latest. */
const CANCELLED_KEPT = 1000;
/** How long a subtask whose input one worker called bad waits for another worker's opinion. */
const SECOND_OPINION_WAIT_MS = 60_000;
/**
 * How long after its own stall the coordinator excuses lost workers: their keepalive gave up during
 * it, and they reconnect after a backoff of a few seconds and register again.
 */
const STALL_EXCUSE_MS = 30_000;
/** How long a worker's queue places stay kept for work of a higher priority after the last pass that wanted them. */
const RESERVE_QUEUE_MS = 2_000;
/** How long after a restart a plan waits for the first worker of its kind to come back. */
const RESTART_WORKER_GRACE_MS = 10_000;
/**
 * How long the coordinator's own trouble (its disk full) is waited out before a merge it stopped,
 * or outputs it could not take, are tried again: 2 s (TESSERA_FULL_DISK_RETRY_MS, for tests),
 * doubling with each try up to a minute.
 */
function troubleRetryMs(tries: number): number {
  return Math.min(60_000, envInt('TESSERA_FULL_DISK_RETRY_MS', 2_000) * 2 ** Math.min(10, Math.max(0, tries - 1)));
}
/** Longest wait before a retry. */
const MAX_RETRY_BACKOFF_MS = 30_000;

/**
 * Wait before the next attempt after `tries` failed ones (setbacks included): exponential from
 * `baseMs`, at most {@link MAX_RETRY_BACKOFF_MS} (20 attempts may be asked for: hours uncapped),
 * with jitter between half and all of it so that subtasks failed together do not retry together.
 */
export function retryBackoffMs(baseMs: number, tries: number, random: () => number = Math.random): number {
  const backoff = Math.min(MAX_RETRY_BACKOFF_MS, baseMs * 2 ** Math.max(0, tries - 1));
  return Math.round(backoff * (0.5 + random() * 0.5));
}

export interface JobManagerOptions {
  maxAttempts: number;
  subtaskTimeoutMs: number;
  /**
   * How long a running subtask may go without a progress report from its worker before it gets a
   * speculative copy (`speculate`); 0 = never. Default STALL_MS.
   */
  stallMs?: number;
  /** Base of the exponential retry backoff. */
  retryBaseMs: number;
  /** Retryable failures within a minute that quarantine a worker (0 = never). */
  quarantineFailures: number;
  /** How long a quarantine lasts (default 30 s). */
  quarantineMs?: number;
  /** Jobs whose subtasks all run shorter than this (ms) use workers' prefetch places (0 = never). */
  prefetchBelowMs: number;
  /** Folders inputs may be referenced from (default: none). */
  sharedRoots?: SharedRoots;
  /** The coordinator's input limits, which planners apply to what they count (default: resolveLimits()). */
  limits?: Limits;
}

/** A job accepted while its upload runs (JobManager.acceptReceiving). */
export interface ReceivingJob {
  /** Inputs accepted by their checks since (in submission order), and the refused ones' failures. */
  add(files: SpoolFile[], errors: ItemFailure[]): void;
  /** The upload ended: every input is in; resolves once the job is on disk so. */
  end(): Promise<void>;
  /** The submission failed: the job ends and is removed with everything it made. */
  discard(reason: unknown): Promise<void>;
}

/**
 * Called when a job ends (cancelled, or failed) while its upload still runs: the submission stops
 * reading it and answers with the job. What arrives afterwards is not kept.
 */
export type UploadStop = () => void;

/** A queued assignment is moved to an idle worker only if its holder would start it this much later (ms) or more. */
const MOVE_QUEUED_MIN_MS = 10;

interface ActiveJob {
  record: JobRecord;
  kind: CoordinatorKind;
  params: unknown;
  subtasks: SubtaskRecord[];
  controller: AbortController;
  /** Highest phase whose merge has started (guards against merging a phase twice). */
  mergedPhase: number;
  /** True while the kind's `later` subtasks are still coming: phase 0 cannot end yet. */
  planning: boolean;
  /** The kind's estimate of a subtask's run time (ms), NaN when it gives none. */
  runEstimateMs: number;
  /** Longest run time (ms) a worker reported for one of its subtasks, how many were reported, and their sum. */
  runMaxMs: number;
  runSamples: number;
  runTotalMs: number;
  /** Outputs published so far: the input each was made from, by name (each name is published once). */
  published: Map<string, string>;
  /** Early publications (`finalOutputs`) in order; a merge starts after they have settled. */
  publishing: Promise<void>;
  /** Merges stopped by the coordinator's own trouble so far (they run again, ever later). */
  mergeRetries?: number;
  /** The job's output folder, created once. */
  outputDirMade?: Promise<unknown>;
  /** The job's shared inputs, found when an output is first published to a shared folder. */
  sharedInputs?: readonly SpoolFile[];
  /** The job's subtask folder in the spool as workers on this machine see it ("": local reads are off), found once. */
  spoolOutputDir?: string;
  /** Set while no connected worker can run some of its pending work: the message said, and the one it replaced. */
  waiting?: { message: string; before: string };
}

/**
 * A lease's token, which names the temporary files it may write in place: unique to the worker
 * session and attempt (never reused, also across restarts), known only to that worker (it is sent
 * only to it), and derived again when its result comes in, also for a lease no longer held.
 */
const leaseToken = (w: WorkerSession, attempt: number): string => `${w.leaseSecret}.${attempt}`;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export class JobManager {
  readonly scheduler = new Scheduler();
  readonly events: EventLog;
  private readonly jobs = new Map<string, JobRecord>();
  /**
   * Indexes of `jobs` for each submission's checks, which would otherwise scan every kept job (a
   * coordinator keeping a week of jobs holds hundreds of thousands): kept jobs by owner and
   * request_id, and each owner's unfinished jobs.
   */
  private readonly byRequest = new Map<string, JobRecord>();
  /** Jobs accepted and not yet on disk, with their commit. */
  private readonly committing = new Map<string, Promise<void>>();
  private readonly unfinished = new Map<string, Set<string>>();
  /** Kept jobs in creation order, for ListJobs' pages. */
  private readonly order = new JobOrder((job) => this.jobs.get(job.id) === job);
  private readonly active = new Map<string, ActiveJob>();
  private readonly subtasks = new Map<string, SubtaskRecord>();
  /** The inputs still arriving for jobs accepted while their upload runs, by job. */
  private readonly arrivals = new Map<string, Channel<SpoolFile>>();
  /** Of the jobs still receiving their inputs: how to stop their upload (see UploadStop). */
  private readonly uploadStops = new Map<string, UploadStop>();
  private dispatchScheduled = false;
  /** When {@link explainWaiting} last looked. */
  private explainedAt = 0;
  private stopping = false;
  private readonly stopListeners = new Set<() => void>();
  /** Counters for metrics. */
  leaseExpiries = 0;
  speculativeCopies = 0;
  /**
   * Attempts that failed and were queued again, by kind (and in all): not assignments taken back
   * before they started (from a draining or quarantined worker's queue), which used no attempt.
   */
  readonly retriesByKind = new Map<string, number>();
  /** Of those, the retries not counted against max_attempts, by kind and why ("kind\nreason"). */
  readonly freeRetries = new Map<string, number>();
  retries = 0;
  /** Of those, the copies of subtasks whose worker reported no progress for --stall-ms (see `speculate`). */
  stalledCopies = 0;
  /**
   * Subtasks whose only attempt was found stalled while no worker had room for a copy (work was
   * waiting): the next slot that frees runs a copy of one of them before any waiting subtask.
   */
  private readonly awaitingCopy = new Set<SubtaskRecord>();
  /** Queued assignments moved to an idle worker before they started (see `moveQueued`). */
  queuedMoved = 0;
  /** Bytes of subtask inputs streamed to workers (FetchTaskInput); inputs read in place add none. */
  inputBytesServed = 0;
  /**
   * Bytes of job inputs accepted, by kind: a job's when it is accepted, and those of a job accepted
   * while its upload runs as each further input passes its check.
   */
  readonly inputBytesAccepted = new Map<string, number>();
  /** Unfinished jobs taken over from the store at start (resume), by kind. */
  readonly resumedJobs = new Map<string, number>();
  /**
   * Told when a submission's job is settled: kept (its client is answered with it, a job cancelled
   * during its upload included) or dropped (the submission failed after the job was made: started
   * on its first inputs, or not taken by the store). A job's first event comes before this.
   */
  readonly submissionsSettled = new Set<(job: JobRecord, kept: boolean) => void>();
  /**
   * Called as an attempt that ran ends, with its kind, outcome and run time: succeeded, or failed
   * (retried or not, a lost worker's included). The events cannot tell: a retry is told as the
   * subtask pending again, and a view's correction repeats a state.
   */
  readonly attemptsEnded = new Set<(kind: string, outcome: 'succeeded' | 'failed', ms: number) => void>();
  /** Bytes of subtask outputs received from workers (inline or uploaded); outputs they write in place add none. */
  outputBytesReceived = 0;
  /** Bytes of subtask outputs workers wrote in place: into a job's shared output folder, or into the spool from the coordinator's machine. */
  outputBytesInPlace = 0;
  /** DownloadOutput calls, and bytes of outputs sent inside their events instead (WatchJob). */
  outputDownloads = 0;
  outputBytesInEvents = 0;
  /** Output bytes held for DownloadOutput and WatchJob readers (the limit is set by the job service from --stream-buffer-bytes). */
  readonly streamBuffers = new StreamBuffers(limitDefault('streamBufferBytes'));
  private retryTimer: NodeJS.Timeout | undefined;
  /** Work waiting to be tried again (a merge or a start stopped by the store or disk): cleared when it stops. */
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly store: JobStore,
    private readonly spool: Spool,
    readonly registry: WorkerRegistry,
    private readonly log: Logger,
    private readonly opts: JobManagerOptions,
  ) {
    this.events = new EventLog(store);
    this.limits = opts.limits ?? resolveLimits();
  }

  /** The coordinator's input limits, for planners (JobManagerOptions.limits). */
  private readonly limits: Limits;

  /** Validates a spec: known kind, typed params. Returns the kind and normalised params. */
  validateSpec(spec: JobSpec__Output): { kind: CoordinatorKind; params: unknown } {
    const kindName = spec.params;
    // A kind from newer protos arrives as an unknown field, which decoding drops: it reads as none.
    if (!kindName) throw new TesseraError(status.INVALID_ARGUMENT, 'spec.params: no job kind given that this coordinator knows (set one of image, video, thumbnails, audio, passthrough; a kind of newer protos needs a newer coordinator)');
    const kind = coordinatorKinds.get(kindName);
    if (!kind) throw new TesseraError(status.INVALID_ARGUMENT, `spec.params: job kind "${kindName}" is not supported by this coordinator`);
    if (spec.max_attempts > 20) throw new TesseraError(status.INVALID_ARGUMENT, 'spec.max_attempts: must be at most 20');
    const params = namingKindFields(kindName, () => kind.validate((spec as unknown as Record<string, unknown>)[kindName], spec));
    return { kind, params };
  }

  /** A new submission's refusals that a retry of an accepted one is spared (CoordinatorKind.refuseNew). */
  refuseNew(job: JobRecord): void {
    const { kind, params } = this.validateSpec(job.spec);
    namingKindFields(job.spec.params!, () => kind.refuseNew?.(params, job.spec));
  }

  newJob(spec: JobSpec__Output, owner: string): JobRecord {
    // Two kinds on the wire decode to both messages, `params` naming the last: one would be dropped unseen.
    const kinds = [...coordinatorKinds.keys()].filter((k) => (spec as unknown as Record<string, unknown>)[k] != null);
    if (kinds.length > 1) throw new TesseraError(status.INVALID_ARGUMENT, `spec.params: ${kinds.join(' and ')} are both set; a job has one kind`);
    const { kind, params } = this.validateSpec(spec);
    namingKindFields(spec.params!, () => kind.checkNew?.(params, spec));
    // New jobs only: a job accepted before this limit existed still resumes.
    if (Buffer.byteLength(spec.label ?? '') > MAX_LABEL_BYTES) throw new TesseraError(status.INVALID_ARGUMENT, `spec.label: longer than ${MAX_LABEL_BYTES} bytes`);
    const requestIdRefused = requestIdProblem(spec.request_id ?? '');
    if (requestIdRefused) throw new TesseraError(status.INVALID_ARGUMENT, `spec.request_id: ${requestIdRefused}`);
    const now = Date.now();
    return {
      id: randomUUID(),
      kind: kind.name,
      state: 'queued',
      spec,
      inputs: [],
      outputs: [],
      errors: [],
      createdAt: now,
      startedAt: 0,
      finishedAt: 0,
      message: 'receiving inputs',
      owner,
      phase: 0,
      seq: 0,
      maxAttempts: spec.max_attempts || this.opts.maxAttempts,
    };
  }

  /** Registers an accepted job (inputs already spooled) and starts planning it once it is on disk. */
  async accept(job: JobRecord): Promise<void> {
    this.keep(job);
    job.message = 'planning';
    const of = job.spec.input_count ? ` of ${job.spec.input_count}` : '';
    // Every input announced is in (a job of one file accepted at its first input): none to wait for.
    const more = job.receiving && !(job.spec.input_count && job.inputs.length >= job.spec.input_count);
    this.events.jobState(job, `accepted ${job.inputs.length}${more ? `${of} input(s), more arriving` : ' input(s)'}`);
    // The commit asked for once the job and its first event are saved: asked before, with nothing
    // else waiting to be written, it was already done and the job only reached the disk with the
    // next timed flush (a crash in between lost a job its client had been told of).
    const committed = this.store.committed();
    // Until then it is not listed, and a repeat of its submission waits for it (whenCommitted).
    // Nothing ran between keep() and here: no listing saw it.
    this.committing.set(job.id, committed);
    committed.catch(() => undefined);
    // The client is told the job exists only once it is on disk (the store's writer thread commits
    // it at once, or with the next batch when busy: hundreds of submissions need not make a commit
    // each). If it cannot be written (a full disk), the submission fails and the job is gone, not
    // left queued forever.
    try {
      await committed;
    } catch (err) {
      this.drop(job);
      this.store.forget(job.id);
      this.settled(job, false);
      // The store's own words ("nothing was lost, the write is retried") are of its other writes:
      // this job is gone, and its client must send it again (review OPS3).
      if (err instanceof TesseraError) throw new TesseraError(err.code, `${err.message.replace(/; nothing was lost, the write is retried$|; the write is retried$/, '')}: the job was not accepted; submit it again`, { retryable: err.retryable });
      throw err;
    } finally {
      this.committing.delete(job.id);
    }
    // One still receiving is settled when its upload ends.
    if (!job.receiving) this.settled(job, true);
    // Cancelled meanwhile, or the coordinator stopping (its next run resumes the job): nothing to start.
    if (TERMINAL_JOB_STATES.has(job.state) || this.stopping) return;
    this.begin(job);
  }

  private settled(job: JobRecord, kept: boolean): void {
    // A submission dropped half-way brought no input bytes into the cluster's work.
    if (kept) this.countInputs(job.kind, job.inputs);
    for (const listener of this.submissionsSettled) listener(job, kept);
  }

  private countInputs(kind: string, files: SpoolFile[]): void {
    if (files.length > 0) this.inputBytesAccepted.set(kind, (this.inputBytesAccepted.get(kind) ?? 0) + files.reduce((n, f) => n + f.size, 0));
  }

  /**
   * Accepts a job whose upload is still going on (its kind `plansWhileReceiving`), from the inputs
   * checked so far (`job.inputs`, one at least): it is planned and runs on them at once. The handle
   * gives it the inputs accepted after them, ends its upload, or drops it when the submission fails.
   */
  async acceptReceiving(job: JobRecord, stopUpload?: UploadStop): Promise<ReceivingJob> {
    const arrivals = new Channel<SpoolFile>();
    arrivals.push(...job.inputs);
    job.receiving = true;
    this.arrivals.set(job.id, arrivals);
    if (stopUpload) this.uploadStops.set(job.id, stopUpload);
    try {
      await this.accept(job);
    } catch (err) {
      this.arrivals.delete(job.id);
      this.uploadStops.delete(job.id);
      throw err;
    }
    return {
      add: (files, errors) => {
        if (!job.receiving) {
          // The job has ended (its inputs were removed with its end, or it was dropped): what still
          // arrives is not kept in the spool either. Never a file by reference.
          for (const f of files) if (!f.shared) void rm(f.path, { force: true }).catch(() => undefined);
          return;
        }
        job.inputs.push(...files);
        job.errors.push(...errors);
        this.store.saveJob(job);
        arrivals.push(...files);
      },
      end: async () => {
        if (!job.receiving) {
          // Ended while it uploaded (cancelled): the client hears of it once that end is on disk.
          if (TERMINAL_JOB_STATES.has(job.state)) await this.store.committed();
          this.settled(job, true);
          return;
        }
        job.receiving = false;
        this.arrivals.delete(job.id);
        this.uploadStops.delete(job.id);
        arrivals.end();
        // A job cancelled meanwhile has had its final event: nothing follows it.
        if (TERMINAL_JOB_STATES.has(job.state)) this.store.saveJob(job);
        else this.events.log(job, `upload complete: ${job.inputs.length} input(s)`);
        // Complete on disk before the client hears of it, as a job accepted whole is.
        await this.store.committed();
        this.settled(job, true);
      },
      discard: async (reason) => {
        job.receiving = false;
        this.arrivals.delete(job.id);
        this.uploadStops.delete(job.id);
        // Nothing of a failed submission is kept: the job ends, then goes with all it made.
        const publishing = this.active.get(job.id)?.publishing;
        this.finish(job, 'failed', `the submission failed before its upload ended: ${describeError(reason)}`);
        arrivals.fail(reason);
        // A publication under way when it ended removes its own file; the others are listed.
        await publishing?.catch(() => undefined);
        this.drop(job);
        this.settled(job, false);
        await this.removeDropped(job);
      },
    };
  }

  /**
   * Removes a job whose submission failed, with everything it made: its record, its spool folder,
   * and what it put into a shared output folder (the outputs it published, those very files and not
   * whatever took their names since, and its attempts' temporary files).
   */
  private async removeDropped(job: JobRecord): Promise<void> {
    try {
      this.store.deleteJob(job.id);
    } catch (err) {
      // A store that cannot write now (a full disk): what it still holds of the job (its end, among
      // the writes it retries) is written once there is room, and deleted right after, or it would
      // come back at the next start as a failed job whose client was told the submission failed.
      this.log.warn({ err, job: job.id }, 'dropping a job whose submission failed: the store could not delete it yet; it will once it can write');
      this.store.whenStored(() =>
        setImmediate(() => {
          try {
            this.store.deleteJob(job.id);
          } catch (e) {
            this.log.warn({ err: e, job: job.id }, 'dropping a job whose submission failed: the store could not delete it; the next start drops it if its upload had not ended');
          }
        }),
      );
    }
    const shared = job.spec.shared_output_dir;
    await Promise.all([
      this.spool.removeJob(job.id).catch((err: unknown) => this.log.warn({ err, job: job.id }, 'removing the files of a dropped job')),
      ...job.outputs.flatMap((o) => (o.shared && !o.shared.kept ? [removeIfSame(o.path, o.shared).catch(() => undefined)] : [])),
      shared ? this.removeSharedTempsOf(job) : undefined,
    ]);
  }

  /** Resolves once `job` is on disk; rejects as its submission failed when it could not be written. */
  whenCommitted(job: JobRecord): Promise<void> {
    return this.committing.get(job.id) ?? Promise.resolve();
  }

  /** The kept job `owner` submitted with `requestId` (see JobSpec.request_id), if any; not one still receiving its inputs. */
  findByRequest(owner: string, requestId: string): JobRecord | undefined {
    const job = this.byRequest.get(requestKey(owner, requestId));
    return job?.receiving ? undefined : job;
  }

  /** How many of `owner`'s jobs have not finished. */
  unfinishedCount(owner: string): number {
    return this.unfinished.get(owner)?.size ?? 0;
  }

  /** Whether `job` is among those `unfinishedCount` counts. */
  countsAsUnfinished(job: JobRecord): boolean {
    return this.unfinished.get(job.owner)?.has(job.id) === true;
  }

  private keep(job: JobRecord): void {
    if (this.jobs.get(job.id) !== job) this.order.add(job);
    this.jobs.set(job.id, job);
    if (job.spec.request_id) this.byRequest.set(requestKey(job.owner, job.spec.request_id), job);
    if (!TERMINAL_JOB_STATES.has(job.state)) {
      let ids = this.unfinished.get(job.owner);
      if (!ids) this.unfinished.set(job.owner, (ids = new Set()));
      ids.add(job.id);
    }
  }

  private drop(job: JobRecord): void {
    this.jobs.delete(job.id);
    this.order.removed(job);
    const key = job.spec.request_id ? requestKey(job.owner, job.spec.request_id) : undefined;
    if (key && this.byRequest.get(key) === job) this.byRequest.delete(key);
    this.finished(job);
    this.events.gone(job.id);
  }

  /** `job` no longer counts as unfinished. */
  private finished(job: JobRecord): void {
    const ids = this.unfinished.get(job.owner);
    if (ids?.delete(job.id) && ids.size === 0) this.unfinished.delete(job.owner);
  }

  get(jobId: string): JobRecord {
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(`job ${jobId} not found`);
    return job;
  }

  /** The job, or undefined when this coordinator does not keep it (never had it, or removed it). */
  find(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  subtasksOf(jobId: string): SubtaskRecord[] {
    return this.active.get(jobId)?.subtasks ?? this.store.subtasksOf(jobId);
  }

  /** A running job's subtasks (in memory); undefined for one that ended (in the store). */
  liveSubtasksOf(jobId: string): SubtaskRecord[] | undefined {
    return this.active.get(jobId)?.subtasks;
  }

  /** `limit` subtasks of a job from `offset` on, in the order they were made (phase, then index). */
  subtasksPage(jobId: string, offset: number, limit: number): SubtaskRecord[] {
    const live = this.active.get(jobId)?.subtasks;
    if (!live) return this.store.subtasksPage(jobId, offset, limit);
    // Made in that order, and read back in it after a restart.
    const inOrder = live.every((s, i) => i === 0 || live[i - 1]!.phase < s.phase || (live[i - 1]!.phase === s.phase && live[i - 1]!.index < s.index));
    return (inOrder ? live : [...live].sort((a, b) => a.phase - b.phase || a.index - b.index)).slice(offset, offset + limit);
  }

  /** Logged events of a job after `afterSeq`, oldest first. */
  /** A job's events after `afterSeq`; `stored`: only those on disk, what a watcher may be told (the rest reach it live once they are). */
  eventsAfter(jobId: string, afterSeq: number, o: { stored?: boolean; limit?: number } = {}): JobEvent[] {
    return this.store.eventsAfter(jobId, afterSeq, o.limit, o);
  }

  list(): JobRecord[] {
    return [...this.jobs.values()];
  }

  /** Kept jobs not finished yet (queued or running): what the dashboard's summary counts. */
  inProgressCount(): number {
    let n = 0;
    for (const a of this.active.values()) if (!TERMINAL_JOB_STATES.has(a.record.state) && !this.committing.has(a.record.id)) n++;
    return n;
  }

  /** Kept jobs newest first (by creation time, then id), from just before `before` (a job's time and id) when given. */
  *newestFirst(before?: { createdAt: number; id: string }): Iterable<JobRecord> {
    // A job not yet on disk is not shown: a coordinator stopped now would not know it.
    for (const job of this.order.newestFirst(before)) if (!this.committing.has(job.id)) yield job;
  }

  /**
   * Starts (or resumes) a job. Should that fail before the job is active (its store cannot write:
   * a full disk at a restart), it is tried again in 5 s rather than crashing the coordinator.
   */
  private begin(job: JobRecord, resumeSubtasks?: SubtaskRecord[]): void {
    this.start(job, resumeSubtasks).catch((err: unknown) => {
      if (this.stopping || TERMINAL_JOB_STATES.has(job.state)) return;
      const active = this.active.get(job.id);
      if (active) {
        this.failJob(active, err, 'starting the job failed');
        return;
      }
      this.log.error({ err, job: job.id }, 'starting the job failed; trying again in 5 s');
      this.later(START_RETRY_MS, () => {
        if (this.jobs.get(job.id) === job && !TERMINAL_JOB_STATES.has(job.state)) this.begin(job, resumeSubtasks);
      });
    });
  }

  private async start(job: JobRecord, resumeSubtasks?: SubtaskRecord[]): Promise<void> {
    let kind: CoordinatorKind;
    let params: unknown;
    try {
      ({ kind, params } = this.validateSpec(job.spec));
    } catch (err) {
      this.finish(job, 'failed', describeError(err));
      return;
    }
    if (resumeSubtasks) {
      // Shared inputs are read only as submitted, and only from folders still shared.
      try {
        await this.assertSharedInputs(job);
      } catch (err) {
        this.finish(job, 'failed', describeError(err));
        return;
      }
      // Cancelled meanwhile: nothing of it may run again.
      if (TERMINAL_JOB_STATES.has(job.state)) return;
    }
    if (resumeSubtasks && job.phase === 0 && job.planComplete === false) {
      // Stopped while phase 0 was still being planned: what was planned may be partial. Plan again.
      this.log.info({ job: job.id }, 'planning was not finished before the restart: planning again');
      // Its watchers saw those subtasks start: each is told it is gone, or it would stay running in
      // their view for good (the new plan's are others, `strip 1/1` where it was `strip 1/2`).
      for (const s of resumeSubtasks) {
        if (s.state === 'succeeded' || s.state === 'failed' || s.state === 'cancelled') continue;
        s.state = 'cancelled';
        this.events.subtaskState(job, s, 'planned again after the coordinator restarted: replaced');
      }
      this.store.deleteSubtasks(job.id);
      resumeSubtasks = undefined;
    }
    const active: ActiveJob = { record: job, kind, params, subtasks: resumeSubtasks ?? [], controller: new AbortController(), mergedPhase: -1, planning: false, runEstimateMs: kind.expectedRunMs?.(params) ?? NaN, runMaxMs: 0, runSamples: 0, runTotalMs: 0, published: new Map(job.outputs.map((o) => [o.name, o.source])), publishing: Promise.resolve() };
    this.active.set(job.id, active);
    this.scheduler.addJob(job.id, kind.name, job.spec.priority, job.createdAt, job.owner);
    // Its clients' bars go on from where they stood, not from what is left after work is redone.
    if (resumeSubtasks) resumeProgress(job, this.store.storedProgress(job.id).last);
    if (resumeSubtasks && resumeSubtasks.length > 0) {
      for (const s of resumeSubtasks) this.subtasks.set(s.id, s);
      // Outputs of subtasks that finished just before the restart may not be published yet.
      for (const s of resumeSubtasks) if (s.state === 'succeeded') this.publishEarly(active, s);
      const current = resumeSubtasks.filter((s) => s.phase === job.phase);
      const pending = current.filter((s) => s.state === 'pending' || s.state === 'running');
      for (const s of pending) {
        // Only what changes is written again: a 100,000-subtask job resumed with most of it still
        // pending wrote them all, one batch the event loop waited for (0.5-1 s right after start).
        if (s.state === 'pending' && s.workerId === '' && s.leases.length === 0 && !s.speculative) continue;
        s.state = 'pending';
        s.workerId = '';
        s.leases = [];
        s.speculative = false;
        this.store.saveSubtask(s);
      }
      if (pending.length > 0) {
        this.scheduler.enqueue(pending);
        this.requestDispatch();
      } else {
        void this.phaseDone(active);
      }
      return;
    }
    try {
      // The planner may read the inputs (headers, a huge image's pixels, ffprobe): only as submitted.
      await Promise.all([this.assertSharedInputs(job), this.spool.prepareJob(job.id, { work: kind.writesFiles !== false })]);
      if (TERMINAL_JOB_STATES.has(job.state)) return;
      await this.workersBackAfterRestart(job);
      if (TERMINAL_JOB_STATES.has(job.state)) return;
      const arriving = this.arrivals.get(job.id);
      // A plan that goes on through an upload sees the workers as they are when it reads them
      // (workers that join during a long upload count for the inputs planned after).
      const ctx = { ...this.planContext(active), ...(arriving && { arriving, cluster: this.liveCluster(job.kind) }) };
      const { subtasks, errors, later } = await kind.plan(ctx);
      // Cancelled while it was planned (finish() has let go of it): its plan is dropped, and the
      // planning still going on (its `finally`s give back what they hold: disk reserved for a decode).
      if (TERMINAL_JOB_STATES.has(job.state)) {
        void (later as AsyncGenerator<unknown> | undefined)?.return?.(undefined)?.catch(() => undefined);
        return;
      }
      if (errors) job.errors.push(...errors);
      if (subtasks.length === 0 && !later) {
        await this.finishWithOutputs(active, []);
        return;
      }
      active.planning = Boolean(later);
      job.planComplete = !later;
      this.addSubtasks(active, subtasks, 0);
      if (later) void this.addLater(active, later);
    } catch (err) {
      this.failJob(active, err, 'planning failed');
    } finally {
      this.afterPlanning(job);
    }
  }

  /**
   * A job cancelled (or failed) while it was planned had its work folder removed at once (see
   * finish), but the planner, until it noticed, may have written there again (a video's chunks):
   * removed again once the planner is done.
   */
  private afterPlanning(job: JobRecord): void {
    if (job.state === 'cancelled' || job.state === 'failed') void this.spool.removeWork(job.id).catch(() => undefined);
  }

  /** Adds a kind's `later` subtasks to phase 0 as they come; phase 0 can end once they stop. */
  private async addLater(active: ActiveJob, later: AsyncIterable<SubtaskPlan | SubtaskPlan[] | PlanErrors>): Promise<void> {
    const job = active.record;
    try {
      for await (const plan of later) {
        if (TERMINAL_JOB_STATES.has(job.state) || this.stopping) return;
        if (isPlanErrors(plan)) job.errors.push(...plan.errors);
        else if (!Array.isArray(plan)) this.addSubtasks(active, [plan], 0, true);
        else if (plan.length > 0) this.addSubtasks(active, plan, 0, true);
      }
    } catch (err) {
      this.failJob(active, err, 'planning failed');
      return;
    } finally {
      this.afterPlanning(job);
    }
    if (TERMINAL_JOB_STATES.has(job.state) || this.stopping) return;
    active.planning = false;
    job.planComplete = true;
    this.events.log(job, `phase 0: planning done, ${active.subtasks.length} subtask(s)`);
    this.checkPhase(active);
  }

  private planContext(active: ActiveJob) {
    const job = active.record;
    const cluster = this.registry.activeCount(job.kind);
    return {
      jobId: job.id,
      params: active.params,
      spec: job.spec,
      inputs: job.inputs,
      submitted: submittedInputs(job),
      cluster: { workers: cluster.workers, slots: cluster.slots, encoders: cluster.encoders, encoderSets: cluster.encoderSets, features: cluster.features },
      workDir: this.spool.workDir(job.id),
      signal: active.controller.signal,
      log: this.log.child({ job: job.id }),
      warn: (input: string, message: string) => this.warn(job, input, message),
      limits: this.limits,
    };
  }

  /** Keeps a warning on the job (once) and tells its watchers; a job that has ended takes no more. */
  private warn(job: JobRecord, input: string, message: string): void {
    const warnings = (job.warnings ??= []);
    if (TERMINAL_JOB_STATES.has(job.state) || warnings.some((w) => w.input === input && w.message === message)) return;
    warnings.push({ input, message });
    this.log.warn({ job: job.id, input }, message);
    // The event saves the job with it.
    this.events.log(job, `warning: ${withInput(input, message)}`);
  }

  /** The workers that can run `kind`, read afresh at each use. */
  private liveCluster(kind: string): ClusterView {
    const now = (): ClusterView => this.registry.activeCount(kind);
    return {
      get workers() {
        return now().workers;
      },
      get slots() {
        return now().slots;
      },
      get encoders() {
        return now().encoders;
      },
      get encoderSets() {
        return now().encoderSets;
      },
      get features() {
        return now().features;
      },
    };
  }

  /** Adds a phase's subtasks (`append`: more of the current phase, numbered after those it has). */
  private addSubtasks(active: ActiveJob, plans: SubtaskPlan[], phase: number, append = false): SubtaskRecord[] {
    const job = active.record;
    job.phase = phase;
    const first = append ? active.subtasks.reduce((n, s) => (s.phase === phase ? n + 1 : n), 0) : 0;
    // One random tag per phase: ids stay unique across phases and restarts without a UUID each.
    const tag = randomUUID().slice(0, 6);
    const created = plans.map((p, index) =>
      newSubtaskRecord(p, { id: `${job.id.slice(0, 8)}-${phase}-${first + index}-${tag}`, jobId: job.id, index: first + index, phase, timeoutMs: 0 }),
    );
    for (const s of created) {
      active.subtasks.push(s);
      this.subtasks.set(s.id, s);
    }
    this.store.createSubtasks(created);
    job.message = append ? `phase ${phase}: ${first + created.length} subtask(s) so far` : `phase ${phase}: ${created.length} subtask(s)${active.planning ? ', more coming' : ''}`;
    this.events.log(job, job.message);
    this.scheduler.enqueue(created);
    this.requestDispatch();
    return created;
  }

  /** Coalesces dispatch requests into one pass per event-loop turn. */
  requestDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  /**
   * Lease-ahead is for jobs whose subtasks are all short: a subtask queued behind a long one could
   * finish later than on a worker freed meanwhile. Conservative on purpose: short by the kind's
   * estimate until three have run, then by the longest measured; one long subtask (a video job's
   * segments after its quick audio pass) rules the job out for good.
   */
  private readonly prefetch = {
    job: (jobId: string): boolean => {
      const a = this.active.get(jobId);
      if (!a || a.runMaxMs >= this.opts.prefetchBelowMs) return false;
      return a.runSamples >= 3 || a.runEstimateMs < this.opts.prefetchBelowMs;
    },
    /** A worker may queue only behind short subtasks. */
    worker: (w: WorkerSession): boolean => {
      for (const id of w.leases.keys()) {
        const s = this.subtasks.get(id);
        if (!s || !this.prefetch.job(s.jobId)) return false;
      }
      return true;
    },
    /** Work of `priority` may be queued on `w` unless its places are kept for higher work (yieldQueuedToPriority). */
    queueOn: (w: WorkerSession, priority: number): boolean => priority >= w.reservedFor || steadyNow() >= w.reservedUntil,
  };

  private dispatch(): void {
    if (this.stopping) return;
    const now = steadyNow();
    const workers = this.registry.schedulable(now);
    if (workers.length > 0) {
      if (this.awaitingCopy.size > 0) this.copyStalled(workers);
      const assignments = this.scheduler.dispatch(workers, now, (w, s, kind) => canRun(w, s, kind), this.prefetch);
      // One message per worker per pass: thousands of tiny subtasks a second cost a handful of
      // writes on each control stream rather than one each.
      const batches = new Map<WorkerSession, { subtask: SubtaskRecord; message: Assignment }[]>();
      for (const { subtask, worker } of assignments) {
        const message = this.lease(subtask, worker);
        if (!message) continue;
        let batch = batches.get(worker);
        if (!batch) batches.set(worker, (batch = []));
        batch.push({ subtask, message });
      }
      for (const [worker, batch] of batches) this.sendAssignments(worker, batch);
      this.moveQueued(workers, now);
    }
    this.yieldQueuedToPriority(now);
    this.armRetryTimer(now);
  }

  /**
   * Work waiting in workers' prefetch queues gives way to a job of higher priority that found no
   * slot: a worker runs its queue first in, first out, so a priority-10 job waited for every
   * priority-0 subtask queued on each worker (four per slot at most). For each pending subtask of
   * higher priority, one worker that could run it is cleared of the lower-priority assignments it
   * has queued (never started: taken back, no attempt used, queued again), so that the next slot it
   * frees is the higher-priority job's; a worker with nothing lower queued serves one already. No
   * more workers are cleared than such subtasks are pending; those serving keep their queue places
   * for that priority for RESERVE_QUEUE_MS after the last pass that wanted them, so that the job's
   * next subtask does not clear again what was queued meanwhile. A pass costs nothing while every
   * job is of one priority.
   */
  private yieldQueuedToPriority(now: number): void {
    if (!this.scheduler.hasMixedPriorities() || this.scheduler.pendingCount() === 0) return;
    const lowest = this.scheduler.lowestPriority();
    const heads = this.scheduler.readyHeadsAbove(lowest, now);
    if (heads.length === 0) return;
    const priorityOf = (id: string): number => {
      const s = this.subtasks.get(id);
      return s ? this.scheduler.priorityOf(s.jobId) : 0;
    };
    const serving = new Set<WorkerSession>();
    const keep = (w: WorkerSession, priority: number): void => {
      serving.add(w);
      // Its places stay for that work a little while: lower work queued there again meanwhile would
      // be taken back again at the job's next subtask (the attempts of work that never ran climbing).
      w.reservedFor = priority;
      w.reservedUntil = now + RESERVE_QUEUE_MS;
    };
    for (const h of heads) {
      let served = 0;
      const candidates: WorkerSession[] = [];
      for (const w of this.registry.all()) {
        if (served >= h.pending) break;
        if (w.state !== 'active' || serving.has(w) || !canRun(w, h.subtask, h.kind)) continue;
        let lower = false;
        for (const id of w.waiting.keys()) {
          if (priorityOf(id) < h.priority) {
            lower = true;
            break;
          }
        }
        if (lower) candidates.push(w);
        else if (w.leases.size < w.slots || (w.leases.size < w.slots + w.prefetch && this.prefetch.job(h.jobId) && this.prefetch.worker(w))) {
          // Room for it now, or a queue place it may take: that worker serves it already. One whose
          // queue is empty because it cannot queue (no --prefetch, a long subtask running) does not.
          keep(w, h.priority);
          served++;
        }
      }
      for (const w of candidates) {
        if (served >= h.pending) break;
        this.takeBackWaiting(w, 'a job of higher priority is waiting', (s) => priorityOf(s.id) < h.priority);
        keep(w, h.priority);
        served++;
      }
    }
  }

  /**
   * How long an attempt of `s` may run: the coordinator's --subtask-timeout-ms as it runs now (a
   * restart with a longer one reaches the jobs it resumes), or the kind's own longer limit (a long
   * video segment's). Records from before held the setting of their day: the longer one counts.
   */
  private timeoutOf(s: SubtaskRecord): number {
    return Math.max(s.timeoutMs || 0, this.opts.subtaskTimeoutMs);
  }

  /** A job's mean run time so far (ms), else the kind's estimate; NaN when neither is known. */
  private expectedRunMs(jobId: string): number {
    const a = this.active.get(jobId);
    if (!a) return NaN;
    return a.runSamples > 0 ? a.runTotalMs / a.runSamples : a.runEstimateMs;
  }

  /**
   * Work stealing at the end of a job of short subtasks. Once nothing is left to dispatch, a slot
   * with nothing to do takes over an assignment waiting in another worker's prefetch queue when
   * that worker will not start it for a while: the one whose running subtask has the longest left
   * to run goes first. Without this the last round ends unevenly: a worker that fell behind (a
   * slower machine, a long run) still has a queued subtask when others have run out, and the job
   * waits for it; the straggler rule copies only what runs. The holder is told to cancel it, as
   * when it drains; had it just started it, the attempt is fenced like any superseded one.
   */
  private moveQueued(workers: WorkerSession[], now: number): void {
    if (this.scheduler.pendingCount() > 0) return;
    const idle = workers.filter((w) => w.state === 'active' && w.leases.size < w.slots);
    if (idle.length === 0) return;
    const candidates: { s: SubtaskRecord; lease: Lease; holder: WorkerSession; startsIn: number }[] = [];
    for (const holder of this.registry.all()) {
      if (holder.waiting.size === 0) continue;
      // When the holder will start its queue: its first running subtask to end, by its job's mean.
      let freeIn = Infinity;
      for (const [id] of holder.leases) {
        if (holder.waiting.has(id)) continue;
        const r = this.subtasks.get(id);
        const since = r?.leases.find((l) => l.workerId === holder.id)?.runningSince;
        const expected = r ? this.expectedRunMs(r.jobId) : NaN;
        if (since === undefined || !(expected > 0)) continue;
        const elapsed = now - since;
        // Well past its expected time it is straggling: when it ends is anyone's guess.
        freeIn = Math.min(freeIn, elapsed > 1.5 * expected ? expected : expected - elapsed);
      }
      if (freeIn === Infinity) continue;
      for (const [id, lease] of holder.waiting) {
        const s = this.subtasks.get(id);
        if (!s || s.state !== 'running' || s.leases.length !== 1 || s.leases[0] !== lease) continue;
        const expected = this.expectedRunMs(s.jobId);
        // Worth a round trip to the idle worker and back only if the wait is a good part of a run.
        if (!(expected > 0) || freeIn < Math.max(MOVE_QUEUED_MIN_MS, expected * 0.2)) continue;
        candidates.push({ s, lease, holder, startsIn: freeIn });
      }
    }
    if (candidates.length === 0) return;
    candidates.sort((a, b) => b.startsIn - a.startsIn);
    const taken = new Set<SubtaskRecord>();
    for (const w of idle) {
      let free = w.slots - w.leases.size;
      for (const c of candidates) {
        if (free <= 0) break;
        if (taken.has(c.s) || c.holder === w) continue;
        const active = this.active.get(c.s.jobId);
        if (!active || !canRun(w, c.s, active.record.kind)) continue;
        taken.add(c.s);
        this.revokeLease(c.s, c.lease, `moved to idle worker ${w.name} before it started`);
        c.s.leases = [];
        // Straight from one queue to the other: not a retry (no pending state on the way).
        c.s.state = 'pending';
        this.assign(c.s, w);
        this.queuedMoved++;
        free--;
      }
    }
  }

  private armRetryTimer(now: number): void {
    const next = this.scheduler.nextRetryAt(now);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (next !== Infinity) {
      this.retryTimer = setTimeout(() => this.requestDispatch(), Math.max(5, next - now));
      this.retryTimer.unref();
    }
  }

  /** Assigns one subtask to one worker now (speculative copies). */
  private assign(s: SubtaskRecord, w: WorkerSession, speculative = false): void {
    const message = this.lease(s, w, speculative);
    if (message) this.sendAssignments(w, [{ subtask: s, message }]);
  }

  /** Sends a worker its new assignments; if it cannot be reached, their leases go back at once. */
  private sendAssignments(w: WorkerSession, batch: { subtask: SubtaskRecord; message: Assignment }[]): void {
    const sent = this.registry.send(w, batch.length === 1 ? { assign: batch[0]!.message } : { assign_batch: { assignments: batch.map((b) => b.message) } });
    if (!sent) for (const { subtask, message } of batch) this.releaseLease(w, subtask, message.attempt!, 'worker unreachable', true);
  }

  /** Records a lease of `s` for `w` and returns the assignment message to send (undefined: nothing to do). */
  private lease(s: SubtaskRecord, w: WorkerSession, speculative = false): Assignment | undefined {
    const active = this.active.get(s.jobId);
    if (!active || s.state !== (speculative ? 'running' : 'pending')) return undefined;
    const job = active.record;
    const now = steadyNow();
    s.attempt += 1;
    s.state = 'running';
    s.workerId = w.id;
    s.worker = w.name;
    s.speculative = speculative;
    if (!speculative) {
      s.progress = 0;
      s.startedAt = Date.now();
    }
    const outputDir = this.outputDirFor(active, s, w);
    // Beyond the worker's slots the assignment waits in its prefetch queue.
    const waits = w.leases.size - w.waiting.size >= w.slots;
    const lease: Lease = { attempt: s.attempt, workerId: w.id, worker: w.name, startedAt: now, runningSince: waits ? undefined : now, speculative, outputDir };
    s.leases.push(lease);
    w.leases.set(s.id, s.attempt);
    if (waits) w.waiting.set(s.id, lease);
    if (job.state === 'queued') {
      job.state = 'running';
      job.startedAt = Date.now();
      this.events.jobState(job, 'running');
    }
    // Saved (with the next batch of writes) so that a restart goes on from this attempt number:
    // the subtask is re-run then, as attempt N + 1, and the job's events never name one attempt
    // twice. Stale results are fenced by the worker session as well as the attempt.
    this.store.saveSubtask(s);
    // A start moves no bar: the figure last summed (summing a job of 100,000 subtasks as its first
    // ones started took 120 ms of the dispatch that started them).
    this.events.subtaskState(job, s, `${speculative ? 'speculative copy, ' : ''}attempt ${s.attempt} on ${w.name}`, jobProgress(job, active.subtasks.length > 1000 ? undefined : active.subtasks));
    return {
      subtask_id: s.id,
      job_id: s.jobId,
      attempt: s.attempt,
      kind: job.kind,
      spec: job.spec,
      plan_json: JSON.stringify(s.plan ?? null),
      inputs: s.inputs.map((f) => this.assignedInput(f)),
      // A kind's own (a long video's audio track) or the library's may be longer than any timer takes.
      timeout_ms: Math.min(this.timeoutOf(s), MAX_SUBTASK_TIMEOUT_MS),
      phase: s.phase,
      shared_output_dir: outputDir,
      shared_output_token: outputDir ? leaseToken(w, s.attempt) : '',
    };
  }

  /**
   * An input as an assignment carries it: by reference where a worker may read it in place (a file
   * on shared storage, or one in the spool for workers on this machine), by name otherwise.
   */
  private assignedInput(f: SpoolFile): TaskInput {
    const base = { name: f.name, size: String(f.size), sha256: f.sha256, inline: false };
    if (f.shared) return { ...base, shared_path: f.path, mtime_ms: f.shared.mtimeMs, ino: String(f.shared.ino) };
    const local = this.spool.localFile(f.path);
    return local ? { ...base, shared_path: local.path, mtime_ms: local.mtimeMs, ino: String(local.ino), spooled: true } : base;
  }

  /**
   * The folder `w` may write `s`'s outputs to itself ("": they are uploaded): the job's shared
   * output folder for final outputs, otherwise the job's subtask folder in the spool, which a worker
   * on this machine sees at the same path (unless local reads are off). A worker whose files did not
   * reach the coordinator from a shared folder is not offered that folder again, nor the spool (any
   * job's) after that happened there.
   */
  private outputDirFor(active: ActiveJob, s: SubtaskRecord, w: WorkerSession): string {
    const shared = active.record.spec.shared_output_dir;
    if (shared && active.kind.outputsAreFinal?.(s.plan)) return w.foreignSharedDirs.has(shared) ? '' : shared;
    const dir = (active.spoolOutputDir ??= this.spool.localSubtasksDir(active.record.id));
    return dir && !w.foreignSharedDirs.has(this.spool.localRoot) ? dir : '';
  }

  /**
   * The spool entry for an output that `w` wrote itself, once checked: at the temporary name of
   * this attempt, a regular file with no other name (a hard link to a file elsewhere is not the
   * worker's), readable, of the size reported. In a shared folder it stays where it is until it is
   * published; in the spool it is moved to where an upload of it would have been put, and checked
   * again there (nothing swapped in between). A worker whose file is not there writes somewhere
   * else under that path (another mount): its outputs for that folder are uploaded from now on, and
   * the attempt is retried. Its checksum is the worker's, taken as it wrote the file (as for an input
   * read in place). The one file with another name that is taken is one of the subtask's own
   * spooled inputs, linked into the spool by a worker that hands it back unchanged (a diagnostic
   * `passthrough`): its bytes are the ones the coordinator received and checked, and so is its
   * checksum.
   */
  async workerWrittenOutput(w: WorkerSession, s: SubtaskRecord, attempt: number, name: string, o: OutputRef__Output, maxBytes?: number): Promise<SpoolFile> {
    const lease = s.leases.find((l) => l.attempt === attempt && l.workerId === w.id);
    if (!lease?.outputDir || o.shared_path !== sharedOutputTemp(lease.outputDir, s.jobId, s.id, leaseToken(w, attempt), name)) {
      throw new TesseraError(status.INVALID_ARGUMENT, `output ${name} of subtask ${s.id}: written to ${o.shared_path}, where this attempt may not write`, { retryable: true });
    }
    const inSpool = lease.outputDir !== this.jobs.get(s.jobId)?.spec.shared_output_dir;
    // lstat: a symlink put there in its place is not the worker's file.
    const st = await lstat(o.shared_path).catch(() => undefined);
    const readable = st?.isFile() ? await access(o.shared_path, fsConstants.R_OK).then(() => true, () => false) : false;
    if (!st?.isFile() || st.size !== Number(o.size) || !readable) {
      const dir = inSpool ? this.spool.localRoot : lease.outputDir;
      w.foreignSharedDirs.add(dir);
      this.log.warn({ job: s.jobId, worker: w.name, dir }, "a worker's writes to an output folder do not reach the coordinator (or it cannot read them); its outputs for it are uploaded");
      throw dataLoss(`output ${name} of subtask ${s.id}: worker ${w.name} wrote ${o.size} bytes to ${o.shared_path}, the coordinator finds ${!st ? 'no file' : !st.isFile() ? 'something else' : st.size !== Number(o.size) ? `${st.size} bytes` : 'a file it cannot read'} there`);
    }
    const linkedInput = st.nlink !== 1 && inSpool ? await this.spooledInputLinked(s, st, o.sha256) : undefined;
    if (st.nlink !== 1 && !linkedInput) throw dataLoss(`output ${name} of subtask ${s.id}: ${o.shared_path} has other names (a hard link to another file); not taken`);
    if (!SHA256_HEX.test(o.sha256)) throw dataLoss(`output ${name} of subtask ${s.id}: the worker's checksum "${o.sha256}" is not a SHA-256`);
    if (maxBytes !== undefined && st.size > maxBytes) {
      throw new TesseraError(status.RESOURCE_EXHAUSTED, `output ${name} of subtask ${s.id} is larger than the limit of ${maxBytes} bytes`, { retryable: false });
    }
    if (!inSpool) {
      this.outputBytesInPlace += st.size;
      return { name, path: o.shared_path, size: st.size, sha256: o.sha256, written: { dev: st.dev, ino: st.ino } };
    }
    const file = this.subtaskOutputPath(s, attempt, name);
    await makeDir(path.dirname(file));
    await rename(o.shared_path, file);
    const moved = await lstat(file).catch(() => undefined);
    // A linked input's other names come and go meanwhile (a stale attempt's link to the same input
    // is discarded while this one is taken): its inode and size say it is still that input.
    if (!moved?.isFile() || moved.ino !== st.ino || moved.dev !== st.dev || (!linkedInput && moved.nlink !== st.nlink) || moved.size !== st.size) {
      await rm(file, { force: true });
      throw dataLoss(`output ${name} of subtask ${s.id}: ${o.shared_path} was replaced while the coordinator took it`);
    }
    this.spool.adopt(file, moved);
    this.outputBytesInPlace += st.size;
    return { name, path: file, size: st.size, sha256: linkedInput?.sha256 ?? o.sha256 };
  }

  /**
   * The input of `s` in the spool that the file `st` is another name of (same inode, same size),
   * if the worker's checksum for it is that input's: an input handed back unchanged and linked
   * rather than copied. Undefined for any other file.
   */
  private async spooledInputLinked(s: SubtaskRecord, st: Stats, sha256: string): Promise<SpoolFile | undefined> {
    for (const f of s.inputs) {
      if (f.shared || f.size !== st.size || f.sha256 !== sha256) continue;
      const own = await lstat(f.path).catch(() => undefined);
      if (own?.isFile() && own.ino === st.ino && own.dev === st.dev) return f;
    }
    return undefined;
  }

  /**
   * Removes what a refused or stale result left in the folders it may have been given: only the
   * temporary names of that worker's attempt (a worker cannot point the coordinator at another
   * file), also for a lease no longer held (a superseded copy), whose names follow from the
   * session's secret and the attempt. When the job has ended, its shared folder is swept again.
   */
  async discardSharedOutputs(w: WorkerSession, subtaskId: string, attempt: number, outputs: readonly OutputRef__Output[]): Promise<void> {
    const s = this.subtasks.get(subtaskId);
    const owner = s ? this.jobs.get(s.jobId) : undefined;
    const dirs = s && owner ? [owner.spec.shared_output_dir ?? '', this.spool.localSubtasksDir(owner.id)].filter((d) => d !== '') : [];
    const own = new Set(s ? dirs.flatMap((d) => outputs.map((o) => sharedOutputTemp(d, s.jobId, s.id, leaseToken(w, attempt), o.name))) : []);
    await Promise.all(outputs.filter((o) => own.has(o.shared_path)).map((o) => rm(o.shared_path, { force: true })));
    const jobId = outputs.map((o) => (o.shared_path ? jobOfSharedTemp(o.shared_path) : undefined)).find((id) => id !== undefined);
    const job = jobId ? this.jobs.get(jobId) : undefined;
    if (job && TERMINAL_JOB_STATES.has(job.state)) await this.removeSharedTempsOf(job);
  }

  /** Throws FAILED_PRECONDITION naming the input if a shared input is no longer the file submitted. */
  async assertSharedUnchanged(f: SpoolFile): Promise<void> {
    await (this.opts.sharedRoots ?? SharedRoots.none()).assertUnchanged(f);
  }

  /** A shared input opened and checked by its descriptor (see SharedRoots.openUnchanged); then {@link assertSharedHandle} once read. */
  openShared(f: SpoolFile): Promise<FileHandle> {
    return (this.opts.sharedRoots ?? SharedRoots.none()).openUnchanged(f);
  }

  assertSharedHandle(fh: FileHandle, f: SpoolFile): Promise<void> {
    return (this.opts.sharedRoots ?? SharedRoots.none()).assertHandleUnchanged(fh, f);
  }

  /** Throws FAILED_PRECONDITION if the job's shared output folder no longer resolves to itself inside an output root. */
  async assertOutputDir(job: JobRecord): Promise<void> {
    if (job.spec.shared_output_dir) await (this.opts.sharedRoots ?? SharedRoots.none()).assertOutputDir(job.spec.shared_output_dir);
  }

  private async assertSharedInputs(job: JobRecord): Promise<void> {
    // A few at once: each check is a few file-system round trips, and a job may have thousands.
    const limit = pLimit(SHARED_LOOKUPS);
    await Promise.all(job.inputs.map((f) => limit(() => this.assertSharedUnchanged(f))));
  }

  /** Current lease check (fencing): is `attempt` the live attempt of `subtaskId` held by `workerId`? */
  leaseIsCurrent(subtaskId: string, attempt: number, workerId: string): SubtaskRecord | undefined {
    const s = this.subtasks.get(subtaskId);
    if (!s || s.state !== 'running' || !s.leases.some((l) => l.attempt === attempt && l.workerId === workerId)) return undefined;
    return s;
  }

  onProgress(w: WorkerSession, subtaskId: string, attempt: number, fraction: number, message: string): void {
    const s = this.leaseIsCurrent(subtaskId, attempt, w.id);
    // A fraction that is no number (a buggy or hostile worker) would become every watcher's progress.
    if (!s || !Number.isFinite(fraction)) return;
    const lease = s.leases.find((l) => l.attempt === attempt && l.workerId === w.id);
    if (lease) lease.progressAt = steadyNow();
    w.stalledSince = 0;
    s.progress = Math.max(0, Math.min(1, fraction));
    const active = this.active.get(s.jobId);
    if (active) this.events.progress(active.record, s, jobProgress(active.record, active.subtasks), message);
  }

  /**
   * A heartbeat of a worker marked stalled (the scheduler's last choice): the mark goes once it
   * holds no attempt still found stalled and runs none of those taken back from it. A worker whose
   * stalled attempt was cancelled sends no result for it, and may have nothing else to report on.
   */
  onHeartbeat(w: WorkerSession, running: readonly { subtask_id: string; attempt: number }[]): void {
    for (const [id, attempt] of w.leases) {
      const lease = this.subtasks.get(id)?.leases.find((l) => l.attempt === attempt && l.workerId === w.id);
      if (lease && stillStalled(lease)) return;
    }
    if (running.some((r) => w.cancelled.get(r.subtask_id) === r.attempt)) return;
    w.stalledSince = 0;
  }

  /** A worker reported the end of an attempt. Stale attempts are discarded (fencing). */
  onResult(
    w: WorkerSession,
    r: {
      subtaskId: string;
      attempt: number;
      ok: boolean;
      outputs: SpoolFile[];
      itemErrors: ItemFailure[];
      error?: ItemFailure;
      retryable: boolean;
      result: unknown;
      runMs?: number;
      /** The failure was the coordinator's own (its disk full while taking the outputs): not the worker's fault. */
      coordinatorFault?: boolean;
      /** The failure was the worker's own trouble (its temp folder full or read-only): not the subtask's. */
      workerTrouble?: boolean;
    },
  ): void {
    // While shutting down, nothing changes: what is running now is re-run after the restart.
    if (this.stopping) return;
    const s = this.leaseIsCurrent(r.subtaskId, r.attempt, w.id);
    this.endLease(w, r.subtaskId, r.attempt);
    // It reports: whatever it held up, it is working.
    w.stalledSince = 0;
    if (!s) {
      // Routine for an attempt the coordinator itself took back (the worker finished it before the
      // cancel arrived); a sign of trouble for one it lost (the worker was taken for lost).
      const cancelled = w.cancelled.get(r.subtaskId) === r.attempt && w.cancelled.delete(r.subtaskId);
      this.log[cancelled ? 'debug' : 'warn']({ job: this.subtasks.get(r.subtaskId)?.jobId, worker: w.name, workerId: w.id, subtask: r.subtaskId, attempt: r.attempt }, cancelled ? 'discarded the result of an attempt it had cancelled' : 'discarded result of a stale attempt');
      this.requestDispatch();
      return;
    }
    const active = this.active.get(s.jobId)!;
    const lease = s.leases.find((l) => l.attempt === r.attempt)!;
    s.leases = s.leases.filter((l) => l !== lease);
    // The diagnostic kind's asked-for failures (fail_first_attempts) are the job's, never the
    // worker's: each subtask's first attempts fail wherever they run, by design (review K27).
    const planned = !r.ok && active.record.kind === 'passthrough' && r.attempt <= (active.record.spec.passthrough?.fail_first_attempts ?? 0);
    if (r.ok || (r.retryable && !r.coordinatorFault && !planned)) noteOutcome(w, s.jobId, r.ok);
    if (r.ok) {
      w.done++;
      // First valid result wins: the other copy (if any) is cancelled.
      for (const other of s.leases) {
        // A lease its worker said nothing more about once it was found stalled counts as that
        // worker's failure (as Hadoop counts a task silent past its timeout): one that keeps taking
        // work and not doing it is quarantined, not handed every job's subtasks to hold.
        const holder = stillStalled(other) ? this.registry.get(other.workerId) : undefined;
        if (holder) {
          this.log.warn({ job: s.jobId, subtask: s.id, worker: holder.name, finishedBy: w.name }, 'a copy finished a subtask its worker had stalled on: counted as its failure');
          this.noteWorkerFailure(holder, s.jobId);
        }
        this.revokeLease(s, other, 'a copy of this subtask finished first');
      }
      s.leases = [];
      // The worker's own figure leaves out the time the assignment waited in its prefetch queue.
      s.durationMs = attemptRunMs(lease, r.runMs);
      active.runMaxMs = Math.max(active.runMaxMs, s.durationMs);
      active.runSamples++;
      active.runTotalMs += s.durationMs;
      s.worker = lease.worker;
      s.workerId = lease.workerId;
      s.speculative = false;
      for (const l of this.attemptsEnded) l(active.record.kind, 'succeeded', s.durationMs);
      s.state = 'succeeded';
      s.progress = 1;
      s.outputs = r.outputs;
      s.itemErrors = r.itemErrors;
      s.result = r.result;
      s.error = undefined;
      const secondOpinion = s.blamedBy;
      s.blamedBy = undefined;
      // Another worker processed what the first one called bad input (the input it named, or any of
      // them where it named none): that verdict was its own fault.
      if (secondOpinion && !r.itemErrors.some((e) => e.code === 'INVALID_ARGUMENT' && (!secondOpinion.input || e.input === secondOpinion.input))) {
        const blamer = this.registry.get(secondOpinion.id);
        this.log.warn({ job: s.jobId, subtask: s.id, worker: secondOpinion.name, processedBy: w.name }, 'a worker called an input bad that another worker processed: counted as its failure');
        if (blamer) this.noteWorkerFailure(blamer, s.jobId);
      }
      // Inputs this worker calls bad that were not what it was asked about get an opinion of their own.
      this.askAboutBadItems(active, s, w, secondOpinion ? (secondOpinion.input ? [secondOpinion.input] : s.items) : []);
      this.store.saveSubtask(s);
      this.events.subtaskState(active.record, s, 'done', jobProgress(active.record, active.subtasks));
      this.publishEarly(active, s);
    } else {
      w.failed++;
      // Bad input is not the worker's fault: only retryable failures count towards quarantine.
      if (r.retryable && !r.coordinatorFault && !planned) this.noteWorkerFailure(w, s.jobId);
      const error = r.error ?? { input: '', code: 'UNKNOWN', message: 'failed' };
      // A copy of an attempt its worker stalled on failed, and that worker has still said nothing
      // of it: left to decide, it would hold the subtask until its timeout (30 min). It is taken
      // back, and the failure handled as the subtask's only one (run again elsewhere, or a second
      // opinion on an input called bad). Not for a failure that would end the subtask for good
      // (the copy's worker's smaller memory ceiling, say) nor the coordinator's own: the stalled
      // attempt may yet finish.
      const rerun = !r.coordinatorFault && (r.retryable || (error.code === 'INVALID_ARGUMENT' && !s.blamedBy && this.secondOpinionFrom(w, s, active.record.kind)));
      const stalled = rerun && s.leases.length > 0 && s.leases.every(stillStalled);
      if (s.leases.length > 0 && !stalled) {
        // The other copy is still running: it decides, whatever ended this one (a smaller memory
        // ceiling on the copy's worker must not cancel an original at 90%); no third is started.
        this.log.info({ job: s.jobId, subtask: s.id, attempt: r.attempt, worker: w.name, code: error.code }, 'one copy failed; the other copy continues');
        this.oneCopyEnded(active, s, w, lease, `failed: ${error.code}: ${error.message}`);
        this.store.saveSubtask(s);
      } else {
        if (stalled) this.log.warn({ job: s.jobId, subtask: s.id, attempt: r.attempt, worker: w.name, code: error.code, stalledOn: s.leases.map((l) => l.worker) }, 'the copy of a stalled attempt failed: taking the stalled attempt back too');
        for (const other of s.leases) {
          this.revokeLease(s, other, stalled ? `its copy failed and ${other.worker} has reported no progress on it` : 'subtask failed');
          // Its worker's failure, as when a copy finishes first; unless the copy's failure says the
          // input is at fault (a decoder that hangs on it is not the worker's doing).
          const holder = stalled && r.retryable ? this.registry.get(other.workerId) : undefined;
          if (holder) this.noteWorkerFailure(holder, s.jobId);
        }
        s.leases = [];
        s.durationMs = attemptRunMs(lease, r.runMs);
        for (const l of this.attemptsEnded) l(active.record.kind, 'failed', s.durationMs);
        if (!r.retryable && error.code === 'INVALID_ARGUMENT' && !s.blamedBy && this.secondOpinionFrom(w, s, active.record.kind)) {
          // One worker's word that the input is bad fails the job for good: a worker whose own
          // decoder is broken (a library built without a format) would fail every job it is given.
          // Another worker is asked first, without using up an attempt.
          s.blamedBy = { id: w.id, name: w.name, instance: w.instanceId, at: steadyNow(), ...(error.input ? { input: error.input } : {}) };
          this.log.info({ job: s.jobId, subtask: s.id, worker: w.name, input: error.input, code: error.code }, 'a worker called the input bad: asking another worker');
          this.retryOrFail(active, s, w.id, { ...error, message: `${error.message} (worker ${w.name}; asking another worker)` }, true, 'second-opinion');
          // Past the wait, any worker may take it: look again then, even if nothing else happens.
          setTimeout(() => this.requestDispatch(), SECOND_OPINION_WAIT_MS + 10).unref();
        } else {
          // The coordinator's own full disk is not the subtask's failure: it does not use up an
          // attempt, however long it lasts (as a merge waits for room); nor, as long, is a worker's
          // (its temp folder full: a job on the one worker failed its every subtask in seconds).
          this.retryOrFail(active, s, w.id, error, r.retryable, r.coordinatorFault ? 'coordinator' : r.workerTrouble ? 'worker' : true);
        }
      }
    }
    this.requestDispatch();
    this.checkPhase(active);
  }

  /**
   * The items of a subtask that succeeded which its worker called bad input (INVALID_ARGUMENT):
   * run again, one subtask each, on another worker first, as the input of a subtask that failed
   * so is (see onResult). Their errors are dropped from this subtask's; those subtasks report their own.
   * Those in `checked` are not asked about again: this worker was the second to call them bad.
   */
  private askAboutBadItems(active: ActiveJob, s: SubtaskRecord, w: WorkerSession, checked: readonly string[] = []): void {
    const bad = [...new Set(s.itemErrors.filter((e) => e.code === 'INVALID_ARGUMENT' && e.input && !checked.includes(e.input)).map((e) => e.input))];
    if (bad.length === 0 || this.stopping || !active.kind.split || !this.secondOpinionFrom(w, s, active.record.kind)) return;
    const parts = active.kind.split(s, bad);
    if (!parts || parts.length === 0) return;
    const names = [...new Set(parts.flatMap((p) => p.items))];
    s.itemErrors = s.itemErrors.filter((e) => !names.includes(e.input));
    const blamedBy = { id: w.id, name: w.name, instance: w.instanceId, at: steadyNow() };
    for (const part of this.addSubtasks(active, parts, s.phase, true)) part.blamedBy = blamedBy;
    this.log.info({ job: s.jobId, subtask: s.id, worker: w.name, inputs: names }, 'a worker called inputs of a batch bad: asking another worker');
    const named = names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
    this.events.log(active.record, `worker ${w.name} called ${named} bad input: asking another worker`);
    // Past the wait, any worker may take them: look again then, even if nothing else happens.
    setTimeout(() => this.requestDispatch(), SECOND_OPINION_WAIT_MS + 10).unref();
  }

  /** Whether another worker (another process than `w`) that can run `s` is connected, to ask for a second opinion. */
  private secondOpinionFrom(w: WorkerSession, s: SubtaskRecord, kind: string): boolean {
    // A quarantined worker's word is worth less than the one given: not asked.
    return this.registry.all().some((o) => o.id !== w.id && o.instanceId !== w.instanceId && o.state === 'active' && canRun(o, s, kind));
  }

  private noteWorkerFailure(w: WorkerSession, jobId: string): void {
    const now = steadyNow();
    w.recentFailures = w.recentFailures.filter((f) => now - f.at < FAILURE_WINDOW_MS);
    w.recentFailures.push({ at: now, jobId });
    // A job failing wherever it runs is at fault, not this worker: one client's job whose every
    // attempt fails (its inputs time out on any worker) quarantined healthy workers, and every other
    // client's work then had fewer (review MTEN). A failure is excused only on strong evidence: its
    // job failed lately on at least two other workers and succeeded on none. Looser rules, by
    // rates or counts of failures elsewhere, let broken workers excuse each other or a big worker
    // look worse by its number of slots (reviews K26, K27, K28). Its own earlier session (a restart
    // under its name) is no other worker. The diagnostic kind's asked-for failures never come here.
    const excused = new Map<string, boolean>();
    const jobAtFault = (jobId: string): boolean => {
      const failing = new Set<string>();
      for (const o of this.registry.all()) {
        if (o === w || o.name === w.name) continue;
        const theirs = o.jobOutcomes.get(jobId);
        if (!theirs || now - theirs.at >= FAILURE_WINDOW_MS) continue;
        if (theirs.ok > 0) return false;
        if (theirs.failed > 0) failing.add(o.name);
      }
      return failing.size >= 2;
    };
    let own = 0;
    for (const f of w.recentFailures) {
      let atFault = excused.get(f.jobId);
      if (atFault === undefined) excused.set(f.jobId, (atFault = jobAtFault(f.jobId)));
      if (!atFault) own++;
    }
    // Never quarantine the last active worker of a kind it runs (whichever kind failed: a
    // quarantine stops all its work), nor the only one with the encoder or feature some unfinished
    // work requires (the one AV1 encoder of a cluster): a cluster that stops itself helps nobody.
    // The quarantine ends early should it become that (see WorkerRegistry.endQuarantines, and
    // explainWaiting for requirements).
    const limit = this.opts.quarantineFailures;
    if (limit > 0 && own >= limit && w.state === 'active' && this.registry.othersRun(w) && !this.onlyOneAble(w)) {
      const base = this.opts.quarantineMs ?? QUARANTINE_MS;
      w.quarantines = w.quarantinedUntil > 0 && now - w.quarantinedUntil < QUARANTINE_RESET_MS ? w.quarantines + 1 : 1;
      const period = Math.min(Math.max(base, QUARANTINE_MAX_MS), base * 2 ** Math.min(w.quarantines - 1, 30));
      w.state = 'quarantined';
      w.quarantinedUntil = now + period;
      w.recentFailures = [];
      this.log.warn({ worker: w.name, workerId: w.id, failures: limit, ms: period, inARow: w.quarantines }, w.quarantines > 1 ? `worker quarantined after repeated failures, ${w.quarantines} times in a row: for ${Math.round(period / 1000)} s` : 'worker quarantined after repeated failures');
      this.takeBackWaiting(w, `worker ${w.name} was quarantined after repeated failures`);
    }
  }

  /**
   * Whether `w` is the only active worker that can run some unfinished subtask (pending, or running
   * on it): the only one with the encoder or feature its plan requires. One look per distinct set of
   * requirements, as a job's subtasks mostly share theirs.
   */
  private onlyOneAble(w: WorkerSession): boolean {
    const others = this.registry.all().filter((o) => o !== w && o.state === 'active');
    for (const active of this.active.values()) {
      if (TERMINAL_JOB_STATES.has(active.record.state)) continue;
      const kind = active.kind.name;
      const seen = new Set<SubtaskRecord['requires']>();
      for (const sub of active.subtasks) {
        if ((sub.state !== 'pending' && sub.state !== 'running') || seen.has(sub.requires)) continue;
        seen.add(sub.requires);
        if (capable(w, sub, kind) && !others.some((o) => capable(o, sub, kind))) return true;
      }
    }
    return false;
  }

  /** A worker said it is draining: what waits in its prefetch queue runs elsewhere; what runs may finish. */
  onWorkerDraining(w: WorkerSession): void {
    if (w.state === 'lost') return;
    w.state = 'draining';
    if (!this.stopping) this.takeBackWaiting(w, `worker ${w.name} is draining`);
  }

  /**
   * Takes back the leases waiting in a worker's prefetch queue (it is quarantined or draining, or
   * `which` says a job of higher priority should go first) and puts their subtasks back in the
   * queue for other workers. They never started, so this is not a
   * failed attempt. Should the worker have started one meanwhile, the cancel stops it.
   */
  private takeBackWaiting(w: WorkerSession, reason: string, which: (s: SubtaskRecord) => boolean = () => true): void {
    let taken = 0;
    for (const [id, lease] of [...w.waiting]) {
      const s = this.subtasks.get(id);
      if (!s || !which(s)) continue;
      this.revokeLease(s, lease, reason);
      s.leases = s.leases.filter((l) => l !== lease);
      const active = this.active.get(s.jobId);
      // A speculative copy elsewhere carries on alone.
      if (!active || s.state !== 'running' || s.leases.length > 0) continue;
      s.state = 'pending';
      s.workerId = '';
      s.speculative = false;
      this.store.saveSubtask(s);
      this.events.subtaskState(active.record, s, `${TAKEN_BACK}: ${reason}`);
      this.scheduler.enqueue([s]);
      taken++;
    }
    if (taken > 0) {
      this.log.info({ worker: w.name, workerId: w.id, subtasks: taken, reason }, 'took back assignments waiting in the prefetch queue');
      this.requestDispatch();
    }
  }

  /**
   * After a failed attempt: runs the subtask again (after a backoff) or fails it. `counts` false:
   * the attempt ended through no fault of the subtask or its worker (a worker's planned drain)
   * and does not use up one of its attempts (up to max_attempts such); 'coordinator': the
   * coordinator's own trouble (its disk full while taking the outputs), which never uses one up
   * and is waited out, ever later (up to a minute apart), as a merge stopped by it is.
   */
  /**
   * Ends attempt `s.attempt`, which failed on worker `on`: retried or failed for good. `counts`:
   * true for a failure of the subtask; 'coordinator' for the coordinator's own full disk, free for
   * FULL_DISK_WAIT_MS; 'worker' for a worker's own trouble (its temp folder full or read-only),
   * free as long and run elsewhere first where another worker can; 'stall' for a worker lost in the
   * wake of the coordinator's own stall, free up to the job's max_attempts times; false for a worker stopped as planned (a drain), free up to the job's
   * max_attempts times; 'second-opinion' for a worker's verdict of bad input that another worker
   * is to check, always free (`blamedBy` allows it once).
   */
  private retryOrFail(active: ActiveJob, s: SubtaskRecord, on: string, error: ItemFailure, retryable: boolean, counts: boolean | 'coordinator' | 'worker' | 'stall' | 'second-opinion' = true): void {
    const job = active.record;
    // Free attempts are limited: a worker drained again and again, or a disk that stays full for
    // FULL_DISK_WAIT_MS, fails the subtask in the end. Each kind of setback has its own limit.
    const now = steadyNow();
    if (counts === 'worker' && on) {
      // One worker's full disk is its own; a second's, for the same subtask, says the subtask is
      // what fills them (more scratch than any worker has): counted from then on, so that it fails
      // in its attempts rather than filling and quarantining every worker for ten minutes.
      if (!s.troubledOn?.includes(on)) (s.troubledOn ??= []).push(on);
      if (s.troubledOn.length > 1) counts = true;
    }
    const fullDisk = counts === 'coordinator' || counts === 'worker';
    if (fullDisk) s.diskFullSince ??= now;
    const free = fullDisk
      ? now - s.diskFullSince! < fullDiskWaitMs()
      : counts === 'second-opinion' || (counts === 'stall' && (s.stalls ?? 0) < job.maxAttempts) || (counts === false && (s.drains ?? 0) < job.maxAttempts);
    if (free) s.setbacks = (s.setbacks ?? 0) + 1;
    else s.failures += 1;
    if (free && counts === false) s.drains = (s.drains ?? 0) + 1;
    if (free && counts === 'stall') s.stalls = (s.stalls ?? 0) + 1;
    s.speculative = false;
    if (retryable && s.failures < job.maxAttempts) {
      s.state = 'pending';
      // Only a counted failure, or a worker's own trouble, sends the retry elsewhere at once (see
      // Scheduler.pickFrom); any other waits its backoff wherever it runs, also a retry after an
      // earlier counted failure.
      s.failedOn = (counts === true || counts === 'worker') && on ? on : undefined;
      if (s.failedOn && !s.failedOnAll?.includes(s.failedOn)) (s.failedOnAll ??= []).push(s.failedOn);
      s.workerId = '';
      s.error = error;
      // A counted failure backs off by the failures alone: the free tries before it (a disk full
      // for ten minutes) say nothing of how soon the subtask's own trouble may pass.
      const tries = free ? s.failures + (s.setbacks ?? 0) : s.failures;
      s.notBefore = now + (fullDisk && free ? troubleRetryMs(tries) : retryBackoffMs(this.opts.retryBaseMs, tries));
      this.store.saveSubtask(s);
      this.retriesByKind.set(job.kind, (this.retriesByKind.get(job.kind) ?? 0) + 1);
      this.retries++;
      // A free retry says so: a full disk's every second read as the workers failing, in the log and
      // its alerts (review OPS13).
      const why = !free ? '' : counts === 'coordinator' ? "the coordinator's disk is full" : counts === 'worker' ? "the worker's own trouble, not the subtask's" : counts === 'stall' ? 'the coordinator stalled, not its worker' : counts === false ? 'its worker was stopped as planned' : 'another worker is to judge the input';
      if (free) {
        const key = `${job.kind}\n${counts === 'coordinator' ? 'disk_full' : counts === 'worker' ? 'worker_trouble' : counts === 'stall' ? 'coordinator_stall' : counts === false ? 'drain' : 'second_opinion'}`;
        this.freeRetries.set(key, (this.freeRetries.get(key) ?? 0) + 1);
      }
      this.events.subtaskState(job, s, `attempt ${s.attempt} failed (${error.code}: ${error.message}); retrying${why ? ` (not counted against max_attempts: ${why})` : ''}`);
      this.scheduler.enqueue([s]);
      return;
    }
    // A failure that names none of the subtask's several items says nothing about each: the kind
    // may cut it into smaller subtasks (fresh attempts), so that only the item at fault fails.
    const parts = s.items.length > 1 && !error.input && !this.stopping ? active.kind.split?.(s) : undefined;
    if (parts && parts.length > 1) {
      s.state = 'failed';
      s.replacedBy = parts.length;
      s.error = { ...error, message: `${error.message} (run again as ${parts.length} smaller subtasks to find the input at fault)` };
      this.store.saveSubtask(s);
      this.events.subtaskState(job, s, `failed: ${s.error.code}: ${s.error.message}`);
      this.log.info({ job: job.id, subtask: s.id, parts: parts.length, code: error.code }, 'a subtask of several inputs failed without naming one: split');
      this.addSubtasks(active, parts, s.phase, true);
      return;
    }
    s.state = 'failed';
    s.error = error;
    this.store.saveSubtask(s);
    this.events.subtaskState(job, s, `failed: ${error.code}: ${error.message}`);
  }

  /**
   * One of a subtask's two copies ended without a result (its worker lost or drained, or it failed)
   * while the other runs on. Where the subtask was shown on the one that ended (lease() points it
   * at the newest), it is shown where the other runs, with no copy running, and watchers are told;
   * that attempt gets no other copy (one copy per attempt) unless it stalls.
   */
  private oneCopyEnded(active: ActiveJob, s: SubtaskRecord, w: WorkerSession, ended: Lease, reason: string): void {
    const left = s.leases.length === 1 ? s.leases[0]! : undefined;
    if (!left || s.workerId !== w.id) return;
    s.worker = left.worker;
    s.workerId = left.workerId;
    if (ended.speculative) {
      s.speculative = false;
      this.copyEnded.set(s, left.attempt);
    }
    this.events.subtaskState(active.record, s, `the speculative copy on ${w.name} ended (${reason}); attempt ${left.attempt} on ${left.worker} goes on`, jobProgress(active.record, active.subtasks));
  }

  /** Takes a lease back from a worker (lost, unreachable, draining past its grace). */
  releaseLease(w: WorkerSession, s: SubtaskRecord, attempt: number, reason: string, retryable: boolean, counts: boolean | 'stall' = true): void {
    this.endLease(w, s.id, attempt);
    const active = this.active.get(s.jobId);
    const lease = s.leases.find((l) => l.attempt === attempt && l.workerId === w.id);
    s.leases = s.leases.filter((l) => l !== lease);
    if (!active || s.state !== 'running' || !lease) return;
    this.leaseExpiries++;
    if (s.leases.length > 0) {
      // Another copy runs on: the subtask stays running (oneCopyEnded corrects the views).
      this.log.warn({ job: s.jobId, subtask: s.id, attempt, worker: w.name, reason }, 'lease expired');
      this.oneCopyEnded(active, s, w, lease, reason);
      if (s.leases.every(stillStalled)) {
        // What is left is an attempt its worker stalled on: it gets another copy (this one's end
        // says nothing of the subtask), in the next free slot.
        s.speculative = false;
        this.awaitingCopy.add(s);
        this.requestDispatch();
      }
      this.store.saveSubtask(s);
      return;
    }
    // The retry (or the failure) below logs it, once, with the reason; the attempt's time is
    // what it ran (a lost worker's, a timed-out one's), as a result would have said.
    this.log.debug({ job: s.jobId, subtask: s.id, attempt, worker: w.name, reason }, 'lease expired');
    s.durationMs = attemptRunMs(lease);
    if (lease.runningSince !== undefined) for (const l of this.attemptsEnded) l(active.record.kind, 'failed', s.durationMs);
    this.retryOrFail(active, s, w.id, { input: s.items.length === 1 ? s.items[0]! : '', code: 'UNAVAILABLE', message: reason }, retryable, counts);
    this.checkPhase(active);
    this.requestDispatch();
  }

  /** Subtasks whose speculative copy ended while their original ran on: the original's attempt (it gets no other). */
  private readonly copyEnded = new WeakMap<SubtaskRecord, number>();

  /** Until when (steady ms) workers lost are excused for the coordinator's own stall. */
  private stallExcusedUntil = 0;

  /**
   * The coordinator's process stalled for `ms` (found by its sweep): workers lost in the next
   * STALL_EXCUSE_MS, as they come back from giving its connection up, lose no attempt for it.
   */
  noteOwnStall(ms: number): void {
    this.stallExcusedUntil = steadyNow() + STALL_EXCUSE_MS;
    this.log.debug({ stalledMs: Math.round(ms) }, 'workers lost in the next seconds are not held to attempts');
  }

  onWorkerLost(w: WorkerSession, reason: string): void {
    if (w.state === 'lost' || this.stopping) return;
    // A worker stopping as planned (it said it drains; its grace is over) cut its subtasks short: no
    // attempt is used up. Any other end (a crash, a kill, a cut link) counts.
    const drained = w.drainRequested;
    // Lost in the wake of the coordinator's own stall (a freeze of its process or machine past the
    // workers' keepalive: they gave the connection up and registered again, their finished results
    // with the old session): not the worker's doing, and no attempt is used up either.
    const excused = !drained && steadyNow() < this.stallExcusedUntil;
    w.state = 'lost';
    w.lostAt = steadyNow();
    w.call = undefined;
    // A planned stop is no alarm: not a warning, and the worker leaves the list at once (a lost one
    // stays listed, as `lost`, for 10 minutes).
    if (drained) this.log.info({ worker: w.name, workerId: w.id, leases: w.leases.size, reason }, 'worker left after draining');
    else this.log.warn({ worker: w.name, workerId: w.id, leases: w.leases.size, reason }, 'worker lost');
    for (const [subtaskId, attempt] of [...w.leases]) {
      const s = this.subtasks.get(subtaskId);
      if (s) this.releaseLease(w, s, attempt, `worker ${w.name} ${drained ? 'stopped while draining' : 'lost'}: ${reason}${excused ? ' (after the coordinator stalled: not counted)' : ''}`, true, excused ? 'stall' : !drained);
    }
    w.leases.clear();
    w.waiting.clear();
    if (drained) this.registry.remove(w.id);
  }

  private checkPhase(active: ActiveJob): void {
    // Called on every result: scan from the end (the current phase is appended last, and subtasks
    // finish roughly in order), so an unfinished one is usually found at once, not after O(n).
    if (active.planning) return;
    const phase = active.record.phase;
    for (let i = active.subtasks.length - 1; i >= 0; i--) {
      const s = active.subtasks[i]!;
      if (s.phase === phase && s.state !== 'succeeded' && s.state !== 'failed') return;
    }
    void this.phaseDone(active);
  }

  private async phaseDone(active: ActiveJob): Promise<void> {
    const job = active.record;
    if (TERMINAL_JOB_STATES.has(job.state) || this.stopping) return;
    const phase = job.phase;
    if (active.mergedPhase >= phase) return;
    active.mergedPhase = phase;
    // The merge sees the subtasks' outputs where the early publications left them.
    await active.publishing;
    if (TERMINAL_JOB_STATES.has(job.state)) return;
    // A subtask replaced by smaller ones (split after it failed) is theirs to report: left out.
    const outcomes = active.subtasks.filter((s) => !s.replacedBy).map((s) => toOutcome(s));
    const results = outcomes.filter((o) => o.phase === phase);
    for (const o of results) {
      job.errors.push(...o.itemErrors);
      if (!o.ok && o.error) {
        const items = o.items.length > 0 ? o.items : [''];
        for (const input of items) job.errors.push({ ...o.error, input: o.error.input || input });
      }
    }
    job.errors = dedupeErrors(job.errors);
    job.message = `merging phase ${phase}`;
    this.store.saveJob(job);
    try {
      // Each merge writes into a folder of its own, and publishing moves its files into place (a
      // rename): a merge run again (after a restart, or the disk had been full) never rewrites an
      // output already published, perhaps being downloaded. The folder goes with the intermediates.
      const outputDir = path.join(this.spool.workDir(job.id), `merge-${phase}-${randomBytes(4).toString('hex')}`);
      if (active.kind.writesFiles !== false) await makeDir(outputDir);
      // Merges may read the inputs again (a video's audio track): only as they were submitted.
      if (active.kind.mergeReadsInputs?.(results) ?? true) await this.assertSharedInputs(job);
      const merged = await active.kind.merge({ ...this.planContext(active), phase, results, history: outcomes.filter((o) => o.phase < phase), outputDir });
      // A merge cut by the coordinator stopping may report anything (every piece "failed its
      // check"): nothing of it is kept; the restarted coordinator merges the phase again.
      if (TERMINAL_JOB_STATES.has(job.state) || this.stopping) return;
      if (merged.errors) job.errors = dedupeErrors([...job.errors, ...merged.errors]);
      if (merged.next && merged.next.length > 0) {
        this.addSubtasks(active, merged.next, phase + 1);
        return;
      }
      await this.finishWithOutputs(active, merged.outputs ?? []);
    } catch (err) {
      if (isCoordinatorTrouble(err) && !this.stopping && !TERMINAL_JOB_STATES.has(job.state)) {
        // The coordinator's disk is full, read-only or failing (or out of descriptors): not the job's fault. Merge again later.
        active.mergeRetries = (active.mergeRetries ?? 0) + 1;
        const wait = troubleRetryMs(active.mergeRetries);
        active.mergedPhase = phase - 1;
        job.message = `merging phase ${phase} waits for the coordinator: ${describeError(err)}`;
        this.events.log(job, `${job.message}; trying again in ${(wait / 1000).toFixed(wait < 10_000 ? 1 : 0)} s`);
        this.log.warn({ err, job: job.id, phase, waitMs: wait }, 'merge stopped by the coordinator\'s own trouble; trying again');
        this.later(wait, () => void this.phaseDone(active));
        return;
      }
      this.failJob(active, err, 'merge failed');
    }
  }

  /**
   * Publishes the outputs of a succeeded subtask that its kind calls final (`finalOutputs`) at once,
   * in order with the others; a failure fails the job as a failed merge would.
   */
  private publishEarly(active: ActiveJob, s: SubtaskRecord): void {
    const outputs = active.kind.finalOutputs?.(toOutcome(s), active.params);
    if (!outputs || outputs.length === 0) return;
    const known = new Map(s.outputs.map((f) => [f.path, f] as const));
    active.publishing = active.publishing.then(async () => {
      try {
        await this.readyToPublish(active);
        for (const o of outputs) if (!TERMINAL_JOB_STATES.has(active.record.state)) await this.publish(active, o, known);
      } catch (err) {
        this.failJob(active, err, 'publishing outputs failed');
      }
    });
  }

  /** Before publishing: the job's spool output folder made (once), its shared output folder still where it was. */
  private async readyToPublish(active: ActiveJob): Promise<void> {
    // Made once; a failure (the disk full or read-only then) is not kept for the publishes after it.
    await (active.outputDirMade ??= makeDir(this.spool.outputDir(active.record.id)).catch((err: unknown) => {
      active.outputDirMade = undefined;
      throw err;
    }));
    await this.assertOutputDir(active.record);
  }

  /**
   * Moves one finished file into the job's output folder, lists it on the job and announces it
   * (an `output` event): from then on it can be downloaded. The same output again (a merge listing
   * what was published early, a resumed job) is skipped; another file under a taken name fails.
   */
  private async publish(active: ActiveJob, o: FinalOutput, known: Map<string, SpoolFile>): Promise<void> {
    const job = active.record;
    const name = safeOutputName(o.name);
    const taken = (): boolean => {
      const source = active.published.get(name);
      if (source === undefined) return false;
      if (source !== o.source) throw new TesseraError(status.INTERNAL, `two outputs are named ${name} (from ${source || 'the job'} and ${o.source || 'the job'})`);
      return true;
    };
    if (taken() || TERMINAL_JOB_STATES.has(job.state)) return;
    // Outputs live in the job's output folder (or its shared one): intermediates are removed later.
    const shared = job.spec.shared_output_dir;
    const dest = path.join(shared || this.spool.outputDir(job.id), name);
    // A shared folder is written through a descriptor of it, checked to be that folder: a folder on
    // its path swapped for a link (by anyone who may write there) between the check of the path and
    // the write had the output (a name and bytes a client chose) written wherever the link led.
    const dir = shared ? await openOutputDir(shared) : undefined;
    try {
      const at = dir ? path.join(`/proc/self/fd/${dir.fd}`, name) : dest;
      // A merge's hard link of a subtask's output is that output (not one a worker wrote into a
      // shared folder, whose check below is of its own file).
      const linked = o.linkOf === undefined ? undefined : known.get(o.linkOf);
      const spooled = known.get(o.path) ?? (linked?.written ? undefined : linked);
      // A folder the job reads from may be the one it writes to: never over one of its own inputs,
      // by name nor by identity (on a case-insensitive share IMG_0001.jpg is IMG_0001.JPG; a hard
      // link or another Unicode form of the name is the same file too).
      // The file already there has the output's very bytes and is an uploaded input's own file: left
      // as it is and listed as the output, never the job's to remove (see OutputRecord.shared.kept).
      let kept = false;
      if (shared) {
        const inputs = (active.sharedInputs ??= job.inputs.filter((i) => i.shared));
        const there = await lstat(at).catch(() => undefined);
        // A symlink there is judged by what it names too (an input submitted by the link's name).
        const target = there?.isSymbolicLink() ? await stat(at).catch(() => undefined) : there;
        const same = (st: Stats | undefined, i: SpoolFile): boolean => Boolean(st && st.dev === i.shared!.dev && st.ino === i.shared!.ino);
        const input = inputs.find((i) => i.path === dest || same(there, i) || same(target, i));
        if (input) throw new TesseraError(status.INVALID_ARGUMENT, `output ${name} would replace the job's own input ${input.path}: write the outputs to another folder`, { input: o.source, retryable: false });
        // An uploaded input's own file may lie in this folder (uploaded from it): a file there of an
        // uploaded input's size and checksum is that input's, not replaced either. Where the output
        // has those very bytes (a job run again into its folder, a copy) it is that file: kept.
        const sized = there?.isFile() ? job.inputs.filter((i) => !i.shared && i.sha256 && i.size === there.size) : [];
        const digest = sized.length > 0 ? await sha256File(at).catch(() => '') : '';
        const uploaded = sized.find((i) => i.sha256 === digest);
        if (uploaded) {
          if ((spooled?.sha256 || (await sha256File(o.path).catch(() => ''))) !== digest) {
            throw new TesseraError(status.INVALID_ARGUMENT, `output ${name} would replace ${dest}, the file the job's input ${uploaded.name} was uploaded from (the same bytes): write the outputs to another folder`, { input: o.source, retryable: false });
          }
          kept = true;
          if (path.resolve(o.path) !== dest) await rm(o.path, { force: true });
        }
      }
      if (!kept && path.resolve(o.path) !== dest) {
        await moveInto(o.path, at, job.id).catch(async (err: NodeJS.ErrnoException) => {
          // Moved already, by a coordinator stopped before it recorded the output: list it now if it
          // is that file. A shared folder may hold another of the same size by now (another job's
          // output of that name, an older render): its checksum tells.
          if (err.code === 'ENOENT' && (await stat(at).then((st) => st.isFile() && (!spooled || st.size === spooled.size), () => false))) {
            if (!spooled?.sha256 || (await sha256File(at)) === spooled.sha256) return;
            throw dataLoss(`output ${name}: ${dest} is not the file this job made (moved there before the coordinator stopped, replaced since); not published`);
          }
          if (shared) throw new TesseraError(err.code === 'EACCES' || err.code === 'EPERM' ? status.PERMISSION_DENIED : status.FAILED_PRECONDITION, `output ${name}: cannot write it to the shared folder ${shared}: ${err.message}`, { retryable: false });
          throw err;
        });
      }
      // A worker's file in a shared folder is published only if it is still the file checked when
      // its result came: anyone who may write there could have put another at its temporary name.
      if (spooled?.written && !kept) {
        const there = await lstat(at).catch(() => undefined);
        if (!there?.isFile() || there.dev !== spooled.written.dev || there.ino !== spooled.written.ino || there.nlink !== 1 || there.size !== spooled.size) {
          if (there) await removeIfSame(at, there).catch(() => undefined);
          throw dataLoss(`output ${name}: the file ${o.path} was replaced after the coordinator checked it; not published`);
        }
      }
      // A subtask's file was measured and hashed as it arrived; one the merge wrote is measured and
      // hashed now, so that downloads carry the checksum of what is on disk.
      const size = spooled?.sha256 ? spooled.size : (await stat(at)).size;
      const sha256 = spooled?.sha256 || (await sha256File(at));
      const identity = shared ? await lstat(at) : undefined;
      if (taken()) return;
      if (TERMINAL_JOB_STATES.has(job.state)) {
        // The job ended (cancelled) while the file moved: its record, final now, will not list it,
        // and a file it does not list must not stay, in the job's shared folder (only that file: if
        // something else is at the name by now, it is left alone) nor in its spool folder, where
        // nothing would ever remove it before the job's retention ends.
        if (kept) return;
        if (identity) await removeIfSame(at, identity);
        else await rm(at, { force: true });
        return;
      }
      const out: OutputRecord = {
        name,
        path: dest,
        size,
        sha256,
        source: o.source,
        contentType: o.contentType ?? contentTypeOf(name),
        ...(identity ? { shared: { dev: identity.dev, ino: identity.ino, mtimeMs: identity.mtimeMs, ...(kept && { kept: true as const }) } } : {}),
      };
      active.published.set(name, o.source);
      job.outputs.push(out);
      this.events.output(job, out);
    } finally {
      await dir?.close();
    }
  }

  private async finishWithOutputs(active: ActiveJob, outputs: FinalOutput[]): Promise<void> {
    const job = active.record;
    try {
      const seen = new Set<string>();
      // Subtask outputs were hashed when they arrived: only files the merge wrote need hashing now.
      const known = new Map(active.subtasks.flatMap((s) => s.outputs.map((f) => [f.path, f] as const)));
      if (outputs.length > 0) await this.readyToPublish(active);
      for (const o of outputs) {
        const name = safeOutputName(o.name);
        if (seen.has(name)) throw new TesseraError(status.INTERNAL, `two outputs are named ${name}`);
        seen.add(name);
        // Published already (the kind's `finalOutputs`): listed once.
        await this.publish(active, o, known);
      }
    } catch (err) {
      this.failJob(active, err, 'publishing outputs failed');
      return;
    }
    const state: JobState = job.outputs.length === 0 && job.errors.length > 0 ? 'failed' : job.errors.length > 0 ? 'partially_succeeded' : 'succeeded';
    const warned = job.warnings?.length ? `, ${job.warnings.length} warning(s)` : '';
    const message =
      state === 'succeeded'
        ? `${job.outputs.length} output(s)${warned}`
        : state === 'failed'
          ? failureSummary(job.errors.map((e) => withInput(e.input, e.message))) || 'no outputs'
          : `${job.outputs.length} output(s), ${job.errors.length} error(s)${warned}`;
    this.finish(job, state, message);
  }

  private failJob(active: ActiveJob, err: unknown, what: string): void {
    const job = active.record;
    if (TERMINAL_JOB_STATES.has(job.state)) return;
    // Stopping, whatever the error says: the job resumes after the restart.
    if (isAbortError(err) || this.stopping) return;
    const e = err instanceof TesseraError ? err : undefined;
    if (!e) this.log.error({ err, job: job.id }, what);
    const message = e ? e.message : `${what}: internal error (see the coordinator log)`;
    // The coordinator's own full disk (or lack of descriptors) while it planned: a limit of the
    // cluster's, not a fault of the input nor a passing outage.
    const code = e && hasLocalTroubleCode(e) ? 'RESOURCE_EXHAUSTED' : e ? e.codeName : 'INTERNAL';
    // A failure the phase recorded against its input already (the merge reporting it again) is listed once.
    if (!job.errors.some((x) => x.message === message && (x.input === (e?.input ?? '') || !e?.input))) {
      job.errors.push({ input: e?.input ?? '', code, message });
    }
    this.finish(job, 'failed', message);
  }

  private finish(job: JobRecord, state: JobState, message: string): void {
    if (TERMINAL_JOB_STATES.has(job.state)) return;
    const active = this.active.get(job.id);
    // Ended while its upload runs (cancelled): the upload stops, and the job is kept as it ended
    // (a restart drops only a job whose upload had not ended).
    const receiving = job.receiving === true;
    job.receiving = false;
    job.state = state;
    job.message = message;
    job.finishedAt = Date.now();
    this.finished(job);
    this.scheduler.removeJob(job.id);
    if (active) {
      for (const s of active.subtasks) {
        this.cancelRunning(s, `job ${state}`);
        this.subtasks.delete(s.id);
        this.events.forgetSubtask(s.id);
      }
      active.controller.abort(new DOMException(`job ${state}`, 'AbortError'));
      this.active.delete(job.id);
    }
    if (receiving) {
      this.arrivals.get(job.id)?.end();
      this.arrivals.delete(job.id);
      const stop = this.uploadStops.get(job.id);
      this.uploadStops.delete(job.id);
      stop?.();
    }
    this.events.jobState(job, message, true);
    // Written with everything else (a store that cannot write now, on a full disk, keeps the final
    // state and retries): the job ends regardless.
    // Its log lines ("job finished", each failed input) come from its final event, once stored, as
    // its other state and subtask lines do (http/subtask-log.ts): logged here at once, "failed"
    // came before the "running" that preceded it (review OPS10).
    // A job that failed or was cancelled lets go of its work folder at once (a tiled image's decoded
    // copy, a video's chunks): on a full disk, that is what lets the store write its end. Should the
    // coordinator restart before that, the job's subtasks fail again for want of their pieces.
    if (state === 'cancelled' || state === 'failed') void this.spool.removeWork(job.id).catch(() => undefined);
    if (state === 'succeeded' || state === 'partially_succeeded' || state === 'cancelled' || state === 'failed') {
      // Only once its end is on disk: a restart before that resumes the job, which needs its inputs,
      // and merges again from its subtasks' outputs (they go with the job at the end of its
      // retention otherwise).
      this.store.whenStored(() => void this.spool.removeIntermediates(job.id, { inputs: true }).catch(() => undefined));
      // What attempts left in the shared folder (the published outputs have their own names by now).
      void this.removeSharedTempsOf(job, active?.subtasks);
    }
  }

  private cancelRunning(s: SubtaskRecord, reason: string): void {
    if (s.state === 'pending') {
      s.state = 'cancelled';
      this.store.saveSubtask(s);
      return;
    }
    if (s.state !== 'running') return;
    for (const lease of s.leases) this.revokeLease(s, lease, reason);
    s.leases = [];
    // No copy runs any more (it said so for good: "a speculative copy is running").
    s.speculative = false;
    s.state = 'cancelled';
    this.store.saveSubtask(s);
    // Its watchers (and the dashboard, and the metrics) saw it start: they see it end. Pending ones
    // end with the job's final event, without one each (a cancelled job of thousands).
    const job = this.active.get(s.jobId)?.record;
    if (job) this.events.subtaskState(job, s, `cancelled: ${reason}`);
  }

  /** Runs `fn` in `ms`, unless the coordinator has started stopping by then (close() clears it). */
  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopping) fn();
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  /** Calls `cb` when the coordinator starts shutting down; returns the unsubscribe function. */
  onStop(cb: () => void): () => void {
    this.stopListeners.add(cb);
    return () => this.stopListeners.delete(cb);
  }

  /**
   * Ends this lease on the worker. One that was running frees a slot, and the oldest waiting lease
   * takes it (the worker runs its prefetch queue in the order it was assigned).
   */
  private endLease(w: WorkerSession, subtaskId: string, attempt: number): void {
    if (w.leases.get(subtaskId) !== attempt) return;
    w.leases.delete(subtaskId);
    if (w.waiting.delete(subtaskId) || w.waiting.size === 0) return;
    const now = steadyNow();
    for (const [id, lease] of w.waiting) {
      if (w.leases.size - w.waiting.size >= w.slots) break;
      w.waiting.delete(id);
      lease.runningSince = now;
    }
  }

  /** Tells a lease holder to stop, and frees its slot. */
  private revokeLease(s: SubtaskRecord, lease: { attempt: number; workerId: string }, reason: string): void {
    const w = this.registry.get(lease.workerId);
    if (!w) return;
    this.endLease(w, s.id, lease.attempt);
    w.cancelled.set(s.id, lease.attempt);
    if (w.cancelled.size > CANCELLED_KEPT) w.cancelled.delete(w.cancelled.keys().next().value!);
    this.registry.send(w, { cancel: { subtask_id: s.id, attempt: lease.attempt, reason } });
  }

  /**
   * Leases running well past their subtask's timeout. The worker's own timer should have ended them;
   * one that has not (a process stuck in the kernel on a hung shared mount) would hold the job
   * forever: the lease is taken back, the worker told to cancel, and the attempt fails as timed out.
   * Returns how many were taken back.
   */
  expireOverdue(now = steadyNow()): number {
    let expired = 0;
    // Only what workers hold: every lease is in its worker's map (a lost worker's are released).
    for (const w of this.registry.all()) {
      for (const [id, attempt] of [...w.leases]) {
        const s = this.subtasks.get(id);
        const lease = s?.leases.find((l) => l.attempt === attempt && l.workerId === w.id);
        if (!s || !lease || s.state !== 'running') continue;
        const limit = this.timeoutOf(s);
        if (lease.runningSince === undefined || now - lease.runningSince <= limit + Math.max(OVERDUE_GRACE_MS, limit * 0.1)) continue;
        const reason = `subtask timed out after ${limit} ms and its worker ${w.name} did not stop it`;
        this.registry.send(w, { cancel: { subtask_id: s.id, attempt, reason } });
        this.releaseLease(w, s, attempt, reason, true);
        // Its slot may still be taken by the stuck process: a worker that cannot stop what it runs
        // counts towards quarantine like one that fails it.
        const job = this.active.get(s.jobId)?.record;
        if (job) this.noteWorkerFailure(w, s.jobId);
        expired++;
      }
    }
    return expired;
  }

  /**
   * Speculative copies, on idle capacity only (no pending work anywhere), at most one per attempt,
   * and staying a small share of running work. A subtask gets one
   * - as a straggler (Spark's rule, with LATE's estimate of time left): once 75% of its phase is
   *   done, running longer than 1.5x what the finished ones predict for it, unless its own progress
   *   says it will end before a copy could. The prediction scales the finished ones' median run time
   *   per unit of `weight` (a tile twice the pixels, a segment twice the seconds, is expected to take
   *   twice as long) when every subtask of the phase has a weight, else it is their median run time;
   * - as stalled: its worker has reported no progress on it for `stallMs` (60 s, or 4x the run
   *   expected of it when longer), whatever the rest of its job. A worker that hangs while its
   *   heartbeats go on (a processor stuck on a disk, a worker that takes work and never does it)
   *   would otherwise hold its subtasks until their timeout (30 minutes by default), and a job all
   *   of whose subtasks it took has no finished ones to call any of them a straggler.
   */
  /**
   * Says why a job's pending work does not start when no connected worker can run it (none runs
   * its kind, none has the encoder or feature its plan requires: an av1 job on workers without an
   * AV1 encoder, the only worker with one gone), rather than leaving it queued without a word; and
   * says so again when one that can connects. Once a second at most, from the coordinator's sweep.
   */
  explainWaiting(now = steadyNow()): void {
    if (now - this.explainedAt < 1000) return;
    this.explainedAt = now;
    // Those that can take work now or later (a quarantine ends); a draining worker takes no more.
    const workers = this.registry.all().filter((w) => w.state === 'active' || w.state === 'quarantined');
    for (const active of this.active.values()) {
      const job = active.record;
      if (TERMINAL_JOB_STATES.has(job.state)) continue;
      let missing: string | undefined;
      if (this.scheduler.pendingCount(job.id) > 0) {
        // One look per distinct set of requirements: a job's subtasks mostly share theirs.
        const seen = new Set<SubtaskRecord['requires']>();
        for (const sub of active.subtasks) {
          if (sub.state !== 'pending' || seen.has(sub.requires)) continue;
          seen.add(sub.requires);
          if (workers.some((w) => w.state === 'active' && capable(w, sub, active.kind.name))) continue;
          // Only a quarantined worker can run it (the only one with its encoder): a quarantine
          // must not hold the job, as one never takes the last worker of a kind.
          const spared = workers.find((w) => w.state === 'quarantined' && capable(w, sub, active.kind.name));
          if (spared) {
            spared.state = 'active';
            this.log.warn({ worker: spared.name, workerId: spared.id, job: job.id }, 'quarantine ended early: no other worker can run pending work');
            this.events.log(job, `worker ${spared.name}'s quarantine ended early: no other connected worker can run this job's pending work`);
            this.requestDispatch();
            continue;
          }
          missing = lacking(workers, sub, active.kind.name);
          break;
        }
      }
      // An encoder the plan chose that no worker has (none had the codec's when it was planned,
      // or the one with it left): another of the same output that a worker has, where the kind can.
      if (missing && active.kind.retarget) {
        const encoders = new Set(workers.filter((w) => w.kinds.has(active.kind.name)).flatMap((w) => [...w.encoders]));
        const changed = active.kind.retarget(active.params, active.subtasks, encoders) as SubtaskRecord[];
        if (changed.length > 0) {
          for (const sub of changed) {
            sub.retargeted = { plan: sub.plan, ...(sub.requires && { requires: sub.requires }) };
            this.store.saveSubtask(sub);
          }
          this.log.info({ job: job.id, subtasks: changed.length }, 'pending work pointed at an encoder a connected worker has');
          this.requestDispatch();
          missing = undefined;
        }
      }
      const message = missing && `waiting for a worker that can run it: ${missing}`;
      if (message === active.waiting?.message) continue;
      if (message) {
        active.waiting = { message, before: active.waiting?.before ?? job.message };
        job.message = message;
        this.log[workers.length > 0 ? 'warn' : 'info']({ job: job.id, missing }, 'no connected worker can run this job');
      } else {
        if (job.message === active.waiting!.message) job.message = active.waiting!.before;
        active.waiting = undefined;
      }
      this.store.saveJob(job);
      this.events.jobState(job, message ?? 'a worker that can run it is connected');
    }
  }

  speculate(now = steadyNow()): void {
    const stallMs = this.opts.stallMs ?? STALL_MS;
    const idle = this.registry.schedulable(now);
    // With work waiting, or no slot free, only the stall rule applies: a copy of a stalled attempt
    // goes before any waiting subtask, in the next slot that frees (see copyStalled).
    if (this.scheduler.pendingCount() > 0 || idle.length === 0) {
      if (stallMs > 0) this.markStalledAttempts(now, stallMs);
      return;
    }
    let budget = this.copyBudget();
    for (const active of this.active.values()) {
      const current = active.subtasks.filter((s) => s.phase === active.record.phase);
      const finished = current.filter((s) => s.state === 'succeeded');
      const late = finished.length > 0 && finished.length >= current.length * 0.75;
      const expect = finished.length > 0 ? expectedRunTimes(current, finished) : () => this.expectedRunMs(active.record.id);
      for (const s of current) {
        if (budget <= 0) return;
        // One copy per attempt: after it ended, the remaining lease runs alone.
        if (s.state !== 'running' || s.leases.length !== 1 || s.speculative || this.copyEnded.get(s) === s.leases[0]!.attempt) continue;
        const lease = s.leases[0]!;
        // Waiting in the worker's prefetch queue is not running slowly.
        if (lease.runningSince === undefined) continue;
        const elapsed = now - lease.runningSince;
        const expected = expect(s);
        const quietMs = now - Math.max(lease.runningSince, lease.progressAt ?? 0);
        // Its own progress (reported by the worker: frames, seconds encoded) puts its end nearer
        // than a copy started now would get: leave it.
        const straggling = late && elapsed > Math.max(1.5 * expected, 200) && !(s.progress > 0.05 && (elapsed * (1 - s.progress)) / s.progress < expected);
        const stalled = stallMs > 0 && quietPastStall(quietMs, stallMs, expected);
        if (!straggling && !stalled) continue;
        const fields = { job: s.jobId, subtask: s.id, runningMs: elapsed, expectedMs: Math.round(expected), progress: s.progress, worker: lease.worker };
        if (stalled && !stillStalled(lease)) {
          this.log.warn({ ...fields, quietMs }, `no progress from ${lease.worker} on it for ${Math.round(quietMs / 1000)} s: it gets a speculative copy`);
          this.markStalled(lease, quietMs);
        }
        const w = this.copyTarget(idle, s, lease, active.record.kind);
        if (!w) {
          if (stalled) this.awaitingCopy.add(s);
          continue;
        }
        if (straggling && !stalled) this.log.info({ ...fields, copyOn: w.name }, 'straggler: starting a speculative copy');
        budget--;
        this.copy(s, w, stalled);
      }
    }
  }

  /**
   * How many more speculative copies may run: all of them together stay within a tenth of the
   * running attempts (one at least), whichever rule started them. A stall of the whole cluster
   * (its shared storage hung, say) must not double its load.
   */
  private copyBudget(): number {
    let running = 0;
    let copies = 0;
    for (const w of this.registry.all()) running += w.leases.size;
    for (const s of this.subtasks.values()) if (s.state === 'running' && s.leases.length > 1) copies++;
    return Math.max(1, Math.floor(running * 0.1)) - copies;
  }

  /**
   * The stall rule while no copy can start now: running attempts their workers have said nothing
   * of for `stallMs` (or 4x their job's mean run) are marked stalled and wait for a free slot. By
   * the workers' running leases, not every subtask: this runs at every sweep of a busy cluster.
   */
  private markStalledAttempts(now: number, stallMs: number): void {
    for (const holder of this.registry.all()) {
      if (holder.leases.size === holder.waiting.size) continue;
      for (const [id, attempt] of [...holder.leases]) {
        const s = this.subtasks.get(id);
        const lease = s?.leases[0];
        if (!s || s.state !== 'running' || s.leases.length !== 1 || s.speculative || !lease || lease.attempt !== attempt || lease.runningSince === undefined || stillStalled(lease)) continue;
        const expected = this.expectedRunMs(s.jobId);
        const quietMs = now - Math.max(lease.runningSince, lease.progressAt ?? 0);
        if (!quietPastStall(quietMs, stallMs, expected)) continue;
        this.log.warn({ job: s.jobId, subtask: s.id, runningMs: now - lease.runningSince, worker: lease.worker, quietMs }, `no progress from ${lease.worker} on it for ${Math.round(quietMs / 1000)} s: it gets a speculative copy in the next free slot`);
        this.markStalled(lease, quietMs);
        this.awaitingCopy.add(s);
        // A slot may be free for it already (the waiting work cannot run there): look now.
        this.requestDispatch();
      }
    }
  }

  /** Marks an attempt stalled; its worker, on its first, becomes the scheduler's last choice. */
  private markStalled(lease: Lease, quietMs: number): void {
    lease.stalledAt = steadyNow();
    const holder = this.registry.get(lease.workerId);
    if (holder && !(holder.stalledSince > 0)) {
      holder.stalledSince = lease.stalledAt;
      // A worker stuck on what it runs will not start what waits in its prefetch queue.
      this.takeBackWaiting(holder, `${holder.name} has reported no progress on a subtask for ${Math.round(quietMs / 1000)} s`);
    }
  }

  /** A worker with a free slot for a copy of `s`: not the original's, nor one itself found stalled (the copy would wait there as the original does). */
  private copyTarget(workers: readonly WorkerSession[], s: SubtaskRecord, lease: Lease, kind: string): WorkerSession | undefined {
    return workers.find((x) => x.id !== lease.workerId && x.state === 'active' && !(x.stalledSince > 0) && x.leases.size < x.slots && canRun(x, s, kind));
  }

  private copy(s: SubtaskRecord, w: WorkerSession, stalled: boolean): void {
    this.awaitingCopy.delete(s);
    if (stalled) this.stalledCopies++;
    this.speculativeCopies++;
    this.assign(s, w, true);
  }

  /**
   * Copies of the attempts found stalled while work was waiting, before that work takes the free
   * slots: each holds up its job, while a waiting subtask has not started to. Those no longer
   * alone and stalled (reported on, finished, copied) are dropped.
   */
  private copyStalled(workers: readonly WorkerSession[]): void {
    let budget = this.copyBudget();
    for (const s of [...this.awaitingCopy]) {
      const lease = s.leases[0];
      const active = this.active.get(s.jobId);
      if (!active || s.state !== 'running' || s.leases.length !== 1 || s.speculative || !lease || !stillStalled(lease)) {
        this.awaitingCopy.delete(s);
        continue;
      }
      // Past the budget the loop goes on only to drop those no longer waiting (a job that ended).
      if (budget <= 0) continue;
      // One no free worker can take (an encoder only the stalled one has) waits; the others go on.
      const w = this.copyTarget(workers, s, lease, active.record.kind);
      if (!w) continue;
      budget--;
      this.log.info({ job: s.jobId, subtask: s.id, worker: lease.worker, copyOn: w.name }, 'a slot freed: copying a stalled attempt before any waiting subtask');
      this.copy(s, w, true);
    }
  }

  /**
   * Cancels a job, and resolves once that is on disk: a client told "cancelled" by a coordinator
   * killed a moment later found the job running again after its restart, even writing its outputs
   * into a shared folder. Should the store fail to write it (a full disk), the job is cancelled all
   * the same (the store retries) and this rejects with the store's error. Cancelling one already
   * cancelled answers with it, once stored (a client retrying after a lost answer, or after that
   * error, gets what it asked for); one that finished otherwise is FAILED_PRECONDITION.
   */
  async cancel(jobId: string): Promise<JobRecord> {
    const job = this.get(jobId);
    if (job.state !== 'cancelled') {
      if (TERMINAL_JOB_STATES.has(job.state)) throw failedPrecondition(`job ${jobId} has already finished (${job.state}); only a queued or running job can be cancelled`);
      this.finish(job, 'cancelled', 'cancelled by the client');
      this.requestDispatch();
    }
    await this.store.committed();
    return job;
  }

  /**
   * Removes the jobs that finished more than `retentionMs` ago: their outputs, record and events.
   * Returns how many. Asking for one afterwards is NOT_FOUND.
   */
  async removeExpired(retentionMs: number, now = Date.now()): Promise<number> {
    // One sweep at a time: a long one (tens of thousands of jobs, each a folder to remove) outlasts
    // the timer's interval, and two would remove, count and log the same jobs.
    if (this.expiring) return 0;
    this.expiring = true;
    try {
      return await this.removeExpiredNow(retentionMs, now);
    } finally {
      this.expiring = false;
    }
  }

  private expiring = false;

  private async removeExpiredNow(retentionMs: number, now: number): Promise<number> {
    let removed = 0;
    // Jobs with a shared output folder: swept once a folder at the end (listing the folder once
    // for each job made a sweep of 10,000 jobs sharing one folder take 63 s instead of 6).
    const shared: JobRecord[] = [];
    for (const job of [...this.jobs.values()]) {
      if (this.stopping) break;
      // Gone meanwhile (a job dropped while this sweep awaited the file system).
      if (this.jobs.get(job.id) !== job) continue;
      if (!TERMINAL_JOB_STATES.has(job.state) || job.finishedAt <= 0 || now - job.finishedAt < retentionMs) continue;
      // Out of the store first: should that fail (a full disk), the job stays, and its record is
      // tried again at the next sweep; its files go anyway, as they are what frees such a disk (the
      // sweep stopped at the first failure, and nothing was ever freed).
      let deleted = true;
      try {
        this.store.deleteJob(job.id);
      } catch (err) {
        deleted = false;
        this.log.warn({ err, job: job.id }, 'removing an expired job from the store failed: its files go now, its record at a later sweep');
      }
      if (deleted) this.drop(job);
      // What a worker cut off from the job wrote into its shared folder after the job ended.
      if (job.spec.shared_output_dir) shared.push(job);
      await this.spool.removeJob(job.id).catch((err: unknown) => this.log.warn({ err, job: job.id }, 'removing an expired job\'s files failed'));
      if (deleted) removed++;
    }
    if (shared.length > 0) await this.sweepSharedTemps(shared).catch((err: unknown) => this.log.warn({ err }, 'sweeping shared output folders failed'));
    if (removed > 0) {
      // Their pages go back to the file system, a few MiB at a time between other work.
      let pages = 0;
      for (let step = this.store.reclaimSpace(); step > 0 && !this.stopping; step = this.store.reclaimSpace()) {
        pages += step;
        await new Promise((resolve) => setImmediate(resolve));
      }
      // The file shrinks at a checkpoint, which an idle coordinator would not start.
      if (pages > 0 && !this.stopping) this.store.checkpoint();
      this.log.info({ jobs: removed, retentionMs, storeBytesFreed: pages * this.store.pageStats().pageSize }, 'removed finished jobs past their retention');
    }
    return removed;
  }

  /** Until when a plan waits for a worker of its kind after a restart (see workersBackAfterRestart). */
  private restartedUntil = 0;

  /**
   * Just after a restart the workers are still coming back (each reconnects within a few seconds):
   * a plan made before any worker of its kind is back would see a cluster of none, with none of
   * their features (a video would be cut for the oldest workers, losing its exact frame timing). It
   * waits for the first of them, for RESTART_WORKER_GRACE_MS at most.
   */
  private async workersBackAfterRestart(job: JobRecord): Promise<void> {
    while (steadyNow() < this.restartedUntil && this.registry.activeCount(job.kind).workers === 0 && !TERMINAL_JOB_STATES.has(job.state) && !this.stopping) {
      await sleep(100);
    }
  }

  /** Restores jobs from the store after a restart and resumes the unfinished ones. */
  resume(): number {
    const { jobs, subtasks } = this.store.loadAll();
    // A store with jobs in it: this is a restart, and workers were connected to the last run.
    if (jobs.length > 0) this.restartedUntil = steadyNow() + RESTART_WORKER_GRACE_MS;
    let resumed = 0;
    for (const job of jobs) {
      if (job.receiving && !TERMINAL_JOB_STATES.has(job.state)) {
        // Its upload was cut by the stop, and its client told that the submission failed.
        this.log.warn({ job: job.id }, 'dropping a job whose upload had not ended when the coordinator stopped');
        void this.removeDropped(job);
        continue;
      }
      // Ended while its upload ran, saved so before that was cleared there (see finish): kept as it ended.
      job.receiving = false;
      this.keep(job);
      // Where a cancelled job stopped lives in memory beside it: read back from its final event (it
      // said 0 after a restart, where its final event said how far it had come).
      if (job.state === 'cancelled') keepCancelledProgress(job, this.store.storedProgress(job.id).final ?? 0);
      if (TERMINAL_JOB_STATES.has(job.state)) continue;
      resumed++;
      this.resumedJobs.set(job.kind, (this.resumedJobs.get(job.kind) ?? 0) + 1);
      job.seq += RESUME_SEQ_GAP;
      // The event goes on from the progress its clients saw last, not from 0.
      resumeProgress(job, this.store.storedProgress(job.id).last);
      this.events.log(job, 'coordinator restarted: resuming');
      this.begin(job, subtasks.get(job.id) ?? []);
    }
    void this.sweepSharedTemps(jobs.filter((j) => TERMINAL_JOB_STATES.has(j.state) && j.spec.shared_output_dir)).catch((err: unknown) => this.log.warn({ err }, 'sweeping shared output folders failed'));
    void this.sweepFinishedSpools(jobs.filter((j) => TERMINAL_JOB_STATES.has(j.state))).catch((err: unknown) => this.log.warn({ err }, 'sweeping finished jobs\' spool folders failed'));
    return resumed;
  }

  /**
   * Removes the inputs and intermediates of jobs that had ended: the end is removed once it is on
   * disk (see finish), and a crash in between left them, for ever with --retention-hours 0. One
   * listing per job, a few at a time, in the background.
   */
  private async sweepFinishedSpools(finished: JobRecord[]): Promise<void> {
    const limit = pLimit(4);
    await Promise.all(finished.map((j) => limit(() => (this.stopping ? undefined : this.spool.removeIntermediates(j.id, { inputs: true })))));
  }

  /**
   * Removes what the attempts of `job` left in its shared output folder: the outputs its subtasks
   * were credited with and that were not published under their own names, by name (all a drop
   * folder allows), then whatever a listing of the folder finds (see removeSharedTemps).
   */
  private async removeSharedTempsOf(job: JobRecord, subtasks: readonly SubtaskRecord[] = this.active.get(job.id)?.subtasks ?? []): Promise<void> {
    const dir = job.spec.shared_output_dir;
    if (!dir) return;
    try {
      // Those in memory only: an ended job's from the store would be a synchronous read of every
      // subtask (a late result's own are removed by name where it is discarded).
      const known = subtasks.flatMap((s) => s.outputs.map((o) => o.path));
      await removeSharedTemps(dir, job.id, known);
    } catch (err) {
      this.unlistable(dir, err);
    }
  }

  /** Shared output folders the coordinator said it cannot clean up (once each). */
  private readonly unlistableDirs = new Set<string>();

  /** Warns, once per folder, that what attempts which never reported wrote into `dir` stays there. */
  private unlistable(dir: string, err: unknown): void {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || this.unlistableDirs.has(dir)) return;
    if (this.unlistableDirs.size >= 1000) this.unlistableDirs.clear();
    this.unlistableDirs.add(dir);
    this.log.warn({ err, dir }, "a shared output folder cannot be listed (a drop folder?): temporary files of attempts that never reported back stay there; those it was told of are removed");
  }

  /**
   * Removes what workers wrote into the shared output folders of these finished jobs after their
   * sweep at the end (a worker cut off, its result never come): one listing per folder. Only the
   * temporary files of these jobs: another coordinator's jobs may write to the same folder.
   */
  private async sweepSharedTemps(finished: JobRecord[]): Promise<void> {
    const byDir = new Map<string, Set<string>>();
    for (const j of finished) {
      const dir = j.spec.shared_output_dir;
      byDir.set(dir, (byDir.get(dir) ?? new Set()).add(j.id));
    }
    for (const [dir, ids] of byDir) {
      if (this.stopping) return;
      const names = await readdir(dir).catch((err: unknown) => {
        this.unlistable(dir, err);
        return [] as string[];
      });
      await Promise.all(names.filter((n) => ids.has(jobOfSharedTemp(n) ?? '')).map((n) => rm(path.join(dir, n), { force: true }).catch(() => undefined)));
    }
  }

  outputPath(jobId: string, name: string): OutputRecord {
    const job = this.get(jobId);
    const out = job.outputs.find((o) => o.name === name);
    if (!out) {
      if (!TERMINAL_JOB_STATES.has(job.state)) throw failedPrecondition(`job ${jobId} is ${job.state}: output ${name} is not published yet (an output event announces each one)`);
      throw notFound(`job ${jobId} has no output named ${name}`);
    }
    return out;
  }

  /** Spool path of a subtask input, if the attempt is current. */
  taskInput(subtaskId: string, attempt: number, workerId: string, name: string): SpoolFile {
    const s = this.leaseIsCurrent(subtaskId, attempt, workerId);
    if (!s) throw new TesseraError(status.FAILED_PRECONDITION, `subtask ${subtaskId} attempt ${attempt} is not leased to this worker`, { retryable: false });
    const f = s.inputs.find((i) => i.name === name);
    if (!f) throw notFound(`subtask ${subtaskId} has no input named ${name}`);
    return f;
  }

  /** Where an attempt's uploaded output is spooled (one folder per attempt, so copies never collide). */
  subtaskOutputPath(s: SubtaskRecord, attempt: number, name: string): string {
    return path.join(this.spool.subtaskDir(s.jobId, s.id), `a${attempt}`, safeOutputName(name));
  }

  /**
   * Stops dispatching and accepting results, and ends the workers' control streams so they
   * reconnect to the next coordinator. Running subtasks stay recorded as running and are re-run
   * after a restart (resume turns them back into pending).
   */
  close(): void {
    this.stopping = true;
    for (const cb of [...this.stopListeners]) cb();
    this.store.flushQuietly();
    for (const w of this.registry.all()) {
      try {
        w.call?.end();
      } catch {
        // already gone
      }
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const a of this.active.values()) a.controller.abort(new DOMException('coordinator shutting down', 'AbortError'));
  }
}

/**
 * What a phase's finished subtasks predict for each of its subtasks' run time (ms): their median
 * run time per unit of weight times the subtask's weight, when every subtask of the phase weighs
 * something; else their median run time.
 */
function expectedRunTimes(phase: readonly SubtaskRecord[], finished: readonly SubtaskRecord[]): (s: SubtaskRecord) => number {
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  if (phase.every((s) => s.weight > 0)) {
    const perWeight = median(finished.map((s) => s.durationMs / s.weight));
    return (s) => perWeight * s.weight;
  }
  const m = median(finished.map((s) => s.durationMs));
  return () => m;
}

/** The stall rule's test: silent for `stallMs`, or 4x the run expected of it where that is longer. */
function quietPastStall(quietMs: number, stallMs: number, expectedMs: number): boolean {
  return quietMs > Math.max(stallMs, expectedMs > 0 ? 4 * expectedMs : 0);
}

/** A lease found stalled (see `speculate`) whose worker has reported nothing on it since. */
function stillStalled(lease: Lease): boolean {
  return lease.stalledAt !== undefined && !((lease.progressAt ?? 0) > lease.stalledAt);
}

/** What none of `workers` has that `s` needs, in words. */
function lacking(connected: readonly WorkerSession[], s: SubtaskRecord, kind: string): string {
  if (connected.length === 0) return 'no worker is connected';
  const of = `none of the ${connected.length} connected worker(s)`;
  const runs = connected.filter((w) => w.kinds.has(kind));
  if (runs.length === 0) return `${of} runs ${kind} jobs`;
  const encoders = (s.requires?.encoders ?? []).filter((e) => !runs.some((w) => w.encoders.has(e)));
  if (encoders.length > 0) return `${of} has the encoder ${encoders.join(', ')} (its ffmpeg lacks it)`;
  const features = (s.requires?.features ?? []).filter((f) => !runs.some((w) => w.features.has(f)));
  if (features.length > 0) return `${of} has ${features.join(', ')} (an older Tessera version?)`;
  return `${of} has ${[...(s.requires?.encoders ?? []), ...(s.requires?.features ?? [])].join(' and ')} together`;
}

function canRun(w: WorkerSession, s: SubtaskRecord, kind: string): boolean {
  // A second opinion comes from another worker (another process: not the same one reconnected),
  // for SECOND_OPINION_WAIT_MS; then (none came: the others left, or are busy) any worker.
  if (s.blamedBy && (w.id === s.blamedBy.id || w.instanceId === s.blamedBy.instance) && steadyNow() - s.blamedBy.at < SECOND_OPINION_WAIT_MS) return false;
  return capable(w, s, kind);
}

/**
 * The shared output folder `dir` (a resolved path) opened, checked by its descriptor to be that
 * folder (/proc/self/fd); undefined where the system names no descriptors so (then by its path).
 * FAILED_PRECONDITION when the path leads elsewhere now.
 */
/** Linux's O_PATH (a descriptor that names a file without opening it for reading), which Node does not export. */
const O_PATH = 0o10000000;

async function openOutputDir(dir: string): Promise<FileHandle | undefined> {
  if (!existsSync('/proc/self/fd')) return undefined;
  // O_PATH: a folder the coordinator may write to but not list (a drop folder, -wx) opens too.
  const fh = await open(dir, O_PATH | fsConstants.O_DIRECTORY).catch((err: NodeJS.ErrnoException) => {
    const denied = err.code === 'EACCES' || err.code === 'EPERM';
    throw new TesseraError(denied ? status.PERMISSION_DENIED : status.FAILED_PRECONDITION, `the shared output folder ${dir} cannot be opened (${err.code ?? err.message}): not written`, { retryable: false });
  });
  const at = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => undefined);
  if (at !== dir) {
    await fh.close();
    throw new TesseraError(status.FAILED_PRECONDITION, `the shared output folder ${dir} changed (a folder on its path replaced, by a symbolic link?): not written`, { retryable: false });
  }
  return fh;
}

/** Whether `w` has what `s` needs: its kind, and the encoders and features its plan requires. */
function capable(w: WorkerSession, s: SubtaskRecord, kind: string): boolean {
  if (!w.kinds.has(kind)) return false;
  const enc = s.requires?.encoders;
  if (enc) for (const e of enc) if (!w.encoders.has(e)) return false;
  const features = s.requires?.features;
  if (features) for (const f of features) if (!w.features.has(f)) return false;
  return true;
}

function toOutcome(s: SubtaskRecord): SubtaskOutcome {
  return {
    index: s.index,
    phase: s.phase,
    label: s.label,
    plan: s.plan,
    items: s.items,
    ok: s.state === 'succeeded',
    outputs: s.outputs,
    itemErrors: s.itemErrors,
    ...(s.state === 'succeeded' ? {} : { error: s.error ?? { input: '', code: 'UNKNOWN', message: 'did not finish' } }),
    result: s.result,
    worker: s.worker,
  };
}

/**
 * Each failure once: the same message about the same input, or about no input where one names an
 * input (a merger reporting a subtask's failure that the job already holds, input named).
 */
function dedupeErrors(errors: ItemFailure[]): ItemFailure[] {
  const seen = new Set<string>();
  const named = new Set(errors.filter((e) => e.input).map((e) => e.message));
  return errors.filter((e) => {
    if (!e.input && named.has(e.message)) return false;
    const key = `${e.input}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const CONTENT_TYPES: Record<string, string> = {
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', avif: 'image/avif', tif: 'image/tiff', tiff: 'image/tiff', gif: 'image/gif',
  mp4: 'video/mp4', mkv: 'video/x-matroska', webm: 'video/webm', mov: 'video/quicktime',
  m4a: 'audio/mp4', aac: 'audio/aac', mp3: 'audio/mpeg', opus: 'audio/ogg', ogg: 'audio/ogg', flac: 'audio/flac', wav: 'audio/wav',
  json: 'application/json', vtt: 'text/vtt', dzi: 'application/xml', zip: 'application/zip',
};

function contentTypeOf(name: string): string {
  return CONTENT_TYPES[name.slice(name.lastIndexOf('.') + 1).toLowerCase()] ?? 'application/octet-stream';
}

/** Removes `file` if it is still the file `was` describes (device and inode). */
async function removeIfSame(file: string, was: Pick<Stats, 'dev' | 'ino'>): Promise<void> {
  const now = await lstat(file).catch(() => undefined);
  if (now && now.dev === was.dev && now.ino === was.ino) await rm(file, { force: true });
}

/** What an attempt ran: the worker's own figure, else from when a slot took it (steady clock; 0 if it never left the prefetch queue). */
function attemptRunMs(lease: Lease, runMs?: number): number {
  if (runMs !== undefined && runMs > 0) return runMs;
  return lease.runningSince === undefined ? 0 : steadyNow() - lease.runningSince;
}

/**
 * An error that tells of the coordinator's own trouble that passes by itself or by an operator
 * seeing to it (its disk or quota full, read-only or failing, no descriptors left), not of the job. An ffmpeg it cannot
 * start is not: that needs an install, and the job fails.
 */
function isCoordinatorTrouble(err: unknown): boolean {
  // Its disk full, read-only (remounted so after an I/O error) or failing.
  if (isOwnTroubleToWaitOut(err)) return true;
  // The store or spool that cannot write (limits are not retryable).
  return err instanceof TesseraError && err.code === status.RESOURCE_EXHAUSTED && err.retryable && !err.input;
}

/**
 * Counts an attempt's result for its worker and job ({@link WorkerSession.jobOutcomes}): an entry
 * idle for FAILURE_WINDOW_MS starts over, and idle ones go once a worker has run many jobs.
 */
function noteOutcome(w: WorkerSession, jobId: string, ok: boolean): void {
  const now = steadyNow();
  let e = w.jobOutcomes.get(jobId);
  if (!e || now - e.at >= FAILURE_WINDOW_MS) {
    if (w.jobOutcomes.size >= 256) for (const [id, o] of w.jobOutcomes) if (now - o.at >= FAILURE_WINDOW_MS) w.jobOutcomes.delete(id);
    e = { ok: 0, failed: 0, at: now };
    w.jobOutcomes.set(jobId, e);
  }
  if (ok) e.ok++;
  else e.failed++;
  e.at = now;
}

/** Longest failed job's message made of its errors (the errors themselves are all in `Job.errors`). */
const FAILURE_SUMMARY_BYTES = 16 * 1024;

/**
 * A failed job's message: its errors joined, as far as {@link FAILURE_SUMMARY_BYTES}, then how many
 * more there are. Every one joined made the message as long as the list (9,000 refused inputs: 2.8 MB
 * beside the list's own page), and the answer passed a default client's 4 MiB (review K25).
 */
function failureSummary(errors: readonly string[]): string {
  let out = '';
  for (let k = 0; k < errors.length; k++) {
    const next = out ? `${out}; ${errors[k]}` : errors[k]!;
    if (Buffer.byteLength(next) > FAILURE_SUMMARY_BYTES && k > 0) return `${out}; and ${errors.length - k} more error(s) (see the job's errors)`;
    out = next;
  }
  return out;
}

function requestKey(owner: string, requestId: string): string {
  return `${owner}\n${requestId}`;
}

/**
 * Runs a kind's check of its params, naming the fields of a refusal as `video.codec`, as image's
 * name theirs (`image.fit`): video, audio and thumbnails said a bare `codec` or `bitrate`, which a
 * form-driven client cannot tell apart from `audio_bitrate` or another kind's (reviews VID5, CLI5).
 */
function namingKindFields<T>(kindName: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof TesseraError) || err.code !== status.INVALID_ARGUMENT) throw err;
    const fields = kindFieldNames(kindName);
    // A field, or a field's field (trim.start), or several (crf and bitrate, loudness/true_peak).
    const head = /^([a-z_]+(?:\.[a-z_]+)?(?:(?: and |, | or |\/)[a-z_]+(?:\.[a-z_]+)?)*): /.exec(err.message);
    if (!head?.[1]!.split(/ and |, | or |\//).every((f) => fields.has(f.split('.')[0]!))) throw err;
    const named = head[1]!.replace(/[a-z_]+(?:\.[a-z_]+)?/g, (w) => (fields.has(w.split('.')[0]!) ? `${kindName}.${w}` : w));
    throw new TesseraError(err.code, `${named}: ${err.message.slice(head[0].length)}`, { retryable: err.retryable, ...(err.input ? { input: err.input } : {}) });
  }
}

const fieldNames = new Map<string, ReadonlySet<string>>();

/** The fields of a kind's params message (`VideoParams` for video), from the protos. */
function kindFieldNames(kindName: string): ReadonlySet<string> {
  let names = fieldNames.get(kindName);
  if (!names) {
    const type = loadTesseraRoot().lookupType('tessera.v1.JobSpec').fields[kindName]?.resolvedType;
    names = new Set(type && 'fields' in type ? Object.keys((type as { fields: Record<string, unknown> }).fields) : []);
    fieldNames.set(kindName, names);
  }
  return names;
}

/** How many inputs `job` was submitted with: those it holds and those refused at submission (named by its errors). */
function submittedInputs(job: JobRecord): number {
  // The count the client announced, where it did; else what the job holds and its errors name.
  if (job.spec.input_count) return job.spec.input_count;
  const held = new Set(job.inputs.map((i) => i.name));
  return held.size + new Set(job.errors.map((e) => e.input).filter((name) => name && !held.has(name))).size;
}
