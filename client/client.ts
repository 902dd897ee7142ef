/**
 * Typed client library for Tessera's JobService. The `tessera` CLI is built on it.
 *
 * Every unary call has a deadline; uploads and downloads stream in chunks with backpressure and
 * are verified with SHA-256; `watch` re-attaches after a lost connection from the last event seen.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { getMaxListeners, setMaxListeners } from 'node:events';
import { constants as fsc, existsSync, linkSync, lstatSync, renameSync, unlinkSync, writeFile, type Stats } from 'node:fs';
import { access, link, lstat, mkdir, open, readdir, realpath, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import pLimit from 'p-limit';
import { CHUNK_SIZE, DEFAULT_KEEPALIVE, SUBTASK_PAGE_HEADER, INLINE_OUTPUT_MAX_BYTES, KEEPALIVE_ENV, MAX_TIMER_MS, UNARY_DEADLINE_MS, clientChannelOptions, connectTimeoutMs, MAX_CONNECT_TIMEOUTS, coordinatorAddress, keepaliveFromEnv, keepaliveProblem, submitDeadlineMs, transferDeadlineMs, type Keepalive } from '../shared/config.js';
import { processAlive } from '../shared/machine.js';
import { TesseraError, dataLoss, failedPrecondition, invalidArgument, notFound, tidyGrpcError } from '../shared/errors.js';
import { deadline } from '../shared/grpc-handlers.js';
import { foldedName, safeFileName, safeOutputName } from '../shared/names.js';
import { PROTO_FILES, fieldNumber, jobServiceClientConstructor, resolveProtoDir } from '../shared/proto.js';
import type { Job__Output } from '../shared/proto/generated/tessera/v1/Job.js';
import type { JobEvent__Output } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import type { JobSpec as GeneratedJobSpec } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import type { ImageParams as GeneratedImageParams } from '../shared/proto/generated/tessera/v1/ImageParams.js';
import type { VideoParams as GeneratedVideoParams } from '../shared/proto/generated/tessera/v1/VideoParams.js';
import type { ThumbnailParams as GeneratedThumbnailParams } from '../shared/proto/generated/tessera/v1/ThumbnailParams.js';
import type { AudioParams as GeneratedAudioParams } from '../shared/proto/generated/tessera/v1/AudioParams.js';
import type { Trim as GeneratedTrim } from '../shared/proto/generated/tessera/v1/Trim.js';
import type { OutputChunk__Output } from '../shared/proto/generated/tessera/v1/OutputChunk.js';
import type { OutputInfo__Output } from '../shared/proto/generated/tessera/v1/OutputInfo.js';
import type { SubmitJobRequest } from '../shared/proto/generated/tessera/v1/SubmitJobRequest.js';
import type { WorkerInfo__Output } from '../shared/proto/generated/tessera/v1/WorkerInfo.js';
import { asWire, readEncodedChunks } from '../shared/encoded-chunks.js';
import { closeWriteStream, threadedWriteStream } from '../shared/file-writer.js';
import { endsWithAnswer, newSha256, sha256, sha256File, writeWithBackpressure } from '../shared/streams.js';
import { clientTokenFromEnv, tokenProblem } from '../shared/auth.js';
import { clientCredentialsFromEnv } from '../shared/tls.js';
import { steadyNow } from '../shared/clock.js';
import type * as Protobuf from 'protobufjs';

/** Refuses an option that is not a whole number of at least `min` (INVALID_ARGUMENT naming it). */
function wholeNumber(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw invalidArgument(`${name}: ${value} is not a whole number of at least ${min}`);
}


/** How long a watch waits, after the final event, for the coordinator to end the call itself. */
const FINAL_END_WAIT_MS = 2000;

/** Calls in flight that may share one caller's AbortSignal without Node warning of a leak. */
const USER_SIGNAL_LISTENERS = 10_000;

/**
 * Whether a call's error is the coordinator's answer (a refusal, a status it sent), not the
 * transport's failure to reach it (no connection, a deadline run out, the call cancelled here).
 */
/** What the tries of one submission have done, for the clean-up of a job it made (see submitScoped). */
interface SubmitProgress {
  /** A try that ended had handed over everything, and did not fail for want of a connection. */
  mayHaveMade: boolean;
  /** The try under way has handed over everything. */
  sending: boolean;
  /** `mayHaveMade` as it was when the last try started. */
  madeBefore: boolean;
  /** The job a try was answered with. */
  answered: string | undefined;
}

/** A try that failed for want of a connection: nothing of it reached a coordinator. */
function neverConnected(err: unknown): boolean {
  const { code, details } = (err ?? {}) as { code?: number; details?: string };
  return code === grpc.status.UNAVAILABLE && NOT_CONNECTED.test(details ?? '');
}

/**
 * grpc-js's details of a call that never reached a coordinator: no connection, no address for the
 * name, or queued on a channel that was closed before it connected (see TesseraClient.unstick).
 */
const NOT_CONNECTED = /^(No connection established|Name resolution failed|Channel closed before call started)/;

/** A call failed because its channel was given up while it still waited for a connection (see TesseraClient.unstick). */
function channelGivenUp(err: unknown): boolean {
  const { code, details } = (err ?? {}) as { code?: number; details?: string };
  return code === grpc.status.UNAVAILABLE && GIVEN_UP.test(details ?? '');
}

const GIVEN_UP_DETAILS = 'No connection established: the connection attempt got no answer in time (the coordinator silent, or at another address now)';
const GIVEN_UP = /^(Channel closed before call started|No connection established: the connection attempt got no answer in time)/;

/**
 * tidyGrpcError, and grpc-js's "Channel closed before call started" of a call whose channel was
 * given up while connecting (see TesseraClient.unstick) said as what it is, where it reaches the
 * caller (the retries' window spent) or a reconnect note.
 */
function tidy<E>(err: E): E {
  const e = tidyGrpcError(err) as { code?: unknown; details?: unknown; message?: unknown } | null;
  if (e && e.code === grpc.status.UNAVAILABLE && typeof e.details === 'string' && e.details.startsWith('Channel closed before call started')) {
    if (typeof e.message === 'string') e.message = e.message.replace(e.details, GIVEN_UP_DETAILS);
    e.details = GIVEN_UP_DETAILS;
  }
  return err;
}

/** The coordinator's answer refusing a submission (not the client's own error, nor a lost connection or deadline). */
function refusedByCoordinator(err: unknown): boolean {
  if (err instanceof TesseraError || typeof (err as { code?: unknown } | null)?.code !== 'number') return false;
  return COORDINATOR_REFUSALS.has((err as { code: number }).code);
}

const COORDINATOR_REFUSALS: ReadonlySet<number> = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.OUT_OF_RANGE,
  grpc.status.UNIMPLEMENTED,
]);

function answered(err: unknown): boolean {
  const { code, details } = (err ?? {}) as { code?: number; details?: string };
  if (typeof code !== 'number') return false;
  if (code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.CANCELLED) return false;
  return code !== grpc.status.UNAVAILABLE || !NOT_CONNECTED.test(details ?? '');
}

/** Refuses a duration option that is no whole number of ms from `min` to MAX_TIMER_MS (Infinity among them), naming it. */
function durationMs(name: string, value: number | undefined, min: number): void {
  if (value === undefined) return;
  wholeNumber(name, value, min);
  if (value > MAX_TIMER_MS) throw invalidArgument(`${name}: ${value} ms is longer than the most a timer waits, ${MAX_TIMER_MS} (24.8 days)`);
}

/** Tries of one submission cut after sending data (each starting again from its first byte) before it gives up. */
const MAX_SUBMIT_CUTS = 5;

/** Outputs downloaded at once, and the largest output downloaded alongside others. */
const DOWNLOAD_CONCURRENCY = 8;
const PARALLEL_DOWNLOAD_MAX_BYTES = 8 * 1024 * 1024;
/** Outputs up to this size are downloaded into memory and written in one call (see downloadSmall). */
const SMALL_DOWNLOAD_MAX_BYTES = 256 * 1024;
/** Most bytes of such outputs held in memory until written. */
const MAX_HELD_INLINE_BYTES = 64 * 1024 * 1024;

/**
 * A refusal of the coordinator: grpc-js's ServiceError (`code`, `details`, `metadata`), and `input`,
 * the input file it is about, where there is one (from its trailer `tessera-input-bin`).
 */
export type ServiceError = grpc.ServiceError & { input?: string };

/**
 * A generated input type with its `double` fields as numbers. proto-loader types them
 * `number | string` (protobufjs would parse a string), but `submit` checks every value against the
 * contract and refuses a string there: typed so, `{ image: { blur: '2' } }` compiled and was then
 * refused (review CLI2). Other fields keep their types (a `string | number` enum among them).
 */
export type WithNumbers<T> = [T] extends [number | string | null | undefined]
  ? [number] extends [T]
    ? [string] extends [T]
      ? Exclude<T, string>
      : T
    : T
  : T extends Buffer | Uint8Array
    ? T
    : T extends readonly (infer E)[]
      ? WithNumbers<E>[]
      : T extends object
        ? { [K in keyof T]: WithNumbers<T[K]> }
        : T;

/** A job's spec as `submit` takes it (the protocol's `JobSpec`, its numbers as numbers). */
export type JobSpec = WithNumbers<GeneratedJobSpec>;
/** Each kind's params as `JobSpec` takes them. */
export type ImageParams = WithNumbers<GeneratedImageParams>;
export type VideoParams = WithNumbers<GeneratedVideoParams>;
export type ThumbnailParams = WithNumbers<GeneratedThumbnailParams>;
export type AudioParams = WithNumbers<GeneratedAudioParams>;
export type Trim = WithNumbers<GeneratedTrim>;

export type { Job__Output as Job, JobEvent__Output as JobEvent, OutputInfo__Output as OutputInfo, WorkerInfo__Output as WorkerInfo };
export { TesseraError };

export interface ClientOptions {
  /** host:port (default: TESSERA_COORDINATOR or 127.0.0.1:7700). */
  address?: string;
  credentials?: grpc.ChannelCredentials;
  /** Bearer token sent as `authorization` metadata (default: TESSERA_TOKEN or the file TESSERA_TOKEN_FILE names). */
  token?: string;
  /** Deadline of unary calls in ms. */
  deadlineMs?: number;
  /**
   * Keepalive pings to the coordinator: every `timeMs` (at least 5000, the most often the
   * coordinator permits), the connection taken for dead after `timeoutMs` (at least 1000) without an
   * answer. Default: TESSERA_KEEPALIVE_MS and TESSERA_KEEPALIVE_TIMEOUT_MS, else 10000 and 20000.
   */
  keepalive?: Partial<Keepalive>;
}

export interface UploadProgress {
  file: string;
  sentBytes: number;
  totalBytes: number;
}

export interface SubmitOptions {
  onUpload?: (p: UploadProgress) => void;
  signal?: AbortSignal;
  /** Input names, by file (default: each file's base name). */
  names?: string[];
  /** Submit the files by reference (shared storage) instead of uploading them. */
  shared?: boolean;
  /** How long to keep sending the submission again while the coordinator is unavailable (ms; 0: never). */
  retryForMs?: number;
  /** Called before the submission is sent again: the error that ended the last try, and the try about to start (2, 3, ...). */
  onRetry?: (err: ServiceError, attempt: number) => void;
  /**
   * Called, before `submit` rejects, where the rejected submission may have left a job running: a
   * try had handed everything over (the coordinator may have made the job, its answer lost or not
   * waited for), or an answered job's later subtask pages failed. The library looks that job up by
   * the submission's request_id and cancels it, in the background, within 5 s; `cleanUp` settles
   * (never rejects) with what it found. Not called where no try could have made a job, nor where
   * the spec carries the caller's own request_id (the job may be an earlier call's).
   */
  onCleanUp?: (cleanUp: Promise<LeftBehind>) => void;
}

/** What the clean-up of a rejected submission found (see {@link SubmitOptions.onCleanUp}). */
export interface LeftBehind {
  /** The job the submission had made; undefined where the coordinator made none. */
  jobId?: string;
  /** That job's state after the clean-up: JOB_STATE_CANCELLED, or the state it had already ended in. */
  state?: string;
  /** Why the look-up or the cancel failed (the coordinator not reached within 5 s, the client closed first): then nothing more is known than `jobId`. */
  error?: ServiceError;
}

export interface WatchOptions {
  signal?: AbortSignal;
  /** How long to keep re-attaching while the coordinator cannot be reached (ms, default 2 min). */
  reconnectForMs?: number;
  /** Called when the event stream is lost (once per outage), before re-attaching: the reason. */
  onReconnect?: (reason: string) => void;
  /** Called when the stream is attached again after `onReconnect`: how long it was lost (ms). */
  onReattach?: (lostForMs: number) => void;
  /**
   * Only events of these types (`job_state`, `subtask_state`, `progress`, `log`, `output`); the
   * final event always comes. Default: all (`wait` without an `onEvent` asks for `job_state` only).
   */
  types?: string[];
}

/** Options every call takes. */
export interface CallOptions {
  /** Aborted: the call ends and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** This call's deadline (ms; default: the client's `deadlineMs`). Unary calls only. */
  deadlineMs?: number;
}

