/** JobService: the client-facing gRPC API. */
import { constants } from 'node:fs';
import { open, readFile, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { status } from '../shared/grpc-status.js';
import { TesseraError, invalidArgument, notFound, statusFromName } from '../shared/errors.js';
import { clientStream, serverStream, unary, type ServerStreamContext } from '../shared/grpc-handlers.js';
import type { Logger } from '../shared/logger.js';
import { NameSet, safeFileName } from '../shared/names.js';
import type { JobServiceHandlers } from '../shared/proto/generated/tessera/v1/JobService.js';
import type { JobEvent } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import type { OutputChunk } from '../shared/proto/generated/tessera/v1/OutputChunk.js';
import type { SubmitJobRequest__Output } from '../shared/proto/generated/tessera/v1/SubmitJobRequest.js';
import { asWire, passEncoded, readEncodedChunks } from '../shared/encoded-chunks.js';
import type { ItemFailure, SpoolFile } from '../shared/job-kind.js';
import pLimit from 'p-limit';
import { requestIdProblem, type JobManager, type ReceivingJob, type UploadStop } from './job-manager.js';
import { TERMINAL_JOB_STATES, jobStateFromEnum, toJobMessage, toJobSummary, type JobRecord, type OutputRecord, type SubtaskRecord } from './model.js';
import { listPage } from './job-list.js';
import { jobListsPage, MAX_ANSWER_BYTES, MAX_SUBTASK_PAGE_BYTES, subtaskPage, subtasksIfTheyFit } from './subtask-pages.js';
import type { Spool } from './spool.js';
import type { Caller } from './auth.js';
import { peerHost } from './auth-rate-limit.js';
import { headBytes, inputChecker } from './input-check.js';
import { coordinatorKinds } from './kinds/index.js';
import { SHARED_LOOKUPS, type SharedRoots } from './shared-inputs.js';
import type { Limits } from '../shared/limits.js';
import { SMALL_MESSAGE_BYTES } from './stream-buffers.js';
import { compileEncoder, withFallback, type Encoder } from '../shared/proto-encoder.js';
import { fieldNumber, loadTesseraProto, loadTesseraRoot } from '../shared/proto.js';
import { INLINE_OUTPUT_MAX_BYTES, SUBTASK_PAGE_HEADER, envInt } from '../shared/config.js';
import { sha256File } from '../shared/streams.js';
import { steadyNow } from '../shared/clock.js';

export type JobServiceLimits = Limits;

/** Who is calling, and whether they may touch a job (coordinator/auth.ts). */
export interface JobAccess {
  /** Whether clients need no token (then every client is the same identity). */
  readonly clientsOpen: boolean;
  identify(md: grpc.Metadata): Caller;
  assertOwner(caller: Caller, owner: string, jobId: string): void;
}

/**
 * JobService as the coordinator serves it: the events WatchJob streams, two or more per subtask,
 * are encoded by a compiled encoder (shared/proto-encoder.ts) instead of protobufjs's generic one,
 * a quarter of the CPU for the same bytes on the wire; downloads send their bytes already encoded
 * (shared/encoded-chunks.ts).
 */
export function jobServiceDefinition(): grpc.ServiceDefinition {
  const service = loadTesseraProto().proto.tessera.v1.JobService.service;
  // The compiled encoder refuses a value that does not fit its field, where protobufjs converts it
  // (a negative duration from a clock stepped back, a worker's out-of-range number): such an event
  // is encoded as before rather than fail the watch, and every replay of it, for good.
  const encode = withFallback(compileEncoder(loadTesseraRoot(), 'tessera.v1.JobEvent'), service.WatchJob.responseSerialize);
  return {
    ...service,
    WatchJob: { ...service.WatchJob, responseSerialize: encode },
    DownloadOutput: { ...service.DownloadOutput, responseSerialize: passEncoded(service.DownloadOutput.responseSerialize) },
  };
}

export function jobServiceHandlers(jobs: JobManager, spool: Spool, log: Logger, limits: JobServiceLimits, access: JobAccess, shared: SharedRoots): JobServiceHandlers {
  jobs.streamBuffers.limit = limits.streamBufferBytes;
  /**
   * A job as answered: its subtasks' first page (or the one asked for), unless told to leave them
   * out. A limit of 0 (or none) asks for all of them, as a client from before pages does; `ifTheyFit`
   * (SubmitJob's answer without a page asked), all where they fit in a page's bytes, else the first page.
   */
  const jobMessage = (job: JobRecord, o: { subtasks?: boolean; limit?: number; token?: string; ifTheyFit?: boolean; listToken?: string } = {}): ReturnType<typeof toJobMessage> => {
    const read = (offset: number, limit: number): SubtaskRecord[] => jobs.subtasksPage(job.id, offset, limit);
    // The lists as far as they fit in 2 MiB; a subtask page in what they leave of the answer's 3.5 MiB.
    const lists = jobListsPage(job, o.listToken ?? '');
    const room = Math.max(64 * 1024, Math.min(MAX_SUBTASK_PAGE_BYTES, MAX_ANSWER_BYTES - lists.bytes - Buffer.byteLength(job.message)));
    const page = o.subtasks === false ? undefined : o.ifTheyFit && !o.limit ? subtasksIfTheyFit(job.id, read, room) : subtaskPage(job.id, read, o.limit ?? 0, o.token ?? '', room);
    return toJobMessage(job, page, jobs.liveSubtasksOf(job.id), lists);
  };
  /** The job, if the caller may read, watch, cancel or download it. */
  const owned = (md: grpc.Metadata, jobId: string): JobRecord => {
    if (!jobId) throw invalidArgument('job_id is empty: name the job (its id, as SubmitJob or ListJobs returned it)');
    const job = jobs.get(jobId);
    access.assertOwner(access.identify(md), job.owner, jobId);
    return job;
  };
  /**
   * WatchJob and DownloadOutput calls open, per client: each holds memory on the coordinator (about
   * 18 KiB), so one client cannot open them without end. A client is its token's identity; where
   * clients need no token, its address (every client there is the same identity).
   */
  const streams = new Map<string, number>();
  const holdStream = <T>(ctx: ServerStreamContext, open: () => AsyncIterable<T>): AsyncIterable<T> => {
    const caller = access.identify(ctx.metadata);
    const key = access.clientsOpen ? `address ${peerHost(ctx.peer)}` : `client ${caller.id}`;
    const held = streams.get(key) ?? 0;
    if (held >= limits.maxStreamsPerClient) {
      throw new TesseraError(status.RESOURCE_EXHAUSTED, `${held} WatchJob and DownloadOutput calls open from this client: over the limit --max-streams-per-client=${limits.maxStreamsPerClient}; end some first`);
    }
    const it = open();
    streams.set(key, held + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const n = (streams.get(key) ?? 1) - 1;
      if (n > 0) streams.set(key, n);
      else streams.delete(key);
    };
    // Counted until its last messages are written out, or the call ends.
    ctx.onDone(release);
    return it;
  };
  /**
   * Submissions with a request_id still receiving their inputs, by owner and id. A retry of one
   * (its client lost the connection, perhaps without the coordinator noticing yet) takes its place.
   */
  const receivingRequests = new Map<string, Attempt>();
  /** Submissions still receiving their inputs, per owner: they count towards the job limit too. */
  const receiving = new Map<string, number>();
  const count = (owner: string, by: number): void => {
    const n = (receiving.get(owner) ?? 0) + by;
    if (n > 0) receiving.set(owner, n);
    else receiving.delete(owner);
  };
  /** The submission no longer counts among its owner's uploads (it made its job, was superseded, or ended). */
  const uncount = (attempt: Attempt, owner: string): void => {
    if (attempt.counted) count(owner, -1);
    attempt.counted = false;
  };
  /**
   * Every submission still receiving its inputs. When the coordinator shuts down they end at once
   * with UNAVAILABLE, which clients resend (to the next coordinator), rather than being cut off
   * as CANCELLED when the grace period runs out.
   */
  const uploading = new Set<(reason: Error) => void>();
  let shuttingDown = false;
  jobs.onStop(() => {
    shuttingDown = true;
    const reason = new TesseraError(status.UNAVAILABLE, 'the coordinator is shutting down: send the submission again (to its next run); nothing of this one was kept');
    for (const stop of uploading) stop(reason);
  });

  /** One submission: the spec, then its inputs (uploaded or by reference), checked; then the job is accepted. */
  async function submit(owner: string, messages: AsyncIterable<SubmitJobRequest__Output>, signal: AbortSignal, subtaskLimit: number, admin = true): Promise<ReturnType<typeof toJobMessage>> {
    if (shuttingDown) throw new TesseraError(status.UNAVAILABLE, 'the coordinator is shutting down: send the submission again (to its next run)');
    const iterator = idleLimited(messages[Symbol.asyncIterator](), uploadIdleMs(), (m) => (m.msg === 'data' ? (m.data?.length ?? 0) : Infinity));
    const first = await iterator.next();
    if (first.done || first.value.msg !== 'spec' || !first.value.spec) throw invalidArgument('the first SubmitJob message must be the job spec');
    const asked = first.value.spec.priority ?? 0;
    if (!admin && asked > limits.maxClientPriority) {
      throw new TesseraError(status.PERMISSION_DENIED, `spec.priority ${asked} is over the highest a client token may ask on this coordinator (--max-client-priority=${limits.maxClientPriority}); an admin token may ask more`, { retryable: false });
    }
    const job = jobs.newJob(first.value.spec, owner);
    const requestId = job.spec.request_id;
    const requestKey = requestId ? `${owner}\n${requestId}` : undefined;
    const cancelled = (): void => attempt.stop(new TesseraError(status.CANCELLED, 'the client cancelled the submission; nothing of it was kept'));
    // The output folder as written (folded): two attempts in flight are the same client's retry.
    let settled = (): void => undefined;
    const done = new Promise<void>((resolve) => (settled = resolve));
    const attempt: Attempt = { spec: canonicalJson(specToCompare(job.spec, job.spec.shared_output_dir && path.resolve(job.spec.shared_output_dir))), digest: job.spec.inputs_digest ?? '', superseded: false, counted: false, stop: (reason: Error) => (messages as { destroy?: (e: Error) => void }).destroy?.(reason), done };
    // Everything up to the first await is one step: of two attempts with the same id, the one that
    // arrived last is the one that stays.
    let replacing: Attempt | undefined;
    if (requestId && requestKey) {
      const earlier = jobs.findByRequest(owner, requestId);
      if (earlier) {
        // A retry of a submission that was accepted (its answer lost): answer with its job, read
        // none of the inputs again. Before the job limit, which that very job may fill.
        // Its output folder is stored resolved: this one's is resolved too (not made), so that another
        // spelling of the same folder is the same spec and another folder is not.
        if (canonicalJson(specToCompare(earlier.spec)) !== canonicalJson(specToCompare(job.spec, await comparableOutputDir(job.spec.shared_output_dir)))) {
          throw new TesseraError(status.ALREADY_EXISTS, `spec.request_id ${requestId}: already used for job ${earlier.id}, whose spec differs; use a new id for a new job`);
        }
        if (differ(earlier.spec.inputs_digest ?? '', job.spec.inputs_digest ?? '')) {
          throw new TesseraError(status.ALREADY_EXISTS, `spec.request_id ${requestId}: already used for job ${earlier.id}, made of other inputs (their names, sizes or modification times differ: spec.inputs_digest); use a new id for a new job`);
        }
        // Not on disk yet: answered once it is, or failed as its submission fails (a full disk).
        await jobs.whenCommitted(earlier);
        log.info({ job: earlier.id, requestId, owner }, 'submission repeated: answered with the job it made');
        return jobMessage(earlier, { limit: subtaskLimit, ifTheyFit: true });
      }
      // Not a repeat of a job accepted (by this version or an earlier one): the rules added since hold.
      jobs.refuseNew(job);
      const before = receivingRequests.get(requestKey);
      // Another submission, not a repeat of the one still uploading: refused, and that one goes on.
      if (before && (before.spec !== attempt.spec || differ(before.digest, attempt.digest))) {
        throw new TesseraError(status.ALREADY_EXISTS, `spec.request_id ${requestId}: already used by a submission still uploading, whose spec or inputs differ; use a new id for a new job`);
      }
      if (before) {
        // The attempt this one repeats (its client gone, perhaps unnoticed yet) no longer counts.
        before.superseded = true;
        uncount(before, owner);
        before.stop(superseded(job));
        replacing = before;
      }
      receivingRequests.set(requestKey, attempt);
    } else {
      jobs.refuseNew(job);
    }
    // A repeat takes the place of the submission it replaces: also of the job that one started
    // while its upload ran, which is being dropped (not at once: it may have files to remove).
    try {
      const unfinished = jobs.unfinishedCount(owner) + (receiving.get(owner) ?? 0) - (replacing?.early && jobs.countsAsUnfinished(replacing.early) ? 1 : 0);
      if (unfinished >= limits.maxJobsPerClient) throw new TesseraError(status.RESOURCE_EXHAUSTED, `${unfinished} unfinished jobs (submissions still uploading included): over the limit --max-jobs-per-client=${limits.maxJobsPerClient}; wait for some to finish`);
      count(owner, 1);
      attempt.counted = true;
      uploading.add(attempt.stop);
      // A client gone between two inputs would leave the stream waiting for the next one forever.
      signal.addEventListener('abort', cancelled, { once: true });
      // Before any input arrives: a folder the outputs cannot go to fails the submission at once.
      if (job.spec.shared_output_dir) job.spec.shared_output_dir = await shared.resolveOutputDir(job.spec.shared_output_dir);
      return await receiveAndAccept(job, iterator, signal, attempt, subtaskLimit);
    } finally {
      signal.removeEventListener('abort', cancelled);
      uploading.delete(attempt.stop);
      uncount(attempt, owner);
      if (requestKey && receivingRequests.get(requestKey) === attempt) receivingRequests.delete(requestKey);
      settled();
    }
  }

  async function receiveAndAccept(job: JobRecord, iterator: AsyncIterator<SubmitJobRequest__Output>, signal: AbortSignal, attempt: Attempt, subtaskLimit: number): Promise<ReturnType<typeof toJobMessage>> {
    const owner = job.owner;
    // Formats by content and header limits, before anything decodes an input: a refused input
    // fails as its own item. Each is checked as soon as it has arrived.
    // An image job's results are checked too: a tiny photo resized to 10^12 px is refused here.
    const kind = coordinatorKinds.get(job.kind);
    const prefetch = kind?.prefetch && ((file: SpoolFile, s: AbortSignal): void => kind.prefetch!(file, s));
    // The kind's own validation (of the spec newJob has checked): what the checks refuse from each input's header.
    const validated = jobs.validateSpec(job.spec).params;
    const params = CHECKED_PARAMS.has(job.kind) ? (validated as Parameters<typeof inputChecker>[3]) : undefined;
    // Aborted where the submission fails too, not only where its client cancels: a refused
    // submission stops reading and hashing the shared files it named, which held its answer (and
    // a file-system thread) for as long as a file of gigabytes takes to read (review G).
    const failed = new AbortController();
    const working = AbortSignal.any([signal, failed.signal]);
    const checks = inputChecker(job.kind, limits, working, params, prefetch);
    // A kind that can start on the first inputs while the rest upload is accepted as soon as one has
    // passed its check.
    // Cancelled (or failed) while its upload runs: the upload stops, and the client is answered with the job.
    let ended = false;
    const endUpload = (): void => {
      ended = true;
      attempt.stop(new TesseraError(status.CANCELLED, `job ${job.id} ended while its inputs were uploading`));
    };
    const early = kind?.plansWhileReceiving?.(validated, job.spec) ? receiveEarly(job, checks, attempt, endUpload) : undefined;
    try {
      const inputs = await receiveInputs(job, iterator, spool, shared, limits, working, checks.add, early?.feed);
      // A client that goes away between two inputs may end its stream as one that sent its last:
      // a grpc-js client cancelling a call ends its side of the stream, then resets it, and the
      // reset arrives an event-loop turn or two later when that client is idle (measured), later
      // when it is busy. Where the spec announced its inputs (spec.input_count, as Tessera's
      // client does), receiveInputs told by the count. Otherwise such a submission is refused if
      // the reset comes within a few turns; after that it cannot be told from one that ended (a
      // client that dies resets the connection at once, and one gone mid-input never sent that
      // input's end).
      for (let turn = 0; turn < CANCEL_TURNS && !job.spec.input_count && !signal.aborted; turn++) await new Promise(setImmediate);
      if (signal.aborted) throw new TesseraError(status.CANCELLED, `the client cancelled the submission after ${inputs.length} input(s); nothing of it was kept`);
      const started = await early?.started();
      if (started) {
        // A retry took this submission's place while its last inputs were being checked: the retry makes the job.
        if (attempt.superseded) throw superseded(job);
        await started.end();
      } else {
        const checked = early ? early.refused() : await checks.result(inputs);
        if (checked.accepted.length === 0 && checked.errors.length > 0) {
          const first = checked.errors[0]!;
          throw new TesseraError(statusFromName(first.code), checked.errors.map((e) => e.message).join('; '), { input: first.input, retryable: false });
        }
        job.inputs = checked.accepted;
        job.errors.push(...checked.errors);
        if (job.inputs.length === 0 && job.kind !== 'passthrough') throw invalidArgument('a job needs at least one input file');
        if (attempt.superseded) throw superseded(job);
        // From here it counts among its owner's unfinished jobs, no longer as a submission uploading.
        uncount(attempt, owner);
        // Written to the store before the client hears of it; a store that cannot take it fails the submission.
        await jobs.accept(job);
      }
    } catch (err) {
      failed.abort(err);
      await checks.stop();
      if (ended) {
        // The job stays as it ended. What arrived since is not kept: the inputs fed meanwhile were
        // removed as they came (ReceivingJob.add); the rest of the folder goes now.
        const stopped = await early?.started().catch(() => undefined);
        await spool.removeIntermediates(job.id, { inputs: true }).catch(() => undefined);
        // Answered once the job's end is on disk, as an accepted job is once it is.
        await stopped?.end();
        log.info({ job: job.id, state: job.state, inputs: job.inputs.length, owner }, 'upload stopped: the job ended while it ran');
        return jobMessage(job, { limit: subtaskLimit, ifTheyFit: true });
      }
      await early?.discard(err);
      await spool.removeJob(job.id);
      throw err;
    }
    log.info({ job: job.id, kind: job.kind, inputs: job.inputs.length, owner, early: Boolean(early) }, 'job accepted');
    return jobMessage(job, { limit: subtaskLimit, ifTheyFit: true });
  }

  /**
   * Feeds a submission's inputs, in submission order as their checks pass, to its job: accepted
   * (JobManager.acceptReceiving) with the first to pass, and given the others as they come.
   */
  function receiveEarly(job: JobRecord, checks: ReturnType<typeof inputChecker>, attempt: Attempt, endUpload: UploadStop) {
    const refused: ItemFailure[] = [];
    let started: ReceivingJob | undefined;
    let failed = false;
    let feeding: Promise<void> = Promise.resolve();
    return {
      /** Called for each input in submission order, with the file once it is in (or looked up). */
      feed(arrival: Promise<SpoolFile>): void {
        feeding = feeding.then(async () => {
          const file = await arrival;
          const failure = await checks.verdict(file);
          if (failed || attempt.superseded) return;
          if (started) {
            started.add(failure ? [] : [file], failure ? [failure] : []);
          } else if (failure) {
            refused.push(failure);
          } else {
            job.inputs = [file];
            job.errors.push(...refused);
            uncount(attempt, job.owner);
            attempt.early = job;
            started = await jobs.acceptReceiving(job, endUpload);
          }
        });
        // A failure here (the store cannot take the job) ends the upload with it.
        feeding.catch((err: unknown) => attempt.stop(err instanceof Error ? err : new Error(String(err))));
      },
      /** Once every input fed has been handed on: the job, if one passed. */
      async started(): Promise<ReceivingJob | undefined> {
        await feeding;
        return started;
      },
      /** No input passed: their failures. */
      refused: () => ({ accepted: [] as SpoolFile[], errors: refused }),
      /** The submission failed: nothing more is fed, and the job (if it started) is dropped. */
      async discard(reason: unknown): Promise<void> {
        failed = true;
        await feeding.catch(() => undefined);
        await started?.discard(reason);
      },
    };
  }

  return {
    SubmitJob: clientStream<SubmitJobRequest__Output, ReturnType<typeof toJobMessage>>(log, async (messages, ctx) => {
      // The answer's subtasks: a page where the client asks for pages, else all of them where they
      // fit in a page's bytes (as before pages), or the first page.
      const caller = access.identify(ctx.metadata);
      try {
        return await submit(caller.id, messages, ctx.signal, subtaskLimitOf(ctx.metadata), caller.admin);
      } catch (err) {
        logRefusal(log, err, { peer: ctx.peer, owner: caller.id, signal: ctx.signal });
        throw err;
      }
    }),

    WatchJob: serverStream(log, (req: { job_id: string; after_seq: string; batch: boolean; inline_outputs_up_to: number; types: string[] }, ctx) => {
      owned(ctx.metadata, req.job_id);
      const unknown = req.types.find((t) => !EVENT_TYPES.has(t));
      if (unknown !== undefined) throw invalidArgument(`types: unknown event type "${unknown}" (one of ${[...EVENT_TYPES].join(', ')})`);
      return holdStream(ctx, () => {
        let events = watch(jobs, req.job_id, Number(req.after_seq || 0), ctx.signal, req.types.length > 0 ? new Set(req.types) : undefined, String(req.after_seq || 0));
        if (req.inline_outputs_up_to > 0) events = withOutputData(events, jobs, req.job_id, Math.min(req.inline_outputs_up_to, INLINE_OUTPUT_MAX_BYTES), ctx);
        return req.batch ? batched(events) : unbatched(events);
      });
    }, { headersFirst: true }),

    GetJob: unary(log, async (req: { job_id: string; include_subtasks: boolean; subtask_limit: number; subtask_page_token: string; list_page_token: string }, ctx) => {
      const job = owned(ctx.metadata, req.job_id);
      // A page of subtasks asked for without them: answered with none, it read as the end of the list.
      if (req.subtask_page_token && !req.include_subtasks) throw invalidArgument('subtask_page_token: given without include_subtasks; set include_subtasks to read the next page');
      return jobMessage(job, { subtasks: req.include_subtasks, limit: req.subtask_limit, token: req.subtask_page_token, listToken: req.list_page_token });
    }),

    ListJobs: unary(log, async (req: { limit: number; state: string; page_token: string; request_id: string }, ctx) => {
      const caller = access.identify(ctx.metadata);
      const wanted = req.state ? jobStateFromEnum(req.state) : undefined;
      if (req.state && !wanted) throw invalidArgument(`state: unknown job state "${req.state}" (one of queued, running, succeeded, partially_succeeded, failed, cancelled)`);
      if (req.request_id) {
        // One no submission could have used is a mistake of the caller's, not a job not made yet.
        const refused = requestIdProblem(req.request_id);
        if (refused) throw invalidArgument(`request_id: ${refused}`);
        // The job a submission made, for a client that stopped waiting for its answer: one still
        // being received settles first (made, or dropped as cut short), as a repeat would see it.
        await receivingRequests.get(`${caller.id}\n${req.request_id}`)?.done;
        const made = jobs.findByRequest(caller.id, req.request_id);
        // Not listed before it is on disk; one the disk refused is gone with its submission.
        const kept = made !== undefined && (await jobs.whenCommitted(made).then(() => true, () => false));
        return { jobs: kept && (!wanted || made.state === wanted) ? [toJobSummary(made)] : [], next_page_token: '' };
      }
      return listPage((before) => jobs.newestFirst(before), (j) => caller.admin || j.owner === caller.id, { limit: req.limit, state: req.state, pageToken: req.page_token }, wanted);
    }),

    CancelJob: unary(log, async (req: { job_id: string; subtask_limit: number }, ctx) => {
      owned(ctx.metadata, req.job_id);
      const job = await jobs.cancel(req.job_id);
      // No limit asked (a stub's default): all where they fit, as SubmitJob's answer (all of a job of
      // 70,000 passed a default client's 4 MiB, the job cancelled all the same; review API).
      return jobMessage(job, { limit: req.subtask_limit ?? 0, ifTheyFit: true });
    }),

    DownloadOutput: serverStream(log, (req: { job_id: string; name: string; offset: string }, ctx) => {
      owned(ctx.metadata, req.job_id);
      if (!req.name) throw invalidArgument("name is empty: name the output (an OutputInfo's name, as GetJob or an output event gives it)");
      return holdStream(ctx, () => {
        jobs.outputDownloads++;
        return download(jobs, req, ctx);
      });
    }),

    ListWorkers: unary(log, async (_req: unknown, ctx) => {
      const workers = jobs.registry.all().map((w) => jobs.registry.toInfo(w));
      if (access.identify(ctx.metadata).admin) return { workers };
      // A client sees what it can run where, not where the machines are or which library versions
      // (with their known flaws) they run: addresses and versions are for admin tokens. Nor the
      // session ids: a worker's side calls name their session by it.
      return { workers: workers.map((w) => ({ ...w, id: '', address: '', capabilities: w.capabilities && { ...w.capabilities, ffmpeg_version: '', sharp_version: '', libvips_version: '' } })) };
    }),
  };
}

/**
 * How long a submission may go without progress before the coordinator gives up on it: a client
 * that went quiet, or trickles a byte now and then (hung, or holding the call open on purpose),
 * would otherwise keep its stream, its partial file and one of its --max-jobs-per-client places for
 * as long as its own deadline says. Progress is a message that is not data (the spec, an input's
 * header or end) or UPLOAD_PROGRESS_BYTES of data. TESSERA_UPLOAD_IDLE_MS sets it (tests).
 */
const uploadIdleMs = (): number => envInt('TESSERA_UPLOAD_IDLE_MS', 120_000) || 120_000;
/** Data that counts as progress of an upload: 64 KiB (0.5 KiB/s over the 2 minutes). */
const UPLOAD_PROGRESS_BYTES = 64 * 1024;

/**
 * `it`, whose `next()` fails with DEADLINE_EXCEEDED once `ms` pass without progress: a message
 * `weigh` gives Infinity, or messages whose weights add up to `enough`.
 */
function idleLimited<T>(it: AsyncIterator<T>, ms: number, weigh: (m: T) => number = () => Infinity, enough = UPLOAD_PROGRESS_BYTES): AsyncIterator<T> {
  // Time spent waiting for the client since its last progress: the coordinator's own time between
  // two reads (a slow disk) is not the client's.
  let waited = 0;
  let since = 0;
  return {
    next: () =>
      new Promise<IteratorResult<T>>((resolve, reject) => {
        const asked = steadyNow();
        const timer = setTimeout(
          () => reject(new TesseraError(status.DEADLINE_EXCEEDED, `the submission ${since > 0 ? `sent only ${since} byte${since === 1 ? '' : 's'}` : 'sent nothing'} in ${ms / 1000} s: the coordinator gave up on it; nothing of it was kept`, { retryable: false })),
          Math.max(0, ms - waited),
        );
        it.next().then(
          (r) => {
            clearTimeout(timer);
            waited += steadyNow() - asked;
            if (!r.done) {
              since += weigh(r.value);
              if (since >= enough) {
                waited = 0;
                since = 0;
              }
            }
            resolve(r);
          },
          (err: unknown) => (clearTimeout(timer), reject(err)),
        );
      }),
    return: (value?: unknown) => (it.return ? it.return(value) : Promise.resolve({ done: true, value: undefined as T })),
  };
}

/** Kinds whose params the input checks hold each input against (see inputChecker). */
const CHECKED_PARAMS: ReadonlySet<string> = new Set(['image', 'audio', 'video']);

/** Event-loop turns a submission's end waits for a cancellation that may follow it. */
const CANCEL_TURNS = 4;

/** A retry took this submission's place while its inputs were being checked: the retry makes the job. */
const superseded = (job: JobRecord): TesseraError =>
  new TesseraError(status.ABORTED, `submission superseded: a newer submission with spec.request_id ${job.spec.request_id} arrived`);

// (`bytes` as the client sent it where it may pass 2^53: a uint64 read as a Number is rounded, and
// 2^64 - 1 was said as 18446744073709552000, review API.)
const overFileLimit = (name: string, bytes: number | string, limits: JobServiceLimits): TesseraError =>
  new TesseraError(status.RESOURCE_EXHAUSTED, `input ${name}: ${bytes} bytes is over the per-file limit of ${limits.maxFileBytes} bytes (the coordinator's --max-file-bytes)`, { input: name });
const overJobLimit = (name: string, limits: JobServiceLimits): TesseraError =>
  new TesseraError(status.RESOURCE_EXHAUSTED, `input ${name}: the job's inputs are over the per-job limit of ${limits.maxJobBytes} bytes (the coordinator's --max-job-bytes)`, { input: name });

/**
 * Receives the inputs, handing each to `arrived` as soon as it is complete, and to `ordered` (a
 * promise of it, settled once it is in) in submission order; returns them in submission order.
 */
async function receiveInputs(
  job: JobRecord,
  iterator: AsyncIterator<SubmitJobRequest__Output>,
  spool: Spool,
  shared: SharedRoots,
  limits: JobServiceLimits,
  signal: AbortSignal,
  arrived: (file: SpoolFile, head?: Buffer) => void,
  ordered?: (file: Promise<SpoolFile>) => void,
): Promise<SpoolFile[]> {
  let total = 0;
  const names = new NameSet();
  // Announced in the spec (0 = not said): a job over the limit is refused before any input is received.
  const announced = job.spec.input_count ?? 0;
  if (announced > limits.maxInputs) {
    throw new TesseraError(status.RESOURCE_EXHAUSTED, `spec.input_count: ${announced} inputs, and a job may have at most ${limits.maxInputs} (the coordinator's --max-inputs); nothing of it was kept`);
  }
  // Inputs in submission order. Those by reference are looked up a few at once while the next
  // headers arrive (a job may name thousands); all are settled before an upload is received. A few:
  // libuv has 4 file-system threads, and a hung mount must not take all of them.
  const inputs: (SpoolFile | Promise<SpoolFile>)[] = [];
  const lookups = pLimit(SHARED_LOOKUPS);
  let settled = 0;
  const settle = async (): Promise<void> => {
    for (; settled < inputs.length; settled++) {
      const f = inputs[settled]!;
      if (!(f instanceof Promise)) continue;
      const file = await f;
      total += file.size;
      if (total > limits.maxJobBytes) throw overJobLimit(file.name, limits);
      inputs[settled] = file;
    }
  };
  let next = await iterator.next();
  while (!next.done) {
    const msg = next.value;
    if (msg.msg !== 'input' || !msg.input) throw invalidArgument(`expected an input header, got "${msg.msg ?? 'nothing'}"`);
    const name = withInputNamed(msg.input.name, () => safeFileName(msg.input!.name, 'input name'));
    const held = names.get(name);
    if (held === name) throw invalidArgument(`input name "${name}" is used twice in this job`, name);
    if (held !== undefined) {
      throw invalidArgument(`input name "${name}" differs from the job's input "${held}" only in case or Unicode form: on macOS and Windows they would be one file; rename one of them`, name);
    }
    if (announced && names.size >= announced) throw invalidArgument(`input ${name}: the spec announced ${announced} input(s) (spec.input_count) and this is one more`, name);
    if (names.size >= limits.maxInputs) throw new TesseraError(status.RESOURCE_EXHAUSTED, `input ${name}: a job may have at most ${limits.maxInputs} inputs (the coordinator's --max-inputs)`, { input: name });
    names.add(name);
    const declared = Number(msg.input.size || 0);
    if (declared > limits.maxFileBytes) throw overFileLimit(name, msg.input.size, limits);
    if (msg.input.shared_path) {
      // By reference: nothing to receive, the file is read in place.
      const sharedPath = msg.input.shared_path;
      // Its input_end, if one follows, may carry the file's digest: checked, as an upload's is.
      next = await iterator.next();
      let digest: string | undefined;
      if (!next.done && next.value.msg === 'input_end') {
        digest = checkedDigest(next.value.input_end?.sha256, name);
        next = await iterator.next();
      }
      if (!next.done && next.value.msg === 'data') throw invalidArgument(`input ${name} is submitted by reference (shared_path): no data may follow its header`, name);
      const lookup = lookups(async () => {
        // The check's head is read through the lookup's descriptor: the file is opened once.
        const { file: f, head } = await shared.lookup(name, sharedPath, headBytes(job.kind));
        if (f.size > limits.maxFileBytes) throw overFileLimit(name, f.size, limits);
        if (declared && declared !== f.size) throw invalidArgument(`input ${name}: header said ${declared} bytes but ${sharedPath} holds ${f.size}`, name);
        if (digest) {
          const read = await sha256File(f.path, signal);
          if (read !== digest) throw new TesseraError(status.DATA_LOSS, `input ${name}: ${sharedPath} is not the file input_end.sha256 names (sent ${digest}, read ${read})`, { input: name });
        }
        arrived(f, head);
        return f;
      });
      // Awaited in order by settle(); a failure is not left unhandled meanwhile.
      lookup.catch(() => undefined);
      inputs.push(lookup);
      ordered?.(lookup);
      continue;
    }
    await settle();
    // Refused at its header, as one over the per-file limit is, not once the limit has arrived.
    if (declared && total + declared > limits.maxJobBytes) throw overJobLimit(name, limits);
    let trailer: string | undefined;
    let got = 0;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (;;) {
        const r = await iterator.next();
        if (r.done) throw invalidArgument(`input ${name}: the submission ended before its input_end; each uploaded input ends with input_end after its last data chunk`, name);
        if (r.value.msg === 'data' && r.value.data) {
          total += r.value.data.length;
          if (total > limits.maxJobBytes) throw overJobLimit(name, limits);
          // Past the size its header declared, refused at once rather than written to the end.
          got += r.value.data.length;
          if (declared && got > declared) throw invalidArgument(`input ${name}: header said ${declared} bytes but more arrived`, name);
          yield r.value.data;
        } else if (r.value.msg === 'input_end') {
          trailer = checkedDigest(r.value.input_end?.sha256, name);
          return;
        } else {
          // Without its input_end an upload cut short (a client that stopped reading its file)
          // would pass for the whole file.
          throw invalidArgument(`input ${name}: ${r.value.msg === 'input' ? 'the next input header came' : `a "${r.value.msg ?? 'nothing'}" message came`} before its input_end; each uploaded input ends with input_end after its last data chunk`, name);
        }
      }
    }
    const file = spool.inputPath(job.id, name);
    const { size, sha256 } = await spool.writeAtomic(file, chunks(), { maxBytes: limits.maxFileBytes, limitName: "the coordinator's --max-file-bytes", expectedSha256: () => trailer, what: `input ${name}`, input: name, signal });
    if (declared && declared !== size) throw invalidArgument(`input ${name}: header said ${declared} bytes but ${size} arrived`, name);
    const received: SpoolFile = { name, path: file, size, sha256 };
    arrived(received);
    inputs.push(received);
    ordered?.(Promise.resolve(received));
    next = await iterator.next();
  }
  // Fewer than announced: the client stopped between two inputs (a grpc-js client that cancels
  // ends its side of the stream before it resets it), not a smaller job.
  if (announced && inputs.length < announced) {
    throw invalidArgument(`the submission ended after ${inputs.length} of the ${announced} inputs its spec announced (spec.input_count); nothing of it was kept`);
  }
  await settle();
  return inputs as SpoolFile[];
}

