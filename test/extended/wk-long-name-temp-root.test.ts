/**
 * A worker `--name` the CLI and the coordinator accept (at most 256 bytes, no control characters)
 * but longer than about 222 bytes: the worker's temp root, named `tessera-worker-NAME-PID-r` and 8 hex digits,
 * cuts the name (with a hash of the whole) to stay under the 255-byte limit of a file name. It
 * exited 1 at start blaming the temp folder ("temp folder /tmp cannot be written by this worker
 * (ENAMETOOLONG): set TMPDIR to a folder it can write"), which was writable and not the problem.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('a worker with a long --name (within the 256 bytes a coordinator takes)', () => {
  it('starts and registers under that name', async () => {
    cluster = await startCluster({ workers: 0 });
    const name = 'w'.repeat(240);
    const worker = cluster.startWorker(name);
    const outcome = await Promise.race([
      cluster.waitForWorkers(1, 15_000).then(() => 'registered'),
      worker.exited.then((code) => `exited ${code}: ${worker.lastLines.join('\n')}`),
    ]);
    expect(outcome).toBe('registered');
    expect((await cluster.client.listWorkers()).map((w) => w.name)).toEqual([name]);
  }, 30_000);
});
