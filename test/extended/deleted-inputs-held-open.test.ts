/**
 * A finished job's inputs are removed from the spool at once ("Its inputs go as soon as it ends")
 * and the rest past its retention. The space is only given back once no process holds the files
 * open. sharp's libvips operation cache (it was left at its default: 100 operations, 20 files) kept the
 * loaders of recent WebP inputs cached with their files open: the coordinator's submission check
 * (`sharp(path).metadata()`) and the worker's pipeline each hold descriptors of removed inputs,
 * and their disk space stays in use while the process lives.
 */
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Files under `root` this process holds open although they were removed. */
async function heldRemoved(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(root) && target.endsWith('(deleted)')) out.push(target);
  }
  return out;
}

describe('inputs of finished image jobs', () => {
  it('are not held open once removed from the spool', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-held-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const dataDir = path.join(dir, 'data');
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '', retentionMs: 0 });
    const address = await coordinator.start();
    const client = new TesseraClient({ address });
    cleanups.push(async () => {
      client.close();
      await coordinator.close();
    });
    // In-process processors: the worker's pipeline runs in this process too.
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w' });
    worker.start();
    cleanups.push(() => worker.close());
    await worker.registered;

    for (let i = 0; i < 4; i++) {
      const file = path.join(dir, `photo-${i}.webp`);
      await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 10 * i, g: 100, b: 200 } } }).webp().toFile(file);
      const job = await client.wait((await client.submit({ image: { width: 32, format: 'jpeg' } }, [file])).id);
      expect(job.state).toBe('JOB_STATE_SUCCEEDED');
    }
    // The inputs go once each job's end is stored (asynchronously).
    const inputsLeft = async (): Promise<number> => {
      let n = 0;
      for (const j of await readdir(path.join(dataDir, 'spool', 'jobs')).catch(() => [])) n += (await readdir(path.join(dataDir, 'spool', 'jobs', j, 'in')).catch(() => [])).length;
      return n;
    };
    for (let i = 0; i < 100 && (await inputsLeft()) > 0; i++) await sleep(20);
    expect(await inputsLeft()).toBe(0);
    await sleep(200);
    // Observed: descriptors of the removed spool inputs (.../in/photo-N.webp (deleted)) still open.
    expect(await heldRemoved(dataDir)).toEqual([]);
  }, 30_000);
});
