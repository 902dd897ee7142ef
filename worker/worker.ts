/**
 * The worker process: registers with the coordinator, heartbeats, runs assignments up to its
 * slots, reconnects with backoff and jitter when the coordinator goes away, drains on request.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { HEARTBEAT_MS, MAX_SUBTASK_TIMEOUT_MS, REGISTER_TEXT_BYTES, clientChannelOptions, connectTimeoutMs, MAX_CONNECT_TIMEOUTS, type Keepalive, RESULTS_MESSAGE_BYTES, WORKER_PREFETCH } from '../shared/config.js';
import { TesseraError, tidyGrpcError } from '../shared/errors.js';
import { workerSizing } from '../shared/machine.js';
import { tlsAnswers, tlsTrouble, tlsTroubleHint } from '../shared/tls.js';
import type { Logger } from '../shared/logger.js';
import { workerServiceClientConstructor } from '../shared/proto.js';
import type { Assignment__Output } from '../shared/proto/generated/tessera/v1/Assignment.js';
import type { CoordinatorMessage__Output } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { SubtaskResult } from '../shared/proto/generated/tessera/v1/SubtaskResult.js';
import type { WorkerMessage } from '../shared/proto/generated/tessera/v1/WorkerMessage.js';
import type { WorkerServiceClient } from '../shared/proto/generated/tessera/v1/WorkerService.js';
import { detectCapabilities } from './capabilities.js';
import { probeFfmpegInfo } from '../shared/ffmpeg.js';
import { executeSubtask } from './executor.js';
import { defaultTempRoot, tempHeartbeatMs, listenInTempRoot, makeTempRoot, removeStaleTempRoots, touchTempRoot } from './temp-root.js';
import type { Server } from 'node:net';
import { workerProcessors } from './processors/index.js';
import { ProcessorIsolation } from './isolation.js';
import { tokenProblem } from '../shared/auth.js';
import { steadyNow } from '../shared/clock.js';

export interface WorkerOptions {
  coordinator: string;
  name?: string;
  /** Concurrent subtasks (default: one per core). */
  slots?: number;
  /** Threads per subtask (ffmpeg -threads, libvips concurrency); default cores / slots. */
  threads?: number;
  /** Assignments queued beyond the slots, for short subtasks (default WORKER_PREFETCH; 0 = none). */
  prefetch?: number;
  labels?: Record<string, string>;
  log: Logger;
  /** How long a drain waits for in-flight subtasks before aborting them. */
  drainGraceMs?: number;
  credentials?: grpc.ChannelCredentials;
  /** Join token, sent as `authorization: Bearer` on every call. */
  token?: string;
  /** Memory ceiling (MiB) of a subtask's processor, run in a child process; 0 = run in-process. */
  memoryLimitMb?: number;
  /** Keepalive pings of its connections to the coordinator (default DEFAULT_KEEPALIVE). */
  keepalive?: Keepalive;
  /** How often an outage or a refusal that goes on is logged again at warn or error (default 60 s). */
  remindEveryMs?: number;
}

type Lifecycle = 'new' | 'running' | 'draining' | 'stopped';

interface Running {
  attempt: number;
  controller: AbortController;
}

const WORKER_ID_HEADER = 'x-tessera-worker-id';
/** How long close() waits for aborted subtasks to end before it removes their files. */
const CLOSE_WAIT_MS = 5000;

/** Statuses with which a coordinator refuses a worker for good: trying again as it is cannot help. */
const REFUSALS: ReadonlySet<grpc.status> = new Set([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED]);

/** How often an outage or a refusal that goes on is logged again at warn or error (WorkerOptions.remindEveryMs). */
const REMIND_EVERY_MS = 60_000;

/** Why the control stream ended, for the log: the transport's own words for an unreachable coordinator. */
function disconnectReason(err: grpc.ServiceError | undefined): string {
  if (!err) return 'coordinator closed the stream';
  if (err.code === grpc.status.UNAVAILABLE) return `coordinator unavailable: ${tidyGrpcError(err).details}`;
  return `${grpc.status[err.code] ?? err.code}: ${err.details}`;
}

