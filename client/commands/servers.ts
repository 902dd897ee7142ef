/** `tessera coordinator`, `tessera worker` (long-running, with signal handling) and `tessera health`. */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type * as Grpc from '@grpc/grpc-js';
import type { LevelWithSilent } from 'pino';
import { createLogger, type LogFormat, type Logger } from '../../shared/logger.js';
import { MAX_WORKER_SLOTS, REGISTER_TEXT_BYTES, TARGET_SCHEME, coordinatorAddress, hostPortProblem } from '../../shared/config.js';
import { unknownVariables } from './config.js';
import type { Command } from 'commander';
import { SERVER_TLS_ENV, byFlag, certificateExpiries, clientTlsVariablesIgnored, coordinatorSecurity, optionNamer, securitySummary, setting, workerSecurity, type OptionNamer } from './security-options.js';
import { assertSecureDashboard, assertSecureListen, clientCredentialsFromEnv } from '../../shared/tls.js';
import { UsageError } from './usage-error.js';
import { checkKeepalive, type KeepaliveFlags } from './keepalive-options.js';
import { EXIT } from './exit-codes.js';
import { sharedRootProblem } from '../../coordinator/shared-inputs.js';
import { status } from '../../shared/grpc-status.js';
import { TesseraError } from '../../shared/errors.js';
import { hasControlCharacters } from '../../shared/names.js';
import { tileConfig } from '../../shared/media/tile-config.js';

const require = createRequire(import.meta.url);

export interface CoordinatorCommandOptions extends KeepaliveFlags {
  listen: string;
  http?: string;
  httpHost?: string[];
  dataDir: string;
  heartbeatMs: number;
  ttlMs: number;
  maxAttempts: number;
  subtaskTimeoutMs?: number;
  stallMs?: number;
  quarantineFailures: number;
  retentionHours?: number;
  prefetchBelowMs?: number;
  /** false with --no-local-reads. */
  localReads: boolean;
  sharedRoot?: string[];
  /** Accept files with several names (hard links) under --shared-root. */
  sharedRootAllowHardlinks?: boolean;
  sharedOutputRoot?: string[];
  logLevel: LevelWithSilent;
  logFormat?: LogFormat;
  /** Security flags checked here too (the rest are read by coordinatorSecurity). */
  tlsCert?: string;
  insecure?: boolean;
}

/** Shortest heartbeat interval accepted: shorter ones only load the coordinator. */
export const MIN_HEARTBEAT_MS = 100;

/** Refuses `attr` below `min` as a usage error naming the option as it was given. */
function atLeast(o: object, attr: string, min: number, name: OptionNamer, why = ''): void {
  const v = (o as Record<string, unknown>)[attr];
  if (typeof v === 'number' && v < min) throw new UsageError(`${setting(name(attr), v)}: must be at least ${min}${why}`);
}

/**
 * Refuses coordinator settings that parse but cannot work, each a usage error (exit 2) naming the
 * option as it was given (flag, environment variable or config key) and the range it must be in.
 */