/** One message per event. */
async function* unbatched(source: AsyncGenerator<JobEvent[]>): AsyncGenerator<JobEvent> {
  for await (const events of source) yield* events;
}

/** The events ready at once in one message (WatchJobRequest.batch). */
async function* batched(source: AsyncGenerator<JobEvent[]>): AsyncGenerator<JobEvent> {
  for await (const events of source) {
    if (events.length === 1) {
      yield events[0]!;
      continue;
    }
    const last = events[events.length - 1]!;
    yield { seq: last.seq, time_ms: last.time_ms, job_id: last.job_id, job_state: last.job_state, type: 'batch', progress: last.progress, final: last.final, batch: events };
  }
}

/**
 * Most bytes of outputs sent inside the events of one message (one output may pass it alone):
 * with the events around them, a message stays under the 4 MiB that gRPC clients accept by default,
 * and a watcher that does not read holds a few of them, not tens of MiB (3 MiB runs: about 15 MiB
 * per unread watcher, review MEM).
 */
const INLINE_RUN_BYTES = 1024 * 1024;

/**
 * Adds the bytes of each small output to its `output` event (a copy: the events are shared by
 * every watcher), so that the watcher needs no download call for it. A run of events is split
 * where its outputs' bytes would pass INLINE_RUN_BYTES. An output that cannot be read as
 * published (removed since, in a shared folder) goes without: the watcher downloads it.
 */
