/**
 * A job's spooled input removed from the data dir by hand (an operator cleaning up, a damaged
 * disk) before a worker read it. Its output's counterpart answers NOT_FOUND naming the file ("The
 * spool's copy gone ...: NOT_FOUND naming it, not INTERNAL", job-service download); the input's
 * did not: FetchTaskInput failed with the generic INTERNAL "internal error (see the coordinator
 * log)", retried as the worker's trouble until the attempts ran out, and the job failed saying only that.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';
import { Worker } from '../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

/** A coordinator (no worker yet) on a data dir of its own, and a client of it; all gone after the test. */
async function coordinatorWith(opts: { maxAttempts?: number }): Promise<{ dir: string; dataDir: string; address: string; client: TesseraClient }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-spool-gone-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '', ...opts });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const client = new TesseraClient({ address });
  cleanups.push(() => client.close());
  return { dir, dataDir, address, client };
}

describe('a spooled input removed by hand', () => {
  it('fails its job with an error that says the spool file is gone, not INTERNAL', async () => {
    const { dir, dataDir, address, client } = await coordinatorWith({ maxAttempts: 2 });

    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(200_000, 3));
    // No worker yet: the job waits in the queue with its input in the spool.
    const submitted = await client.submit({ passthrough: {} }, [file]);
    await rm(path.join(dataDir, 'spool', 'jobs', submitted.id, 'in', 'a.bin'));

    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w' });
    worker.start();
    cleanups.push(() => worker.close());
    const job = await client.wait(submitted.id);
    expect(job.state).toBe('JOB_STATE_FAILED');
    expect(job.errors).toHaveLength(1);
    const [err] = job.errors;
    expect(err!.input).toBe('a.bin');
    expect(err!.code).not.toBe('INTERNAL');
    expect(err!.message).not.toMatch(/internal error/);
    expect(err!.message).toMatch(/spool/);
  }, 30_000);

  it("is the coordinator's trouble, not its workers': no healthy worker is quarantined for it", async () => {
    const { dir, dataDir, address, client } = await coordinatorWith({});
    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(200_000, 3));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.submit({ passthrough: {} }, [file])).id);
    for (const id of ids) await rm(path.join(dataDir, 'spool', 'jobs', id, 'in', 'a.bin'));

    for (const name of ['wa', 'wb']) {
      const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name });
      worker.start();
      cleanups.push(() => worker.close());
    }
    for (const id of ids) expect((await client.wait(id)).state).toBe('JOB_STATE_FAILED');
    // 3 jobs x 3 attempts of the coordinator's own missing file: 5 of them made one worker "quarantined".
    expect((await client.listWorkers()).map((w) => [w.name, w.state]).sort()).toEqual([
      ['wa', 'active'],
      ['wb', 'active'],
    ]);
  }, 30_000);
});
