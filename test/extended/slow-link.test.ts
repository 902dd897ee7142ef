/**
 * Slow and dead links, coordinator, worker and client each in their own network namespace; real TCP
 * between them. Needs CAP_NET_ADMIN and tc.
 *
 * A worker on a slow link (1 Mbit/s each way, a token bucket with a FIFO at the bottleneck) that
 * fetches and uploads megabytes: its heartbeats must not wait behind those bytes, or the
 * coordinator takes it for lost every few seconds (default TTL 5 s), takes its subtask back and the
 * job fails with "worker lost".
 *
 * A client uploading over a 2 Mbit/s uplink with the default keepalive (a ping every 10 s, 20 s for
 * its answer): a ping waits behind what the HTTP/2 window let the client queue. With a 16 MiB window
 * each ping waited about 67 s, the connection was cut every 31 s and the upload sent again from its
 * first byte, for ever, whatever --reconnect-for said.
 *
 * A client whose link goes dead mid-upload (packets dropped, no reset): `submit` gives up after
 * --reconnect-for with exit status 4, and ends then, not when the link comes back (a socket write
 * on the dead connection kept the process alive after it had said it gave up).
 *
 * The coordinator runs with a 2 s TTL (heartbeats every 250 ms) instead of the default 5 s, and
 * the payload is sized to the TTL: each way takes about 3 TTLs at 1 Mbit/s, as 1.5 MiB did
 * against 5 s, so a heartbeat that waited behind the bytes would still be late several times over
 * (the FIFO at the bottleneck delays any packet at most 400 ms).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../shared/streams.js';
import { CLI_PATH } from '../helpers/cluster.js';
import { createLab, tesseraProcesses, type Host, type Lab } from '../helpers/netns.js';

let lab: Lab | undefined;
let dir: string;
let processes: ReturnType<typeof tesseraProcesses>;

let grpcAddr = '';

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-slow-link-'));
  lab = await createLab(['coordinator', 'worker', 'client']);
  processes = tesseraProcesses(lab, CLI_PATH);
  if (!lab) return;
  const [c] = lab.hosts as [Host];
  grpcAddr = `${c.address}:7700`;
  // The hosts share this machine's files: the worker must not read and write the spool in place.
  await processes.start(c, ['coordinator', '--listen', grpcAddr, '--http', `${c.address}:7780`, '--insecure', '--no-local-reads', '--heartbeat-ms', '250', '--ttl-ms', '2000', '--data-dir', path.join(dir, 'data')], /dashboard on http:\/\/\S+/);
}, 60_000);

afterAll(async () => {
  await processes?.stopAll();
  await lab?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a worker on a slow link', () => {
  it('stays registered while it moves megabytes at 1 Mbit/s, and the job succeeds on its first attempt', async () => {
    // Without namespaces there is no link to slow down: this test needs them (CI runs as root).
    expect(lab, 'network namespaces (ip netns) are needed: run as root').toBeDefined();
    const [, w, cl] = lab!.hosts as [Host, Host, Host];
    await processes.start(w, ['worker', '--coordinator', grpcAddr, '--name', 'far', '--slots', '1'], /connecting to/);
    await lab!.limitRate(w, '1mbit');
    // 0.75 MiB down to the worker and the same back up: about 6.5 s each way at 1 Mbit/s, 3 TTLs.
    const data = randomBytes(0.75 * 2 ** 20);
    const src = path.join(dir, 'payload.bin');
    await writeFile(src, data);
    const out = path.join(dir, 'out');
    const r = await processes.run(cl, ['submit', 'passthrough', src, '-o', out, '--json', '--no-progress', '--coordinator', grpcAddr]);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { state: string; subtasks: { worker: string; attempt: number }[] };
    expect(job.state).toBe('succeeded');
    // Never taken for lost: one attempt, on the far worker.
    expect(job.subtasks.map((s) => [s.worker, s.attempt])).toEqual([['far', 1]]);
    expect(sha256(await readFile(path.join(out, 'payload.bin')))).toBe(sha256(data));
    expect(processes.logs.get('coordinator')).not.toMatch(/worker lost|lease expired/);
  }, 180_000);
});

describe('a client on a slow or dead link', () => {
  it('uploads 8 MiB over a 2 Mbit/s uplink on its first try with the default keepalive', async () => {
    expect(lab, 'network namespaces (ip netns) are needed: run as root').toBeDefined();
    const cl = lab!.hosts[2]!;
    await lab!.limitRate(cl, '2mbit');
    const src = path.join(dir, 'uplink.bin');
    // About 34 s at 2 Mbit/s: three keepalive pings go out while it is on the way.
    await writeFile(src, randomBytes(8 * 2 ** 20));
    // --no-wait: only the upload is measured; the test stops at the first "submission interrupted" (a cut upload is sent again from its start).
    const child = lab!.spawn(cl, process.execPath, [CLI_PATH, 'submit', 'passthrough', src, '--no-wait', '--no-progress', '--coordinator', grpcAddr, '--reconnect-for', '1'], {
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_KEEPALIVE'))),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const interrupted = new Promise<string>((resolve) =>
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/submission interrupted/.test(stderr)) resolve('interrupted');
      }),
    );
    const exited = new Promise<string>((resolve) => child.once('exit', (code) => resolve(`exit ${code}`)));
    try {
      const first = await Promise.race([interrupted, exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 90_000))]);
      expect(first, `stderr:\n${stderr}`).toBe('exit 0');
      expect(stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    // The job would fetch its 8 MiB over the far worker's 1 Mbit/s link: not needed here.
    await processes.run(cl, ['cancel', stdout.trim(), '--coordinator', grpcAddr]);
  }, 120_000);

  it('cut off mid-upload, gives up with exit status 4 after --reconnect-for, without waiting for the link to come back', async () => {
    expect(lab, 'network namespaces (ip netns) are needed: run as root').toBeDefined();
    const cl = lab!.hosts[2]!;
    // 16 MiB at 8 Mbit/s: the upload takes about 17 s, so it is in full flow when the link dies.
    await lab!.limitRate(cl, '8mbit');
    const src = path.join(dir, 'cut.bin');
    await writeFile(src, randomBytes(16 * 2 ** 20));
    const child = lab!.spawn(cl, process.execPath, [CLI_PATH, 'submit', 'passthrough', src, '-o', path.join(dir, 'out-cut'), '--no-progress', '--coordinator', grpcAddr, '--reconnect-for', '1', '--keepalive-ms', '5000', '--keepalive-timeout-ms', '1000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stderr = '';
      let gaveUpAt = 0;
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (!gaveUpAt && /tessera: UNAVAILABLE/.test(stderr)) gaveUpAt = Date.now();
      });
      child.stdout!.resume();
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await new Promise((r) => setTimeout(r, 2500));
      await lab!.setLink(cl, 'down');
      const cutAt = Date.now();
      // Keepalive 5 s + 1 s, then 1 s of tries: about 8 s. The link stays down for 25 s.
      const code = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 25_000))]);
      const info = `gave up ${gaveUpAt ? `${((gaveUpAt - cutAt) / 1000).toFixed(1)} s` : 'never'} after the cut; stderr:\n${stderr}`;
      expect(gaveUpAt, info).toBeGreaterThan(0);
      // The command has said it gave up: it must also end, with 4 (it ended only once the link was back).
      expect(code, info).toBe(4);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await lab!.setLink(cl, 'up').catch(() => undefined);
    }
  }, 60_000);
});
