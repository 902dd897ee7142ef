/**
 * A job's spooled input lost from the data dir before a worker read it: removed by hand (an
 * operator cleaning up), cut short or rewritten in place (a damaged disk, a hand). Every attempt
 * would read the same file, so it is the coordinator's loss: the subtask fails at once as
 * DATA_LOSS naming the input and the spool, not held against the workers that fetched it.
 *
 * Observed before: a removed file failed FetchTaskInput with the generic INTERNAL "internal error
 * (see the coordinator log)"; a cut or rewritten one was streamed as it was, and each worker's
 * "checksum mismatch after transfer" was retried as a transfer fault and counted against it, until
 * a healthy worker was quarantined and the job failed blaming the transfer.
 */
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

/** A coordinator (no worker yet) on a data dir of its own, and a client of it; all gone after the test. */
async function coordinatorWith(opts: { maxAttempts?: number }): Promise<{ dir: string; dataDir: string; address: string; client: TesseraClient }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-spool-lost-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  // Not offered in place: every worker fetches the input through the coordinator, as a worker on
  // another machine does (one on this machine that sees a changed file fetches it too).
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '', localReads: false, ...opts });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const client = new TesseraClient({ address });
  cleanups.push(() => client.close());
  return { dir, dataDir, address, client };
}

function startWorker(address: string, name: string): void {
  const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name });
  worker.start();
  cleanups.push(() => worker.close());
}

const damages: [string, (file: string) => Promise<void>, RegExp][] = [
  ['removed', (file) => rm(file), /^a\.bin: its file in the coordinator's spool is gone$/],
  ['cut short', (file) => truncate(file, 1000), /^a\.bin: its file in the coordinator's spool is damaged \(1000 bytes where 200000 were uploaded\)$/],
  [
    'rewritten in place, its size kept',
    async (file) => {
      const fh = await open(file, 'r+');
      await fh.write(Buffer.alloc(10, 7), 0, 10, 5000);
      await fh.close();
    },
    /^a\.bin: its file in the coordinator's spool is damaged \(its checksum is not the one it was uploaded with\)$/,
  ],
];

describe.each(damages)('a spooled input %s', (_how, damage, message) => {
  it('fails its job at once as DATA_LOSS saying the spool file is lost, not INTERNAL nor a transfer fault', async () => {
    const { dir, dataDir, address, client } = await coordinatorWith({ maxAttempts: 2 });
    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(200_000, 3));
    // No worker yet: the job waits in the queue with its input in the spool.
    const submitted = await client.submit({ passthrough: {} }, [file]);
    await damage(path.join(dataDir, 'spool', 'jobs', submitted.id, 'in', 'a.bin'));
    startWorker(address, 'w');
    await client.wait(submitted.id);
    const job = await client.getJob(submitted.id, { includeSubtasks: true });
    expect(job.state).toBe('JOB_STATE_FAILED');
    expect(job.errors.map((e) => ({ input: e.input, code: e.code }))).toEqual([{ input: 'a.bin', code: 'DATA_LOSS' }]);
    expect(job.errors[0]!.message).toMatch(message);
    // Not retried: another attempt reads the same file.
    expect(job.subtasks.map((s) => s.attempt)).toEqual([1]);
  }, 30_000);

  it("is the coordinator's trouble, not its workers': no healthy worker is quarantined for it", async () => {
    const { dir, dataDir, address, client } = await coordinatorWith({});
    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(200_000, 3));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.submit({ passthrough: {} }, [file])).id);
    for (const id of ids) await damage(path.join(dataDir, 'spool', 'jobs', id, 'in', 'a.bin'));
    startWorker(address, 'wa');
    startWorker(address, 'wb');
    for (const id of ids) expect((await client.wait(id)).state).toBe('JOB_STATE_FAILED');
    expect((await client.listWorkers()).map((w) => [w.name, w.state]).sort()).toEqual([
      ['wa', 'active'],
      ['wb', 'active'],
    ]);
  }, 30_000);
});
