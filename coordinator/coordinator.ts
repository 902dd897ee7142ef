/** The coordinator process: gRPC server, job store, spool, registry, scheduler. */
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { FLOW_CONTROL_WINDOW, HEARTBEAT_MS, MAX_ATTEMPTS, PREFETCH_BELOW_MS, STALL_MS, SUBTASK_TIMEOUT_MS, WORKER_TTL_MS, listenFailure, serverChannelOptions, type Keepalive } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { loadTesseraProto } from '../shared/proto.js';
import { JobManager } from './job-manager.js';
import { addReflection } from './reflection.js';
import { jobServiceDefinition, jobServiceHandlers } from './job-service.js';
import { SharedRoots } from './shared-inputs.js';
import { Spool } from './spool.js';
import { DataDirLock, JobStore } from './store.js';
import { WorkerRegistry } from './worker-registry.js';
import { workerServiceDefinition, workerServiceHandlers } from './worker-service.js';
import { CoordinatorAuth, type AuthConfig } from './auth.js';
import { resolveLimits, type Limits } from '../shared/limits.js';
import { assertSecureDashboard, assertSecureListen, serverCredentials, type ServerTlsFiles } from '../shared/tls.js';
import { startObservability, type Observability } from './http/index.js';
import { tileConfig } from '../shared/media/tile-config.js';

/** How long finished jobs are kept by default. */
const DEFAULT_RETENTION_MS = 24 * 3_600_000;

export interface CoordinatorOptions {
  /** host:port to listen on (port 0 = any free port). */
  listen: string;
  dataDir: string;
  log: Logger;
  heartbeatMs?: number;
  ttlMs?: number;
  maxAttempts?: number;
  /** Retryable failures within a minute that quarantine a worker (0 = never). */
  quarantineFailures?: number;
  /** How long a quarantine lasts, ms (default 30 s). */
  quarantineMs?: number;
  /** How long finished jobs (outputs, record, events) are kept, ms; 0 = for ever (default 24 h). */
  retentionMs?: number;
  subtaskTimeoutMs?: number;
  /** A running subtask its worker reports no progress on for this long gets a speculative copy (default 60 s; 0 = never). */
  stallMs?: number;
  /** Jobs whose subtasks all run shorter than this (ms) use workers' prefetch places (0 = never). */
  prefetchBelowMs?: number;
  /**
   * Offer the files of the spool to workers that see them at the same path (on this machine, or
   * mounting the data dir there) to read in place, instead of fetching them (default true).
   */
  localReads?: boolean;
  /** Folders on shared storage whose files clients may submit by reference (coordinator/shared-inputs.ts). */
  sharedRoots?: string[];
  /** Keepalive pings of the server's connections to its clients and workers (default DEFAULT_KEEPALIVE). */
  keepalive?: Keepalive;
  /** Accept files with several names (hard links) under `sharedRoots` (default: refused; see shared-inputs.ts). */
  sharedRootAllowHardlinks?: boolean;
  /** Folders jobs may have their outputs written to (`spec.shared_output_dir`). */
  sharedOutputRoots?: string[];
  retryBaseMs?: number;
  maxFileBytes?: number;
  maxJobBytes?: number;
  maxInputs?: number;
  /** Serve TLS with these files (a CA also verifies client certificates). */
  tls?: ServerTlsFiles | undefined;
  /** Allow plaintext on a non-loopback address, and client tokens without a worker token. */
  insecure?: boolean | undefined;
  /** Worker join token, client tokens, worker certificates. Without tokens the cluster runs open. */
  auth?: AuthConfig | undefined;
  /** Limits (unset ones come from TESSERA_MAX_* or the defaults in shared/limits.ts). */
  limits?: Partial<Limits> | undefined;
  /** How long `close()` waits for in-flight calls before forcing. */
  shutdownGraceMs?: number;
  /** host:port of the dashboard and /metrics ('' or undefined: none). */
  http?: string;
  /** Host names the dashboard answers to besides localhost and IP addresses (`--http-host`). */
  httpHosts?: string[];
}

type Lifecycle = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

const SERVICES = ['tessera.v1.JobService', 'tessera.v1.WorkerService'];