export function checkCoordinatorSettings(o: CoordinatorCommandOptions, name: OptionNamer = byFlag): void {
  checkMaxInputPixels();
  atLeast(o, 'heartbeatMs', MIN_HEARTBEAT_MS, name);
  // A worker is lost after ttl-ms without a heartbeat: at less than two intervals, one late
  // heartbeat (a GC pause, a busy event loop) would lose it and re-queue its work.
  if (o.ttlMs < 2 * o.heartbeatMs) throw new UsageError(`${setting(name('ttlMs'), o.ttlMs)}: must be at least twice the heartbeat interval (${name('heartbeatMs')} ${o.heartbeatMs}), or workers are declared lost between heartbeats`);
  atLeast(o, 'maxAttempts', 1, name);
  // Below a second every attempt would be taken back as overdue (and count toward quarantine).
  atLeast(o, 'subtaskTimeoutMs', 1000, name);
  atLeast(o, 'stallMs', 0, name, ' (0 = never)');
  // 0 keeps finished jobs for ever; below that means nothing.
  atLeast(o, 'retentionHours', 0, name, ' (0 = keep for ever)');
  checkKeepalive(o, name);
  for (const [attr, value] of [['listen', o.listen], ['http', o.http]] as const) {
    if (value === undefined || (attr === 'http' && value === 'off')) continue;
    // Given empty (an unset variable in a unit file): refused, not the port grpc-js cannot parse nor no dashboard.
    // The dashboard is Node's HTTP server: HOST:PORT only (a gRPC target scheme passed the check,
    // then failed the start with ENOTFOUND).
    const scheme = attr === 'http' && TARGET_SCHEME.test(value) ? 'the dashboard is plain HTTP on HOST:PORT (a gRPC target scheme such as ipv4: or unix: is for --listen)' : undefined;
    const problem = value.trim() === '' ? `empty${attr === 'http' ? ' (--http off turns the dashboard off)' : ''}` : (scheme ?? hostPortProblem(value, { portZero: true }));
    if (problem) throw new UsageError(`${setting(name(attr), value)}: ${problem}`);
  }
  // How long its own full or unwritable disk is waited out (README "Configuration"): a typo is no default.
  const wait = process.env['TESSERA_FULL_DISK_WAIT_MS'];
  if (wait !== undefined && wait.trim() !== '' && !(Number.isSafeInteger(Number(wait)) && Number(wait) >= 0)) throw new UsageError(`TESSERA_FULL_DISK_WAIT_MS=${wait}: must be a whole number of milliseconds, 0 or more`);
  if (o.dataDir.trim() === '') throw new UsageError(`${setting(name('dataDir'), o.dataDir)}: empty (it would be the working folder)`);
  // Given empty, no extra name is not what was meant either.
  if ((o.httpHost ?? []).some((h) => h.trim() === '')) throw new UsageError(`${setting(name('httpHost'), '""')}: empty (give the host name the dashboard answers to, or leave the setting out)`);
  // A name as Prometheus scrapes it (coordinator:7780, http://coordinator) never matched a request's
  // Host, and every request was refused 403 (review OPS8).
  for (const host of (o.httpHost ?? []).flatMap((h) => h.split(',')).filter(Boolean)) {
    // An IP address, IPv6 too (answered anyway, without --http-host), is taken as it is (review SELF5).
    if (isIP(host.replace(/^\[(.*)\]$/, '$1'))) continue;
    const bare = host.replace(/^[a-z][\w+.-]*:\/\//i, '').replace(/[/:].*$/, '');
    if (bare !== host) throw new UsageError(`${setting(name('httpHost'), host)}: a host name only, without a port or scheme (the dashboard takes its name on any port): give ${bare || 'the name'}`);
  }
  try {
    tileConfig();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // One port for both would fail at the dashboard's listen as "in use by another program": it is the gRPC server's.
  if (o.http && o.http !== 'off' && sameListenAddress(o.http, o.listen)) {
    throw new UsageError(`${setting(name('http'), o.http)}: the gRPC server listens there (${setting(name('listen'), o.listen)}); give the dashboard a port of its own, or --http off`);
  }
  // Shared folders that cannot be shared: said now (--print-config too), naming them as given.
  for (const attr of ['sharedRoot', 'sharedOutputRoot'] as const) {
    for (const d of o[attr] ?? []) {
      const found = sharedRootProblem(d, o.dataDir);
      if ('problem' in found) throw new UsageError(`${setting(name(attr), d)}: ${found.problem}`);
    }
  }
  // The Coordinator's own rules, checked here so that they are usage errors.
  try {
    assertSecureListen(o.listen, Boolean(o.tlsCert), Boolean(o.insecure));
    assertSecureDashboard(o.http, Boolean(o.insecure));
  } catch (err) {
    // A certificate given the clients' way is not the coordinator's: say where it goes.
    const hint = !o.tlsCert && process.env['TESSERA_TLS_CERT'] ? ` (TESSERA_TLS_CERT is set, but it is what clients and workers present: the coordinator reads ${SERVER_TLS_ENV.tlsCert} and ${SERVER_TLS_ENV.tlsKey})` : '';
    throw new UsageError(`${(err as Error).message}${hint}`);
  }
}

/**
 * TESSERA_MAX_INPUT_PIXELS, read by both sides where images are opened: a value sharp does not take
 * (past 2^53, a fraction, a typo) failed every image job, each blamed on its input.
 */
function checkMaxInputPixels(env: NodeJS.ProcessEnv = process.env): void {
  const raw = env['TESSERA_MAX_INPUT_PIXELS'];
  if (raw === undefined || raw === '') return;
  // As the code that reads it takes it (Number: 2e9 is two billion).
  if (!Number.isSafeInteger(Number(raw)) || Number(raw) < 1) {
    throw new UsageError(`TESSERA_MAX_INPUT_PIXELS=${raw}: must be a whole number of pixels from 1 to ${Number.MAX_SAFE_INTEGER}`);
  }
}

/** Most threads per slot a worker takes (x264's own most). */
const MAX_WORKER_THREADS = 128;

/** Refuses worker settings that parse but cannot work (see {@link checkCoordinatorSettings}). */
export function checkWorkerSettings(o: WorkerCommandOptions, name: OptionNamer = byFlag): void {
  atLeast(o, 'slots', 1, name);
  if (typeof o.slots === 'number' && o.slots > MAX_WORKER_SLOTS) throw new UsageError(`${setting(name('slots'), o.slots)}: must be at most ${MAX_WORKER_SLOTS}, the most a coordinator gives one worker`);
  checkMaxInputPixels();
  atLeast(o, 'threads', 1, name);
  // libvips takes at most 1024, x264 128: more cannot be used, and ffmpeg's decoders run out of memory on thousands.
  if (typeof o.threads === 'number' && o.threads > MAX_WORKER_THREADS) throw new UsageError(`${setting(name('threads'), o.threads)}: must be at most ${MAX_WORKER_THREADS} (no encoder uses more threads than that)`);
  atLeast(o, 'prefetch', 0, name, ' (0 = none)');
  checkKeepalive(o, name);
  // Given empty (`--name "$NODE_NAME"` unset), not HOST-PID nor no labels in silence.
  if (o.name !== undefined && o.name.trim() === '') throw new UsageError(`${setting(name('name'), '""')}: empty (leave it out for HOST-PID)`);
  if ((o.label ?? []).some((l) => l.trim() === '')) throw new UsageError(`${setting(name('label'), '""')}: empty (expected KEY=VALUE, e.g. --label gpu=nvidia,zone=a)`);
  const labels = workerLabels(o, name);
  // What a coordinator refuses at registration, on every try.
  if (o.name !== undefined) {
    if (Buffer.byteLength(o.name) > REGISTER_TEXT_BYTES) throw new UsageError(`${name('name')}: longer than ${REGISTER_TEXT_BYTES} bytes`);
    if (hasControlCharacters(o.name)) throw new UsageError(`${setting(name('name'), shownQuoted(o.name))}: contains control characters`);
  }
  const long = Object.entries(labels).find(([k, v]) => Buffer.byteLength(k) > REGISTER_TEXT_BYTES || Buffer.byteLength(v) > REGISTER_TEXT_BYTES);
  if (long) throw new UsageError(`${name('label')} ${long[0].slice(0, 40)}...: a label's key and value are at most ${REGISTER_TEXT_BYTES} bytes each`);
  const odd = Object.entries(labels).find(([k, v]) => hasControlCharacters(k + v));
  if (odd) throw new UsageError(`${setting(name('label'), shownQuoted(`${odd[0]}=${odd[1]}`))}: contains control characters`);
  // Named as given: the flag, its variable or the config key.
  const problem = o.coordinator === undefined ? undefined : hostPortProblem(o.coordinator, { portZero: false });
  if (problem) throw new UsageError(`${setting(name('coordinator'), o.coordinator)}: ${problem}`);
}

/** `v` quoted with every control character written out (JSON leaves DEL as it is), for a terminal. */
function shownQuoted(v: string): string {
  return JSON.stringify(v).replace(/\u007f/g, '\\u007f');
}

/** The worker's labels (`--label k=v,k2=v2`, repeatable) as a map; a usage error naming the one that is no KEY=VALUE as it was given. */
function workerLabels(o: WorkerCommandOptions, name: OptionNamer): Record<string, string> {
  const pairs = (o.label ?? []).flatMap((l) => l.split(',')).filter(Boolean);
  const bad = pairs.find((l) => !/^[^=\s]+=/.test(l));
  if (bad !== undefined) throw new UsageError(`${setting(name('label'), hasControlCharacters(bad) ? shownQuoted(bad) : bad)}: expected KEY=VALUE (e.g. --label gpu=nvidia,zone=a)`);
  return Object.fromEntries(pairs.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Whether two listen addresses take the same port on the same host (localhost is 127.0.0.1; port 0 is never the same). */
function sameListenAddress(a: string, b: string): boolean {
  const split = (x: string): [string, string] => {
    const i = x.lastIndexOf(':');
    const host = x.slice(0, i).replace(/^\[|\]$/g, '').toLowerCase();
    return [host === 'localhost' ? '127.0.0.1' : host, x.slice(i + 1)];
  };
  const [ha, pa] = split(a);
  const [hb, pb] = split(b);
  const any = (h: string): boolean => h === '0.0.0.0' || h === '::' || h === '';
  return pa === pb && pa !== '0' && (ha === hb || any(ha) || any(hb));
}

/**
 * Every check `tessera coordinator` or `tessera worker` makes of its settings before it starts
 * (ranges, listen rules, certificate, key and token files), each a usage error: also run by
 * `--print-config`, so that a configuration it prints is one that starts.
 */
export function checkServerSettings(command: Command): void {
  const name = optionNamer(command);
  const o = command.opts();
  if (command.name() === 'coordinator') {
    checkCoordinatorSettings(o as CoordinatorCommandOptions, name);
    coordinatorSecurity(o, name);
  } else if (command.name() === 'worker') {
    checkWorkerSettings(o as WorkerCommandOptions, name);
    workerSecurity(o, name);
  }
}

/*
 * The coordinator, the worker and the health check each load their own modules when they run: a
 * worker does not load the coordinator's (nor the other way round), and a client command neither.
 * Measured here: a worker registers about a quarter of a second sooner, `tessera --help` takes 0.41 s
 * instead of 0.76. grpc-js, protobuf and pino are loaded where a command first needs them too (a
 * credential, a logger, a health check): `--help`, `--version` and a bad setting take about 0.17 s.
 */

/** `tessera coordinator`; `cmd` (the parsed command) names options in errors as they were given. */
export async function runCoordinator(o: CoordinatorCommandOptions, cmd?: Command): Promise<void> {
  const name = cmd ? optionNamer(cmd) : byFlag;
  checkCoordinatorSettings(o, name);
  const security = coordinatorSecurity(o, name);
  const log = createLogger('coordinator', o.logLevel, o.logFormat);
  routeGrpcLogs(log);
  for (const line of clientTlsVariablesIgnored(cmd)) log.warn(line);
  warnUnknownVariables(cmd, log);
  watchCertificates(certificateExpiries(o, name, 'the coordinator certificate'), log);
  const { Coordinator } = await import('../../coordinator/coordinator.js');
  const coordinator = new Coordinator({ listen: o.listen, ...(o.http !== undefined ? { http: o.http } : {}), ...(o.httpHost ? { httpHosts: o.httpHost.flatMap((h) => h.split(',')).filter(Boolean) } : {}), dataDir: path.resolve(o.dataDir), log, heartbeatMs: o.heartbeatMs, ttlMs: o.ttlMs, maxAttempts: o.maxAttempts, ...(o.subtaskTimeoutMs !== undefined ? { subtaskTimeoutMs: o.subtaskTimeoutMs } : {}), ...(o.stallMs !== undefined ? { stallMs: o.stallMs } : {}), quarantineFailures: o.quarantineFailures, ...(o.retentionHours !== undefined ? { retentionMs: o.retentionHours * 3_600_000 } : {}), ...(o.prefetchBelowMs !== undefined ? { prefetchBelowMs: o.prefetchBelowMs } : {}), localReads: o.localReads, ...(o.sharedRoot ? { sharedRoots: o.sharedRoot } : {}), sharedRootAllowHardlinks: o.sharedRootAllowHardlinks === true, ...(o.sharedOutputRoot ? { sharedOutputRoots: o.sharedOutputRoot } : {}), keepalive: checkKeepalive(o, name), ...security });
  const address = await coordinator.start();
  // Plain lines on stdout so scripts (and the test harness) learn the bound ports; the address is
  // the first word after "listening on" (LocalCluster parses it), what protects it follows.
  serveWithoutStdout();
  process.stdout.write(`tessera coordinator listening on ${address} (${securitySummary(security)})\n`);
  if (coordinator.httpAddress) process.stdout.write(`tessera dashboard on http://${coordinator.httpAddress}/\n`);
  let stopping = false;
  let hungUp = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    void coordinator.close().then(() => exitAfter(hungUp));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // The terminal or SSH session it was started from closed: stopped as by SIGTERM, not killed
  // mid-write by Node's default (review OPS6); `on`, so that a second hangup is not Node's default.
  process.on('SIGHUP', () => {
    hungUp = true;
    stop('SIGHUP');
  });
  onParentExit(() => stop('parent exited'));
}

/**
 * A coordinator or worker started by another program with an IPC channel (`LocalCluster`: `npm
 * start`, the tests, the benchmarks) stops when that program goes, even when it was killed and
 * could not stop them itself: the channel closes with it. The channel does not keep the process up.
 */
function onParentExit(stop: () => void): void {
  if (!process.channel) return;
  process.channel.unref();
  process.once('disconnect', stop);
}

export interface WorkerCommandOptions extends KeepaliveFlags {
  coordinator?: string;
  slots?: number;
  threads?: number;
  prefetch?: number;
  name?: string;
  label?: string[];
  drainGraceMs: number;
  logLevel: LevelWithSilent;
  logFormat?: LogFormat;
}

/** `tessera worker`; `cmd` as for {@link runCoordinator}. */
export async function runWorker(o: WorkerCommandOptions, cmd?: Command): Promise<void> {
  const optionName = cmd ? optionNamer(cmd) : byFlag;
  checkWorkerSettings(o, optionName);
  const security = workerSecurity(o, optionName);
  // The name is decided here (same default as the Worker's) so that every log line carries it.
  const name = o.name ?? `${os.hostname()}-${process.pid}`;
  const log = createLogger('worker', o.logLevel, o.logFormat).child({ worker: name });
  routeGrpcLogs(log);
  warnUnknownVariables(cmd, log);
  watchCertificates(certificateExpiries(o, optionName, 'the worker certificate'), log);
  const { Worker } = await import('../../worker/worker.js');
  const labels = workerLabels(o, optionName);
  const worker = new Worker({
    coordinator: coordinatorAddress(o.coordinator),
    ...(o.slots !== undefined ? { slots: o.slots } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.prefetch !== undefined ? { prefetch: o.prefetch } : {}),
    name,
    labels,
    log,
    drainGraceMs: o.drainGraceMs,
    keepalive: checkKeepalive(o, optionName),
    ...security,
  });
  worker.start();
  serveWithoutStdout();
  process.stdout.write(`tessera worker ${worker.name} (${worker.slots} slot${worker.slots === 1 ? '' : 's'}) connecting to ${coordinatorAddress(o.coordinator)}\n`);
  let signals = 0;
  let hungUp = false;
  const stop = (signal: string): void => {
    signals++;
    log.info({ signal }, signals > 1 ? 'stopping now' : 'draining: finishing running subtasks (signal again to stop now)');
    const done = signals > 1 ? worker.close() : worker.drain();
    void done.then(() => {
      log.info({ signal }, 'stopped');
      exitAfter(hungUp);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Its terminal or SSH session closed: drained as by SIGTERM, so that its running subtasks finish
  // rather than fail an attempt each (Node's default ends the process at once; review OPS6). A
  // hangup is never the "signal again": Ctrl-C and then closing the window drains still (SELF3).
  process.on('SIGHUP', () => {
    hungUp = true;
    if (signals === 0) stop('SIGHUP');
  });
  // Nothing waits for the results of a worker whose parent went: stop without draining.
  onParentExit(() => {
    log.info({ signal: 'parent exited' }, 'stopping now');
    void worker.close().then(() => process.exit(0));
  });
}

interface HealthClient extends Grpc.Client {
  Check(req: { service: string }, opts: Grpc.CallOptions, cb: (err: Grpc.ServiceError | null, res?: { status: string }) => void): void;
}

/**
 * One grpc.health.v1 Check against a coordinator (the Docker HEALTHCHECK and a handy probe).
 * Returns the serving status (`SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`, ...). TLS as for every
 * client command (`--tls`, `--tls-ca` or their TESSERA_* variables).
 */
export async function checkHealth(address: string, service = '', timeoutMs = 3000, credentials = clientCredentialsFromEnv()): Promise<string> {
  const [grpc, { loadSync }, { protoPath: healthProtoPath }, { PROTO_LOADER_OPTIONS }] = await Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader'), import('grpc-health-check'), import('../../shared/proto.js')]);
  const def = loadSync(healthProtoPath, PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: new (addr: string, creds: Grpc.ChannelCredentials) => HealthClient } } } };
  const client = new pkg.grpc.health.v1.Health(address, credentials);
  try {
    return await new Promise<string>((resolve, reject) => {
      client.Check({ service }, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) {
          // grpc.health.v1 answers NOT_FOUND for a service it does not know.
          if (err.code === status.NOT_FOUND) resolve('SERVICE_UNKNOWN');
          else reject(err);
        } else resolve(res?.status ?? 'UNKNOWN');
      });
    });
  } finally {
    client.close();
  }
}

/**
 * `tessera health`: prints the status; exit 0 when SERVING, 1 for any other answer, 4 when nothing
 * answered over HTTP (`UNREACHABLE`; a gRPC check that cannot connect ends with its error, which
 * the CLI turns into 4 too).
 */
export async function runHealth(o: { coordinator?: string; http?: string; service: string; timeoutMs: number; json?: boolean }): Promise<number> {
  const address = o.http ? `http://${o.http}/healthz` : coordinatorAddress(o.coordinator);
  const answer = o.http ? await checkHttpHealth(address, o.timeoutMs) : { status: await checkHealth(address, o.service, o.timeoutMs) };
  // With --json, no answer is an error as every command's is ({"error":...}, exit 4), as the gRPC
  // check's is: a script reading one mode's output read another shape from the other.
  if (o.json && answer.status === 'UNREACHABLE') throw new TesseraError(status.UNAVAILABLE, `no answer from ${address}: ${answer.reason}`);
  if (o.json) process.stdout.write(`${JSON.stringify({ address, service: o.service, status: answer.status })}\n`);
  else process.stdout.write(`${answer.status}\n`);
  // Why, and where it looked, as the gRPC check says it (stdout keeps the one word scripts read).
  if (!o.json && answer.status === 'UNREACHABLE') process.stderr.write(`tessera: no answer from ${address}: ${answer.reason}\ntessera: is a coordinator serving its dashboard (--http) at ${o.http}?\n`);
  return answer.status === 'SERVING' ? EXIT.ok : answer.status === 'UNREACHABLE' ? EXIT.unreachable : EXIT.failed;
}

/** `/healthz` of a coordinator's HTTP server: 200 while it takes work, 503 while starting or draining. */
async function checkHttpHealth(url: string, timeoutMs: number): Promise<{ status: string; reason?: string }> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: r.status === 200 ? 'SERVING' : r.status === 503 ? 'NOT_SERVING' : `HTTP_${r.status}` };
  } catch (err) {
    // fetch says "fetch failed"; its cause says why (ECONNREFUSED, ENOTFOUND, "bad port").
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = (err as Error).name === 'TimeoutError' ? `nothing within ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message);
    return { status: 'UNREACHABLE', reason };
  }
}

/**
 * grpc-js's own error lines ("E No address added out of total 1 resolved", printed bare on stderr
 * beside the error the command reports) go into this process's log, at warn level, as JSON when
 * the log is.
 */
function routeGrpcLogs(log: Logger): void {
  (require('@grpc/grpc-js') as typeof Grpc).setLogger({ error: (...args: unknown[]) => log.warn({ source: 'grpc-js' }, args.map(String).join(' ')) });
}

/**
 * A service goes on serving when the reader of its stdout goes away (`tessera coordinator | head -1`
 * to learn its port): stdout carries its first lines only, its logs go to stderr. The CLI's own
 * handler ends a command whose reader left, which stopped the service (review CUX).
 */
/** How long before a certificate expires its server starts saying so (daily). */
const CERTIFICATE_WARN_DAYS = 30;

/**
 * Warns, at start and then daily, of a certificate that expires within CERTIFICATE_WARN_DAYS:
 * checked only at start, one that expired under a running coordinator refused every new
 * connection from then on, with no word before (review OPS14).
 */
function watchCertificates(certificates: { what: string; validTo: number }[], log: Logger): void {
  if (certificates.length === 0) return;
  const check = (): void => {
    for (const c of certificates) {
      const days = (c.validTo - Date.now()) / 86_400_000;
      if (days >= CERTIFICATE_WARN_DAYS) continue;
      const on = new Date(c.validTo).toISOString();
      log.warn({ expires: on }, days <= 0 ? `${c.what} has expired (${on}): new connections fail; make a new one and restart with it` : `${c.what} expires in ${days < 1 ? 'less than a day' : `${Math.floor(days)} day(s)`} (${on}): make a new one and restart with it before then`);
    }
  };
  check();
  setInterval(check, 86_400_000).unref();
}

/** Says in the log of each TESSERA_ variable set that no setting reads (a misspelt one), with the closest that one does. */
function warnUnknownVariables(cmd: Command | undefined, log: Logger): void {
  const root = cmd?.parent;
  if (!root) return;
  for (const { name, closest } of unknownVariables(root)) log.warn(`${name} is set, but no setting of Tessera's is read from it${closest ? ` (did you mean ${closest}?)` : ''}: it is ignored`);
}

/**
 * Ends a server once it has stopped. After a hangup (whatever signal stopped it) it dies by SIGHUP,
 * as a process whose terminal went does: Node's own exit then asserted, restoring a terminal that
 * was gone (`ResetStdio`, an abort with a native stack trace).
 */
function exitAfter(hungUp: boolean): void {
  if (!hungUp) process.exit(0);
  process.removeAllListeners('SIGHUP');
  process.kill(process.pid, 'SIGHUP');
}

function serveWithoutStdout(): void {
  process.stdout.removeAllListeners('error');
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    // EIO: the terminal hung up (SIGHUP), and the process drains on.
    if (err.code !== 'EPIPE' && err.code !== 'EIO') throw err;
  });
}
