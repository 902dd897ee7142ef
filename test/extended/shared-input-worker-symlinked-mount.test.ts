/**
 * README, "Inputs and outputs on shared storage": "A worker that sees a file of the same size and
 * modification time at the same path reads it there". A worker host where the share's path runs
 * through a symbolic link (`/mnt/media -> /data/media` there, a real folder on the coordinator's
 * host) sees the very file at the same path, and reads it in place: a check that /proc/self/fd
 * names the descriptor exactly as the coordinator resolved the path had every shared input
 * streamed by the coordinator instead, silently (review K9). The worker runs in its own mount
 * namespace in which the shared folder's path is a symlink to a bind mount of the same folder.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PATH, startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let cluster: TestCluster | undefined;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-symlinked-share-')));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('a worker that sees the shared file at the same path through a symlink on its side reads it in place', async () => {
  const mnt = path.join(dir, 'mnt');
  const shared = path.join(mnt, 'share');
  const alt = path.join(dir, 'data-media');
  await mkdir(shared, { recursive: true });
  await mkdir(alt);
  const file = path.join(shared, 'blob.bin');
  await writeFile(file, randomBytes(2 * 1024 * 1024 + 5));
  cluster = await startCluster({ workers: 0, coordinatorArgs: ['--shared-root', shared] });
  // The worker's host: the same folder mounted at `alt`, and `mnt/share` a link to it.
  const script = 'mount --bind "$0" "$1" && mount -t tmpfs tmpfs "$2" && ln -s "$1" "$0" && exec "$@"';
  const worker = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script.replace('exec "$@"', 'shift 3; exec "$@"'), shared, alt, mnt, 'x', process.execPath, CLI_PATH, 'worker', '--coordinator', cluster.address, '--name', 'linked', '--slots', '1'], {
    env: { ...process.env, TESSERA_LOG_LEVEL: 'error' },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  try {
    await cluster.waitForWorkers(1);
    const servedBefore = await cluster.metric('tessera_task_input_bytes_served_total');
    const job = await cluster.client.submit({ passthrough: {} }, [file], { shared: true });
    const done = await cluster.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks[0]!.worker).toBe('linked');
    // Observed: the coordinator streamed all 2 MiB + 5 bytes to the worker.
    expect((await cluster.metric('tessera_task_input_bytes_served_total')) - servedBefore, 'input bytes the coordinator streamed').toBe(0);
  } finally {
    worker.kill('SIGKILL');
    await exited;
  }
}, 60_000);
