/**
 * A shared output folder the coordinator may write into but not list (a drop folder: mode 0333,
 * `-wx`) takes the outputs of a job: publishing needs only to rename into it (README, "Inputs and
 * outputs on shared storage"; the submission checks W_OK | X_OK). Outputs are published through a
 * descriptor of the folder, opened O_PATH: opened O_RDONLY, which needs read permission, every
 * output failed with PERMISSION_DENIED and the job with them (review K9). The coordinator runs
 * without the capabilities that let root read anything (tests run as root), as
 * test/shared-input-unsearchable-folder.test.ts does.
 *
 * A job that fails there leaves no temporary file behind: the coordinator removed them after a
 * listing of the folder, which a drop folder refuses, and a whole output's copy stayed for good
 * (review K10). It removes those it was told of by name.
 */
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { createLogger } from '../shared/logger.js';
import { Worker } from '../worker/worker.js';
import { startUnprivilegedCoordinator, stopCoordinator } from './helpers/unprivileged.js';

const log = createLogger('test', 'silent', 'json');
let dir: string;
let drop: string;
let coordinator: ChildProcess | undefined;
let address: string;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-dropbox-')));
  const root = path.join(dir, 'out');
  drop = path.join(root, 'drop');
  await mkdir(drop, { recursive: true });
  // Taken by a folder: an output of that name cannot be published.
  await mkdir(path.join(drop, 'taken.bin'));
  await mkdir(path.join(dir, 'data'));
  await chmod(drop, 0o333); // write and search, no listing: a drop folder
  ({ child: coordinator, address } = await startUnprivilegedCoordinator(['--http', 'off', '--data-dir', path.join(dir, 'data'), '--shared-output-root', root]));
}, 30_000);

afterAll(async () => {
  await stopCoordinator(coordinator);
  if (dir) {
    await chmod(drop, 0o755).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

it('a job writes its outputs into a shared output folder the coordinator may write but not list', async () => {
  const input = path.join(dir, 'a.bin');
  await writeFile(input, 'drop me off');
  const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w1' });
  worker.start();
  const client = new TesseraClient({ address, deadlineMs: 10_000 });
  try {
    const submitted = await client.submit({ passthrough: {}, shared_output_dir: drop }, [input]);
    const job = await client.wait(submitted.id);
    // Observed: JOB_STATE_FAILED, PERMISSION_DENIED "the shared output folder ... cannot be opened (EACCES): not written".
    expect(job.state, `${job.message} ${JSON.stringify(job.errors)}`).toBe('JOB_STATE_SUCCEEDED');
    expect((await readFile(path.join(drop, 'a.bin'))).toString()).toBe('drop me off');
  } finally {
    client.close();
    await worker.close();
  }
}, 30_000);

it('a job that fails in a drop folder leaves none of its temporary files there', async () => {
  const input = path.join(dir, 'taken.bin');
  await writeFile(input, 'no room for me');
  const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w2' });
  worker.start();
  const client = new TesseraClient({ address, deadlineMs: 10_000 });
  try {
    const submitted = await client.submit({ passthrough: {}, shared_output_dir: drop }, [input]);
    const job = await client.wait(submitted.id);
    expect(job.state).toBe('JOB_STATE_FAILED');
    expect(job.message + JSON.stringify(job.errors)).toContain('taken.bin');
    // The removal runs as the job ends; the test (root) may list the folder.
    const deadline = Date.now() + 5_000;
    let names = await readdir(drop);
    while (names.some((n) => n.endsWith('.part')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      names = await readdir(drop);
    }
    // Observed before: ['.tessera-<job>-<tag>.part', 'a.bin', 'taken.bin'].
    expect(names.sort()).toEqual(['a.bin', 'taken.bin']);
  } finally {
    client.close();
    await worker.close();
  }
}, 30_000);