/** `ClientOptions.keepalive` over the environment's (TESSERA_KEEPALIVE_MS...); INVALID_ARGUMENT naming what is out of range. */
function keepaliveOf(given: Partial<Keepalive> | undefined): Keepalive {
  // The environment is read unless both are given (a bad variable does not stop a client that sets both).
  const k = { ...(given?.timeMs !== undefined && given.timeoutMs !== undefined ? DEFAULT_KEEPALIVE : keepaliveFromEnv()), ...given };
  const problem = keepaliveProblem(k);
  if (problem) throw new TesseraError(grpc.status.INVALID_ARGUMENT, `keepalive.${problem.key} ${k[problem.key]}: ${problem.rule} (${KEEPALIVE_ENV[problem.key]} sets it too)`);
  return k;
}

/** The most jobs one ListJobs page holds. */
const MAX_LIST_PAGE = 1000;

const clientClosed = (): TesseraError => new TesseraError(grpc.status.CANCELLED, 'the client was closed (TesseraClient.close)');

export const TERMINAL_STATES = new Set(['JOB_STATE_SUCCEEDED', 'JOB_STATE_PARTIALLY_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED']);

/**
 * Test knob, not a setting: TESSERA_TEST_UNARY_DEADLINE_MS (a positive whole number of ms) replaces
 * the 15 s default deadline of unary calls ({@link UNARY_DEADLINE_MS}) for clients that set none,
 * so that a test of what happens at that deadline (the CLI against something that never answers)
 * need not wait 15 s. Unset (as everywhere but in the tests), the default stands.
 */
function testUnaryDeadlineMs(): number | undefined {
  const v = process.env['TESSERA_TEST_UNARY_DEADLINE_MS'];
  return v && /^[1-9]\d*$/.test(v) ? Number(v) : undefined;
}

/**
 * A client of one coordinator.
 *
 * Errors: every method rejects with an error whose numeric `code` is a gRPC status
 * (`grpc.status.NOT_FOUND`, ...), and whose message names what it is about (the job, the output,
 * the file, the spec field). The coordinator's refusals come as grpc-js `ServiceError`s (`code`,
 * `details`, `metadata`; the message starts with the code, `5 NOT_FOUND: ...`); what the client
 * refuses or fails at itself (a spec field of the wrong type, a folder given as an input, a file
 * already under an output's name, a checksum mismatch) as {@link TesseraError}s (`code`,
 * `codeName`, `retryable`, and `input`: the file it is about, when there is one). Branch on `code`.
 *
 * Cancelling: `submit`, `watch`, `wait`, `collect` and `download` take an AbortSignal; once it is
 * aborted they reject with (or, for `watch`, throw) its `signal.reason`, as `fetch` does: a
 * DOMException named `AbortError` unless `abort(reason)` was given another. Aborting `wait` or
 * `collect` stops this client's watching and downloads; the job goes on (cancel it with `cancel`).
 */
/**
 * How long close() waits for the look-up of a job left by an aborted submission (and its
 * cancellation) before it cuts them, and how long those two calls get together otherwise (a process
 * that aborts a submission and exits without close() may wait that long on a coordinator that
 * does not answer).
 */
const LEFT_BEHIND_CLOSE_GRACE_MS = 1000;
const LEFT_BEHIND_DEADLINE_MS = 5000;

/** Subtasks asked for a page at a time (the most a coordinator gives in one). */
const SUBTASK_PAGE = 10_000;

export class TesseraClient {
  readonly address: string;
  /** Whether any call of this client has had an answer from the coordinator (see `watch`). */
  private reached = false;
  private client: JobServiceClient;
  /** Makes `client` (again: see unstick). */
  private readonly makeClient: () => JobServiceClient;
  /** Looks at the channel while calls are in progress (see unstick). */
  private connectWatch: NodeJS.Timeout | undefined;
  /** Since when the channel has been seen connecting (0: it is not); channels given up in a row. */
  private connectingSince = 0;
  private connectTimeouts = 0;
  private readonly deadlineMs: number;
  private readonly token: string | undefined;
  private closed = false;
  /** Every call in progress, so that close() can end them. */
  private readonly open = new Set<AbortController>();
  /**
   * Look-ups of jobs left behind by aborted submissions, on their way to cancel them (see
   * cancelLeftBehind): `end` cuts one short. close() gives them {@link LEFT_BEHIND_CLOSE_GRACE_MS}.
   */
  private readonly leftBehind = new Map<object, () => void>();
  private closeGrace: NodeJS.Timeout | undefined;
  private channelClosed = false;

  private closeChannel(): void {
    this.channelClosed = true;
    clearInterval(this.connectWatch);
    this.connectWatch = undefined;
    this.client.close();
  }

  /**
   * While calls are in progress, looks at the channel twice a second: connecting for longer than
   * the connect timeout, it is closed (the calls queued on it fail with UNAVAILABLE, "Channel
   * closed before call started", and are tried again as after any lost connection, on the new
   * one) and made again, so that the coordinator's name is looked up again.
   */
  private unstick(): void {
    if (this.connectWatch || this.channelClosed) return;
    this.connectWatch = setInterval(() => {
      if (this.open.size === 0 || this.channelClosed) {
        clearInterval(this.connectWatch);
        this.connectWatch = undefined;
        this.connectingSince = 0;
        return;
      }
      const state = this.client.getChannel().getConnectivityState(false);
      if (state !== grpc.connectivityState.CONNECTING) {
        this.connectingSince = 0;
        if (state === grpc.connectivityState.READY) this.connectTimeouts = 0;
        return;
      }
      const now = steadyNow();
      this.connectingSince ||= now;
      if (now - this.connectingSince < connectTimeoutMs(this.connectTimeouts) || this.connectTimeouts >= MAX_CONNECT_TIMEOUTS) return;
      this.connectTimeouts++;
      this.connectingSince = 0;
      const stuck = this.client;
      this.client = this.makeClient();
      stuck.close();
    }, 500);
    this.connectWatch.unref();
  }

  constructor(opts: ClientOptions = {}) {
    this.address = coordinatorAddress(opts.address);
    // Every option checked before the channel is made: a refused client left its channel in
    // grpc-js's registry for the life of the process (review L).
    // Read once: the token may come from a file (TESSERA_TOKEN_FILE).
    // Trimmed as the environment's is: read from a file, it ends with a line break.
    this.token = opts.token?.trim() ?? clientTokenFromEnv();
    const problem = this.token === undefined ? undefined : tokenProblem(this.token);
    // Not the token itself in the message: grpc-js's own refusal, at the first call, quoted it.
    if (problem) throw invalidArgument(`the client token (${opts.token !== undefined ? 'the token option' : 'TESSERA_TOKEN or TESSERA_TOKEN_FILE'}) ${problem}`);
    durationMs('deadlineMs', opts.deadlineMs, 1);
    this.deadlineMs = opts.deadlineMs ?? testUnaryDeadlineMs() ?? UNARY_DEADLINE_MS;
    const credentials = opts.credentials ?? clientCredentialsFromEnv();
    const channelOptions = clientChannelOptions(keepaliveOf(opts.keepalive));
    const JobService = jobServiceClientConstructor();
    this.makeClient = () => new JobService(this.address, credentials, channelOptions);
    this.client = this.makeClient();
  }