async function* withOutputData(source: AsyncGenerator<JobEvent[]>, jobs: JobManager, jobId: string, upTo: number, call: Pick<ServerStreamContext, 'onDone'>): AsyncGenerator<JobEvent[]> {
  // Bytes go inside events while the coordinator's budget for messages on their way has room; held
  // until the call has written out its last message.
  const holds = jobs.streamBuffers.stream();
  call.onDone(() => holds.release());
  holds.next();
  for await (const run of source) {
    let bytes = 0;
    let out: JobEvent[] = [];
    for (const e of run) {
      const o = e.type === 'output' && !e.output?.shared_path ? e.output : undefined;
      const size = Number(o?.size ?? 0);
      const wanted = o != null && size > 0 && size <= upTo;
      if (wanted && bytes + size > INLINE_RUN_BYTES && out.length > 0) {
        yield out;
        holds.next();
        out = [];
        bytes = 0;
      }
      const data = wanted && holds.take(size) ? await publishedBytes(jobs, jobId, o.name ?? '', size, o.sha256 ?? '') : undefined;
      if (data) {
        bytes += data.length;
        jobs.outputBytesInEvents += data.length;
      }
      out.push(data ? { ...e, output_data: data } : e);
    }
    if (out.length > 0) {
      yield out;
      holds.next();
    }
  }
}

