/**
 * Starts a real coordinator and real worker processes on loopback (ephemeral ports), as separate
 * OS processes running this package's CLI. Used by `tessera demo`, the tests and the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { BULK_MALLOC_ENV } from '../shared/malloc.js';
import { processAlive } from '../shared/machine.js';
import * as grpc from '@grpc/grpc-js';
import { TesseraClient, type ClientOptions } from './client.js';
import { DEFAULT_KEEPALIVE } from '../shared/config.js';
import { steadyNow } from '../shared/clock.js';

/** Path of the compiled CLI entry point (dist/client/cli.js), also when this module runs from source (tests). */
export const CLI_PATH = import.meta.url.endsWith('.ts')
  ? fileURLToPath(new URL('../dist/client/cli.js', import.meta.url))
  : fileURLToPath(new URL('./cli.js', import.meta.url));

export interface LocalClusterOptions {
  workers?: number;
  slots?: number;
  /** Extra coordinator flags, e.g. ['--ttl-ms', '2000']. */
  coordinatorArgs?: string[];
  workerArgs?: string[];
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
  logLevel?: string;
  /**
   * Whether `stop()` throws when a process died of an uncaught error (see `crashes`). Default: the
   * environment's TESSERA_FAIL_ON_CRASH=1, which the test suite sets (vitest.config.ts).
   */
  failOnCrash?: boolean;
  /** Where child stderr goes: 'ignore' (default), 'inherit', or a callback per line. */
  onLog?: (who: string, line: string) => void;
  /** Credentials and token of `client` (TLS and token clusters). */
  clientOptions?: Omit<ClientOptions, 'address'>;
  /**
   * The CLI the coordinator that `start()` starts runs (another build's `dist/client/cli.js`, to
   * upgrade from); this package's by default, as for every process started later unless told.
   */
  coordinatorCli?: string;
  /** The CLI the workers that `start()` starts run; this package's by default. */
  workerCli?: string;
  /**
   * The processes take none of this process's TESSERA_* settings (but TESSERA_NODE_ARGS), only
   * `env`: the demo's private cluster in a shell set up for a real one (TLS, tokens, a config file).
   */
  ownSettings?: boolean;
}

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Its last lines on stderr (a few), to say why it stopped. */
  lastLines: string[];
  /** Its output streams closed after its exit (what it wrote last has been read). */
  closed: Promise<void>;
}

export class LocalCluster {
  address = '';
  /** Dashboard and /metrics address (host:port), learnt from the coordinator's stdout. */
  httpAddress = '';
  dataDir = '';
  coordinator: ManagedProcess | undefined;
  readonly workers: ManagedProcess[] = [];
  client!: TesseraClient;
  /**
   * The processes that died of an error nothing caught (an exception, or a promise rejected with no
   * handler, which ends a Node 20 process): each as its name and Node's report of it, told by that
   * report on its stderr and an exit status of its own (not a signal, not 0: a worker whose processor
   * child died so, on the same stderr, lives on). With `failOnCrash`, `stop()` throws on any.
   */
  readonly crashes: { name: string; report: string }[] = [];
  private ownsDataDir = false;
  private workerSeq = 0;

  constructor(private readonly opts: LocalClusterOptions = {}) {}