  private md(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  /**
   * A signal for one call: aborted by the caller's `user` signal (with its reason) or by `close()`
   * (CANCELLED). `done` lets go of both once the call has ended.
   */
  private scope(user: AbortSignal | undefined): { signal: AbortSignal; done: () => void } {
    const ctl = new AbortController();
    const fromUser = (): void => ctl.abort(user?.reason);
    if (this.closed) ctl.abort(clientClosed());
    else if (user?.aborted) ctl.abort(user.reason);
    else {
      // One signal for every call of a service is the usual thing (its shutdown): each call in
      // flight listens once, and lets go when it ends. Node's warning of a leak past 10 is false here.
      if (user && getMaxListeners(user) < USER_SIGNAL_LISTENERS) setMaxListeners(USER_SIGNAL_LISTENERS, user);
      user?.addEventListener('abort', fromUser, { once: true });
      this.open.add(ctl);
      this.unstick();
    }
    return {
      signal: ctl.signal,
      done: () => {
        user?.removeEventListener('abort', fromUser);
        this.open.delete(ctl);
      },
    };
  }

  /** Runs `run` with a signal of its own (see {@link scope}), let go of once it has ended. */
  private async scoped<T>(user: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { signal, done } = this.scope(user);
    try {
      return await run(signal);
    } finally {
      done();
    }
  }

  /** `waitedMs`: the call's whole deadline, where this is a try again within it (see below). */
  private unaryCall<Req, Res>(
    method: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
    req: Req,
    opts: CallOptions = {},
    waitedMs?: number,
  ): Promise<Res> {
    const { signal, done } = this.scope(opts.signal);
    // A coordinator this client has reached is waited for (it may be restarting) up to the call's
    // deadline; one never reached (a wrong address) still fails at once.
    const waiting = this.reached;
    const ms = opts.deadlineMs ?? this.deadlineMs;
    const until = Date.now() + ms;
    return new Promise<Res>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      durationMs('deadlineMs', opts.deadlineMs, 1);
      const md = this.md();
      if (waiting) md.setOptions({ waitForReady: true });
      const call = method.call(this.client, req, md, { deadline: until }, (err, res) => {
        // Cut by the caller or by close(): their reason, not the CANCELLED of the call.
        if (signal.aborted) return reject(signal.reason);
        // Its channel given up while it waited for a connection (see unstick): the call never left, and goes again on the new one.
        if (channelGivenUp(err) && !this.channelClosed && Date.now() < until) {
          off();
          return void this.unaryCall(method, req, { ...opts, deadlineMs: Math.max(1, until - Date.now()) }, waitedMs ?? ms).then(resolve, reject);
        }
        if (err?.code === grpc.status.DEADLINE_EXCEEDED && this.client.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY) {
          // Waited out without a connection: the coordinator is unreachable, not slow. One never
          // reached gets here when something takes the connection and never speaks gRPC (a
          // firewall dropping it, a hung host): grpc-js waits 20 s before it gives up connecting.
          const why = waiting ? 'it was before: down, or restarting?' : `nothing answered at ${this.address}`;
          return reject(new TesseraError(grpc.status.UNAVAILABLE, `the coordinator could not be reached for ${((waitedMs ?? ms) / 1000).toFixed(0)} s (${why})`, { retryable: true }));
        }
        // Any status but "could not connect" is the coordinator's answer: it was reached, and a
        // later call waits for it while it restarts (as after a success).
        if (err && answered(err)) this.reached = true;
        if (err || res === undefined) return reject(tidy(err));
        this.reached = true;
        resolve(res);
      }) as grpc.Call;
      const onAbort = (): void => call.cancel();
      const off = (): void => signal.removeEventListener('abort', onAbort);
      signal.addEventListener('abort', onAbort, { once: true });
    }).finally(done);
  }

  /**
   * Submits a job with `files` as its inputs and returns the accepted job (it then runs on the
   * cluster). The files are uploaded, or with `shared: true` given by reference: each
   * file is named by its absolute path, which must lie under one of the coordinator's
   * `--shared-root` folders, and nothing is uploaded (the coordinator and the workers that see the
   * same path read it in place).
   *
   * The submission is safe to retry and is retried: it carries a request_id (`spec.request_id`, or
   * a new UUID), and if the coordinator, once reached, goes away before it answers (a lost
   * connection, a restart), the whole submission is sent again, 1 s apart, for up to `retryForMs`
   * (2 min) from the failure (a try that got bytes through opens a new window, up to five tries
   * cut after sending data: each starts from the first byte). The coordinator
   * answers a retry of a submission it accepted with the job it made, so one call makes at most
   * one job.
   *
   * Before anything is sent, INVALID_ARGUMENT ({@link TesseraError}) for a `retryForMs` that is not
   * a number of ms of at least 0, for a spec that does not fit the contract (a field of the wrong type or out of its type's range, an unknown field, two job
   * kinds: see {@link checkJobSpec}) and for files that cannot be inputs (see
   * {@link checkInputFiles}).
   */
  submit(spec: JobSpec, files: string[], options: SubmitOptions = {}): Promise<Job__Output> {
    return this.scoped(options.signal, (signal) => this.submitScoped(spec, files, { ...options, signal }));
  }

  private async submitScoped(spec: JobSpec, files: string[], options: SubmitOptions): Promise<Job__Output> {
    options.signal?.throwIfAborted();
    checkJobSpec(spec);
    // NaN (a setting read from an unset variable) would resend the submission for ever.
    checkReconnectFor(options.retryForMs, 'retryForMs');
    // The shared paths are resolved beside the checks; a check's refusal comes first.
    const resolving = options.shared ? Promise.allSettled(files.map((f) => realpath(f))) : undefined;
    const sizes = await checkInputFiles(files, options.names, { readable: !options.shared });
    const sizesNow = (): Promise<number[]> => Promise.all(files.map(async (f) => (await stat(f).catch((err: NodeJS.ErrnoException) => { throw unreadable(f, err); })).size));
    let shared: string[] | undefined;
    if (resolving) {
      shared = [];
      for (const r of await resolving) {
        if (r.status === 'rejected') throw r.reason;
        shared.push(r.value);
      }
    }
    // The count lets the coordinator refuse a job over its --max-inputs at its spec, and
    // tell a submission cut short (cancelled between two inputs) from a smaller one.
    // What the files are, for the coordinator to tell a retry from the same id reused for other
    // files: a spec read back from GetJob carries its job's request_id (and that job's digest).
    const stats = await Promise.all(files.map((f) => stat(f).catch((err: NodeJS.ErrnoException) => { throw unreadable(f, err); })));
    const manifest = files.map((f, i) => [options.names?.[i] ?? path.basename(f), shared?.[i] ?? '', stats[i]!.size, Math.trunc(stats[i]!.mtimeMs)]);
    const once = { ...spec, request_id: spec.request_id || randomUUID(), input_count: files.length, inputs_digest: sha256(Buffer.from(JSON.stringify(manifest))) };
    const retryForMs = options.retryForMs ?? 120_000;
    // Retried only once the coordinator was reached (by this call, or any before it on this
    // client): a wrong address still fails at once, a coordinator restarting is waited for.
    const seen = { reached: this.reached, progressAt: 0 };
    // Never reached: connected first, within the unary deadline, as any other call (and given up
    // then, not retried). The submission's own deadline allows for its upload (minutes for
    // gigabytes), which a host that takes the connection and never answers held for all of it
    // (review CL).
    if (!seen.reached) await this.connectedWithin(this.deadlineMs, options.signal);
    // Whether a try handed over the whole submission: the coordinator may then have made the job,
    // its answer lost or not waited for. Aborted after that, a job this call made is looked up by
    // its request_id and cancelled, not left running where the caller, given a bare AbortError,
    // cannot see it (review L; one made by a try before the last, its answer lost: review J). Only
    // with the library's own request_id: with the caller's, the job answered may be an earlier
    // call's (a repeat is answered with the job it made; review K), and the caller can find it.
    // `sending`: the try under way has handed over everything; `mayHaveMade`: a try that ended had,
    // and was not refused for want of a connection (nothing of it reached a coordinator then: a
    // submission to one that is down was followed by a look-up that held its process 5 s; review P).
    // `answered`: the job a try was answered with (its later pages may still fail); `madeBefore`:
    // whether a try before the last may have made one.
    const made: SubmitProgress = { mayHaveMade: false, sending: false, madeBefore: false, answered: undefined };
    let cleaning = false;
    const leftBehind = (reason?: unknown): unknown => {
      if (cleaning || spec.request_id) return reason;
      // The coordinator's own refusal of a try says that try made no job, and a look-up with a
      // refused token would count as a second failed authentication (review P); a try before it
      // may still have made one, its answer lost, the retry refused by a coordinator restarted
      // with other limits (review Q).
      const candidate = made.answered !== undefined || (refusedByCoordinator(reason) ? made.madeBefore : made.mayHaveMade || made.sending);
      if (candidate) {
        cleaning = true;
        const cleanUp = this.cancelLeftBehind(once.request_id, made.answered);
        try {
          options.onCleanUp?.(cleanUp);
        } catch {
          // The caller's callback throwing must not replace the reason the submission rejects with.
        }
      }
      return reason;
    };
    // Decided as the abort comes, not once the call it cuts has ended (a turn or more later): a
    // close() right after the abort then finds the clean-up under way (review M).
    // close() aborts this signal too: the clean-up starts within it, before the channel closes.
    const onAbort = (): void => void leftBehind();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.submitTries(once, files, sizes, shared, options, seen, retryForMs, sizesNow, leftBehind, made);
    } catch (err) {
      // Given up for any reason (a file changed before a resend, the resends cut too often, a page
      // of the answer's subtasks that failed): a job a try made is no more the caller's than after
      // an abort, who is told of none (review N).
      throw leftBehind(err);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The tries of one submission (see submit): sent again, whole, while the coordinator is away. */
  private async submitTries(
    once: JobSpec,
    files: string[],
    sizes: number[],
    shared: string[] | undefined,
    options: SubmitOptions,
    seen: { reached: boolean; progressAt: number },
    retryForMs: number,
    sizesNow: () => Promise<number[]>,
    leftBehind: (reason: unknown) => unknown,
    made: SubmitProgress,
  ): Promise<Job__Output> {
    // The window opens at a failure: a long upload cut off after minutes is still resent.
    let failingSince = 0;
    let cutAfterData = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        made.sending = false;
        made.madeBefore = made.mayHaveMade;
        const job = await this.submitOnce(once, files, sizes, shared, options, seen, () => (made.sending = true));
        this.reached = true;
        // This call's job from here, whatever its pages' calls meet (their refusals are no refusal of
        // the submission; review Q).
        made.answered = job.id;
        // The answer holds the first page of the job's subtasks (asked for below); the rest as GetJob gives them.
        return await this.restOfSubtasks(job, { ...(options.signal && { signal: options.signal }) });
      } catch (caught) {
        if (made.sending && (options.signal?.aborted || !neverConnected(caught))) made.mayHaveMade = true;
        made.sending = false;
        // Aborted: the caller's reason, not the CANCELLED of the call it cut.
        if (options.signal?.aborted) throw leftBehind(options.signal.reason);
        const err = tidy(caught);
        const { code } = err as grpc.ServiceError;
        // Any answer but "could not connect" means the coordinator was there (a dropped connection, its shutdown).
        if (code === grpc.status.UNAVAILABLE && answered(err)) seen.reached = true;
        // A try that got bytes through since the last failure opens a new window.
        const progressed = seen.progressAt > failingSince;
        if (!failingSince || progressed) failingSince = steadyNow();
        // The coordinator gave up on a submission that went quiet (this process paused: Ctrl-Z, a
        // laptop asleep) and kept nothing of it: sent again, as one its restart cut off is; it was
        // told as a failure (exit 1) with no job made and the files still at hand (review chaos).
        const gaveUp = code === grpc.status.DEADLINE_EXCEEDED && /the coordinator gave up on it; nothing of it was kept/.test((err as grpc.ServiceError).details ?? '');
        if (gaveUp) seen.reached = true;
        // (A try whose channel was given up while connecting, see unstick, never left: tried again.)
        if ((code !== grpc.status.UNAVAILABLE && !gaveUp) || !(seen.reached || channelGivenUp(err)) || steadyNow() - failingSince + 1000 > retryForMs) throw err;
        // Each try starts from the first byte: one cut again and again after sending data (a link
        // too slow for the keepalive's timeout, say) would go on for ever.
        if (progressed) cutAfterData++;
        if (cutAfterData >= MAX_SUBMIT_CUTS && gaveUp) {
          throw new TesseraError(grpc.status.DEADLINE_EXCEEDED, `${(err as grpc.ServiceError).details}: the coordinator gave the submission up ${cutAfterData} times, each time it sent less than 64 KiB in 2 minutes (a stalled read of its files?); given up`);
        }
        if (cutAfterData >= MAX_SUBMIT_CUTS) {
          const why = (err as grpc.ServiceError).details ?? String(err);
          throw new TesseraError(grpc.status.UNAVAILABLE, `${why}: the submission was cut ${cutAfterData} times after sending data, and each try starts from the first byte; given up (on a slow or lossy link, raise the keepalive timeout: --keepalive-timeout-ms, or \`keepalive\` in the client's options; see README "Running on several machines")`, { retryable: true });
        }
        await pause(1000, options.signal).catch((err: unknown) => {
          throw leftBehind(err);
        });
        // Sent again only as it was: a file that changed meanwhile would make another job than the one asked for.
        if (!shared) {
          const now = await sizesNow();
          const changed = files.findIndex((_, i) => now[i] !== sizes[i]);
          if (changed >= 0) throw changedWhileSubmitted(files[changed]!, sizes[changed]!, now[changed]!, 'not sent again; ');
        }
        options.onRetry?.(err as ServiceError, attempt + 1);
      }
    }
  }

  /**
   * Resolves once the channel is connected, or as soon as connecting failed (the call then fails
   * at once, as to a closed port); UNAVAILABLE after `ms` still connecting (something takes the
   * connection and never speaks gRPC: a hung host, a firewall, a wrong service).
   */
  private async connectedWithin(ms: number, signal?: AbortSignal): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      signal?.throwIfAborted();
      // The channel of the moment: one connecting for too long is made again (see unstick).
      const channel = this.client.getChannel();
      const state = channel.getConnectivityState(true);
      if (state !== grpc.connectivityState.IDLE && state !== grpc.connectivityState.CONNECTING) return;
      if (Date.now() >= end) {
        throw new TesseraError(grpc.status.UNAVAILABLE, `the coordinator could not be reached for ${(ms / 1000).toFixed(0)} s (nothing answered at ${this.address})`, { retryable: true });
      }
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
        // A short watch at a time, looked at again: grpc-js keeps a watch's timer until its deadline,
        // and one to `end` held a process 15 s after its submission was aborted (review L).
        channel.watchConnectivityState(state, Math.min(end, Date.now() + 250), () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
  }

  /** `sentAll`: called once every message of the submission has been handed to the call (before its end). */
  private submitOnce(spec: JobSpec, files: string[], sizes: number[], shared: string[] | undefined, options: SubmitOptions, seen: { reached: boolean; progressAt: number }, sentAll: () => void): Promise<Job__Output> {
    const channel = this.client.getChannel();
    const connected = (): void => {
      if (channel.getConnectivityState(false) !== grpc.connectivityState.READY) return;
      seen.reached = true;
      seen.progressAt = steadyNow();
    };
    // Aborted while the files were checked (or between two tries): no call is started, so no job made.
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    return new Promise<Job__Output>((resolve, reject) => {
      const total = sizes.reduce((n, x) => n + x, 0);
      // The caller's abort counts until the coordinator answers, not only while the bytes go out:
      // aborted meanwhile, the submission rejects with the signal's reason (the call is cancelled;
      // a job the coordinator made all the same is found and cancelled: see submitScoped).
      const off = (): void => options.signal?.removeEventListener('abort', onAbort);
      const answered = (job: Job__Output): void => {
        off();
        if (options.signal?.aborted) reject(options.signal.reason);
        else resolve(job);
      };
      const failed = (err: unknown): void => {
        off();
        reject(options.signal?.aborted ? options.signal.reason : err);
      };
      // Ended by the coordinator's answer (a refusal mid-upload): the upload stops there.
      const { signal, callback } = endsWithAnswer(answered, failed, options.signal);
      // Its subtasks a page at a time, as GetJob's (a coordinator from before pages sends them all).
      const md = this.md();
      md.set(SUBTASK_PAGE_HEADER, String(SUBTASK_PAGE));
      const call = this.client.SubmitJob(md, { deadline: deadline(submitDeadlineMs(total, files.length)) }, callback);
      const onAbort = (): void => call.cancel();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      void (async () => {
        try {
          call.write({ spec });
          for (const [i, file] of files.entries()) {
            const name = safeFileName(options.names?.[i] ?? path.basename(file), 'input name');
            const total = sizes[i]!;
            // Answered already (a refusal, a coordinator not there): nothing more to send or report.
            if (signal.aborted) return;
            if (shared) {
              call.write({ input: { name, size: String(total), shared_path: shared[i]! } });
              options.onUpload?.({ file: name, sentBytes: total, totalBytes: total });
              continue;
            }
            call.write({ input: { name, size: String(total) } });
            const hash = newSha256();
            let sent = 0;
            // Gone or unreadable since it was checked: named, with a gRPC code, as every refusal.
            const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
              throw unreadable(file, err);
            });
            try {
              // Up to the size the header declared; a file that changed since is refused here,
              // naming it, rather than by the coordinator's count.
              for await (const chunk of readEncodedChunks(fh, { field: fieldNumber('tessera.v1.SubmitJobRequest', 'data'), size: total })) {
                hash.update(chunk.data);
                sent += chunk.data.length;
                await writeWithBackpressure(call, asWire<SubmitJobRequest>(chunk.message), signal);
                connected();
                // A call answered meanwhile takes no more bytes: no progress is reported after its error.
                if (signal.aborted) return;
                options.onUpload?.({ file: name, sentBytes: sent, totalBytes: total });
              }
              const now = (await fh.stat()).size;
              if (sent !== total || now !== total) throw changedWhileSubmitted(file, total, now !== total ? now : sent);
            } finally {
              await fh.close();
            }
            call.write({ input_end: { sha256: hash.digest('hex') } });
          }
          sentAll();
          call.end();
        } catch (err) {
          call.cancel();
          failed(err);
        }
      })();
    });
  }

  /**
   * One job, with all its subtasks unless `includeSubtasks` is false (a big job's list is long). The
   * coordinator gives them a page of up to 10,000 at a time: they are read page by page (each call
   * within the deadline), and the job is as the last page found it.
   */
  async getJob(jobId: string, opts: CallOptions & { includeSubtasks?: boolean } = {}): Promise<Job__Output> {
    if (!(opts.includeSubtasks ?? true)) return this.restOfLists(await this.unaryCall(this.client.GetJob, { job_id: jobId, include_subtasks: false }, opts), opts);
    // Pages asked for (a coordinator from before pages sends them all at once, with no token).
    const job: Job__Output = await this.unaryCall(this.client.GetJob, { job_id: jobId, include_subtasks: true, subtask_limit: SUBTASK_PAGE }, opts);
    return this.restOfSubtasks(job, opts);
  }

  /**
   * `job` with the subtasks of the pages after its own, read one by one (the job as the last found
   * it), and its inputs, outputs, errors and warnings likewise where they did not fit in one answer.
   */
  private async restOfSubtasks(first: Job__Output, opts: CallOptions): Promise<Job__Output> {
    let job = first;
    if (job.next_subtask_page_token) {
      const subtasks = [...job.subtasks];
      while (job.next_subtask_page_token) {
        job = await this.unaryCall(this.client.GetJob, { job_id: first.id, include_subtasks: true, subtask_limit: SUBTASK_PAGE, subtask_page_token: job.next_subtask_page_token }, opts);
        for (const s of job.subtasks) subtasks.push(s);
      }
      job = { ...job, subtasks, next_subtask_page_token: '' };
    }
    return this.restOfLists(job, opts);
  }

  /** `job` with the rest of its lists, where its answer carried them only in part (`next_list_page_token`). */
  private async restOfLists(first: Job__Output, opts: CallOptions): Promise<Job__Output> {
    // (A coordinator from before list pages sends none: the lists are whole.)
    if (!first.next_list_page_token) return first;
    const lists = { inputs: [...first.inputs], outputs: [...first.outputs], errors: [...first.errors], warnings: [...first.warnings] };
    for (let token = first.next_list_page_token; token; ) {
      const page: Job__Output = await this.unaryCall(this.client.GetJob, { job_id: first.id, include_subtasks: false, list_page_token: token }, opts);
      lists.inputs.push(...page.inputs);
      lists.outputs.push(...page.outputs);
      lists.errors.push(...page.errors);
      lists.warnings.push(...page.warnings);
      token = page.next_list_page_token;
    }
    return { ...first, ...lists, next_list_page_token: '' };
  }

  /**
   * Summaries of the newest jobs (those this client's token may see), newest first: up to `limit`
   * (default 50; `Infinity` for all), in `state` if given ("JOB_STATE_RUNNING" or "running").
   * Asks as many pages as that takes (see {@link listJobsPage}).
   */
  async listJobs(opts: CallOptions & { limit?: number; state?: string } = {}): Promise<Job__Output[]> {
    if (opts.limit !== undefined && opts.limit !== Infinity) wholeNumber('limit', opts.limit, 1);
    const limit = opts.limit || 50;
    const jobs: Job__Output[] = [];
    let pageToken = '';
    do {
      const page = await this.listJobsPage({ ...opts, limit: Math.min(limit - jobs.length, MAX_LIST_PAGE), pageToken });
      jobs.push(...page.jobs);
      pageToken = page.nextPageToken;
    } while (pageToken && jobs.length < limit);
    return jobs;
  }

  /**
   * One page of `ListJobs`: up to `limit` summaries (at most 1000, and fewer where they would pass
   * 3 MiB), and the token of the next page ("" on the last). Ask the next page with the same `state`.
   */
  async listJobsPage(opts: CallOptions & { limit?: number; state?: string; pageToken?: string } = {}): Promise<{ jobs: Job__Output[]; nextPageToken: string }> {
    if (opts.limit !== undefined) wholeNumber('limit', opts.limit, 0);
    const res = await this.unaryCall<unknown, { jobs: Job__Output[]; next_page_token: string }>(
      this.client.ListJobs as never,
      { limit: opts.limit ?? 50, state: opts.state ?? '', page_token: opts.pageToken ?? '' },
      opts,
    );
    return { jobs: res.jobs, nextPageToken: res.next_page_token };
  }

  /** Cancels a job; the job as it ended, with all its subtasks (read a page at a time). */
  async cancel(jobId: string, opts: CallOptions = {}): Promise<Job__Output> {
    const job: Job__Output = await this.unaryCall(this.client.CancelJob, { job_id: jobId, subtask_limit: SUBTASK_PAGE }, opts);
    return this.restOfSubtasks(job, opts);
  }

  async listWorkers(opts: CallOptions = {}): Promise<WorkerInfo__Output[]> {
    const res = await this.unaryCall<unknown, { workers: WorkerInfo__Output[] }>(this.client.ListWorkers as never, {}, opts);
    return res.workers;
  }

  /**
   * Streams a job's events after `afterSeq` until its final event. If the connection drops (for
   * example while the coordinator restarts), re-attaches from the last sequence seen, for up to
   * `reconnectForMs`. A coordinator never reached in this call (a wrong address, nothing
   * listening) fails at once with UNAVAILABLE, as `getJob` and `submit` do.
   */
  async *watch(jobId: string, opts: WatchOptions & { afterSeq?: number; inlineOutputsUpTo?: number } = {}): AsyncGenerator<JobEvent__Output> {
    const { signal, done } = this.scope(opts.signal);
    try {
      yield* this.watchScoped(jobId, { ...opts, signal });
    } finally {
      done();
    }
  }

  private async *watchScoped(jobId: string, opts: WatchOptions & { afterSeq?: number; inlineOutputsUpTo?: number }): AsyncGenerator<JobEvent__Output> {
    // A window, not a timer: any length (Infinity: for as long as it takes); the waits within it are capped.
    checkReconnectFor(opts.reconnectForMs);
    let last = opts.afterSeq ?? 0;
    let downSince = 0;
    // Re-attached only once the coordinator was reached (by this call, or any before it on this
    // client): a wrong address still fails at once.
    let reached = this.reached;
    // Once per outage: the first time the stream is lost after it last delivered.
    const lost = (why: string, at = steadyNow()): void => {
      if (!downSince) opts.onReconnect?.(why);
      downSince ||= at;
    };
    const firstTry = steadyNow();
    for (;;) {
      // Aborted before the call: none is made (one made and never read would stay open).
      if (opts.signal?.aborted) throw opts.signal.reason;
      const call = this.client.WatchJob({ job_id: jobId, after_seq: String(last), batch: true, inline_outputs_up_to: opts.inlineOutputsUpTo ?? 0, types: opts.types ?? [] }, this.md());
      const onAbort = (): void => call.cancel();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      // The call's status: after the final event the coordinator ends the call itself, and it is
      // let end. Cancelled instead, each watch sent a stream reset: a client waiting on a thousand
      // jobs looked like a rapid-reset attack, and the coordinator closed its whole connection.
      let closed = false;
      const ended = new Promise<void>((resolve) => call.once('status', () => ((closed = true), resolve())));
      // The coordinator sends the call's headers at once. Without them in time (a coordinator
      // stopped with SIGSTOP, a hung host, an address that takes connections and never answers)
      // the call would wait for ever in a channel that stays CONNECTING: given up as UNAVAILABLE
      // after the unary deadline, or what is left of the reconnect window in an outage.
      let unanswered = false;
      const answerWithin = Math.min(MAX_TIMER_MS, downSince ? Math.max(0, downSince + (opts.reconnectForMs ?? 120_000) - steadyNow()) : this.deadlineMs);
      const noAnswer = setTimeout(() => {
        unanswered = true;
        call.cancel();
      }, answerWithin);
      // Connected (the call got its headers, which the coordinator sends at once) even if no event
      // comes for a while: an outage is over.
      call.once('metadata', () => {
        clearTimeout(noAnswer);
        reached = this.reached = true;
        if (downSince) opts.onReattach?.(steadyNow() - downSince);
        downSince = 0;
      });
      try {
        for await (const message of call as AsyncIterable<JobEvent__Output>) {
          reached = true;
          for (const e of message.type === 'batch' ? message.batch : [message]) {
            last = Number(e.seq);
            yield e;
            if (e.final) {
              await Promise.race([ended, sleep(FINAL_END_WAIT_MS, undefined, { ref: false })]);
              return;
            }
          }
        }
        // The stream ended without the final event: the coordinator is shutting down (re-attach),
        // or the job had ended at or before `afterSeq` (nothing is left to send: done). Asked
        // briefly: a coordinator going away does not answer, and the outage counts from now.
        const endedAt = steadyNow();
        const job = await this.getJob(jobId, { includeSubtasks: false, deadlineMs: 2000, ...(opts.signal && { signal: opts.signal }) }).catch(() => undefined);
        if (job && TERMINAL_STATES.has(job.state) && last >= Number(job.last_event_seq)) return;
        reached = true;
        lost('the coordinator ended the event stream', endedAt);
        if (steadyNow() - downSince > (opts.reconnectForMs ?? 120_000)) throw new TesseraError(grpc.status.UNAVAILABLE, `lost the event stream of job ${jobId}`);
        await pause(500, opts.signal);
      } catch (caught) {
        // Aborted: the caller's reason, not the CANCELLED of the call it cut (nor a sleep's AbortError).
        if (opts.signal?.aborted) throw opts.signal.reason;
        if (unanswered) {
          const why = reached ? `the coordinator at ${this.address} did not answer for ${(answerWithin / 1000).toFixed(0)} s (stopped, or its host hung?)` : `the coordinator could not be reached for ${(answerWithin / 1000).toFixed(0)} s (nothing answered at ${this.address})`;
          if (!reached) throw new TesseraError(grpc.status.UNAVAILABLE, why, { retryable: true });
          lost(why);
          if (steadyNow() - downSince >= (opts.reconnectForMs ?? 120_000)) throw new TesseraError(grpc.status.UNAVAILABLE, `lost the event stream of job ${jobId}: ${why}`, { retryable: true });
          await pause(500, opts.signal);
          continue;
        }
        const err = tidy(caught);
        const { code, details } = err as grpc.ServiceError;
        // Its channel given up while it waited for a connection (see unstick): the call never left,
        // and goes again on the new channel, within the time it had (a never reached coordinator then fails as above).
        if (channelGivenUp(err) && !this.channelClosed) {
          if (downSince) continue;
          if (!reached && steadyNow() - firstTry >= this.deadlineMs) throw new TesseraError(grpc.status.UNAVAILABLE, `the coordinator could not be reached for ${(this.deadlineMs / 1000).toFixed(0)} s (nothing answered at ${this.address})`, { retryable: true });
          if (!reached) continue;
        }
        if (answered(err)) this.reached = true;
        if (code !== grpc.status.UNAVAILABLE && code !== grpc.status.CANCELLED) throw err;
        // Any answer but "could not connect" means the coordinator was there (a dropped connection, its shutdown).
        if (code === grpc.status.UNAVAILABLE && answered(err)) reached = true;
        if (this.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY) reached = true;
        if (!reached) throw err;
        lost(details ?? String(err));
        // Given up: the coordinator is lost (UNAVAILABLE, exit 4), also when the last call ended CANCELLED.
        if (steadyNow() - downSince > (opts.reconnectForMs ?? 120_000)) throw code === grpc.status.UNAVAILABLE ? err : new TesseraError(grpc.status.UNAVAILABLE, `lost the event stream of job ${jobId}: ${details ?? String(err)}`);
        await pause(500, opts.signal);
      } finally {
        clearTimeout(noAnswer);
        opts.signal?.removeEventListener('abort', onAbort);
        // A caller that stops reading (a break out of its loop) ends the generator here: the call
        // must end too, or it stays open (and the coordinator keeps its events coming) until the
        // job does. Nothing for a call that has already ended.
        if (!closed) call.cancel();
      }
    }
  }

  /**
   * Waits for a job to finish, calling `onEvent` for each event; returns the final job. Re-attaches
   * as `watch` does; `signal` aborted: rejects with its reason (the job goes on). The options
   * (`{ signal, reconnectForMs, ... }`, or a signal alone) come after `onEvent`, or in its place:
   * `wait(id, { signal })` as every other call takes them.
   */
  wait(jobId: string, options?: WatchOptions | AbortSignal, more?: WatchOptions | AbortSignal): Promise<Job__Output>;
  wait(jobId: string, onEvent?: (e: JobEvent__Output) => void, signalOrOptions?: AbortSignal | WatchOptions, options?: WatchOptions): Promise<Job__Output>;
  wait(jobId: string, ...args: Array<((e: JobEvent__Output) => void) | WatchOptions | AbortSignal | undefined>): Promise<Job__Output> {
    // Every form gathered, none dropped: an event callback first where there is one, then options
    // and signals in any order, a later one winning (the signal as an option, as every other call
    // takes it, or on its own, as before).
    const onEvent = typeof args[0] === 'function' ? args[0] : undefined;
    let opts: WatchOptions = {};
    for (const a of args) {
      if (a === undefined || typeof a === 'function') continue;
      opts = a instanceof AbortSignal ? { ...opts, signal: a } : { ...opts, ...a };
    }
    // Nobody to show the subtasks' events to: not worth the coordinator's encoding them.
    const types = opts.types ?? (onEvent ? undefined : ['job_state']);
    return this.watchToEnd(jobId, onEvent, { ...opts, ...(types ? { types } : {}) });
  }

  private async watchToEnd(jobId: string, onEvent: ((e: JobEvent__Output) => void) | undefined, opts: WatchOptions & { inlineOutputsUpTo?: number }): Promise<Job__Output> {
    const { signal } = opts;
    for await (const e of this.watch(jobId, opts)) onEvent?.(e);
    // The coordinator may be restarting right now: retry the final read as the watch reconnects,
    // for `reconnectForMs` in all, each call's deadline within what is left of it.
    const until = steadyNow() + (opts.reconnectForMs ?? 120_000);
    for (;;) {
      signal?.throwIfAborted();
      try {
        return await this.getJob(jobId, { deadlineMs: Math.max(1, Math.min(this.deadlineMs, until - steadyNow())), ...(signal && { signal }) });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if ((err as grpc.ServiceError).code !== grpc.status.UNAVAILABLE || steadyNow() + 500 >= until) throw err;
        await pause(500, signal);
      }
    }
  }

  /**
   * Downloads every output (or those named) of a finished job into `dir`. Each is written to a
   * file of the download's own beside it and moved into place once verified (size and SHA-256); a
   * download that stops leaves what it got as the hidden part file `.NAME.tessera-part` (never
   * `NAME.part`, which may be a file of yours), which the next download resumes from. Downloads of
   * the same output into the same folder at once are safe: one may resume the part file, the
   * others start afresh, and a file that already holds the output's bytes counts as downloaded.
   * Returns the paths written, by output name. A name in `names` that the job
   * has no output of fails the whole download before anything is written (`dir` included): NOT_FOUND
   * for a finished job; for a running job, whose outputs are those published so far,
   * FAILED_PRECONDITION.
   */
  download(jobId: string, dir: string, opts: DownloadOptions & { names?: string[] } = {}): Promise<Map<string, string>> {
    return this.scoped(opts.signal, (signal) => this.downloadScoped(jobId, dir, { ...opts, signal }));
  }

  private async downloadScoped(jobId: string, dir: string, opts: DownloadOptions & { names?: string[] }): Promise<Map<string, string>> {
    opts.signal?.throwIfAborted();
    checkReconnectFor(opts.reconnectForMs);
    const job = await this.getJob(jobId, { includeSubtasks: false, ...(opts.signal && { signal: opts.signal }) });
    opts.signal?.throwIfAborted();
    if (opts.names) {
      const have = new Set(job.outputs.map((o) => o.name));
      const missing = [...new Set(opts.names)].filter((n) => !have.has(n));
      if (missing.length > 0) throw noSuchOutputs(job, missing);
    }
    const wanted = job.outputs.filter((o) => !opts.names || opts.names.includes(o.name));
    // Never trust a name to stay inside `dir`: all are checked before anything is written.
    for (const o of wanted) safeOutputName(o.name);
    await mkdir(dir, { recursive: true }).catch((err: unknown) => {
      throw localTrouble(err, dir);
    });
    const queue = this.downloadQueue(jobId, dir, opts);
    for (const o of wanted) queue.add(o);
    return queue.finish();
  }

  /**
   * Streams one published output's bytes, for code that sends them on (to object storage, an HTTP
   * response) rather than to a folder: `for await (const chunk of client.readOutput(id, name))`.
   * From `offset` (default 0) to the end; a connection lost on the way is resumed where it broke
   * (for `reconnectForMs`, 2 minutes by default, after bytes last came, as downloads are). The whole output read from 0 is
   * checked against its SHA-256 and size before the last chunk is given: a mismatch throws
   * DATA_LOSS instead. An output a running job has not published yet is FAILED_PRECONDITION, one a
   * finished job does not have NOT_FOUND; leaving the loop early
   * ends the call.
   */
  async *readOutput(jobId: string, name: string, opts: { offset?: number; signal?: AbortSignal; reconnectForMs?: number } = {}): AsyncGenerator<Buffer> {
    checkReconnectFor(opts.reconnectForMs);
    const { signal, done } = this.scope(opts.signal);
    try {
      const job = await this.getJob(jobId, { includeSubtasks: false, signal });
      const info = job.outputs.find((o) => o.name === name);
      if (!info) throw noSuchOutputs(job, [name]);
      const size = Number(info.size);
      const from = opts.offset ?? 0;
      if (!Number.isSafeInteger(from) || from < 0) throw invalidArgument(`offset: ${from} is not a whole number of bytes, 0 or more`);
      // Past the end: OUT_OF_RANGE, as DownloadOutput answers it (README's error table), not a
      // malformed request (review CLI3).
      if (from > size) throw new TesseraError(grpc.status.OUT_OF_RANGE, `offset ${from} is past the end of ${name} (${size} bytes)`);
      let offset = from;
      // Only a read of the whole output can be checked; the check holds back the last chunk.
      const hash = from === 0 && info.sha256 ? newSha256() : undefined;
      let held: Buffer | undefined;
      let since = steadyNow();
      for (let attempt = 1; ; attempt++) {
        const call = this.client.DownloadOutput({ job_id: jobId, name, offset: String(offset) }, this.md(), { deadline: deadline(transferDeadlineMs(size - offset)) });
        const onAbort = (): void => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        // A call that ended on its own is not cancelled (a stream reset each, which the coordinator
        // counts against the connection, as for watches).
        let closed = false;
        call.once('status', () => (closed = true));
        try {
          for await (const chunk of call as AsyncIterable<OutputChunk__Output>) {
            checkChunk(name, chunk, offset, size);
            hash?.update(chunk.data);
            offset += chunk.data.length;
            since = steadyNow();
            if (held) yield held;
            held = chunk.data;
          }
          break;
        } catch (caught) {
          if (signal.aborted) throw signal.reason;
          const err = tidy(caught);
          const code = (err as grpc.ServiceError).code;
          if (!RETRYABLE_DOWNLOAD.has(code) || code === grpc.status.DATA_LOSS || steadyNow() - since > (opts.reconnectForMs ?? DOWNLOAD_RETRY_FOR_MS)) throw err;
          await pause(Math.min(2000, 200 * attempt), signal);
        } finally {
          signal.removeEventListener('abort', onAbort);
          if (!closed) call.cancel();
        }
      }
      if (offset !== size) throw dataLoss(`${name}: ${offset} bytes read where the output has ${size}`);
      if (hash && hash.digest('hex') !== info.sha256) throw dataLoss(`${name}: checksum mismatch after reading it`);
      if (held) yield held;
    } finally {
      done();
    }
  }

  /**
   * Waits for a job (like `wait`) and downloads its outputs into `dir` as they are published (an
   * `output` event each): a batch's first results arrive while the rest of the job still runs.
   * Outputs up to 1 MiB come inside their events (no download call each) and are written once
   * their checksum matches; the others are resumed and verified as in `download`, and a download
   * cut by a coordinator restart is resumed once it is back. Returns the finished job and the
   * paths written.
   */
  collect(
    jobId: string,
    dir: string,
    opts: DownloadOptions & WatchOptions & { onEvent?: (e: JobEvent__Output) => void } = {},
  ): Promise<{ job: Job__Output; paths: Map<string, string> }> {
    return this.scoped(opts.signal, (signal) => this.collectScoped(jobId, dir, { ...opts, signal }));
  }

  private async collectScoped(
    jobId: string,
    dir: string,
    opts: DownloadOptions & WatchOptions & { onEvent?: (e: JobEvent__Output) => void },
  ): Promise<{ job: Job__Output; paths: Map<string, string> }> {
    // While the watch runs it says when the coordinator is lost; after it, the downloads left do.
    let watching = true;
    const queue = this.downloadQueue(jobId, dir, { ...opts, onReconnect: (why) => void (!watching && opts.onReconnect?.(why)), onReattach: (ms) => void (!watching && opts.onReattach?.(ms)) });
    let job: Job__Output;
    try {
      job = await this.watchToEnd(
        jobId,
        (e) => {
          opts.onEvent?.(e);
          if (e.type === 'output' && e.output) queue.add(e.output, e.output_data);
        },
        // Small outputs come inside their events: no download call for each.
        { signal: queue.signal, inlineOutputsUpTo: INLINE_OUTPUT_MAX_BYTES, ...(opts.onReconnect && { onReconnect: opts.onReconnect }), ...(opts.onReattach && { onReattach: opts.onReattach }), ...(opts.reconnectForMs !== undefined && { reconnectForMs: opts.reconnectForMs }) },
      );
      watching = false;
      for (const o of job.outputs) queue.add(o);
    } catch (err) {
      // Aborted by the caller: its reason (finish throws it once the downloads have stopped).
      // A failed download stops the watch (through its signal): that failure is the one to report.
      if (queue.failed || opts.signal?.aborted) await queue.finish();
      // Otherwise the watch failed: stop the downloads in flight rather than wait for them.
      queue.abort(err);
      await queue.finish().catch(() => undefined);
      throw err;
    }
    return { job, paths: await queue.finish() };
  }

  private downloadQueue(jobId: string, dir: string, opts: DownloadOptions): DownloadQueue {
    return new DownloadQueue(
      (o, dest, publish, signal, onBytes) =>
        this.downloadOne(jobId, o.name, dest, o.sha256, Number(o.size), publish, signal, (p) => {
          onBytes();
          opts.onProgress?.(p);
        }),
      dir,
      opts,
    );
  }

  /**
   * {@link downloadOne} for an output of at most SMALL_DOWNLOAD_MAX_BYTES: its bytes gathered in
   * memory, checked, and written in one call through a file of its own (as an output that came
   * inside its event is), with no part file to resume from. A part file, a writer thread, a file
   * handle and their checks for each of a job's hundreds of thumbnails cost the client 5 ms of CPU
   * apiece, most of a download that moved 5 MB.
   */
  private async downloadSmall(jobId: string, name: string, dest: string, expected: string, size: number, publish: Publish, signal?: AbortSignal, onProgress?: DownloadOptions['onProgress']): Promise<void> {
    signal?.throwIfAborted();
    const call = this.client.DownloadOutput({ job_id: jobId, name, offset: '0' }, this.md(), { deadline: deadline(transferDeadlineMs(size)) });
    const onAbort = (): void => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    const chunks: Buffer[] = [];
    let offset = 0;
    let received = false;
    try {
      for await (const chunk of call as AsyncIterable<OutputChunk__Output>) {
        checkChunk(name, chunk, offset, size);
        chunks.push(chunk.data);
        offset += chunk.data.length;
      }
      received = true;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!received) call.cancel();
    }
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (offset !== size) throw dataLoss(`${name}: ${offset} bytes downloaded where the output has ${size}`);
    if (expected && sha256(data) !== expected) throw new TesseraError(grpc.status.DATA_LOSS, `${name}: checksum mismatch after download`);
    onProgress?.({ name, bytes: size, size });
    await writeAtomically(dest, data, publish, name, { size, sha256: expected });
  }

  private async downloadOne(
    jobId: string,
    name: string,
    dest: string,
    expected: string,
    size: number,
    publish: Publish,
    signal?: AbortSignal,
    onProgress?: DownloadOptions['onProgress'],
  ): Promise<void> {
    if (size <= SMALL_DOWNLOAD_MAX_BYTES) return this.downloadSmall(jobId, name, dest, expected, size, publish, signal, onProgress);
    const part = partName(dest);
    const { fh, file } = await openOwn(dest, part);
    // Until verified, what came in is kept (as the part file) for the next try to resume.
    let keep = true;
    try {
      let offset = 0;
      // Hash as the bytes arrive; a resumed download hashes its existing prefix first.
      const hash = newSha256();
      try {
        const st = await fh.stat();
        if (st.size > 0 && st.size <= size) {
          for await (const c of fh.createReadStream({ start: 0, end: st.size - 1, highWaterMark: CHUNK_SIZE, autoClose: false })) hash.update(c as Buffer);
          offset = st.size;
        } else if (st.size > 0) await fh.truncate(0);
        // Aborted meanwhile (while a resumed prefix was hashed): no call.
        signal?.throwIfAborted();
        const call = this.client.DownloadOutput({ job_id: jobId, name, offset: String(offset) }, this.md(), { deadline: deadline(transferDeadlineMs(size - offset)) });
        const onAbort = (): void => call.cancel();
        signal?.addEventListener('abort', onAbort, { once: true });
        // Written behind the chunks as they come (a few in flight), not one chunk at a time: the
        // next chunk is hashed while the kernel copies the last one into the file.
        const out = threadedWriteStream(file, { start: offset, flags: 'r+' });
        out.on('error', () => undefined);
        let received = false;
        try {
          for await (const chunk of call as AsyncIterable<OutputChunk__Output>) {
            checkChunk(name, chunk, offset, size);
            hash.update(chunk.data);
            // A failed write (a full disk) throws its error here.
            await writeWithBackpressure(out, chunk.data);
            offset += chunk.data.length;
            onProgress?.({ name, bytes: offset, size });
          }
          received = true;
        } finally {
          signal?.removeEventListener('abort', onAbort);
          // Stopped before the end (a failed write, a bad chunk): leaving the loop only destroys
          // the grpc-js stream, which does not end the call; the coordinator would go on sending
          // and the process stay up until the call's deadline.
          if (!received) call.cancel();
          // The writes in flight land (or fail) before the file is closed; one that failed fails the download.
          out.end();
          const failed = await finished(out).then(() => undefined, (err: unknown) => err);
          // Waits for the writer thread to close its descriptor too.
          await closeWriteStream(out);
          if (failed && received) throw failed;
        }
      } finally {
        await fh.close();
      }
      // Verify the whole file (including a resumed prefix) before publishing it; a mismatch is not kept.
      keep = false;
      // Its size too: a stream that ended early, where no checksum was announced, is not the output.
      if (offset !== size) throw dataLoss(`${name}: ${offset} bytes downloaded where the output has ${size}`);
      if (expected && hash.digest('hex') !== expected) throw new TesseraError(grpc.status.DATA_LOSS, `${name}: checksum mismatch after download`);
      await publish(file, dest, name, { size, sha256: expected });
    } catch (err) {
      if (keep) await park(file, part);
      else await rm(file, { force: true }).catch(() => undefined);
      throw err;
    } finally {
      inFlight.delete(file);
    }
  }

  /**
   * Closes the connection. Calls still running end at once, rejecting (or, for `watch`,
   * throwing) CANCELLED; so does every call made after. Jobs on the cluster go on, but for one a
   * submission it cut had made (see submit), which is cancelled first, within a second.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Ending a submission may start the clean-up of a job it made (see cancelLeftBehind): on the
    // channel still open.
    for (const call of this.open) call.abort(clientClosed());
    this.open.clear();
    if (this.leftBehind.size === 0) {
      this.closeChannel();
      return;
    }
    // Jobs of aborted submissions being looked up and cancelled: given a moment (the usual
    // `finally { client.close() }` right after an abort would leave them running), then cut; the
    // channel closes once they have ended.
    this.closeGrace = setTimeout(() => {
      for (const end of this.leftBehind.values()) end();
    }, LEFT_BEHIND_CLOSE_GRACE_MS);
  }

  /**
   * Finds the job an aborted submission of `requestId` (the library's own) made, if any, and
   * cancels it: in the background, straight on the channel (a client closed meanwhile holds it open
   * for this, up to {@link LEFT_BEHIND_CLOSE_GRACE_MS}). The coordinator waits for a submission of
   * that id it is still receiving to settle first. A coordinator from before the look-up lists all
   * the client's jobs instead: only one carrying the id is taken.
   */
  private cancelLeftBehind(requestId: string, jobId?: string): Promise<LeftBehind> {
    if (this.channelClosed) return Promise.resolve({ ...(jobId && { jobId }), error: clientClosed() as unknown as ServiceError });
    const key = {};
    let call: grpc.ClientUnaryCall | undefined;
    let settle: (found: LeftBehind) => void = () => undefined;
    const settled = new Promise<LeftBehind>((resolve) => (settle = resolve));
    const done = (found: LeftBehind): void => {
      settle(found);
      if (!this.leftBehind.delete(key) || !this.closed || this.leftBehind.size > 0) return;
      clearTimeout(this.closeGrace);
      this.closeChannel();
    };
    this.leftBehind.set(key, () => call?.cancel());
    // One budget for both calls, waiting for a connection within it (a link that catches up, a
    // coordinator restarting: answers held back 3 s outlived a 2 s deadline; review M).
    const end = Date.now() + LEFT_BEHIND_DEADLINE_MS;
    const md = (): grpc.Metadata => {
      const m = this.md();
      m.setOptions({ waitForReady: true });
      return m;
    };
    const options = (): grpc.CallOptions => ({ deadline: new Date(end) });
    const cancel = (id: string): void => {
      call = this.client.CancelJob({ job_id: id, subtask_limit: 1 }, md(), options(), (err: grpc.ServiceError | null, job?: Job__Output) => {
        if (!err) return done({ jobId: id, ...(job?.state && { state: job.state }) });
        if (err.code !== grpc.status.FAILED_PRECONDITION) return done({ jobId: id, error: tidy(err) as ServiceError });
        // Ended meanwhile (between the look-up and the cancel, or before an answered job's cancel):
        // the state it ended in, as for one the look-up found ended.
        call = this.client.GetJob({ job_id: id, include_subtasks: false }, md(), options(), (e: grpc.ServiceError | null, now?: Job__Output) => {
          done(!e && now && TERMINAL_STATES.has(now.state) ? { jobId: id, state: now.state } : { jobId: id, error: tidy(e ?? err) as ServiceError });
        });
      });
    };
    // Known (the submission was answered): cancelled straight away.
    if (jobId) {
      cancel(jobId);
      return settled;
    }
    const list = this.client.ListJobs as unknown as (req: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { jobs: Job__Output[] }) => void) => grpc.ClientUnaryCall;
    call = list.call(this.client, { request_id: requestId, limit: 1000 }, md(), options(), (err, res) => {
      if (err) return done({ error: tidy(err) as ServiceError });
      const made = res?.jobs.find((j) => j.spec?.request_id === requestId);
      if (!made) return done({});
      if (TERMINAL_STATES.has(made.state)) return done({ jobId: made.id, state: made.state });
      cancel(made.id);
    });
    return settled;
  }
}