/** The bytes of output `name` as published with this size and checksum, if it is still that file in the spool. */
async function publishedBytes(jobs: JobManager, jobId: string, name: string, size: number, sha256: string): Promise<Buffer | undefined> {
  let out: OutputRecord;
  try {
    out = jobs.outputPath(jobId, name);
  } catch {
    return undefined;
  }
  if (out.shared || out.size !== size || out.sha256 !== sha256) return undefined;
  const data = await readFile(out.path).catch(() => undefined);
  return data?.length === size ? data : undefined;
}

/** An input_end's digest, lower case; undefined for none (""); INVALID_ARGUMENT when it is no SHA-256. */
function checkedDigest(sent: string | undefined, name: string): string | undefined {
  const digest = sent?.toLowerCase() || undefined;
  if (digest !== undefined && !/^[0-9a-f]{64}$/.test(digest)) throw invalidArgument(`input ${name}: input_end.sha256 ${JSON.stringify(sent!.slice(0, 80))} is not a SHA-256 hex digest (64 hex digits, or "" for none)`, name);
  return digest;
}

/** Most events in one batch: bounds a message at a few hundred KiB (plus the outputs sent inside them). */
const MAX_BATCH = 1000;
/** Most live events a watcher's stream holds while its client does not read (then they come from the store). */
const MAX_LIVE_BACKLOG = 5000;