/** A registration the coordinator finds wrong (coordinator/worker-service.ts `registerProblem`): refused alike on every try. */
function refusedRegistration(err: grpc.ServiceError): boolean {
  return err.code === grpc.status.INVALID_ARGUMENT && err.details.startsWith('register:');
}

/** What an operator should check when the coordinator refuses this worker. */
function refusalCheck(err: grpc.ServiceError): string {
  if (refusedRegistration(err)) return `what this worker registers with: its --name and --label keys and values at most ${REGISTER_TEXT_BYTES} bytes each, without control characters`;
  const token = "the worker token (--worker-token, --worker-token-file, TESSERA_WORKER_TOKEN or TESSERA_WORKER_TOKEN_FILE) must be the coordinator's --worker-token";
  const cert = "the client certificate (--tls-cert and --tls-key) must be signed by the coordinator's --tls-ca";
  if (/certificate/i.test(err.details)) return cert;
  if (/token/i.test(err.details)) return token;
  return `${token}; ${cert}`;
}

export class Worker {
  readonly name: string;
  readonly slots: number;
  readonly prefetch: number;
  private state: Lifecycle = 'new';
  private readonly instanceId = randomUUID();
  private client: WorkerServiceClient;
  /**
   * Inputs and outputs travel on a connection of their own: on a slow link, heartbeats queued
   * behind megabytes of subtask data on the control stream's connection arrived too late, and the
   * coordinator took the worker for lost every few seconds.
   */
  private bulk: WorkerServiceClient;
  /** Makes the two clients above (again, when a connection attempt hangs: see watchConnect). */
  private readonly makeClient: (bulk: boolean) => WorkerServiceClient;
  /** Gives up the current connection attempt when it hangs (see watchConnect). */
  private connectTimer: NodeJS.Timeout | undefined;
  /** Connection attempts given up in a row (see connectTimeoutMs). */
  private connectTimeouts = 0;
  private call: grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output> | undefined;
  private workerId = '';
  /** Counts the control streams this worker lost: what began on one is not reported on the next. */
  private session = 0;
  /** Results waiting for the end of this event-loop turn (see sendResult). */
  private results: SubtaskResult[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  /** The last refusal logged at error level (see logRefusal); cleared once registered. */
  private refusal: { reason: string; loggedAt: number; since: number } | undefined;
  /** The coordinator out of reach since (steady ms), and when that was last logged at warn. */
  private outage: { since: number; loggedAt: number } | undefined;
  private readonly running = new Map<string, Running>();
  private readonly limit;
  private readonly threads: number;
  /** This worker's own folder under TMPDIR: each attempt's files go in a folder of it. */
  readonly tempRoot: string;
  private tempHeartbeat: NodeJS.Timeout | undefined;
  private tempSocket: Server | undefined;
  private closing: Promise<void> | undefined;
  /** Child processes that run the processors (undefined: in-process). */
  private readonly isolation: ProcessorIsolation | undefined;
  private idle: (() => void) | undefined;
  /** Resolves the first time the worker is registered (tests and the demo wait on it). */
  readonly registered: Promise<void>;
  private markRegistered!: () => void;

  constructor(private readonly opts: WorkerOptions) {
    const problem = opts.token === undefined ? undefined : tokenProblem(opts.token);
    // Else grpc-js refuses it at the first call, in a callback, with a message quoting it.
    if (problem) throw new Error(`the worker token ${problem}`);
    const sizing = workerSizing(opts);
    this.slots = sizing.slots;
    this.threads = sizing.threads;
    sharp.concurrency(this.threads);
    this.name = opts.name ?? `${os.hostname()}-${process.pid}`;
    this.prefetch = Math.max(0, opts.prefetch ?? WORKER_PREFETCH);
    this.limit = pLimit(this.slots);
    this.tempRoot = defaultTempRoot(this.name);
    const memoryLimitMb = sizing.memoryLimitMb;
    this.isolation = memoryLimitMb > 0 ? new ProcessorIsolation({ memoryLimitMb, log: opts.log, prewarm: Math.min(this.slots, 4) }) : undefined;
    const WorkerService = workerServiceClientConstructor();
    const credentials = opts.credentials ?? grpc.credentials.createInsecure();
    const channelOptions = clientChannelOptions(opts.keepalive);
    // The bulk client has a pool of its own: channels to the same address with the same options
    // would share one connection.
    this.makeClient = (bulk) => new WorkerService(opts.coordinator, credentials, bulk ? { ...channelOptions, 'grpc.use_local_subchannel_pool': 1 } : channelOptions);
    this.client = this.makeClient(false);
    this.bulk = this.makeClient(true);
    this.registered = new Promise((resolve) => (this.markRegistered = resolve));
  }

  start(): void {
    if (this.state !== 'new') throw new Error(`cannot start a worker that is ${this.state}`);
    // A temp folder it cannot write would fail every subtask it took: refused before it registers.
    makeTempRoot(this.tempRoot);
    this.state = 'running';
    const sweep = (): void =>
      void removeStaleTempRoots(this.tempRoot).then(
        (n) => n > 0 && this.opts.log.info({ removed: n }, 'removed temp folders of dead workers'),
        () => undefined,
      );
    // Listening first: a worker starting meanwhile takes this one for alive.
    void listenInTempRoot(this.tempRoot).then((server) => {
      if (this.state !== 'stopped') this.tempSocket = server;
      else server?.close();
      sweep();
    });
    // The heartbeat that tells other workers' sweeps this one is alive; a dead one's folder found on the way goes.
    this.tempHeartbeat = setInterval(() => {
      void touchTempRoot(this.tempRoot).then(async (remade) => {
        // The root was made again: its socket (what tells a sweep this worker is alive) too.
        if (!remade || this.state === 'stopped') return;
        this.tempSocket?.close();
        const server = await listenInTempRoot(this.tempRoot);
        // (It may have stopped while the socket was made.)
        if ((this.state as string) !== 'stopped') this.tempSocket = server;
        else server?.close();
      });
      sweep();
    }, tempHeartbeatMs());
    this.tempHeartbeat.unref();
    // ffmpeg is probed (for the registration's capabilities) without blocking the event loop; a probe
    // that fails is run again, and reported, when the registration is written.
    void probeFfmpegInfo().catch(() => undefined).finally(() => this.connect());
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.workerId) md.set(WORKER_ID_HEADER, this.workerId);
    if (this.opts.token) md.set('authorization', `Bearer ${this.opts.token}`);
    return md;
  }