const writeFileCallback = promisify(writeFile);

/** File-system errors that say the machine lacks room or handles: RESOURCE_EXHAUSTED. */
const OUT_OF_ROOM = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE']);

/**
 * A file-system error of this machine's (writing a download: no room, no permission, a folder
 * that went away) as a TesseraError with a gRPC code like every other rejection (the original as
 * `cause`); anything else as it is.
 */
function localTrouble(err: unknown, where: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof TesseraError || typeof e?.code !== 'string' || !e.syscall) return err;
  const code = OUT_OF_ROOM.has(e.code) ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.FAILED_PRECONDITION;
  return new TesseraError(code, `${where}: cannot be written here (${e.message})`, { retryable: false, cause: err });
}

/** Sleeps `ms`; aborted, rejects with the signal's reason (not a sleep's own AbortError). */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
}

/** An input file whose size moved between its check and its upload (or a retry of it): what was asked for is gone. */
function changedWhileSubmitted(file: string, before: number, now: number, also = ''): TesseraError {
  return new TesseraError(grpc.status.FAILED_PRECONDITION, `${file} changed while it was being submitted (${before} -> ${now} bytes): ${also}submit it anew`, { retryable: false });
}

/** Names shown in a message about many (the first few, then how many more). */
const NAMES_SHOWN = 5;