/** Events read from the store per turn of a watcher's replay (a few milliseconds of parsing). */
const REPLAY_PAGE = 2_000;

const replayWaiting: (() => void)[] = [];
let replayScheduled = false;

/**
 * Waits for a watcher's turn to read a page of its replay: one page per turn of the event loop,
 * whoever asks, with the sockets read between two. With a setImmediate each, 50 watchers attaching
 * at once parsed their pages one after another in the same turn (2.4 s with nothing else served).
 */
function replayTurn(): Promise<void> {
  return new Promise<void>((resolve) => {
    replayWaiting.push(resolve);
    if (!replayScheduled) scheduleReplay();
  });
}

function scheduleReplay(): void {
  replayScheduled = true;
  setImmediate(() => {
    replayScheduled = false;
    // Its page is read in the microtasks right after this callback; the next one's in a later turn.
    replayWaiting.shift()?.();
    if (replayWaiting.length > 0) scheduleReplay();
  });
}

/** The event types a watcher may ask for (`WatchJobRequest.types`). */
const EVENT_TYPES: ReadonlySet<string> = new Set(['job_state', 'subtask_state', 'progress', 'log', 'output']);

/**
 * A job's events after `afterSeq` until its final one: the log first, then live; in runs of what is
 * ready; only those of `types` (and the final one) when given. Exported for tests.
 */