  private connect(): void {
    if (this.state === 'stopped') return;
    const log = this.opts.log;
    const call = this.client.Connect(this.metadata());
    this.call = call;
    call.on('data', (msg: CoordinatorMessage__Output) => this.onMessage(msg));
    call.on('error', (err: grpc.ServiceError) => {
      if (this.call === call) this.onDisconnect(err);
    });
    call.on('end', () => {
      if (this.call === call) this.onDisconnect(undefined);
    });
    const caps = detectCapabilities([...workerProcessors.keys()], this.opts.labels ?? {}, log);
    call.write({ register: { name: this.name, slots: this.slots, prefetch: this.prefetch, capabilities: caps, instance_id: this.instanceId } });
    this.watchConnect(call);
  }

  /**
   * Gives up `call` if its channel is still connecting after the connect timeout: the channel is
   * made again (its name looked up again; grpc-js would keep waiting on the handshake it began)
   * and the worker reconnects as after any lost stream. The bulk channel goes with it if it is
   * stuck alike; nothing runs on it while the control stream is down.
   */
  private watchConnect(call: grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output>): void {
    clearTimeout(this.connectTimer);
    // Past the cap, the attempt under way is waited on (see MAX_CONNECT_TIMEOUTS).
    if (this.connectTimeouts >= MAX_CONNECT_TIMEOUTS) return;
    const timeoutMs = connectTimeoutMs(this.connectTimeouts);
    const connecting = (c: WorkerServiceClient): boolean => c.getChannel().getConnectivityState(false) === grpc.connectivityState.CONNECTING;
    this.connectTimer = setTimeout(() => {
      if (this.call !== call || this.workerId || this.state === 'stopped' || !connecting(this.client)) return;
      this.connectTimeouts++;
      this.client.close();
      this.client = this.makeClient(false);
      if (connecting(this.bulk)) {
        this.bulk.close();
        this.bulk = this.makeClient(true);
      }
      this.call = undefined;
      call.cancel();
      const details = `no connection to ${this.opts.coordinator} within ${timeoutMs / 1000} s (its address may have changed): looking it up again`;
      this.onDisconnect(Object.assign(new Error(details), { code: grpc.status.UNAVAILABLE, details, metadata: new grpc.Metadata() }));
    }, timeoutMs);
    this.connectTimer.unref();
  }