/** `"a", "b", "c" and 4 more`: names quoted (they may hold spaces or commas), at most NAMES_SHOWN. */
function someNames(names: readonly string[]): string {
  const shown = names.slice(0, NAMES_SHOWN).map((n) => JSON.stringify(n)).join(', ');
  return names.length > NAMES_SHOWN ? `${shown} and ${names.length - NAMES_SHOWN} more` : shown;
}

/**
 * Names a job does not have (yet). As the coordinator's DownloadOutput says: a finished job's
 * missing name is NOT_FOUND (it never will have it), a running job's FAILED_PRECONDITION (it may
 * be published later: ask again once the job has ended).
 */
function noSuchOutputs(job: Job__Output, missing: readonly string[]): TesseraError {
  const state = job.state.replace(/^JOB_STATE_/, '').toLowerCase();
  const running = !TERMINAL_STATES.has(job.state);
  const names = job.outputs.map((o) => o.name).sort();
  const has = names.length === 0 ? `it has none${running ? ' yet' : ''}` : `its outputs${running ? ' so far' : ''}: ${someNames(names)}`;
  const which = missing.length === 1 ? 'output' : 'outputs';
  const message = `job ${job.id} (${state}) has no ${which} named ${someNames(missing)}${running ? ' yet' : ''}; ${has}`;
  return running ? failedPrecondition(message) : notFound(message);
}


