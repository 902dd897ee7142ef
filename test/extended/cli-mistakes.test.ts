/**
 * Slips a user makes at the shell, each told as what it is (review CL):
 * - `submit --coordinator ""` (`--coordinator "$UNSET"`) is refused, exit 2, as every other command
 *   refuses it: it went to TESSERA_COORDINATOR or 127.0.0.1:7700, and where nothing answered there
 *   it printed UNAVAILABLE and exited 0.
 * - `watch ID --after N` past the job's last event is the command's mistake (exit 2, naming
 *   `--after`), not the job's (exit 1 says it failed; it succeeded).
 * - A command pointed at the coordinator's dashboard (its HTTP port) says an HTTP server answers
 *   there, not "is a coordinator running at ...?" after grpc-js' bare "Protocol error".
 * - `submit` to an address that takes the connection and never answers gives up at the unary
 *   deadline with UNAVAILABLE, exit 4, as the other commands do: it waited for the whole upload's
 *   deadline (61 s for a small file, 6 minutes for 300 MiB), then said grpc-js' DEADLINE_EXCEEDED.
 */
import { lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCluster, type TestCluster } from '../helpers/cluster.js';
import { deadAddress } from '../helpers/addresses.js';

let cluster: TestCluster;
let dir: string;
let file: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cli-mistakes-'));
  file = path.join(dir, 'a.bin');
  await writeFile(file, 'passthrough bytes\n');
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('tessera submit --coordinator ""', () => {
  it('is refused as the other commands refuse it, not sent to TESSERA_COORDINATOR, and never exits 0', async () => {
    const jobs = await runCli(['jobs', '--coordinator', ''], { env: { TESSERA_COORDINATOR: cluster.address }, timeoutMs: 30_000 });
    expect(jobs.code, jobs.stderr).toBe(2);
    expect(jobs.stderr).toMatch(/coordinator address ""/);
    const before = (await cluster.client.listJobs()).length;
    const r = await runCli(['submit', 'passthrough', file, '--no-wait', '--coordinator', ''], { env: { TESSERA_COORDINATOR: cluster.address }, timeoutMs: 30_000 });
    expect({ code: r.code, jobs: (await cluster.client.listJobs()).length - before }, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toEqual({ code: 2, jobs: 0 });
    expect(r.stderr).toMatch(/coordinator address ""/);
    // Nothing at TESSERA_COORDINATOR: it printed UNAVAILABLE and the error object, and exited 0.
    const dead = await runCli(['submit', 'passthrough', file, '-o', path.join(dir, 'out'), '--json', '--coordinator', ''], { env: { TESSERA_COORDINATOR: await deadAddress() }, timeoutMs: 30_000 });
    expect(dead.code, `stdout: ${dead.stdout}\nstderr: ${dead.stderr}`).toBe(2);
  });
});

describe('tessera submit --no-wait -o DIR', () => {
  it('says that nothing is downloaded there, and how to fetch the outputs into it', async () => {
    const out = path.join(dir, 'no-wait-out');
    const r = await cluster.runCli(['submit', 'passthrough', file, '--no-wait', '-o', out], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(r.stderr).toContain(`nothing downloaded (--no-wait); fetch the outputs into ${out} with: tessera download ${id} --coordinator ${cluster.address} -o ${out}`);
    await expect(lstat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    // The command it gives works.
    expect((await cluster.client.wait(id)).state).toBe('JOB_STATE_SUCCEEDED');
    const got = await cluster.runCli(['download', id, '-o', out], { timeoutMs: 30_000 });
    expect(got.code, got.stderr).toBe(0);
    expect(await readFile(path.join(out, 'a.bin'), 'utf8')).toBe('passthrough bytes\n');
  });
});

describe('tessera watch --after past the last event', () => {
  it('is a usage error (exit 2, naming --after), not the exit status of a failed job', async () => {
    const done = await cluster.client.wait((await cluster.client.submit({ passthrough: {} }, [file])).id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const past = String(Number(done.last_event_seq) + 100);
    const r = await cluster.runCli(['watch', done.id, '--after', past], { timeoutMs: 30_000 });
    // It was "tessera: OUT_OF_RANGE: after_seq 108 is past the last event of job ... (8)", exit 1.
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--after/);
    const j = await cluster.runCli(['watch', done.id, '--after', past, '--json'], { timeoutMs: 30_000 });
    expect(j.code, j.stderr).toBe(2);
    expect(JSON.parse(j.stdout)).toEqual({ error: expect.objectContaining({ message: expect.stringMatching(/--after/) }) });
  });
});

describe('a client command pointed at the dashboard (HTTP) port', () => {
  it('says that an HTTP server, not a gRPC coordinator, answers there', async () => {
    for (const args of [['jobs'], ['workers'], ['job', 'some-id']]) {
      const r = await runCli([...args, '--coordinator', cluster.httpAddress], { timeoutMs: 30_000 });
      const what = `tessera ${args.join(' ')}: ${r.stderr}`;
      expect(r.code, what).toBe(4);
      // It was "is a coordinator running at 127.0.0.1:NNNN?" after a bare "Protocol error".
      expect(r.stderr, what).not.toMatch(/is a coordinator running at/);
      expect(r.stderr, what).toMatch(/not gRPC .*dashboard/);
    }
  });
});

describe('tessera submit to an address that takes the connection and never answers', () => {
  it('gives up as the other commands do (UNAVAILABLE, exit 4), not after the upload deadline', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => void sockets.push(sock.on('error', () => undefined)));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      // The unary deadline, 2 s here through the test knob (15 s by default).
      const env = { TESSERA_TEST_UNARY_DEADLINE_MS: '2000' };
      const jobs = await runCli(['jobs', '--json', '--coordinator', address], { env, timeoutMs: 15_000 });
      expect(jobs.code, jobs.stderr).toBe(4);
      const r = await runCli(['submit', 'passthrough', file, '--no-wait', '--json', '--coordinator', address], { env, timeoutMs: 15_000 });
      expect(r.code, r.stderr).toBe(4);
      expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'UNAVAILABLE', message: expect.stringContaining(`nothing answered at ${address}`) } });
    } finally {
      for (const sock of sockets) sock.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 40_000);
});
