/**
 * Links between hosts as they are off a LAN (network namespaces on this machine, real TCP between
 * them; needs root): workers and clients that reach the coordinator by a DNS name that moves to
 * another address when the coordinator is made again (as a container is). A client on a slow uplink with the default
 * keepalive: slow-link.test.ts (8 MiB at 2 Mbit/s, longer than this file's 5 MiB once was).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLI_PATH } from './helpers/cluster.js';
import { createLab, tesseraProcesses, type Host, type Lab } from './helpers/netns.js';

let lab: Lab;
let hosts: [Host, Host, Host, Host];
let dir: string;
let procs: ReturnType<typeof tesseraProcesses>;
const etcDirs: string[] = [];
let n = 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-multihost-'));
  const made = await createLab(['coordinator', 'worker-a', 'worker-b', 'client'], { tag: `tmh${process.pid % 10_000}x${n++}` });
  if (!made) throw new Error('network namespaces could not be made (this test needs root: CAP_NET_ADMIN)');
  lab = made;
  hosts = lab.hosts as [Host, Host, Host, Host];
  procs = tesseraProcesses(lab, CLI_PATH);
});

afterEach(async () => {
  await procs?.stopAll();
  await lab?.close();
  for (const d of etcDirs.splice(0)) await rm(d, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

/** Gives `host` an /etc/hosts of its own (`ip netns exec` bind-mounts /etc/netns/NS/hosts). */
async function hostsFile(host: Host, lines: string): Promise<void> {
  const d = `/etc/netns/${host.ns}`;
  await mkdir(d, { recursive: true });
  if (!etcDirs.includes(d)) etcDirs.push(d);
  await writeFile(path.join(d, 'hosts'), `127.0.0.1 localhost\n${lines}\n`);
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

const activeWorkers = async (coordinator: string): Promise<number> => {
  const r = await procs.run(hosts[3], ['workers', '--json', '--coordinator', coordinator]);
  return (JSON.parse(r.stdout) as { state: string }[]).filter((w) => w.state === 'active').length;
};

describe('a coordinator reached by name and made again at another address', () => {
  it('workers follow it to its new address within seconds (a container made again elsewhere)', { timeout: 120_000 }, async () => {
    const [c, wa, wb, cl] = hosts;
    for (const h of [wa, wb, cl]) await hostsFile(h, `${c.address} coord.test`);
    const args = ['coordinator', '--listen', '0.0.0.0:7700', '--http', 'off', '--insecure', '--data-dir', path.join(dir, 'data')];
    const spawnCoordinator = () => procs.launch(c, args, /listening on/);
    let { child: coordinator, ready: listening } = spawnCoordinator();
    try {
      for (const w of [wa, wb]) await procs.start(w, ['worker', '--coordinator', 'coord.test:7700', '--name', w.name, '--slots', '1'], /connecting to/);
      await waitFor('both workers', async () => ((await activeWorkers('coord.test:7700')) === 2 ? true : undefined), 20_000);
      const exited = new Promise((r) => coordinator.once('exit', r));
      coordinator.kill('SIGTERM');
      await exited;
      // The old address goes first and answers nothing any more (no reset: the packets to it are
      // dropped, as behind a container gone); the workers' tries meanwhile, still to the old
      // address under the name, wait on a handshake that never comes. Then the name moves.
      const moved = c.address.replace(/\.\d+$/, '.99');
      await lab.exec(c, 'ip', ['addr', 'del', `${c.address}/24`, 'dev', 'eth0']);
      await lab.exec(c, 'ip', ['addr', 'add', `${moved}/24`, 'dev', 'eth0']);
      await sleep(3_000);
      for (const h of [wa, wb, cl]) await hostsFile(h, `${moved} coord.test`);
      ({ child: coordinator, ready: listening } = spawnCoordinator());
      // Timed from when it listens: its own start on a loaded machine is not what is measured.
      await listening;
      const t0 = Date.now();
      await waitFor('both workers back', async () => ((await activeWorkers('coord.test:7700')) === 2 ? true : undefined), 60_000).catch((err: Error) => {
        throw new Error(`${err.message} after ${Date.now() - t0} ms; the workers' logs:\n${[...procs.logs].map(([h, l]) => `${h}:\n${l}`).join('\n')}`);
      });
      // grpc-js resolved a name again at most every 30 s: the workers came back after ~30 s. A
      // try that waited on the old address's handshake waited for the system's SYN retries (~2 min).
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      coordinator.kill('SIGKILL');
    }
  });

  it('a client watching a job follows it too when its old host went silent, and does not wait on the old address', { timeout: 120_000 }, async () => {
    const [c, wa, , cl] = hosts;
    for (const h of [wa, cl]) await hostsFile(h, `${c.address} coord.test`);
    const args = ['coordinator', '--listen', '0.0.0.0:7700', '--http', 'off', '--insecure', '--data-dir', path.join(dir, 'data')];
    const spawnCoordinator = () => procs.launch(c, args, /listening on/);
    let { child: coordinator, ready: listening } = spawnCoordinator();
    let watch: ChildProcess | undefined;
    try {
      const input = path.join(dir, 'in.bin');
      await writeFile(input, Buffer.alloc(1000, 7));
      // No worker yet: the job waits, and the client watches it across the move.
      const submitted = await waitFor('the job submitted', async () => {
        const r = await procs.run(cl, ['submit', 'passthrough', input, '--no-wait', '--coordinator', 'coord.test:7700']);
        return r.code === 0 ? r.stdout.trim() : undefined;
      }, 20_000);
      // A short keepalive: the silent host is found out in seconds rather than 30.
      const w = lab.spawn(cl, process.execPath, [CLI_PATH, 'watch', submitted, '--json', '--keepalive-ms', '5000', '--keepalive-timeout-ms', '1000', '--coordinator', 'coord.test:7700'], {
        env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      watch = w;
      let said = '';
      let printed = '';
      w.stdout!.on('data', (d: Buffer) => ((said += d.toString()), (printed += d.toString())));
      w.stderr!.on('data', (d: Buffer) => (said += d.toString()));
      const watchEnded = new Promise<number | null>((r) => w.once('exit', r));
      // Its first event (a JSON line): it has reached the coordinator.
      await waitFor('the watch to start', async () => (printed.length > 0 ? true : undefined), 20_000);
      // The host goes silent (its link dead: no reset, no FIN), its coordinator with it. The watch
      // finds out by its keepalive, and its tries then go to the old address and get no answer.
      await lab.setLink(c, 'down');
      const exited = new Promise((r) => coordinator.once('exit', r));
      coordinator.kill('SIGTERM');
      await exited;
      await waitFor('the watch to lose the coordinator', async () => (/lost the coordinator/.test(said) ? true : undefined), 30_000);
      await sleep(1_000);
      // The coordinator made again at another address, under the same name.
      const moved = c.address.replace(/\.\d+$/, '.99');
      await lab.exec(c, 'ip', ['addr', 'del', `${c.address}/24`, 'dev', 'eth0']);
      await lab.exec(c, 'ip', ['addr', 'add', `${moved}/24`, 'dev', 'eth0']);
      await lab.setLink(c, 'up');
      for (const h of [wa, cl]) await hostsFile(h, `${moved} coord.test`);
      ({ child: coordinator, ready: listening } = spawnCoordinator());
      // Timed from when it listens: its own start on a loaded machine is not what is measured.
      await listening;
      const t0 = Date.now();
      await waitFor('the watch back', async () => (/reconnected after/.test(said) ? true : undefined), 60_000).catch((err: Error) => {
        throw new Error(`${err.message} after ${Date.now() - t0} ms; the watch said:\n${said}`);
      });
      // Without a connect timeout of its own, the try under way waited for the system's SYN
      // retries (about two minutes: the whole reconnect window).
      expect(Date.now() - t0).toBeLessThan(15_000);
      // A worker for the job: the watch ends with it, as after any outage.
      await procs.start(wa, ['worker', '--coordinator', 'coord.test:7700', '--name', wa.name, '--slots', '1'], /connecting to/);
      expect(await watchEnded, said).toBe(0);
    } finally {
      watch?.kill('SIGKILL');
      coordinator.kill('SIGKILL');
    }
  });
});