  private onMessage(msg: CoordinatorMessage__Output): void {
    switch (msg.msg) {
      case 'registered': {
        const r = msg.registered!;
        this.workerId = r.worker_id;
        this.reconnectAttempt = 0;
        this.connectTimeouts = 0;
        clearTimeout(this.connectTimer);
        this.refusal = undefined;
        this.outage = undefined;
        this.opts.log.info({ workerId: r.worker_id, slots: this.slots }, 'registered with coordinator');
        if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
        this.heartbeatTimer = setInterval(() => this.heartbeat(), r.heartbeat_ms || HEARTBEAT_MS);
        this.markRegistered();
        if (this.state === 'draining') this.send({ drain: { grace_ms: this.opts.drainGraceMs ?? 30_000 } });
        break;
      }
      case 'assign':
        if (msg.assign) this.accept(msg.assign);
        break;
      case 'assign_batch':
        for (const a of msg.assign_batch?.assignments ?? []) this.accept(a);
        break;
      case 'cancel': {
        const c = msg.cancel!;
        const r = this.running.get(c.subtask_id);
        if (r && r.attempt === c.attempt) r.controller.abort(new TesseraError(grpc.status.CANCELLED, c.reason || 'cancelled by the coordinator', { retryable: false }));
        break;
      }
      case 'drain':
        void this.drain();
        break;
      default:
        break;
    }
  }

  private send(msg: WorkerMessage): void {
    try {
      this.call?.write(msg);
    } catch {
      // The stream is gone; the reconnect path takes over.
    }
  }

  /**
   * Queues a result; the results finished within one event-loop turn go out as one message (a
   * worker finishing thousands of tiny subtasks a second would otherwise spend its time framing).
   */
  private sendResult(result: SubtaskResult): void {
    this.results.push(result);
    if (this.results.length === 1) setImmediate(() => this.flushResults());
  }

  private flushResults(): void {
    const results = this.results;
    if (results.length === 0) return;
    this.results = [];
    // One message per RESULTS_MESSAGE_BYTES of inline outputs: a message over the control stream's
    // limit would end the stream, and with it every subtask this worker runs.
    let batch: SubtaskResult[] = [];
    let bytes = 0;
    const sendBatch = (): void => {
      if (batch.length > 0) this.send(batch.length === 1 ? { result: batch[0]! } : { results: { results: batch } });
      batch = [];
      bytes = 0;
    };
    for (const r of results) {
      const size = inlineBytes(r);
      if (batch.length > 0 && bytes + size > RESULTS_MESSAGE_BYTES) sendBatch();
      batch.push(r);
      bytes += size;
    }
    sendBatch();
  }

  private heartbeat(): void {
    this.send({
      heartbeat: {
        slots_used: this.limit.activeCount,
        load: os.loadavg()[0] ?? 0,
        rss_bytes: String(process.memoryUsage.rss()),
        running: [...this.running].map(([id, r]) => ({ subtask_id: id, attempt: r.attempt })),
      },
    });
  }

