/**
 * The worker's scratch (its temp folder, TMPDIR) as machines really have it:
 *
 * - a worker whose temp folder cannot be written (a read-only mount) must not sit in the cluster as
 *   an active worker that takes every subtask and fails it ("INTERNAL: processor error: ENOENT");
 * - workers in different PID namespaces (containers) sharing one scratch root: a worker starting
 *   must not take a live worker's temp root for a dead one's and remove it under its running subtask;
 * - a worker restarted in a container (same host name, so same default name, and same PID) must
 *   still remove what its killed predecessor left.
 *
 * Needs root (tmpfs mounts, unshare). Real coordinator and worker processes on 127.0.0.1.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_PATH, startCluster, type TestCluster } from '../helpers/cluster.js';

let dir = '';
let cluster: TestCluster | undefined;
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  await cluster?.stop();
  cluster = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

async function tempDir(): Promise<string> {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-scratch-'));
  return dir;
}

/** Polls `fn` every 50 ms until it returns a truthy value, for at most `ms`; undefined when it never does. */
async function within<T>(ms: number, fn: () => Promise<T> | T): Promise<T | undefined> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    const v = await fn();
    if (v) return v;
  }
  return undefined;
}

/**
 * `tessera worker` as PID 1 of a PID namespace of its own (what a container gives it), with TMPDIR
 * `tmp`; killed (the whole namespace) after the test.
 */
function workerInPidNamespace(name: string, address: string, tmp: string): { child: ChildProcess; kill(): Promise<void> } {
  const child = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', process.execPath, CLI_PATH, 'worker', '--coordinator', address, '--name', name, '--slots', '1', '--prefetch', '0'], {
    env: { ...process.env, TESSERA_LOG_LEVEL: 'error', TMPDIR: tmp },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  cleanups.push(kill);
  return { child, kill };
}

describe("a worker's temp folder", () => {
  it('that is read-only: the worker does not register as an active worker that fails every subtask', async () => {
    const root = await tempDir();
    const ro = path.join(root, 'ro-tmp');
    await mkdir(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', ro]);
    cleanups.push(() => void execFileSync('umount', ['-l', ro]));
    cluster = await startCluster({ workers: 0 });
    // It registered, showed as active and failed every subtask it took with "INTERNAL: processor
    // error: ENOENT: ... mkdir '<ro>/tessera-worker-...'" (the folder is there, read-only: EROFS).
    const worker = cluster.startWorker('read-only-tmp', [], { env: { TMPDIR: ro } });
    expect(await worker.exited).toBe(1);
    expect(worker.lastLines.join('\n')).toContain(`tessera: temp folder ${ro} cannot be written by this worker (EROFS): set TMPDIR to a folder it can write`);
    expect(await cluster.client.listWorkers()).toEqual([]);
  }, 60_000);

  it("of a live worker is not removed by a worker starting in another PID namespace that shares the scratch root", async () => {
    const root = await tempDir();
    const scratch = path.join(root, 'scratch');
    await mkdir(scratch);
    // Inputs fetched into the worker's temp folder (not read in place from the spool).
    cluster = await startCluster({ workers: 0, coordinatorArgs: ['--no-local-reads'] });
    cluster.startWorker('host-worker', [], { env: { TMPDIR: scratch } });
    await cluster.waitForWorkers(1);
    const blob = path.join(root, 'blob.bin');
    await writeFile(blob, randomBytes(200_000));
    const job = await cluster.client.submit({ max_attempts: 1, passthrough: { work_ms: 3000 } }, [blob]);
    const live = await within(10_000, async () => (await readdir(scratch)).find((e) => e.startsWith('tessera-worker-host-worker-')));
    expect(live, "the running worker's temp root").toBeTruthy();
    await within(10_000, () => existsSync(path.join(scratch, live!)) && readdir(path.join(scratch, live!)).then((e) => e.length > 0));
    // A second worker on the same machine, in a container (its own PID namespace), same scratch.
    workerInPidNamespace('container-worker', cluster.address, scratch);
    await cluster.waitForWorkers(2);
    await sleep(500);
    expect(existsSync(path.join(scratch, live!)), 'the live worker\'s temp root is still there').toBe(true);
    const done = await cluster.client.wait(job.id);
    expect(done.state, done.message).toBe('JOB_STATE_SUCCEEDED');
  }, 60_000);

  it('left by a killed worker is removed when it starts again in its container (same name, same PID)', async () => {
    const root = await tempDir();
    const scratch = path.join(root, 'scratch');
    await mkdir(scratch);
    cluster = await startCluster({ workers: 0, coordinatorArgs: ['--no-local-reads'] });
    const first = workerInPidNamespace('container-worker', cluster.address, scratch);
    await cluster.waitForWorkers(1);
    const blob = path.join(root, 'blob.bin');
    await writeFile(blob, randomBytes(200_000));
    await cluster.client.submit({ max_attempts: 1, passthrough: { work_ms: 60_000 } }, [blob]);
    const attempt = await within(10_000, async () => {
      for (const r of await readdir(scratch)) for (const st of await readdir(path.join(scratch, r)).catch(() => [] as string[])) if (st.startsWith('st-')) return path.join(scratch, r, st);
      return undefined;
    });
    expect(attempt, 'the running attempt folder').toBeTruthy();
    // The container is killed (the OOM killer, docker kill) and restarted: same host name, same PID.
    await first.kill();
    const again = workerInPidNamespace('container-worker', cluster.address, scratch);
    // Its start sweeps the scratch root before it registers: 8 s was plenty on a quiet machine, but
    // it counts from the spawn (unshare, Node's start); 30 s costs nothing when it is removed.
    const removed = await within(30_000, () => !existsSync(attempt!));
    expect(again.child.exitCode, 'the restarted worker runs').toBeNull();
    expect(removed, `${attempt} (of the killed worker) is removed when the worker starts again`).toBe(true);
  }, 60_000);
});
