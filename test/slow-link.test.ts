/**
 * A worker on a slow link (1 Mbit/s each way, a token bucket with a FIFO at the bottleneck) that
 * fetches and uploads megabytes: its heartbeats must not wait behind those bytes, or the
 * coordinator takes it for lost every few seconds (default TTL 5 s), takes its subtask back and the
 * job fails with "worker lost". Coordinator, worker and client each in their own network
 * namespace; real TCP between them. Needs CAP_NET_ADMIN and tc.
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
import { sha256 } from '../shared/streams.js';
import { CLI_PATH } from './helpers/cluster.js';
import { createLab, tesseraProcesses, type Host, type Lab } from './helpers/netns.js';

let lab: Lab | undefined;
let dir: string;
let processes: ReturnType<typeof tesseraProcesses>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-slow-link-'));
  lab = await createLab(['coordinator', 'worker', 'client']);
  processes = tesseraProcesses(lab, CLI_PATH);
});

afterAll(async () => {
  await processes?.stopAll();
  await lab?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a worker on a slow link', () => {
  it('stays registered while it moves megabytes at 1 Mbit/s, and the job succeeds on its first attempt', async () => {
    // Without namespaces there is no link to slow down: this test needs them (CI runs as root).
    expect(lab, 'network namespaces (ip netns) are needed: run as root').toBeDefined();
    const [c, w, cl] = lab!.hosts as [Host, Host, Host];
    const grpcAddr = `${c.address}:7700`;
    // The hosts share this machine's files: the worker must not read and write the spool in place.
    await processes.start(c, ['coordinator', '--listen', grpcAddr, '--http', `${c.address}:7780`, '--insecure', '--no-local-reads', '--heartbeat-ms', '250', '--ttl-ms', '2000', '--data-dir', path.join(dir, 'data')], /dashboard on http:\/\/\S+/);
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
