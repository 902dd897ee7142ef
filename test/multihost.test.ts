/**
 * Links between hosts as they are off a LAN (network namespaces on this machine, real TCP between
 * them; needs root): workers that reach the coordinator by a DNS name that moves to another address
 * when the coordinator is made again (as a container is). A client on a slow uplink with the default
 * keepalive: slow-link.test.ts (8 MiB at 2 Mbit/s, longer than this file's 5 MiB once was).
 */
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

describe('workers that reach the coordinator by name', () => {
  it('follow it to its new address within seconds when it is made again elsewhere (a container recreated)', { timeout: 120_000 }, async () => {
    const [c, wa, wb, cl] = hosts;
    for (const h of [wa, wb, cl]) await hostsFile(h, `${c.address} coord.test`);
    const args = ['coordinator', '--listen', '0.0.0.0:7700', '--http', 'off', '--insecure', '--data-dir', path.join(dir, 'data')];
    const spawnCoordinator = () => lab.spawn(c, process.execPath, [CLI_PATH, ...args], { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' }, stdio: 'ignore' });
    let coordinator = spawnCoordinator();
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
      coordinator = spawnCoordinator();
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
});