  private accept(a: Assignment__Output): void {
    const controller = new AbortController();
    // The session it came on: its result and progress mean nothing to the next one (see onDisconnect).
    const session = this.session;
    this.running.set(a.subtask_id, { attempt: a.attempt, controller });
    void this.limit(async () => {
      this.opts.log.debug({ subtask: a.subtask_id, attempt: a.attempt, kind: a.kind }, 'subtask started');
      // The clock starts when a slot takes it, not while it waits in the prefetch queue.
      const timeout = setTimeout(
        () => controller.abort(new TesseraError(grpc.status.DEADLINE_EXCEEDED, `subtask timed out after ${a.timeout_ms} ms`, { retryable: true })),
        // Past 2^31 - 1 ms Node would fire at once: a coordinator of another version may send more.
        Math.min(a.timeout_ms || 30 * 60_000, MAX_SUBTASK_TIMEOUT_MS),
      );
      const result = await executeSubtask(a, controller.signal, {
        client: this.bulk,
        metadata: () => this.metadata(),
        processors: workerProcessors,
        isolate: this.isolation?.hookFor(a.kind),
        threads: this.threads,
        tempRoot: this.tempRoot,
        name: this.name,
        log: this.opts.log,
        progress: (subtaskId, attempt, fraction, message) => {
          if (session === this.session) this.send({ progress: { subtask_id: subtaskId, attempt, fraction, message } });
        },
      });
      clearTimeout(timeout);
      this.opts.log.debug({ subtask: a.subtask_id, attempt: a.attempt, ok: !result.error_code, ...(result.error_code ? { error: result.error_code } : {}) }, 'subtask ended');
      const current = this.running.get(a.subtask_id);
      if (current?.controller === controller) this.running.delete(a.subtask_id);
      // A subtask cancelled by the coordinator needs no result: its lease is already gone. Nor one
      // of a lost session, which may end after the next session began (a processor slow to stop).
      if (session === this.session && !(controller.signal.aborted && result.error_code === 'CANCELLED' && !result.retryable)) this.sendResult(result);
      if (this.running.size === 0) this.idle?.();
    });
  }