export async function* watch(jobs: JobManager, jobId: string, afterSeq: number, signal: AbortSignal, types?: ReadonlySet<string>, sent: string = String(afterSeq)): AsyncGenerator<JobEvent[]> {
  const job = jobs.get(jobId);
  // Sequence numbers never go back (a restart goes on 100,000 higher): one past the job's last is
  // none the coordinator gave, and waiting for events after it would wait past the job's end.
  // Named as sent (`sent`: a uint64 past 2^53 is rounded as a Number).
  if (afterSeq > job.seq) throw new TesseraError(status.OUT_OF_RANGE, `after_seq ${sent} is past the last event of job ${jobId} (${job.seq}): give the seq of an event this job sent, or 0`);
  const wanted = (e: JobEvent): boolean => !types || types.has(e.type ?? '') || Boolean(e.final);
  // Subscribe before replaying so nothing falls between the replay and the live stream.
  // Live events not yet sent, from `head` on (a head index, not shift(): see the scheduler's queues).
  let queue: JobEvent[] = [];
  let head = 0;
  let wake: (() => void) | undefined;
  // A watcher that stops reading (a paused pipe) must not hold every live event of a busy job:
  // past a bound the queue is dropped, and what it held is read back from the store instead.
  let overflowed = false;
  const unsubscribe = jobs.events.subscribe(jobId, (e) => {
    if (!wanted(e)) return;
    if (overflowed) {
      wake?.();
      return;
    }
    queue.push(e);
    if (queue.length - head > MAX_LIVE_BACKLOG) {
      overflowed = true;
      queue = [];
      head = 0;
    }
    wake?.();
  });
  const onAbort = (): void => wake?.();
  // On shutdown, end the stream at once (the client re-attaches to the next coordinator) rather
  // than hold the server open until its grace period runs out.
  let stopping = false;
  const offStop = jobs.onStop(() => {
    stopping = true;
    wake?.();
  });
  // A job that leaves the coordinator while it is watched (past its retention between two pages of
  // its replay, or a submission that failed before its end was written) ends the stream.
  let gone = false;
  const offGone = jobs.events.onGone((id) => {
    if (id !== jobId) return;
    gone = true;
    wake?.();
  });
  const removed = (): TesseraError => notFound(`job ${jobId} was removed while it was watched (past its retention, or its submission failed)`);
  // Ended UNAVAILABLE, not OK: a client reading the stream to its end (any language's `for event in
  // stub.WatchJob(...)`) took an OK end without the final event for the job's end, during every
  // coordinator restart.
  const shuttingDown = (): TesseraError =>
    new TesseraError(status.UNAVAILABLE, `the coordinator is shutting down: watch job ${jobId} again with after_seq ${last} (the job goes on)`, { retryable: true });
  signal.addEventListener('abort', onAbort, { once: true });
  let last = afterSeq;
  /** Replays the log after `last` page by page until it has caught up; true at the final event. */
  async function* replay(): AsyncGenerator<JobEvent[], boolean> {
    for (;;) {
      // Each page in a turn of its own: a watcher that sends little of what it reads (`types`:
      // `wait()` asks for job_state only) read a busy job's whole log in one turn, and 50 of them
      // attaching at once held every other call and heartbeat for 3.5 s (100: 18 s).
      await replayTurn();
      // A watcher gone while it waited for its turn reads no more of the log.
      if (signal.aborted) return false;
      if (stopping) throw shuttingDown();
      const page = jobs.eventsAfter(jobId, last, { stored: true, limit: REPLAY_PAGE });
      if (page.length === 0) break;
      for (let i = 0; i < page.length; i += MAX_BATCH) {
        const run = page.slice(i, i + MAX_BATCH);
        const end = run.findIndex((e) => e.final);
        // Past every event read, sent or not.
        last = Number(run[end >= 0 ? end : run.length - 1]!.seq);
        const send = (end >= 0 ? run.slice(0, end + 1) : run).filter(wanted);
        if (send.length > 0) yield send;
        if (end >= 0) return true;
      }
    }
    return false;
  }
  try {
    if (yield* replay()) return;
    if (TERMINAL_JOB_STATES.has(job.state) && last >= job.seq) return;
    if (gone) throw removed();
    for (;;) {
      if (overflowed) {
        // Queue again from now on (what arrives twice is skipped by its seq), then read back the rest.
        overflowed = false;
        if (yield* replay()) return;
      }
      const run: JobEvent[] = [];
      let final = false;
      while (head < queue.length && run.length < MAX_BATCH && !final) {
        const e = queue[head++]!;
        if (Number(e.seq) <= last) {
          // Read already (in the replay): the stream still ends with the job.
          final = Boolean(e.final);
          continue;
        }
        last = Number(e.seq);
        run.push(e);
        final = Boolean(e.final);
      }
      if (head === queue.length) {
        queue = [];
        head = 0;
      }
      if (run.length > 0) yield run;
      if (final) return;
      if (head < queue.length || overflowed) continue;
      if (signal.aborted) return;
      if (stopping) throw shuttingDown();
      if (gone) throw removed();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
      // Send at the end of this turn of the event loop, not after the first callback that emitted:
      // results from both workers and the dispatch they free often land in the same turn, and
      // then go out as one message (with 200 watched jobs of no-op subtasks, 0.72 -> 0.34 per subtask).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    offStop();
    offGone();
    unsubscribe();
  }
}

let outputChunkFields: Encoder | undefined;

async function* download(jobs: JobManager, req: { job_id: string; name: string; offset: string }, call: Pick<ServerStreamContext, 'signal' | 'onDone'>): AsyncGenerator<OutputChunk> {
  const { signal } = call;
  const out = jobs.outputPath(req.job_id, req.name);
  const offset = Number(req.offset || 0);
  if (offset > out.size) throw new TesseraError(status.OUT_OF_RANGE, `offset ${req.offset || 0} is past the end of ${req.name} (${out.size} bytes)`);
  if (offset === out.size) {
    yield { data: Buffer.alloc(0), offset: String(offset), total_size: String(out.size), sha256: out.sha256 };
    return;
  }
  // An output in a shared folder is read through a descriptor that is the published file's: the
  // folder is writable by others, and a symlink put in its place must not be followed.
  // The spool's copy gone (a damaged disk, a hand that removed it): NOT_FOUND naming it, not INTERNAL.
  const handle = out.shared
    ? await openPublishedShared(jobs, req.job_id, out)
    : await open(out.path, 'r').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw notFound(`output ${out.name}: its file in the coordinator's spool is gone`);
        throw err;
      });
  // OutputChunk's fields but `data`: what readEncodedChunks puts in front of each chunk's bytes.
  const encodeFields = (outputChunkFields ??= compileEncoder(loadTesseraRoot(), 'tessera.v1.OutputChunk'));
  const total = String(out.size);
  const fields = (at: number, length: number): Buffer => encodeFields({ offset: String(at), total_size: total, sha256: at + length >= out.size ? out.sha256 : '' });
  let sent = offset;
  // Whole chunks while the coordinator's budget for messages on their way has room, small ones past
  // it; held until the call has written out its last message.
  const holds = jobs.streamBuffers.stream();
  call.onDone(() => holds.release());
  const chunkBytes = (most: number): number => {
    holds.next();
    return holds.take(most) ? most : Math.min(most, SMALL_MESSAGE_BYTES);
  };
  try {
    for await (const chunk of readEncodedChunks(handle, { field: fieldNumber('tessera.v1.OutputChunk', 'data'), fields, offset, size: out.size, chunkBytes, signal })) {
      sent = chunk.position + chunk.data.length;
      yield asWire<OutputChunk>(chunk.message);
    }
  } finally {
    await handle.close();
  }
  // A file cut short on the coordinator's disk ended the stream early: a client that writes chunks
  // until the end (no digest came: it rides on the last one) would keep a part as the whole.
  if (sent < out.size) throw new TesseraError(status.DATA_LOSS, `output ${out.name}: the coordinator's file holds ${sent} of its ${out.size} bytes`, { retryable: false });
}

