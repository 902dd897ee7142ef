/**
 * Several hosts for real: the coordinator, two workers and the client each in their own network
 * namespace with their own address (10.200.N.x, bridged), talking over real TCP between them, and a
 * video job split across both workers. Where namespaces cannot be made (no CAP_NET_ADMIN), the
 * same test runs on separate loopback addresses (127.0.0.2..5) instead.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheck, probeVideoIndex } from '../../shared/media/probe.js';
import { CLI_PATH, runCli } from '../helpers/cluster.js';
import { makeVideo } from '../helpers/media.js';
import { createLab, tesseraProcesses, type Host, type Lab } from '../helpers/netns.js';

let lab: Lab | undefined;
let hosts: Host[];
let dir: string;
let processes: ReturnType<typeof tesseraProcesses>;

/** Starts `tessera ARGS` on `host` and resolves with the first stdout match of `ready`. */
const startOn = (host: Host, args: string[], ready: RegExp): Promise<RegExpExecArray> => processes.start(host, args, ready);

/** Runs the CLI as the client host. */
function client(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return lab ? processes.run(hosts[3]!, args) : runCli(args);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-netns-'));
  const names = ['coordinator', 'worker-a', 'worker-b', 'client'];
  lab = await createLab(names);
  processes = tesseraProcesses(lab, CLI_PATH);
  hosts = lab ? lab.hosts : names.map((name, i) => ({ name, ns: '', address: `127.0.0.${i + 2}` }));
});

afterAll(async () => {
  await processes?.stopAll();
  await lab?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe(`several hosts`, () => {
  it('runs a video job across two workers on other hosts than the coordinator', async () => {
    const [c, wa, wb] = hosts as [Host, Host, Host, Host];
    const grpcAddr = `${c.address}:7700`;
    // A non-loopback address needs TLS or --insecure (a trusted test network here).
    await startOn(c, ['coordinator', '--listen', grpcAddr, '--http', `${c.address}:7780`, '--insecure', '--data-dir', path.join(dir, 'data')], /dashboard on http:\/\/\S+/);
    await Promise.all([wa, wb].map((w) => startOn(w, ['worker', '--coordinator', grpcAddr, '--name', w.name, '--slots', '1'], /connecting to/)));

    // The client (its own host) sees both workers, registered from their own addresses.
    let workers: { name: string; state: string; address: string }[] = [];
    for (let i = 0; i < 100 && workers.filter((w) => w.state === 'active').length < 2; i++) {
      const r = await client(['workers', '--json', '--coordinator', grpcAddr]);
      workers = r.code === 0 ? JSON.parse(r.stdout) : [];
      if (workers.length < 2) await new Promise((res) => setTimeout(res, 200));
    }
    expect(workers.map((w) => [w.name, w.state]).sort()).toEqual([
      ['worker-a', 'active'],
      ['worker-b', 'active'],
    ]);
    // In namespaces each worker's connection comes from its own host's address (on loopback
    // addresses the kernel picks 127.0.0.1 as the source, so there is nothing to compare).
    if (lab) expect(workers.map((w) => w.address.split(':')[0]).sort()).toEqual([wa.address, wb.address].sort());

    const src = await makeVideo(dir, 'clip.mp4', { duration: 4, gop: 25 });
    const out = path.join(dir, 'out');
    const r = await client(['submit', 'video', src, '--preset', 'ultrafast', '--segment-seconds', '1', '-o', out, '--json', '--no-progress', '--coordinator', grpcAddr]);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { state: string; outputs: { name: string; path: string }[]; subtasks: { worker: string; label: string }[] };
    expect(job.state).toBe('succeeded');
    expect(new Set(job.subtasks.map((s) => s.worker))).toEqual(new Set(['worker-a', 'worker-b']));
    const [srcIndex, decoded] = await Promise.all([probeVideoIndex(src), decodeCheck(job.outputs[0]!.path)]);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(srcIndex.frameTimes.length);

    // The client host probes the coordinator host the way Docker's HEALTHCHECK does.
    const health = await client(['health', '--coordinator', grpcAddr, '--json']);
    expect(JSON.parse(health.stdout)).toMatchObject({ status: 'SERVING' });
  });
});