/** What the client's downloads do where a file is already there. */
export interface DownloadOptions {
  signal?: AbortSignal;
  concurrency?: number;
  /**
   * Replace files already in the folder under an output's name. Without it such a file is kept
   * and the download fails with ALREADY_EXISTS, unless it holds the output's very bytes (then it
   * counts as downloaded, so running a download again finishes what an earlier one started).
   */
  overwrite?: boolean;
  /** Files never replaced, even with `overwrite`: the job's own inputs, when it reads them from shared storage. */
  protect?: string[];
  /** Called once per outage when a download loses the coordinator and waits to resume (as a watch's `onReconnect`). */
  onReconnect?: (reason: string) => void;
  /** Called when bytes come in again after `onReconnect`: how long the download was without them (ms). */
  onReattach?: (lostForMs: number) => void;
  /**
   * How long a download keeps resuming while the coordinator cannot be reached, counted from the
   * last bytes it got (ms, default 2 min; `collect` gives its watch the same).
   */
  reconnectForMs?: number;
  /**
   * Called as an output's bytes come in (once per message: up to 1 MiB, 64 KiB while other readers
   * hold the coordinator's --stream-buffer-bytes): its name, the bytes it has so far (a
   * resumed download counts what its part file held) and its size. Outputs that came inside their
   * events, or were already in the folder, are not reported.
   */
  onProgress?: (p: { name: string; bytes: number; size: number }) => void;
}

/** What an output must hold: its size and SHA-256, as the coordinator announced them. */
interface Expected {
  size: number;
  sha256: string;
}

/** Moves a verified file of a download's own to its output's name. */
type Publish = (file: string, dest: string, name: string, want: Expected) => Promise<void>;

/**
 * Where an output is left when its download stops (and resumed from, for the large ones): a hidden
 * name of Tessera's own beside it, `.NAME.tessera-part`, so that a file of the user's (or another
 * output) called `NAME.part` is never taken for a leftover and replaced. At most 254 bytes for a
 * 240-byte output name.
 */
/** A `reconnectForMs` given must be a number of ms of at least 0 (NaN, from an unset variable, retried for ever). */
function checkReconnectFor(ms: number | undefined, name = 'reconnectForMs'): void {
  if (ms !== undefined && !(ms >= 0)) throw invalidArgument(`${name}: ${ms} is not a number of ms of at least 0`);
}

export const partName = (dest: string): string => path.join(path.dirname(dest), `.${path.basename(dest)}.tessera-part`);

/**
 * The file one download writes: its own, so that two downloads of the same output into the same
 * folder at once never write, move or remove each other's. It names this machine, this process and
 * a digest of the output's name (the name itself may take all 255 bytes), so that what a download
 * killed outright (SIGKILL, a power cut) got is found and resumed by the next one (`orphanOf`).
 */
const ownFileIn = (dest: string): string => path.join(path.dirname(dest), `.tessera-${HOST}-${process.pid}-${nameDigest(dest)}-${randomBytes(4).toString('hex')}.tessera-part`);
const nameDigest = (dest: string): string => sha256(Buffer.from(path.basename(dest))).slice(0, 12);
/** This machine, as download file names tell it (a folder may be shared with others). */
const HOST = sha256(Buffer.from(os.hostname())).slice(0, 6);
const OWN_FILE = /^\.tessera-([0-9a-f]{6})-(\d+)-([0-9a-f]{12})-[0-9a-f]{8}\.tessera-part$/;

/** A folder's entries, read once for the downloads that start within a second or two of each other. */
const folderScans = new Map<string, { at: number; entries: Promise<string[]> }>();

function entriesOf(dir: string): Promise<string[]> {
  const now = steadyNow();
  const cached = folderScans.get(dir);
  if (cached && now - cached.at < 2000) return cached.entries;
  for (const [d, s] of folderScans) if (now - s.at >= 2000) folderScans.delete(d);
  const entries = readdir(dir).catch(() => [] as string[]);
  folderScans.set(dir, { at: now, entries });
  return entries;
}

/**
 * The largest file a download of `dest` killed outright left in its folder, or undefined: one of
 * this machine's, whose process is gone, or is this one (a container's CLI runs as the same pid
 * each time) and not among its downloads in flight. Another machine's are left alone.
 */
async function orphanOf(dest: string): Promise<string | undefined> {
  const digest = nameDigest(dest);
  let best: { file: string; size: number } | undefined;
  for (const entry of await entriesOf(path.dirname(dest))) {
    const m = OWN_FILE.exec(entry);
    if (!m || m[1] !== HOST || m[3] !== digest) continue;
    const pid = Number(m[2]);
    if (pid === process.pid ? inFlight.has(path.join(path.dirname(dest), entry)) : processAlive(pid)) continue;
    const file = path.join(path.dirname(dest), entry);
    const st = await lstat(file).catch(() => undefined);
    if (st?.isFile() && (!best || st.size > best.size)) best = { file, size: st.size };
  }
  return best?.file;
}

/**
 * A chunk of a download where it should be: at the offset reached, and not past the output's size (a
 * buggy or hostile coordinator's is refused at once, before it is written or read to the deadline).
 */
function checkChunk(name: string, chunk: OutputChunk__Output, offset: number, size: number): void {
  if (Number(chunk.offset) !== offset) throw dataLoss(`${name}: chunk at offset ${chunk.offset}, expected ${offset}`);
  if (offset + chunk.data.length > size) throw dataLoss(`${name}: more than its ${size} bytes arrived`);
}

const notAFile = (p: string): TesseraError =>
  new TesseraError(grpc.status.FAILED_PRECONDITION, `${p} is not a regular file: not written through; remove it`, { retryable: false });

/**
 * Downloads in flight, their own file -> the part file it is left as if the process exits
 * meanwhile (process.exit(), as Ctrl-C in `tessera submit` does): the next download resumes it.
 */
