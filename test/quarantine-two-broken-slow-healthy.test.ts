/**
 * Two broken workers failing fast beside a healthy worker whose subtasks of the same job take a
 * while (no result of it yet): the broken ones excuse each other's failures of the job (the job
 * "fails on the other workers together"), neither is quarantined, and they bounce the job's
 * subtasks between them until the subtasks run out of attempts (review K28).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { addWorker, assignmentsIn, failure, inProcessManager } from './helpers/job-manager.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const job = (subtasks: number) =>
  ({ label: 'q', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks, work_ms: 0, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;



describe('two broken workers beside a healthy one still running the job', () => {
  it('are quarantined before they use up the attempts of the job the healthy worker runs well', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-q2b-'));
    dirs.push(dir);
    // worker-1 (the helper's, 2 slots) and worker-b (2 slots) are broken; worker-h (2 slots) is healthy
    // but its subtasks take minutes: it has no result of the job yet.
    const { manager, registry, worker, sent, store } = inProcessManager({ dataDir: dir, slots: 2, quarantineFailures: 5, extra: { quarantineMs: 60_000 } });
    const broken2 = addWorker(registry, 'b', { slots: 2 });
    const healthy = addWorker(registry, 'h', { slots: 2 });
    const rec = manager.newJob(job(12), 'anonymous');
    manager.accept(rec);
    const handled = new Set<string>();
    for (let i = 0; i < 150 && rec.state !== 'failed' && (worker.state === 'active' || broken2.w.state === 'active'); i++) {
      for (const [w, s] of [[worker, sent], [broken2.w, broken2.sent]] as const) {
        for (const a of assignmentsIn(s)) {
          const key = `${a.subtask_id}/${a.attempt}`;
          if (handled.has(key)) continue;
          handled.add(key);
          manager.onResult(w, failure(a.subtask_id!, a.attempt!));
        }
      }
      await sleep(10);
    }
    const failedSubtasks = manager.subtasksOf(rec.id).filter((s) => s.state === 'failed').length;
    expect({ broken1: worker.failed > 5, broken2: broken2.w.failed > 5 }).toEqual({ broken1: true, broken2: true });
    // Subtasks the healthy worker could have run, failed for good by the broken pair instead.
    expect({ failedSubtasks, broken1: worker.state, broken2: broken2.w.state, healthy: healthy.w.state }).toEqual({ failedSubtasks: 0, broken1: 'quarantined', broken2: 'quarantined', healthy: 'active' });
    manager.close();
    store.close();
  });
});
