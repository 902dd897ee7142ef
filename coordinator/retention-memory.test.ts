/**
 * What the coordinator's memory still holds of jobs removed past their retention. The
 * README: "Every job kept (running, or finished within --retention-hours) is held in the
 * coordinator's memory"; a job past its retention is removed "from the disk and from the store"
 * and asking for it is NOT_FOUND. Its record should then be garbage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { inProcessManager } from '../test/helpers/job-manager.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const spec = { label: 'r', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('jobs removed past their retention', () => {
  it('are no longer held in memory once removed (no dead records kept for ListJobs)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-retmem-'));
    dirs.push(dir);
    const { manager, store } = inProcessManager({ dataDir: dir });
    // A few finished jobs, each with a large record (outputs, errors...: here 2,000 error entries,
    // as a batch of 2,000 bad photos would leave), removed past their retention.
    const refs: WeakRef<object>[] = [];
    await (async () => {
      for (let i = 0; i < 10; i++) {
        const job = manager.newJob(spec, 'anonymous');
        await manager.accept(job);
        manager.cancel(job.id);
        for (let k = 0; k < 2000; k++) job.errors.push({ input: `photo-${i}-${k}.jpg`, code: 'INVALID_ARGUMENT', message: `photo-${i}-${k}.jpg: not an image` });
        refs.push(new WeakRef(job));
      }
    })();
    await store.committed();
    expect(await manager.removeExpired(1, Date.now() + 1000)).toBe(10);
    expect([...manager.newestFirst()]).toEqual([]);
    const ids = refs.map((r) => (r.deref() as { id: string }).id);
    for (const id of ids) expect(() => manager.get(id)).toThrow(/not found/);

    // Let go of everything this turn holds, then collect.
    await sleep(50);
    gc();
    await sleep(50);
    gc();
    const stillHeld = refs.filter((r) => r.deref() !== undefined).length;
    // JobOrder kept removed jobs' records in its array until more than 1,024 were removed and they
    // were half of it: each of these (with its 2,000 errors) stayed reachable.
    expect(stillHeld).toBe(0);
    manager.close();
    store.close();
  });
});