const inFlight = new Map<string, string>();
let parksOnExit = false;

function trackInFlight(file: string, part: string): void {
  inFlight.set(file, part);
  if (parksOnExit) return;
  parksOnExit = true;
  process.on('exit', () => {
    for (const [f, p] of inFlight) {
      try {
        parkSync(f, p);
      } catch {
        // Exiting: what cannot be parked stays under its own name.
      }
    }
  });
}

/** {@link park} as the process exits: what came in left as the part file; nothing (0 bytes), only removed. */
function parkSync(file: string, part: string): void {
  if (lstatSync(file).size === 0) return unlinkSync(file);
  try {
    linkSync(file, part);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && !NO_HARD_LINKS.has(code ?? '')) throw err;
    if (code !== 'EEXIST' && !existsSync(part)) return renameSync(file, part);
  }
  unlinkSync(file);
}

/**
 * Leaves what a stopped download got as the output's part file, for the next one to resume. Never
 * replaces one: another download of the same output may have left its own there meanwhile (then
 * this one goes). Best effort: a failure here never hides the one that stopped the download.
 */
async function park(file: string, part: string): Promise<void> {
  try {
    // Nothing came in (stopped before its first byte): nothing to resume.
    if (((await lstat(file).catch(() => undefined))?.size ?? 0) === 0) return;
    await link(file, part).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST' || !NO_HARD_LINKS.has(err.code ?? '')) return;
      if (!(await lstat(part).then(() => true, () => false))) await rename(file, part);
    });
  } finally {
    await rm(file, { force: true }).catch(() => undefined);
  }
}

/**
 * Opens a download's own file: the output's part file when one is there to resume (taken whole by
 * renaming it: of downloads started at once, one resumes it and the others start afresh), else a
 * fresh one. Never through a link someone left at the part's name: a symbolic one (it would write
 * outside the folder) or a hard one (into another file, or the finished output itself, should a
 * crash have come between its link and unlink). Such a name is removed (the link only, never its
 * target) and the download starts afresh.
 */
async function openOwn(dest: string, part: string): Promise<{ fh: FileHandle; file: string }> {
  const file = ownFileIn(dest);
  // In flight before it exists: a download of the same output starting meanwhile in this process
  // must not take it, once the part file is renamed to it, for one a killed download left.
  trackInFlight(file, part);
  try {
    return await openOwnAs(file, dest, part);
  } catch (err) {
    inFlight.delete(file);
    throw err;
  }
}

async function openOwnAs(file: string, dest: string, part: string): Promise<{ fh: FileHandle; file: string }> {
  // No part file, but one a killed download left under its own name: resumed as the part file.
  if (!(await lstat(part).catch(() => undefined))) {
    const orphan = await orphanOf(dest);
    // A link never replaces a part file that appeared meanwhile; without hard links, a rename.
    if (orphan) {
      await link(orphan, part).then(
        () => unlink(orphan),
        async (err: NodeJS.ErrnoException) => {
          if (NO_HARD_LINKS.has(err.code ?? '') && !(await lstat(part).catch(() => undefined))) await rename(orphan, part).catch(() => undefined);
        },
      ).catch(() => undefined);
    }
  }
  const st = await lstat(part).catch(() => undefined);
  if (st && !st.isFile() && !st.isSymbolicLink()) throw notAFile(part);
  if (st?.isSymbolicLink()) await rm(part, { force: true });
  else if (st) {
    const took = await rename(part, file).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw err;
      },
    );
    if (took) {
      const fh = await open(file, fsc.O_RDWR | fsc.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ELOOP') throw err;
        return undefined;
      });
      if (fh) {
        const own = await fh.stat();
        if (own.isFile() && own.nlink === 1) return { fh, file };
        await fh.close();
      }
      await rm(file, { force: true });
    }
  }
  return { fh: await open(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o666), file };
}

const alreadyThere = (dest: string, name: string): TesseraError =>
  new TesseraError(grpc.status.ALREADY_EXISTS, `${dest} already exists and is not output "${name}": kept (replace it with overwrite: true, --overwrite in the CLI, or download into another folder)`, { retryable: false });

/** Errors of `link` on a file system without hard links (FAT, some network shares). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** True when `dest` is a regular file holding the output's very bytes (its size and SHA-256). */
async function holds(dest: string, want: Expected): Promise<boolean> {
  const st = await lstat(dest).catch(() => undefined);
  if (!st?.isFile() || st.size !== want.size || !want.sha256) return false;
  return (await sha256File(dest).catch(() => undefined)) === want.sha256;
}

/**
 * `link` where the file system has hard links: it never replaces a file that appeared meanwhile.
 * One that holds the output's bytes (another download of it into the same folder finished first)
 * counts as this one; anything else is kept, and the download fails with ALREADY_EXISTS.
 */
const publishKeeping: Publish = async (file, dest, name, want) => {
  try {
    await link(file, dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code !== 'EEXIST' && !NO_HARD_LINKS.has(code)) throw err;
    // No hard links here: check, then rename.
    if (code === 'EEXIST' || (await lstat(dest).then(() => true, () => false))) {
      await rm(file, { force: true });
      if (await holds(dest, want)) return;
      throw alreadyThere(dest, name);
    }
    await rename(file, dest);
    return;
  }
  await unlink(file);
};

const publishReplacing: Publish = (file, dest) => rename(file, dest);

/** Writes `data` to `dest` through a file of its own, so that a crash never leaves a partial file under its name. */
async function writeAtomically(dest: string, data: Buffer, publish: Publish, name: string, want: Expected): Promise<void> {
  const file = ownFileIn(dest);
  // A fresh file of a fresh random name, never through a link.
  // fs's callback form: for hundreds of small files, half the CPU of fs/promises' FileHandles;
  // it takes numeric flags too (its typings say string only).
  const flag = (fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW) as unknown as string;
  // The process exiting meanwhile (Ctrl-C) leaves it as the output's part file, not as a stray.
  trackInFlight(file, partName(dest));
  try {
    await writeFileCallback(file, data, { flag });
    await publish(file, dest, name, want);
  } catch (err) {
    await rm(file, { force: true }).catch(() => undefined);
    throw err;
  } finally {
    inFlight.delete(file);
  }
}

/**
 * What stopped downloads left of an output now written whole: its part file (Ctrl-C leaves one
 * even of an output that came inside its event) and killed downloads' own files, of which a
 * streamed download takes over one at most and an output written from its event none: they
 * stayed in the folder for good. Regular files only, never through a link.
 */
async function dropLeftovers(dest: string): Promise<void> {
  const part = partName(dest);
  if ((await lstat(part).catch(() => undefined))?.isFile()) await rm(part, { force: true }).catch(() => undefined);
  // The folder's listing (cached) is looked through only where it holds a download's own file at all.
  if (!(await entriesOf(path.dirname(dest))).some((e) => e.startsWith('.tessera-') && e.endsWith('.tessera-part'))) return;
  for (let orphan = await orphanOf(dest).catch(() => undefined), tries = 0; orphan && tries < 16; orphan = await orphanOf(dest).catch(() => undefined), tries++) {
    await rm(orphan, { force: true }).catch(() => undefined);
  }
}

/** How long a download keeps retrying while the coordinator is unreachable or restarting. */
const DOWNLOAD_RETRY_FOR_MS = 120_000;

/**
 * Failures a download retries (resuming from its `.part` file): the coordinator restarting
 * (UNAVAILABLE, a call cut: CANCELLED), a transfer slower than its deadline, an output announced
 * just before a crash and not yet published again (FAILED_PRECONDITION), and a re-run output that
 * no longer matches a resumed prefix (DATA_LOSS: the `.part` is gone, it starts over).
 */
const RETRYABLE_DOWNLOAD = new Set<number>([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.DEADLINE_EXCEEDED, grpc.status.FAILED_PRECONDITION, grpc.status.DATA_LOSS]);

/**
 * Downloads in flight for one job: small outputs several at a time (a batch job's hundreds would
 * otherwise wait on one round trip each), large ones one at a time, so each keeps the bandwidth
 * its transfer deadline assumes. The first failure aborts `signal` and stops the rest.
 */
class DownloadQueue {
  private readonly stop = new AbortController();
  private readonly caller: AbortSignal | undefined;
  readonly signal: AbortSignal;
  private readonly small: ReturnType<typeof pLimit>;
  private readonly large = pLimit(1);
  private readonly names = new Map<string, string>();
  /** Destinations queued, to catch one output's part file being another output's name. */
  private readonly dests = new Set<string>();
  /** The part names of the outputs queued (see partName). */
  private readonly parts = new Set<string>();
  private readonly running: Promise<void>[] = [];
  private readonly publish: Publish;
  private readonly overwrite: boolean;
  /** `dev:ino` of the files never replaced (read once, with the first output). */
  private protectedFiles: Promise<Set<string>> | undefined;
  private readonly protect: string[];
  /** Created with the first output. */
  private made: Promise<unknown> | undefined;
  /** Bytes of outputs that came inside their events and are not written yet. */
  private held = 0;

  constructor(
    /** Fetches `o` into `dest`, calling `onBytes` as its bytes come in. */
    private readonly fetch: (o: OutputInfo__Output, dest: string, publish: Publish, signal: AbortSignal, onBytes: () => void) => Promise<void>,
    private readonly dir: string,
    opts: DownloadOptions,
  ) {
    this.caller = opts.signal;
    this.signal = opts.signal ? AbortSignal.any([opts.signal, this.stop.signal]) : this.stop.signal;
    if (opts.concurrency !== undefined) wholeNumber('concurrency', opts.concurrency, 1);
    const concurrency = Math.max(1, opts.concurrency ?? DOWNLOAD_CONCURRENCY);
    // Each download in flight listens on it.
    setMaxListeners(concurrency + 10, this.signal);
    this.small = pLimit(concurrency);
    this.overwrite = opts.overwrite === true;
    this.publish = this.overwrite ? publishReplacing : publishKeeping;
    this.protect = opts.protect ?? [];
    this.onReconnect = opts.onReconnect;
    this.onReattach = opts.onReattach;
    this.retryForMs = opts.reconnectForMs ?? DOWNLOAD_RETRY_FOR_MS;
  }

  private readonly onReconnect: ((reason: string) => void) | undefined;
  private readonly onReattach: ((lostForMs: number) => void) | undefined;
  /** When the outage being waited out began (with `down`). */
  private downSince = 0;
  /** Bytes came in: an outage being waited out is over, and said so once. */
  private readonly back = (): void => {
    if (!this.down) return;
    this.down = false;
    this.onReattach?.(steadyNow() - this.downSince);
  };
  /** How long a download keeps resuming without bytes coming in (see DownloadOptions.reconnectForMs). */
  private readonly retryForMs: number;
  /** Between a download losing the coordinator and bytes coming in again: one note per outage. */
  private down = false;

  /**
   * Queues an output once (by name); never trusts a name to stay inside `dir`. `data`: its bytes,
   * when they came with its event; written if they match its size and checksum, else downloaded.
   */
  add(o: OutputInfo__Output, data?: Buffer): void {
    if (this.names.has(o.name)) return;
    const dest = path.join(this.dir, safeOutputName(o.name));
    this.names.set(o.name, dest);
    // Outputs "a" and ".a.tessera-part": the first is written under the second's name while it downloads.
    const clash = this.dests.has(partName(dest)) || this.parts.has(dest);
    this.dests.add(dest);
    this.parts.add(partName(dest));
    // Bytes that came with their event are kept until written, up to a bound: past it (a slow
    // disk, a replay of thousands), the output is downloaded instead when its turn comes.
    const usable = data && data.length > 0 && data.length === Number(o.size) && this.held + data.length <= MAX_HELD_INLINE_BYTES;
    const given = usable && (!o.sha256 || sha256(data) === o.sha256) ? data : undefined;
    if (given) this.held += given.length;
    const limit = Number(o.size) <= PARALLEL_DOWNLOAD_MAX_BYTES ? this.small : this.large;
    const p = limit(async () => {
      try {
        this.signal.throwIfAborted();
        if (clash) {
          throw new TesseraError(grpc.status.FAILED_PRECONDITION, `output "${o.name}" is named like the file another output is written to while it downloads (.NAME.tessera-part): download them into separate folders (tessera download --name NAME -o DIR)`, { retryable: false });
        }
        await (this.made ??= mkdir(this.dir, { recursive: true }));
        if (!(await this.present(o, dest))) {
          if (given) await writeAtomically(dest, given, this.publish, o.name, { size: Number(o.size), sha256: o.sha256 });
          else await this.fetchWithRetries(o, dest);
        }
        // The output is whole: what stopped downloads left of it goes (a streamed download takes
        // over one of them at most, an output written from its event or already there none).
        await dropLeftovers(dest);
      } catch (caught) {
        const err = localTrouble(caught, dest);
        this.stop.abort(err);
        throw err;
      } finally {
        if (given) this.held -= given.length;
      }
    });
    p.catch(() => undefined);
    this.running.push(p);
  }

