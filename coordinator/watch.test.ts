/**
 * A watcher that stops reading while its job runs: the coordinator keeps at most a bounded run of
 * live events for it (5,000), then reads the rest back from the store, and the watcher still gets
 * every event once, in order, up to the final one.
 *
 * The bound is checked through where the events come from: the store's `eventsAfter` is watched
 * (a spy that calls through, nothing replaced). The watcher first catches up with the log and
 * waits for live events; then over 10,000 go by unread. Held live, all of them would come from memory
 * and the store would not be read again; past the bound the queue is dropped, and the rest is
 * read back from the store after the last event the watcher had.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { Worker } from '../worker/worker.js';
import { createLogger } from '../shared/logger.js';
import type { JobEvent } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { Coordinator } from './coordinator.js';
import { watch } from './job-service.js';

const log = createLogger('test', 'silent', 'json');

describe('a watcher that does not read', () => {
  it('holds at most 5,000 live events: after over 10,000 went by unread the rest comes from the store, every event once, in order', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-watch-'));
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
    const address = await coordinator.start();
    let worker: Worker | undefined;
    const jobs = coordinator.manager;
    const reads = vi.spyOn(jobs, 'eventsAfter');
    try {
      // No worker yet: the job is planned and waits.
      const job = jobs.newJob({ params: 'passthrough', passthrough: { subtasks: 6000, work_ms: 0, fail_first_attempts: 0 }, label: '', priority: 0, max_attempts: 0 } as unknown as JobSpec__Output, 'local');
      jobs.accept(job);
      for (let i = 0; i < 600 && jobs.subtasksOf(job.id).length < 6000; i++) await sleep(20);
      expect(jobs.subtasksOf(job.id)).toHaveLength(6000);

      const stream = watch(jobs, job.id, 0, new AbortController().signal);
      // Read the log until the watcher has caught up (a read of the store came back empty) and
      // waits for live events: that read is pending until the worker makes some.
      const seen: JobEvent[] = [];
      const caughtUp = (): boolean => (reads.mock.results.at(-1)?.value as JobEvent[] | undefined)?.length === 0;
      let live: Promise<IteratorResult<JobEvent[]>> | undefined;
      while (!live) {
        let settled = false;
        const next = stream.next().then((r) => {
          settled = true;
          return r;
        });
        while (!settled && !caughtUp()) await sleep(10);
        if (settled) seen.push(...((await next).value ?? []));
        else live = next;
      }
      expect(caughtUp()).toBe(true);

      worker = new Worker({ coordinator: address, slots: 32, log, memoryLimitMb: 0, name: 'w' });
      worker.start();
      // The first live run; then the watcher reads nothing until the job has ended.
      seen.push(...((await live).value ?? []));
      const readsBefore = reads.mock.calls.length;
      const lastSeenLive = Number(seen.at(-1)!.seq);
      for (let i = 0; i < 600 && jobs.get(job.id).state !== 'succeeded'; i++) await sleep(50);
      expect(jobs.get(job.id).state).toBe('succeeded');
      expect(jobs.get(job.id).seq - lastSeenLive).toBeGreaterThan(10_000);
      for await (const run of stream) seen.push(...run);

      const seqs = seen.map((e) => Number(e.seq));
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
      expect(seen.at(-1)!.final).toBe(true);
      expect(seqs.at(-1)).toBe(jobs.get(job.id).seq);
      // What went by unread was read back from the store, from after the last event the watcher
      // had (or a later one, once it started reading again): not all held in memory.
      const readBack = reads.mock.calls.slice(readsBefore);
      expect(readBack.length).toBeGreaterThan(0);
      for (const [id, after] of readBack) {
        expect(id).toBe(job.id);
        expect(after).toBeGreaterThanOrEqual(lastSeenLive);
      }
      // And most of what went by came from there: at most 5,000 live events (and what arrived
      // after the queue was dropped) can have come from memory.
      const fromStore = readBack.reduce((n, _c, i) => n + ((reads.mock.results[readsBefore + i]!.value as JobEvent[]).length), 0);
      expect(fromStore).toBeGreaterThan(jobs.get(job.id).seq - lastSeenLive - 5001);
    } finally {
      reads.mockRestore();
      await worker?.close();
      await coordinator.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