/**
 * The published file of a shared output, opened: its folder still where it was, no symlink
 * followed, the same file (device, inode, modification time, size) as when it was published.
 * Removed since: NOT_FOUND; replaced or changed: DATA_LOSS (its bytes are not the output's).
 */
async function openPublishedShared(jobs: JobManager, jobId: string, out: OutputRecord): Promise<FileHandle> {
  await jobs.assertOutputDir(jobs.get(jobId));
  const changed = (): TesseraError => new TesseraError(status.DATA_LOSS, `output ${out.name}: ${out.path} in the shared folder was replaced or changed since it was published`, { retryable: false });
  const fh = await open(out.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw notFound(`output ${out.name}: ${out.path} was removed from the shared folder since it was published`);
    throw changed();
  });
  const st = await fh.stat();
  const id = out.shared!;
  if (!st.isFile() || st.size !== out.size || st.dev !== id.dev || st.ino !== id.ino || st.mtimeMs !== id.mtimeMs) {
    await fh.close();
    throw changed();
  }
  return fh;
}

/** A submission still receiving its inputs. */
interface Attempt {
  /** Its spec as compared between submissions with one request_id (canonical JSON), without its inputs_digest. */
  spec: string;
  /** Its spec's inputs_digest ("" where the client said none). */
  digest: string;
  /** A newer submission with the same request_id took its place: it must not make the job. */
  superseded: boolean;
  /** Counted in its owner's submissions in flight (the job limit). */
  counted: boolean;
  /** Ends its upload with `reason`. */
  stop: (reason: Error) => void;
  /** Settles once it has ended, its job made or not (a lookup by its request_id waits for it). */
  done: Promise<void>;
  /** The job it started while its upload runs (counted among its owner's unfinished jobs until dropped). */
  early?: JobRecord;
}