export class Coordinator {
  private state: Lifecycle = 'new';
  private server: grpc.Server | undefined;
  private store: JobStore | undefined;
  private lock: DataDirLock | undefined;
  private auth: CoordinatorAuth | undefined;
  private jobs: JobManager | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private observability: Observability | undefined;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING', ...Object.fromEntries(SERVICES.map((s) => [s, 'NOT_SERVING'])) });
  /** The bound address, e.g. 127.0.0.1:41234. */
  address = '';

  /** The bound dashboard/metrics address ('' when off). */
  get httpAddress(): string {
    return this.observability?.httpAddress ?? '';
  }

  private readonly opts: CoordinatorOptions;

  constructor(opts: CoordinatorOptions) {
    // Absolute from here on: paths under it are stored, and must not depend on the working folder.
    this.opts = { ...opts, dataDir: path.resolve(opts.dataDir) };
  }

  get manager(): JobManager {
    if (!this.jobs) throw new Error('coordinator not started');
    return this.jobs;
  }

  async start(): Promise<string> {
    if (this.state !== 'new') throw new Error(`cannot start a coordinator that is ${this.state}`);
    this.state = 'starting';
    const { opts } = this;
    const log = opts.log;
    assertSecureListen(opts.listen, Boolean(opts.tls), Boolean(opts.insecure));
    assertSecureDashboard(opts.http, Boolean(opts.insecure));
    // The huge-image settings, read again at each plan: a value that cannot work refuses the start
    // (as `tessera coordinator` does), not every tiled job later.
    tileConfig();
    const auth = new CoordinatorAuth(opts.auth ?? {}, log);
    this.auth = auth;
    // Client tokens without a worker token would let anyone join as a worker and read every job's
    // inputs; --insecure (plaintext on a trusted network) does not change that.
    if (!auth.clientsOpen && auth.workersOpen) throw new Error('client tokens are set but no worker token: set --worker-token (or TESSERA_WORKER_TOKEN) too, or anyone could join as a worker and read every job');
    const shared = await SharedRoots.create(opts.sharedRoots ?? [], opts.dataDir, opts.sharedOutputRoots ?? [], { allowHardlinks: opts.sharedRootAllowHardlinks === true });
    if (shared.list.length > 0) log.info({ sharedRoots: shared.list, allowHardlinks: shared.allowHardlinks }, 'inputs by reference allowed under the shared folders');
    if (shared.outputList.length > 0) log.info({ sharedOutputRoots: shared.outputList }, 'outputs may be written into the shared output folders');
    // A volume owned by another user (a bind mount, one written by a root image) would fail below
    // as "unable to open database file", naming nothing.
    const notWritable = (err: NodeJS.ErrnoException): never => {
      if (err.code === 'EEXIST' || err.code === 'ENOTDIR') throw new Error(`data dir ${opts.dataDir} is not a folder (a file is there, or on its path): choose another --data-dir`);
      const uid = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
      throw new Error(`data dir ${opts.dataDir} is not writable by this process${uid}: ${err.code ?? err.message}; give it to that user, or choose another --data-dir`);
    };
    // Under /proc or /sys every folder is "missing": Node's recursive mkdir would loop for ever.
    const resolved = path.resolve(opts.dataDir);
    if (['/proc', '/sys'].some((s) => resolved === s || resolved.startsWith(`${s}/`))) throw new Error(`data dir ${opts.dataDir} is inside ${resolved.split('/')[1] === 'proc' ? '/proc' : '/sys'}, a kernel file system: choose another --data-dir`);
    await mkdir(opts.dataDir, { recursive: true }).catch(notWritable);
    await access(opts.dataDir, constants.W_OK | constants.X_OK).catch(notWritable);
    // One coordinator per data dir, before anything in it is read: two would both resume and run
    // the same jobs. Released by close(), and by the system when the process dies.
    this.lock = DataDirLock.acquire(opts.dataDir);
    try {
      return await this.startOnDataDir(auth, shared);
    } catch (err) {
      // Nothing half-started stays behind, the data dir's lock included.
      await this.close();
      throw damagedStore(err, path.join(opts.dataDir, 'tessera.db')) ?? err;
    }
  }

