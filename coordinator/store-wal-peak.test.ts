/**
 * The job store's WAL after a burst. A job of many subtasks is planned in one transaction (a plan
 * over WRITER_BATCH_MAX_BYTES is written on the main connection), which grows the WAL to the size
 * of that transaction. SQLite's automatic checkpoints then reuse the WAL from its start but never
 * shrink the file (no `journal_size_limit` is set), and only the retention sweep truncates it
 * (checkpoint(TRUNCATE) after a sweep that removed something). With --retention-hours 0, or until
 * the first job expires (24 h by default), the WAL keeps its peak size on disk: 66 MB after one
 * 100,000-subtask passthrough job on a real coordinator, for as long as it ran.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { inProcessManager } from '../test/helpers/job-manager.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the job store WAL', () => {
  it('does not keep the size of its largest transaction once the coordinator is idle again', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-walpeak-'));
    dirs.push(dir);
    const { manager, store } = inProcessManager({ dataDir: dir });
    const wal = (): number => statSync(path.join(dir, 'jobs.db-wal'), { throwIfNoEntry: false })?.size ?? 0;
    const spec = { label: 'big', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 30_000, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output;
    const job = manager.newJob(spec, 'anonymous');
    await manager.accept(job);
    // Planned (30,000 subtasks written at once), then cancelled.
    for (let i = 0; i < 100 && manager.subtasksOf(job.id).length < 30_000; i++) await new Promise((r) => setTimeout(r, 50));
    manager.cancel(job.id);
    await store.committed();
    const peak = wal();
    expect(peak).toBeGreaterThan(8 * 1024 * 1024);
    // Idle for a few seconds: a few small commits, as a quiet coordinator makes.
    for (let i = 0; i < 20; i++) {
      const small = manager.newJob({ ...spec, passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
      await manager.accept(small);
      manager.cancel(small.id);
      await new Promise((r) => setTimeout(r, 100));
    }
    await store.committed();
    // eslint-disable-next-line no-console
    console.log(`WAL at its peak ${(peak / 1e6).toFixed(1)} MB, idle afterwards ${(wal() / 1e6).toFixed(1)} MB`);
    // SQLite's own checkpoints work in ~4 MB (1,000 pages); the WAL need not stay larger.
    expect(wal()).toBeLessThan(8 * 1024 * 1024);
    manager.close();
    store.close();
  }, 60_000);
});