  async start(): Promise<this> {
    this.ownsDataDir = !this.opts.dataDir;
    if (this.ownsDataDir) await removeStaleDirs(CLUSTER_DIR_PREFIX);
    this.dataDir = this.opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), `${CLUSTER_DIR_PREFIX}${process.pid}-`)));
    try {
      await this.startCoordinator(undefined, undefined, this.opts.coordinatorCli);
      // With its own settings, its client takes none from the environment either (TLS, a token, keepalive).
      const own: Omit<ClientOptions, 'address'> = this.opts.ownSettings ? { credentials: grpc.credentials.createInsecure(), token: '', keepalive: DEFAULT_KEEPALIVE } : {};
      this.client = new TesseraClient({ address: this.address, ...own, ...this.opts.clientOptions });
      for (let i = 0; i < (this.opts.workers ?? 2); i++) this.startWorker(undefined, [], { cli: this.opts.workerCli });
      await this.waitForWorkers(this.opts.workers ?? 2, 30_000, this.workers);
    } catch (err) {
      // Nothing started is left running, and the data dir made here goes too.
      await this.stop();
      throw err;
    }
    return this;
  }

  /**
   * Starts (or restarts, on the same data dir and port) the coordinator; `cli` runs another build's
   * (to upgrade from it, say).
   */
  async startCoordinator(listen = this.address || '127.0.0.1:0', timeoutMs = 30_000, cli = CLI_PATH): Promise<void> {
    const before = this.coordinator;
    if (before && before.child.exitCode === null && before.child.signalCode === null) {
      // A restart: the one before must be gone first (it holds the data dir). One still running
      // was left out of stop() once replaced here, and kept its host process alive (review L).
      // `killed`: a signal was sent, any (a SIGSTOP too): waited for a while, not for ever.
      const gone = before.child.killed && (await Promise.race([before.exited.then(() => true), sleep(5000, false, { ref: false })]));
      if (!gone) throw new Error('LocalCluster: cannot start coordinator: the one started before is still running (stop it first, e.g. cluster.coordinator.child.kill())');
    }
    const proc = this.spawn('coordinator', ['coordinator', '--listen', listen, '--http', '127.0.0.1:0', '--data-dir', this.dataDir, ...(this.opts.coordinatorArgs ?? [])], undefined, cli);
    this.coordinator = proc;
    const extra = this.opts.coordinatorArgs ?? [];
    const httpOff = extra.some((arg, i) => arg === '--http' && extra[i + 1] === 'off');
    let timer: NodeJS.Timeout | undefined;
    this.address = await new Promise<string>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the coordinator did not say it was listening within ${timeoutMs} ms`)), timeoutMs);
      let buf = '';
      const onData = (d: Buffer): void => {
        buf += d.toString();
        const m = /listening on (\S+)/.exec(buf);
        // The dashboard line follows the gRPC one (when the HTTP server is on).
        const h = /dashboard on http:\/\/(\S+?)\//.exec(buf);
        if (h) this.httpAddress = h[1]!;
        if (m && (h || httpOff)) {
          proc.child.stdout?.off('data', onData);
          resolve(m[1]!);
        }
      };
      proc.child.stdout?.on('data', onData);
      void proc.exited.then((code) => {
        const said = proc.lastLines.filter((l) => l.trim()).slice(-3).join(' / ');
        reject(new Error(`coordinator exited with ${code} before listening${said ? `: ${said}` : ''}`));
      });
    }).finally(() => clearTimeout(timer));
  }

  /**
   * Starts one more worker; `via` overrides the address it dials (e.g. a fault-injecting proxy), and
   * `cli` runs another build's worker.
   */
  startWorker(name = `worker-${++this.workerSeq}`, extra: string[] = [], opts: { env?: NodeJS.ProcessEnv; via?: string; cli?: string } = {}): ManagedProcess {
    const args = ['worker', '--coordinator', opts.via ?? this.address, '--name', name, '--slots', String(this.opts.slots ?? 1), ...(this.opts.workerArgs ?? []), ...extra];
    const proc = this.spawn(name, args, opts.env, opts.cli ?? CLI_PATH);
    this.workers.push(proc);
    return proc;
  }

  /**
   * The value of an unlabelled metric (a counter or gauge such as
   * `tessera_task_input_bytes_served_total`) from the coordinator's /metrics.
   */
  async metric(name: string): Promise<number> {
    const text = await (await fetch(`http://${this.httpAddress}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    if (!line) throw new Error(`no ${name} in the coordinator's /metrics`);
    return Number(line.slice(name.length + 1));
  }

  /**
   * Waits until `n` workers are active. `started`: the processes that are to be those workers; once
   * too few of them are left running, it fails at once, with the last words of one that exited
   * (a bad worker argument), rather than at the timeout.
   */
  async waitForWorkers(n: number, timeoutMs = 30_000, started?: readonly ManagedProcess[]): Promise<void> {
    const until = steadyNow() + timeoutMs;
    for (;;) {
      const workers = await this.client.listWorkers().catch(() => []);
      if (workers.filter((w) => w.state === 'active').length >= n) return;
      const gone = (started ?? []).filter((p) => p.child.exitCode !== null || p.child.signalCode !== null);
      if (started && started.length - gone.length < n) {
        const p = gone[0]!;
        throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) before it registered${p.lastLines.length > 0 ? `: ${p.lastLines.join(' | ')}` : ''}`);
      }
      if (steadyNow() > until) throw new Error(`only ${workers.length} of ${n} workers registered within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  private spawn(name: string, args: string[], env: NodeJS.ProcessEnv | undefined, cli = CLI_PATH): ManagedProcess {
    // A process started after stop() would be nobody's to stop: it would keep this process alive.
    if (this.stopped) throw new Error(`LocalCluster: cannot start ${name}: the cluster was stopped (make a new LocalCluster)`);
    // TESSERA_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles every cluster process.
    const nodeArgs = (process.env['TESSERA_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
    const inherited = this.opts.ownSettings ? Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_') || k === 'TESSERA_NODE_ARGS')) : process.env;
    const child = spawn(process.execPath, [...nodeArgs, cli, ...args], {
      env: { ...BULK_MALLOC_ENV, ...inherited, TESSERA_LOG_LEVEL: this.opts.logLevel ?? 'warn', ...this.opts.env, ...env },
      // The IPC channel ends when this process does, however it ends: the child stops then (servers.ts).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let report: string | undefined;
    const closed = new Promise<void>((resolve) =>
      child.once('close', (code) => {
        if (report !== undefined && code !== null && code !== 0) this.crashes.push({ name, report });
        resolve();
      }),
    );
    let buf = '';
    const lastLines: string[] = [];
    const recent: string[] = [];
    child.stderr?.on('data', (d: Buffer) => {
      // Bounded: a line that never ends is cut.
      buf = (buf + d.toString()).slice(-64 * 1024);
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lastLines.push(line.slice(0, 1000));
        if (lastLines.length > 5) lastLines.shift();
        recent.push(line.slice(0, 1000));
        if (recent.length > 40) recent.shift();
        // Node's last words on an uncaught error, after its report and stack.
        if (/^Node\.js v\d+\.\d+\.\d+$/.test(line)) report = recent.join('\n');
        this.opts.onLog?.(name, line);
      }
    });
    child.stdout?.resume();
    return { name, child, exited, lastLines, closed };
  }

  private stopped = false;

  /** Stops every process (SIGKILL after a short grace) and removes the data dir it created; nothing starts after it. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.client?.close();
    const all = [...this.workers, ...(this.coordinator ? [this.coordinator] : [])];
    await Promise.all(
      all.map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        p.child.kill('SIGTERM');
        const t = setTimeout(() => p.child.kill('SIGKILL'), 3000);
        await p.exited;
        clearTimeout(t);
      }),
    );
    // What each wrote last is read (its crash report, if any), or given up on after 2 s (a child
    // of its still holding the pipe).
    await Promise.all(all.map((p) => Promise.race([p.closed, sleep(2000, undefined, { ref: false })])));
    // The test suite fails on a crash its own assertions did not see: a coordinator ended by an
    // unhandled rejection went unnoticed by every test (review soak).
    if ((this.opts.failOnCrash ?? process.env['TESSERA_FAIL_ON_CRASH'] === '1') && this.crashes.length > 0) {
      throw new Error(`cluster process(es) died of an uncaught error:\n${this.crashes.map((c) => `--- ${c.name}\n${c.report}`).join('\n')}`);
    }
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }
}

const CLUSTER_DIR_PREFIX = 'tessera-cluster-';

/**
 * Removes the folders a process of ours left when it died without cleaning up (SIGKILL, a power
 * cut): `PREFIX` + `PID-*` in the temp folder, PID no longer alive. The data dirs of local clusters
 * (`tessera-cluster-`: their coordinator and workers end with their parent, see `spawn`, but the
 * store and spool would stay for ever), the demo's sample images (`tessera-demo-`).
 */
export async function removeStaleDirs(prefix: string): Promise<void> {
  const pattern = new RegExp(`^${prefix}(\\d+)-`);
  for (const entry of await readdir(os.tmpdir()).catch(() => [] as string[])) {
    const pid = Number(pattern.exec(entry)?.[1] ?? 0);
    if (pid && pid !== process.pid && !processAlive(pid)) await rm(path.join(os.tmpdir(), entry), { recursive: true, force: true }).catch(() => undefined);
  }
}
