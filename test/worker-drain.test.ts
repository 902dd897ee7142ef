/**
 * A worker that stops gracefully sends its last results, then a drain, then ends its stream. The
 * coordinator handles each result asynchronously (an inline output is written to the spool first):
 * what came after the results must wait for them, or the finished work is thrown away as "stale"
 * and run again as a failed attempt. Real coordinator and worker objects over real gRPC on loopback.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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

describe('a worker draining', () => {
  it('has the results it sent before its stream ended counted, not re-run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-drain-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w1' });
    worker.start();
    await worker.registered;
    const client = new TesseraClient({ address });
    cleanups.push(async () => client.close());
    const files: string[] = [];
    for (const name of ['a.bin', 'b.bin']) {
      files.push(path.join(dir, name));
      await writeFile(files.at(-1)!, Buffer.alloc(1000, name));
    }
    const job = await client.submit({ passthrough: { work_ms: 400 } }, files);
    const events: string[] = [];
    const watching = client.wait(job.id, (e) => events.push(`${e.type} ${e.message}`));
    // The first subtask is running (the second waits in the worker's prefetch queue): drain now.
    await sleep(150);
    await worker.drain(10_000);
    // The only worker is gone: what it finished must have counted. Another one runs the rest.
    const second = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w2' });
    second.start();
    cleanups.push(() => second.close());
    const done = await watching;
    expect(done.state, done.message).toBe('JOB_STATE_SUCCEEDED');
    const first = done.subtasks.find((s) => s.worker === 'w1');
    expect(first, events.join('\n')).toBeDefined();
    expect(first!.attempt).toBe(1);
    expect(events.filter((e) => e.includes('lost'))).toEqual([]);
  });
});
