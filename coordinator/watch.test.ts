/**
 * A watcher that stops reading while its job runs: the coordinator keeps at most a bounded run of
 * live events for it (5,000), then reads the rest back from the store, and the watcher still gets
 * every event once, in order, up to the final one. (This checks that path keeps every event; the
 * bound itself is not observable from here, and the code before it, which held them all, passes too.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Worker } from '../worker/worker.js';
import { createLogger } from '../shared/logger.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { Coordinator } from './coordinator.js';
import { watch } from './job-service.js';

const log = createLogger('test', 'silent', 'json');

describe('a watcher that does not read', () => {
  it('gets every event once, in order, after 12,000 went by unread (past the live bound)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-watch-'));
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
    const address = await coordinator.start();
    const worker = new Worker({ coordinator: address, slots: 32, log, memoryLimitMb: 0, name: 'w' });
    worker.start();
    await worker.registered;
    try {
      const jobs = coordinator.manager;
      const job = jobs.newJob({ params: 'passthrough', passthrough: { subtasks: 6000, work_ms: 0, fail_first_attempts: 0 }, label: '', priority: 0, max_attempts: 0 } as unknown as JobSpec__Output, 'local');
      jobs.accept(job);
      const stream = watch(jobs, job.id, 0, new AbortController().signal);
      // The first run subscribes it; then it is not read until the job has ended.
      const seen = [...((await stream.next()).value ?? [])];
      for (let i = 0; i < 600 && jobs.get(job.id).state !== 'succeeded'; i++) await sleep(50);
      expect(jobs.get(job.id).state).toBe('succeeded');
      expect(jobs.get(job.id).seq).toBeGreaterThan(12_000);
      for await (const run of stream) seen.push(...run);
      const seqs = seen.map((e) => Number(e.seq));
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
      expect(seen.at(-1)!.final).toBe(true);
      expect(seqs.at(-1)).toBe(jobs.get(job.id).seq);
    } finally {
      await worker.close();
      await coordinator.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