  private async startOnDataDir(auth: CoordinatorAuth, shared: SharedRoots): Promise<string> {
    const { opts } = this;
    const log = opts.log;
    auth.keepKnownGoodIn(path.join(opts.dataDir, 'auth-known-good.json'));
    this.store = new JobStore(path.join(opts.dataDir, 'tessera.db'), {
      onFlushError: (err) => log.error({ err: err.message }, 'job store write failed; kept in memory and retried'),
    });
    if (this.store.vacuumed) log.info({ freedBytes: this.store.vacuumed.freedBytes }, 'job store rewritten to give the space of removed jobs back (once; from now on it is given back as jobs expire)');
    this.store.startWriterThread();
    const spool = new Spool(path.join(opts.dataDir, 'spool'));
    if (opts.localReads !== false) await spool.offerLocalReads();
    // A data dir moved or mounted elsewhere (a new volume path, a restore): the paths on record follow.
    const moved = this.store.relocate(spool.root);
    if (moved) log.warn(moved, 'the data dir has moved: the paths on record were rewritten');
    // Submissions cut short by a crash leave inputs in the spool under a job id with no record:
    // nothing would ever remove them. Safe here: the server takes no calls yet.
    try {
      const orphans = await spool.removeOrphans(this.store.jobIds());
      if (orphans.folders > 0) log.info(orphans, 'removed spool folders of submissions that never became jobs (cut short by a restart)');
    } catch (err) {
      log.warn({ err }, 'removing spool folders of unfinished submissions failed');
    }
    const registry = new WorkerRegistry();
    const ttlMs = opts.ttlMs ?? WORKER_TTL_MS;
    const heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
    const limits = resolveLimits({ maxFileBytes: opts.maxFileBytes, maxJobBytes: opts.maxJobBytes, maxInputs: opts.maxInputs, ...opts.limits });
    this.jobs = new JobManager(this.store, spool, registry, log, {
      limits,
      maxAttempts: opts.maxAttempts ?? MAX_ATTEMPTS,
      quarantineFailures: opts.quarantineFailures ?? 5,
      ...(opts.quarantineMs !== undefined ? { quarantineMs: opts.quarantineMs } : {}),
      subtaskTimeoutMs: opts.subtaskTimeoutMs ?? SUBTASK_TIMEOUT_MS,
      stallMs: opts.stallMs ?? STALL_MS,
      retryBaseMs: opts.retryBaseMs ?? 500,
      prefetchBelowMs: opts.prefetchBelowMs ?? PREFETCH_BELOW_MS,
      sharedRoots: shared,
    });
    const { packageDefinition } = loadTesseraProto();
    const server = new grpc.Server({ ...serverChannelOptions(this.opts.keepalive), interceptors: [auth.interceptor()] });
    this.server = server;
    server.addService(jobServiceDefinition(), jobServiceHandlers(this.jobs, spool, log, limits, auth, shared));
    server.addService(workerServiceDefinition(), workerServiceHandlers(this.jobs, spool, log, { heartbeatMs, ttlMs, maxOutputBytes: limits.maxJobBytes }, () => undefined));
    this.health.addToServer(server);
    addReflection(server, packageDefinition);

    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(opts.listen, opts.tls ? serverCredentials(opts.tls) : grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(listenFailure(opts.listen, err, '--listen')) : resolve(p)));
    });
    widenFlowControlWindows(server);
    const colon = opts.listen.lastIndexOf(':');
    this.address = `${colon >= 0 ? opts.listen.slice(0, colon) : opts.listen}:${port}`;
    // Metrics and the subtask log listen before the jobs are resumed: a resumed job that fails at
    // once (its shared folder no longer shared) is counted as finished, as it is as resumed.
    this.observability = await startObservability({
      http: opts.http,
      hosts: opts.httpHosts,
      manager: this.jobs,
      log,
      serving: () => this.state === 'running',
      dashboardAccess: auth.clientsOpen ? undefined : (token, peer) => auth.dashboardAccess(token, peer),
    });
    const resumed = this.jobs.resume();
    // Failure detection: a worker silent past the TTL is lost and its leases go back to the queue.
    const sweepMs = Math.min(500, Math.max(50, Math.floor(ttlMs / 5)));
    let lastSweep = performance.now();
    this.sweepTimer = setInterval(() => {
      const jobs = this.jobs!;
      // A sweep that runs late ran after a stall of this process (timers run before the sockets
      // are read): the workers' heartbeats of that time are not read yet. The stall is not theirs.
      const now = performance.now();
      const late = now - lastSweep - sweepMs;
      lastSweep = now;
      const paused = late > heartbeatMs;
      if (late > Math.min(heartbeatMs, sweepMs)) {
        registry.credit(late);
        if (paused) {
          log.warn({ stalledMs: Math.round(late) }, 'the coordinator was stalled: workers are not held to heartbeats it could not read');
          jobs.noteOwnStall(late);
        }
      }
      for (const w of registry.expired(ttlMs)) jobs.onWorkerLost(w, `no heartbeat for ${ttlMs} ms`);
      // A quarantine that is over frees its slots: nothing else may ask for a dispatch meanwhile.
      if (registry.endQuarantines()) jobs.requestDispatch();
      registry.prune(10 * 60_000);
      // Leases far past their subtask's timeout: the worker could not end them itself.
      if (jobs.expireOverdue() > 0) jobs.requestDispatch();
      // Nor to progress reports: after a stall of its own every attempt would look stalled at once.
      // The next sweep, after the sockets were read, looks.
      if (!paused) jobs.speculate();
      jobs.explainWaiting();
    }, sweepMs);
    this.sweepTimer.unref();
    // Finished jobs past their retention: checked at start and then a few times per period.
    const retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
    if (retentionMs > 0) {
      const expire = (): void => void this.jobs?.removeExpired(retentionMs).catch((err: unknown) => log.error({ err }, 'removing expired jobs failed'));
      expire();
      this.retentionTimer = setInterval(expire, Math.min(60_000, Math.max(1000, Math.floor(retentionMs / 4))));
      this.retentionTimer.unref();
    }
    this.setServing(true);
    this.state = 'running';
    log.info({ address: this.address, dataDir: opts.dataDir, resumed }, 'coordinator listening');
    return this.address;
  }

  private setServing(serving: boolean): void {
    const s = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', s);
    for (const name of SERVICES) this.health.setStatus(name, s);
  }

  /** Stops accepting work, persists, and shuts the server down (forcing after the grace period). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'stopping';
      this.setServing(false);
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      if (this.retentionTimer) clearInterval(this.retentionTimer);
      const steps: [string, () => Promise<void> | void][] = [
        ['job manager', () => this.jobs?.close()],
        ['server', () => shutdown(this.server, this.opts.shutdownGraceMs ?? 5000)],
        // After gRPC: /healthz answers 503 while calls still in flight finish, not connection refused.
        ['http', () => this.observability?.close()],
        ['store', () => this.store?.close()],
        ['tokens known to have worked', () => this.auth?.flushKnownGood()],
        // Last: the next coordinator on this data dir may start once everything is on disk.
        ['data dir lock', () => this.lock?.release()],
      ];
      for (const [name, step] of steps) {
        try {
          await step();
        } catch (err) {
          this.opts.log.error({ err, step: name }, 'shutdown step failed');
        }
      }
      this.state = 'stopped';
    })();
    return this.closing;
  }
}

function shutdown(server: grpc.Server | undefined, graceMs: number): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * grpc-js has no server option for the HTTP/2 flow-control window, and Node's default (64 KiB per
 * stream) stalls every upload each few chunks, halving bulk throughput. Widen the window on every
 * session the server accepts (clients do the same through `grpc-node.flow_control_window`).
 */
function widenFlowControlWindows(server: grpc.Server): void {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!servers) return;
  for (const h of servers.keys()) {
    h.on('session', (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(FLOW_CONTROL_WINDOW);
        session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW });
      } catch {
        // A session closing as it opens: nothing to widen.
      }
    });
  }
}

/**
 * The error to give for a job store SQLite finds damaged (a file overwritten, cut short, or not a
 * database): SQLite's own words named neither the file nor what to do (review OPS9).
 */
function damagedStore(err: unknown, file: string): Error | undefined {
  const code = (err as { code?: unknown }).code;
  if (code !== 'SQLITE_CORRUPT' && code !== 'SQLITE_NOTADB') return undefined;
  return new Error(
    `the job store ${file} is damaged (SQLite: ${(err as Error).message}): restore it, with its -wal file, from a backup taken while the coordinator was stopped, or move the data dir aside to start with no jobs (the jobs on record and their spooled files are then not resumed)`,
  );
}