/**
 * What two submissions with one request_id must agree on: the spec, with its output folder as
 * `outputDir` says (stored resolved; a repeat names it as the client did), but its input count
 * (about the stream, not the job: a repeat is checked against its own count). A repeat naming
 * another folder was answered with the first job, its outputs going to the first folder.
 */
function specToCompare(spec: JobRecord['spec'], outputDir = spec.shared_output_dir): unknown {
  const { shared_output_dir: _dir, input_count: _count, inputs_digest: _digest, ...rest } = spec;
  return outputDir ? { ...rest, shared_output_dir: outputDir } : rest;
}

/**
 * Whether two submissions' inputs_digest say they are of other inputs: compared only where both
 * said one (a job accepted before the field, or a client that sends none, is compared by its spec).
 */
const differ = (a: string, b: string): boolean => a !== '' && b !== '' && a !== b;

/** `dir` as a stored spec has it: its real path where it exists, else as written (folded); "" for none. */
async function comparableOutputDir(dir: string | undefined): Promise<string> {
  if (!dir) return '';
  const folded = path.resolve(dir);
  return realpath(folded).catch(() => folded);
}

/**
 * JSON with object keys sorted and empty members (undefined, null, '', 0, false, [] and {}, what
 * the decoder fills in as defaults) left out: equal for equal specs, however decoded or stored,
 * also by a version whose messages have fields the stored spec lacks.
 */
function canonicalJson(value: unknown): string {
  const empty = (v: unknown): boolean =>
    v === undefined || v === null || v === '' || v === 0 || v === '0' || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);
  const clean = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(clean);
    if (v && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>)
        .map(([k, x]) => [k, clean(x)] as const)
        .filter(([, x]) => !empty(x))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return Object.fromEntries(entries);
    }
    return v;
  };
  return JSON.stringify(clean(value));
}

/** `fn`, whose refusal (a bad input name) carries that name as its input, for the client to print. */
function withInputNamed<T>(input: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    // A name far too long for one (a hostile one of megabytes) is not sent back in the trailers.
    if (err instanceof TesseraError && err.input === undefined && input && Buffer.byteLength(input) <= 1024) throw new TesseraError(err.code, err.message, { retryable: err.retryable, input });
    throw err;
  }
}

/**
 * SubmitJob's request metadata `tessera-subtask-limit`: the most subtasks its answer lists, 0 (or
 * none given) for all of them where they fit. A value that is not a whole number is refused,
 * naming it: "abc" and "-1" were taken for none, and the client got all of them without a word.
 */
function subtaskLimitOf(metadata: grpc.Metadata): number {
  const given = metadata.get(SUBTASK_PAGE_HEADER)[0];
  if (given === undefined) return 0;
  const text = String(given).trim();
  if (!/^\d+$/.test(text)) throw invalidArgument(`metadata ${SUBTASK_PAGE_HEADER}: "${String(given).slice(0, 64)}" is not a number of subtasks (a whole number, 0 for all of them)`);
  return Math.min(Number(text), Number.MAX_SAFE_INTEGER);
}

/** Refusals of what the client sent (its input, its request), logged at info; the cluster's own trouble at warn. */
const CLIENT_FAULTS: ReadonlySet<number> = new Set([status.INVALID_ARGUMENT, status.FAILED_PRECONDITION, status.ALREADY_EXISTS, status.NOT_FOUND, status.PERMISSION_DENIED, status.OUT_OF_RANGE]);

/**
 * A refused submission in the coordinator's log, with who sent it and why: the client alone was
 * told, and "why did my photos fail?" could not be answered from the log (review OPS2). A client
 * that went away mid-upload is logged by the stream's handler.
 */
function logRefusal(log: Logger, err: unknown, o: { peer: string; owner: string; signal: AbortSignal }): void {
  if (o.signal.aborted) return;
  const code = err instanceof TesseraError ? err.code : status.INTERNAL;
  const fields = { peer: o.peer, owner: o.owner || undefined, code: status[code], reason: err instanceof Error ? err.message : String(err), ...(err instanceof TesseraError && err.input ? { input: err.input } : {}) };
  // Over its own quota (--max-inputs, --max-job-bytes, ...) is the client's doing too; a full disk is not.
  const clients = CLIENT_FAULTS.has(code) || (code === status.RESOURCE_EXHAUSTED && !/disk is full|store is full/.test(fields.reason));
  if (clients) log.info(fields, 'submission refused');
  else log.warn(fields, 'submission refused');
}
