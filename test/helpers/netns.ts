/**
 * A small private network of "hosts" on this machine: one Linux network namespace per host, each
 * with its own eth0 and address from 10.200.N.0/24, all plugged into a bridge that lives in a
 * namespace of its own (so the machine's own network is never touched). Needs CAP_NET_ADMIN;
 * `createLab` returns undefined where namespaces cannot be made. Traffic stays inside these
 * namespaces: nothing routes out of them.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Host {
  name: string;
  /** Network namespace name. */
  ns: string;
  /** IPv4 address on the lab network. */
  address: string;
}

export interface Lab {
  hosts: Host[];
  /** Spawns `command args` inside `host`'s namespace. */
  spawn(host: Host, command: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Runs a command inside `host`'s namespace and returns its stdout. */
  exec(host: Host, command: string, args: string[]): Promise<string>;
  /**
   * Limits `host`'s link to `rate` (tc syntax, e.g. "1mbit") both ways, with a FIFO at the
   * bottleneck holding at most `latency` of traffic (a token bucket on each end of its veth pair).
   */
  limitRate(host: Host, rate: string, latency?: string): Promise<void>;
  /**
   * Sets `host`'s port on the bridge down (its packets then vanish without a reset, as behind a
   * switch port gone dead) or up again.
   */
  setLink(host: Host, state: 'up' | 'down'): Promise<void>;
  /** Deletes every namespace (and with them the veth pairs and the bridge). Idempotent. */
  close(): Promise<void>;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

/** Creates one namespace per name, e.g. ['coordinator', 'worker-a', 'worker-b', 'client']. */
export async function createLab(names: string[], opts: { tag?: string } = {}): Promise<Lab | undefined> {
  // Unique per test process: parallel runs (and leftovers of a killed run) do not collide.
  const tag = opts.tag ?? `ts${process.pid % 100_000}`;
  const subnet = `10.200.${(process.pid % 250) + 1}`;
  const bridgeNs = `${tag}-br`;
  const created: string[] = [];
  const close = async (): Promise<void> => {
    for (const ns of created.splice(0).reverse()) await ip('netns', 'del', ns).catch(() => undefined);
  };
  try {
    await ip('netns', 'add', bridgeNs);
  } catch {
    return undefined;
  }
  created.push(bridgeNs);
  const onExit = (): void => {
    for (const ns of created) spawn('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  };
  process.once('exit', onExit);
  try {
    await ip('-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', bridgeNs, 'link', 'set', 'br0', 'up');
    const hosts: Host[] = [];
    for (const [i, name] of names.entries()) {
      const ns = `${tag}-h${i}`;
      await ip('netns', 'add', ns);
      created.push(ns);
      // The pair is created straight inside the two namespaces: the host namespace never sees it.
      await ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', bridgeNs);
      await ip('-n', bridgeNs, 'link', 'set', `p${i}`, 'master', 'br0');
      await ip('-n', bridgeNs, 'link', 'set', `p${i}`, 'up');
      const address = `${subnet}.${i + 1}`;
      await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts.push({ name, ns, address });
    }
    return {
      hosts,
      spawn: (host, command, args, opts = {}) => spawn('ip', ['netns', 'exec', host.ns, command, ...args], opts),
      exec: async (host, command, args) => (await run('ip', ['netns', 'exec', host.ns, command, ...args])).stdout,
      async limitRate(host, rate, latency = '400ms') {
        const port = `p${hosts.indexOf(host)}`;
        for (const [ns, dev] of [[host.ns, 'eth0'], [bridgeNs, port]] as const) {
          await run('tc', ['-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '16kb', 'latency', latency]);
        }
      },
      async setLink(host, state) {
        await ip('-n', bridgeNs, 'link', 'set', `p${hosts.indexOf(host)}`, state);
      },
      async close() {
        process.off('exit', onExit);
        await close();
      },
    };
  } catch (err) {
    process.off('exit', onExit);
    await close();
    throw err;
  }
}

/**
 * `tessera` processes on the lab's hosts (or, without a lab, on this machine): `start` resolves
 * with the first stdout match of `ready` (rejects if the process exits first), `logs` keeps each
 * host's stderr, `stopAll` ends them all (SIGTERM, SIGKILL after 3 s).
 */
export function tesseraProcesses(lab: Lab | undefined, cli: string) {
  const children: ChildProcess[] = [];
  const logs = new Map<string, string>();
  /** `start`, with the process too (to stop it or wait for it). */
  function launch(host: Host, args: string[], ready: RegExp): { child: ChildProcess; ready: Promise<RegExpExecArray> } {
    const opts: SpawnOptions = { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] };
    const child = lab ? lab.spawn(host, process.execPath, [cli, ...args], opts) : spawn(process.execPath, [cli, ...args], opts);
    children.push(child);
    logs.set(host.name, '');
    child.stderr!.on('data', (d: Buffer) => logs.set(host.name, logs.get(host.name)! + d.toString()));
    const matched = new Promise<RegExpExecArray>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = ready.exec(out);
        if (m) resolve(m);
      });
      child.once('exit', (code) => reject(new Error(`tessera ${args[0]} on ${host.name} exited with ${code}: ${logs.get(host.name)}`)));
    });
    matched.catch(() => undefined);
    return { child, ready: matched };
  }
  return {
    logs,
    start(host: Host, args: string[], ready: RegExp): Promise<RegExpExecArray> {
      return launch(host, args, ready).ready;
    },
    /** `start`, with the process too (to stop it or wait for it). */
    launch,
    /** Runs `tessera ARGS` on `host` (a lab's host) to its end: exit code, stdout, stderr. */
    run(host: Host, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
      return new Promise((resolve) => {
        const child = lab!.spawn(host, process.execPath, [cli, ...args], { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    },
    async stopAll(): Promise<void> {
      await Promise.all(
        children.map(async (c) => {
          if (c.exitCode !== null || c.signalCode !== null) return;
          const exited = new Promise((r) => c.once('exit', r));
          c.kill('SIGTERM');
          const t = setTimeout(() => c.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
        }),
      );
    },
  };
}