  /**
   * True when `dest` already holds this output's bytes (nothing to do). Throws when something
   * else is there that must be kept: a protected file, or any file without `overwrite`.
   */
  private async present(o: OutputInfo__Output, dest: string): Promise<boolean> {
    const st = await lstat(dest).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st) return false;
    if (!st.isFile()) throw new TesseraError(grpc.status.FAILED_PRECONDITION, `${dest} is ${st.isDirectory() ? 'a folder' : 'not a regular file'}: output "${o.name}" cannot go there; remove or rename it, or download into another folder`, { retryable: false });
    const same = st.isFile() && st.size === Number(o.size) && !!o.sha256 && (await sha256File(dest).catch(() => undefined)) === o.sha256;
    if (same) return true;
    this.protectedFiles ??= Promise.all(this.protect.map((f) => stat(f).then((s) => `${s.dev}:${s.ino}`, () => ''))).then((ids) => new Set(ids));
    if ((await this.protectedFiles).has(`${st.dev}:${st.ino}`)) {
      throw new TesseraError(grpc.status.FAILED_PRECONDITION, `${dest} is one of the job's inputs: not replaced by output "${o.name}"; download into another folder`, { retryable: false });
    }
    if (!this.overwrite) throw alreadyThere(dest, o.name);
    return false;
  }

  private async fetchWithRetries(o: OutputInfo__Output, dest: string): Promise<void> {
    // The retry window counts from the last time bytes came in: a long download cut after
    // minutes still resumes.
    let started = steadyNow();
    let had = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.fetch(o, dest, this.publish, this.signal, this.back);
        this.back();
        return;
      } catch (caught) {
        const err = tidy(caught);
        const code = (err as grpc.ServiceError).code;
        // A local refusal (a link at the part's name, a file to keep) does not go away by waiting.
        if (err instanceof TesseraError && !err.retryable) throw err;
        const got = await stat(partName(dest)).then((s) => s.size, () => 0);
        if (got > had) {
          had = got;
          started = steadyNow();
          // Bytes came in since the last note: this is another outage.
          this.back();
        }
        if (this.signal.aborted || !RETRYABLE_DOWNLOAD.has(code) || steadyNow() - started > this.retryForMs) throw err;
        // A mismatch that a fresh start does not cure is real: report it.
        if (code === grpc.status.DATA_LOSS && attempt >= 2) throw err;
        if ((code === grpc.status.UNAVAILABLE || code === grpc.status.CANCELLED) && !this.down) {
          this.down = true;
          this.downSince = steadyNow();
          this.onReconnect?.((err as grpc.ServiceError).details ?? String(err));
        }
        await pause(Math.min(2000, 200 * attempt), this.signal);
      }
    }
  }

  /** True once a download has failed for good (the rest are being stopped). */
  get failed(): boolean {
    return this.stop.signal.aborted;
  }

  /** Stops every download in flight or queued. */
  abort(reason: unknown): void {
    this.stop.abort(reason);
  }

  /** Waits for every queued download; throws the first failure. Returns the paths by output name. */
  async finish(): Promise<Map<string, string>> {
    const results = await Promise.allSettled(this.running);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (this.caller?.aborted) throw this.caller.reason;
    if (failed) throw this.stop.signal.aborted ? this.stop.signal.reason : failed.reason;
    return new Map(this.names);
  }
}

/** The JobSpec message of the contract, as protobufjs reflects it (loaded once, on first use). */
let jobSpecType: Protobuf.Type | undefined;

function specType(): Protobuf.Type {
  if (!jobSpecType) {
    // The protobufjs that @grpc/proto-loader reads the contract with: the same parser, the same types.
    const protobuf = createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader'))('protobufjs') as typeof Protobuf;
    const root = new protobuf.Root();
    const dir = resolveProtoDir();
    root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
    root.loadSync(PROTO_FILES, { keepCase: true });
    root.resolveAll();
    jobSpecType = root.lookupType('tessera.v1.JobSpec');
  }
  return jobSpecType;
}

/** Inclusive bounds of the integer field types (64-bit ones as BigInt: they may come as strings). */
const INT_RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const FLOAT_MAX = 3.4028234663852886e38;

/** `"abc"`, `1.5`, `{...}`: a value as a message shows it. */
function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

const badField = (at: string, message: string): TesseraError => invalidArgument(`${at}: ${message}`);

/**
 * Checks a JobSpec against the contract before anything is sent: protobufjs would otherwise
 * coerce a wrong value silently (2**32+10 sent as 10, 1.5 as 1, "abc" as 0) and drop unknown
 * keys. Only the type and shape are checked here; each kind's ranges are the coordinator's.
 * Throws INVALID_ARGUMENT naming the field path and the value.
 */
export function checkJobSpec(spec: unknown): void {
  checkMessage(spec, specType(), 'spec');
}

function checkMessage(value: unknown, type: Protobuf.Type, at: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) throw badField(at, `${shown(value)} is not a ${type.name} message (an object)`);
  const obj = value as Record<string, unknown>;
  const oneofs = new Map(type.oneofsArray.map((o) => [o.name, o.oneof]));
  for (const [key, v] of Object.entries(obj)) {
    if (v === undefined || v === null) continue;
    const field = type.fields[key];
    if (field) {
      checkField(v, field, `${at}.${key}`);
      continue;
    }
    // A job read back (`getJob(id).spec`) names its oneof's member in a virtual field: kept as it is, when it is right.
    const members = oneofs.get(key);
    if (members && typeof v === 'string' && members.includes(v)) continue;
    if (members) throw badField(`${at}.${key}`, `${shown(v)} is not one of ${members.join(', ')}`);
    throw badField(`${at}.${key}`, `no such field in ${type.name} (its fields: ${Object.keys(type.fields).join(', ')})`);
  }
  for (const [name, members] of oneofs) {
    const set = members.filter((m) => obj[m] !== undefined && obj[m] !== null);
    if (set.length > 1) throw badField(at, `${set.join(' and ')} are both set, and only one of them can be (${name})`);
    const chosen = obj[name];
    if (typeof chosen === 'string' && set.length === 1 && set[0] !== chosen) throw badField(`${at}.${name}`, `${shown(chosen)} names another member than the one set (${set[0]})`);
  }
}

function checkField(v: unknown, field: Protobuf.Field, at: string): void {
  if (field.map) {
    if (typeof v !== 'object' || Array.isArray(v)) throw badField(at, `${shown(v)} is not a map (an object)`);
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) checkValue(x, field, `${at}[${JSON.stringify(k)}]`);
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(v)) throw badField(at, `${shown(v)} is not a list (an array)`);
    v.forEach((x, i) => checkValue(x, field, `${at}[${i}]`));
    return;
  }
  checkValue(v, field, at);
}

function checkValue(v: unknown, field: Protobuf.Field, at: string): void {
  const rt = field.resolvedType;
  if (rt && 'fields' in rt) return checkMessage(v, rt, at);
  if (rt && 'values' in rt) {
    const values = (rt as Protobuf.Enum).values;
    const ok = typeof v === 'string' ? Object.hasOwn(values, v) : Number.isInteger(v) && Object.values(values).includes(v as number);
    if (!ok) throw badField(at, `${shown(v)} is not one of ${Object.keys(values).join(', ')}`);
    return;
  }
  const range = INT_RANGES[field.type];
  if (range) {
    if (!isIntegerIn(v, range)) throw badField(at, `${shown(v)} is not a${field.type.startsWith('int') ? 'n' : ''} ${field.type}`);
    return;
  }
  switch (field.type) {
    case 'double':
    case 'float':
      if (typeof v !== 'number' || !Number.isFinite(v) || (field.type === 'float' && Math.abs(v) > FLOAT_MAX)) throw badField(at, `${shown(v)} is not a finite number (${field.type})`);
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw badField(at, `${shown(v)} is not a bool (true or false)`);
      return;
    case 'string':
      if (typeof v !== 'string') throw badField(at, `${shown(v)} is not a string`);
      return;
    case 'bytes':
      if (typeof v !== 'string' && !(v instanceof Uint8Array)) throw badField(at, `${shown(v)} is not bytes (a Buffer)`);
      return;
    default:
      throw badField(at, `fields of type ${field.type} cannot be checked`);
  }
}

/** A whole number within `range`: a number (exactly representable), or for 64-bit fields a decimal string. */
function isIntegerIn(v: unknown, [min, max]: readonly [bigint, bigint]): boolean {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) return false;
    n = BigInt(v);
  } else if (typeof v === 'string' && max > 2n ** 32n && /^-?\d{1,20}$/.test(v)) n = BigInt(v);
  else return false;
  return n >= min && n <= max;
}

/** Files {@link checkInputFiles} looks up at once. */
const FILE_CHECKS_AT_ONCE = 32;

/** Words for a file this process may not read. */
const NOT_PERMITTED = 'cannot be read (permission denied): check its permissions';

/** A file that could be read when checked and cannot now (removed, renamed, its permissions changed). */
function unreadable(file: string, err: NodeJS.ErrnoException): TesseraError {
  if (err.code === 'EACCES' || err.code === 'EPERM') return invalidArgument(`${file}: ${NOT_PERMITTED}`, file);
  return invalidArgument(`${file}: ${err.code === 'ENOENT' ? 'no such file any more' : `cannot be read (${err.code ?? err.message})`}: it changed while it was submitted`, file);
}

/**
 * Checks a submission's files before anything is sent: each must be a regular file, readable by
 * this process where it is to be uploaded (`readable`: one it may not read was refused only as its
 * upload began, said to have changed meanwhile; review ERRUX), and no two may have the same input
 * name (`names[i]`, default each file's base name). Returns their sizes. INVALID_ARGUMENT
 * ({@link TesseraError}, its `input` the path) naming the path otherwise.
 */
export async function checkInputFiles(files: readonly string[], names?: readonly (string | undefined)[], opts: { readable?: boolean } = {}): Promise<number[]> {
  files.forEach((f, i) => {
    if (typeof f !== 'string' || f === '') throw invalidArgument(`files[${i}]: ${shown(f)} is not a file path`);
  });
  // Looked up a few dozen at a time (one after another, 400 files took 25-50 ms here), judged in order.
  const limit = pLimit(FILE_CHECKS_AT_ONCE);
  const stats = await Promise.all(files.map((f) => limit(() => stat(f).catch((err: NodeJS.ErrnoException) => err))));
  const denied = opts.readable ? await Promise.all(files.map((f, i) => (stats[i] instanceof Error ? false : limit(() => access(f, fsc.R_OK).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'EACCES' || err.code === 'EPERM'))))) : [];
  // By name as macOS and Windows see it (the coordinator refuses names that differ only in case or Unicode form).
  const byName = new Map<string, { name: string; file: string }>();
  const sizes: number[] = [];
  // Every file's problem, said at once: a batch with a dozen names Windows cannot hold was fixed one
  // run at a time (review IMG1).
  const problems: TesseraError[] = [];
  for (const [i, f] of files.entries()) {
    try {
      sizes.push(checkInputFile(f, stats[i]!, denied[i] === true, names?.[i], byName));
    } catch (err) {
      if (!(err instanceof TesseraError)) throw err;
      problems.push(err);
    }
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    const shown = problems.slice(0, MAX_FILE_PROBLEMS_SHOWN).map((p) => p.message);
    const more = problems.length > shown.length ? `; and ${problems.length - shown.length} more` : '';
    throw invalidArgument(`${problems.length} of the ${files.length} files cannot be inputs as they are: ${shown.join('; ')}${more}`, problems[0]!.input);
  }
  return sizes;
}

/** How many files' problems one refusal of {@link checkInputFiles} names. */
const MAX_FILE_PROBLEMS_SHOWN = 20;

/** One file of {@link checkInputFiles}: its size, or INVALID_ARGUMENT naming it and what is wrong. */
function checkInputFile(f: string, got: Stats | NodeJS.ErrnoException, denied: boolean, given: string | undefined, byName: Map<string, { name: string; file: string }>): number {
  const st = got instanceof Error ? undefined : got;
  if (got instanceof Error && got.code !== 'ENOENT' && got.code !== 'ENOTDIR') throw invalidArgument(`${f}: cannot be read (${got.code ?? got.message})`, f);
  if (!st) throw invalidArgument(`${f}: no such file`, f);
  if (!st.isFile()) throw invalidArgument(`${f}: ${st.isDirectory() ? 'is a folder' : 'is not a regular file'}; give the files themselves`, f);
  if (denied) throw invalidArgument(`${f}: ${NOT_PERMITTED}`, f);
  let name: string;
  try {
    name = safeFileName(given ?? path.basename(f), `input name of ${f}`);
  } catch (err) {
    // The rule it breaks, and the file it is about (as for a folder or a missing file).
    throw err instanceof TesseraError && !err.input ? invalidArgument(err.message, f) : err;
  }
  const other = byName.get(foldedName(name));
  if (other?.name === name) throw invalidArgument(`${other.file} and ${f} would both be input "${name}": rename one, or submit them as separate jobs`, f);
  if (other) throw invalidArgument(`${other.file} and ${f} would be inputs "${other.name}" and "${name}", one file on macOS and Windows (they differ only in case or Unicode form): rename one, or submit them as separate jobs`, f);
  byName.set(foldedName(name), { name, file: f });
  return st.size;
}
