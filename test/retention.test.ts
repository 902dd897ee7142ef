/**
 * What a finished job leaves on the coordinator. Its inputs go as soon as it ends (nothing reads
 * them again); its outputs, record and events stay for `--retention-hours` and are then removed,
 * from the disk and from the store, so the data dir holds what is in flight plus a bounded tail.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';
import { Worker } from '../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const entries = (p: string): Promise<string[]> => readdir(p).catch(() => []);

describe('finished jobs', () => {
  it('lose their inputs at once and everything else after the retention period, restarts included', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-retention-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const dataDir = path.join(dir, 'data');
    const start = async (retentionMs: number): Promise<{ coordinator: Coordinator; client: TesseraClient }> => {
      const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '', retentionMs });
      const address = await coordinator.start();
      const client = new TesseraClient({ address });
      cleanups.push(async () => {
        client.close();
        await coordinator.close();
      });
      return { coordinator, client };
    };
    const first = await start(0);
    const worker = new Worker({ coordinator: first.coordinator.address, slots: 1, log, memoryLimitMb: 0, name: 'w' });
    worker.start();
    cleanups.push(() => worker.close());
    await worker.registered;
    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(50_000, 1));
    const job = await first.client.wait((await first.client.submit({ passthrough: {} }, [file])).id);
    expect(job.state).toBe('JOB_STATE_SUCCEEDED');
    const jobDir = path.join(dataDir, 'spool', 'jobs', job.id);
    // Removed just after the job's end (asynchronously): only its outputs stay.
    for (let i = 0; i < 100 && (await entries(jobDir)).length > 1; i++) await sleep(20);
    expect((await entries(jobDir)).sort()).toEqual(['out']);
    expect(await entries(path.join(jobDir, 'out'))).toEqual(['a.bin']);

    // Kept for ever with retention 0; restarted with a retention of 1 s, it goes.
    await worker.close();
    await first.coordinator.close();
    first.client.close();
    // A retention that ends 3 s from now, however long the above took on a loaded machine.
    const second = await start(Date.now() - Number(job.finished_at_ms) + 3000);
    expect((await second.client.getJob(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    for (let i = 0; i < 200 && (await entries(jobDir)).length > 0; i++) await sleep(50);
    expect(await entries(jobDir)).toEqual([]);
    const gone = (await second.client.getJob(job.id).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(gone.code).toBe(grpc.status.NOT_FOUND);
    expect(await second.client.listJobs()).toEqual([]);

    // Not in the store either: a restart does not bring it back.
    await second.coordinator.close();
    second.client.close();
    const third = await start(0);
    expect((await third.client.getJob(job.id).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError).toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});
