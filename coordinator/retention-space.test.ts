/**
 * What the job store's file gives back when finished jobs are removed past their retention. The
 * README: "The space of removed jobs goes back to the file system as they expire (SQLite's
 * incremental vacuum, a few MiB at a time)", and the sweep logs the bytes it freed. The vacuum
 * runs, but into the WAL: the database file only shrinks at a checkpoint, which SQLite runs by
 * itself only once ~1,000 more pages have been written. A coordinator that goes quiet after a
 * busy period keeps its store at its peak size on disk (here 16 MB holding 13 live pages), and
 * its WAL at its own peak, until the next restart.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { inProcessManager } from '../test/helpers/job-manager.js';

const spec = { label: 'r', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('jobs removed past their retention', () => {
  it("give their store space back to the file system once the sweep is done, not at some later checkpoint", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-retspace-'));
    dirs.push(dir);
    const { manager, store } = inProcessManager({ dataDir: dir });
    const onDisk = (): number => ['jobs.db', 'jobs.db-wal'].reduce((n, f) => n + (statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0);
    // 60 finished jobs with large records (a batch of 2,000 bad photos each): ~16 MB of store.
    for (let i = 0; i < 60; i++) {
      const job = manager.newJob(spec, 'anonymous');
      await manager.accept(job);
      for (let k = 0; k < 2000; k++) job.errors.push({ input: `photo-${i}-${k}.jpg`, code: 'INVALID_ARGUMENT', message: `photo-${i}-${k}.jpg: not an image (no known header in its first bytes)` });
      manager.cancel(job.id);
    }
    await store.committed();
    const before = onDisk();
    expect(before).toBeGreaterThan(10 * 1024 * 1024);

    expect(await manager.removeExpired(1, Date.now() + 1000)).toBe(60);
    const { pages, pageSize } = store.pageStats();
    // Nothing is kept: a few pages of schema.
    expect(pages * pageSize).toBeLessThan(256 * 1024);
    // The files on disk: the live pages, and a WAL of a few MiB at most (SQLite's own checkpoint size).
    expect(onDisk()).toBeLessThan(before / 2);
    manager.close();
    store.close();
  }, 30_000);
});