  /** `err`: why the control stream ended; undefined when the coordinator ended it without an error. */
  private onDisconnect(err: grpc.ServiceError | undefined): void {
    this.call = undefined;
    this.workerId = '';
    this.session++;
    // Results of the lost session's leases mean nothing to the next session.
    this.results = [];
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    // The coordinator re-queues our leases when it loses us: stop working on them.
    const abandoned = this.running.size;
    for (const r of this.running.values()) r.controller.abort(new TesseraError(grpc.status.UNAVAILABLE, 'lost the coordinator', { retryable: true }));
    if (this.state === 'stopped') return;
    if (this.state === 'draining') {
      // Draining, nothing to come back for: the coordinator runs what was left again elsewhere.
      this.opts.log.warn({ reason: disconnectReason(err), abandoned }, 'lost the coordinator while draining: stopping now; it runs the abandoned subtasks again elsewhere');
      void this.close();
      return;
    }
    // Exponential backoff with jitter, capped at 5 s, so a restarted coordinator is not stampeded.
    const delay = Math.min(5000, 200 * 2 ** this.reconnectAttempt) * (0.5 + Math.random() * 0.5);
    this.reconnectAttempt++;
    const retryInMs = Math.round(delay);
    // A registration the coordinator finds wrong (a label it does not take) is refused alike, every try.
    if (err && (REFUSALS.has(err.code) || refusedRegistration(err))) this.logRefusal(err, retryInMs);
    else {
      const usingTls = this.opts.credentials?._isSecure() ?? false;
      const trouble = err?.code === grpc.status.UNAVAILABLE ? tlsTrouble(err.details, usingTls) : undefined;
      // At warn when an outage starts and then once a minute while it goes on (a wrong address, a
      // firewall, a coordinator down for hours: one line at start said nothing an hour later; review
      // OPS5); the tries in between, every few seconds while a coordinator restarts, at debug.
      const now = steadyNow();
      if (this.reconnectAttempt === 1 || !this.outage) this.outage = { since: now, loggedAt: now };
      const remind = this.reconnectAttempt > 1 && now - this.outage.loggedAt >= (this.opts.remindEveryMs ?? REMIND_EVERY_MS);
      if (remind) this.outage.loggedAt = now;
      const level = this.reconnectAttempt === 1 || remind ? 'warn' : 'debug';
      const attempt = this.reconnectAttempt;
      const downForS = Math.round((now - this.outage.since) / 1000);
      const say = (t: typeof trouble): void => {
        const hint = t && tlsTroubleHint(t, this.opts.coordinator, { ca: '--tls-ca / TESSERA_TLS_CA', tls: '--tls / TESSERA_TLS' });
        const fields = { reason: disconnectReason(err), ...(hint ? { hint } : {}), retryInMs, attempt, ...(remind && { downForS }) };
        this.opts.log[level](fields, remind ? `still cannot reach the coordinator at ${this.opts.coordinator} after ${downForS} s; reconnecting` : 'disconnected from coordinator; reconnecting');
      };
      // Closed before gRPC started: a TLS coordinator only if a TLS server answers there (a port
      // forwarder whose coordinator is down closes it too).
      if (trouble === 'peer-tls' && level === 'warn') void tlsAnswers(this.opts.coordinator).then((tls) => say(tls ? trouble : undefined));
      else say(trouble);
    }
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /**
   * A coordinator that refuses this worker's token or certificate refuses it again on every try
   * until someone changes a setting, here or there: the worker keeps trying (the coordinator may be
   * reconfigured), logs the refusal as an error with what to check, and then at most once a minute
   * while the same refusal repeats (the tries in between at debug), so that the log is not flooded.
   */
  private logRefusal(err: grpc.ServiceError, retryInMs: number): void {
    const reason = `${grpc.status[err.code]}: ${err.details}`;
    const now = steadyNow();
    const last = this.refusal;
    const fields = { reason, check: refusalCheck(err), retryInMs };
    if (last && last.reason === reason && now - last.loggedAt < (this.opts.remindEveryMs ?? REMIND_EVERY_MS)) {
      last.since++;
      this.opts.log.debug(fields, 'the coordinator refused this worker again; retrying');
      return;
    }
    this.refusal = { reason, loggedAt: now, since: 0 };
    const repeated = last && last.reason === reason ? { refusedMeanwhile: last.since } : {};
    this.opts.log.error({ ...fields, ...repeated }, 'the coordinator refused this worker; retrying (at most one such line a minute while it goes on)');
  }

  /** Stops taking work, lets in-flight subtasks finish (bounded by the grace period), then closes. */
  async drain(graceMs = this.opts.drainGraceMs ?? 30_000): Promise<void> {
    if (this.state !== 'running') return this.closing;
    this.state = 'draining';
    this.opts.log.info({ running: this.running.size, graceMs }, 'draining');
    // Results first: the coordinator then knows which queued subtasks have taken the freed slots
    // and gives back only those still waiting.
    this.flushResults();
    this.send({ drain: { grace_ms: graceMs } });
    if (this.running.size > 0) {
      await new Promise<void>((resolve) => {
        this.idle = resolve;
        setTimeout(resolve, graceMs).unref();
      });
    }
    return this.close();
  }

  /** Closes the connection and aborts anything still running. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'stopped';
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      clearTimeout(this.connectTimer);
      for (const r of this.running.values()) r.controller.abort(new TesseraError(grpc.status.UNAVAILABLE, 'worker shutting down', { retryable: true }));
      this.flushResults();
      try {
        this.call?.end();
      } catch {
        // already closed
      }
      this.client.close();
      this.bulk.close();
      this.isolation?.close();
      // An aborted subtask ends at its next await, one in a native call (an in-process sharp
      // pipeline) when that returns: its files are under the temp root, so wait for it, a while.
      for (const until = steadyNow() + CLOSE_WAIT_MS; this.limit.activeCount + this.limit.pendingCount > 0 && steadyNow() < until; ) await sleep(20);
      clearInterval(this.tempHeartbeat);
      this.tempSocket?.close();
      await rm(this.tempRoot, { recursive: true, force: true }).catch(() => undefined);
    })();
    return this.closing;
  }
}

/** Bytes of the outputs a result carries inside it. */
function inlineBytes(r: SubtaskResult): number {
  let n = 0;
  for (const o of r.outputs ?? []) n += o.inline_data?.length ?? 0;
  return n;
}
