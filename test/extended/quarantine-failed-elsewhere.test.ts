/**
 * Quarantine leaves out failures of a job that fails on the other workers about as often (one
 * client's job failing wherever it runs; review MTEN). A genuinely broken worker must still be
 * quarantined: when another broken worker fails the same job, when a healthy worker once failed that
 * job, and across its own restart (a new session under the same name while the old one is not yet
 * found lost): the first rule ("no other worker failed that job") let all three escape (review K26).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import type { WorkerSession } from '../../coordinator/worker-registry.js';
import { addWorker, assignmentsIn, failure, inProcessManager, success } from '../helpers/job-manager.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const job = (subtasks: number) =>
  ({ label: 'q', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks, work_ms: 0, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;

function setup(quarantineFailures: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-qfe-'));
  dirs.push(dir);
  return inProcessManager({ dataDir: dir, slots: 4, quarantineFailures, extra: { quarantineMs: 60_000 } });
}



async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('quarantine of a broken worker, failures of a job counted elsewhere', () => {
  it('two broken workers failing every subtask of one job are both quarantined; the job ends on the healthy one', async () => {
    const { manager, registry, worker, sent, store } = setup(3);
    // worker-1 (the helper's) and worker-b are broken; worker-h is healthy.
    const broken2 = addWorker(registry, 'b');
    const healthy = addWorker(registry, 'h');
    const rec = manager.newJob(job(24), 'anonymous');
    manager.accept(rec);
    const handled = new Set<string>();
    const drive = () => {
      for (const [w, s, ok] of [[worker, sent, false], [broken2.w, broken2.sent, false], [healthy.w, healthy.sent, true]] as const) {
        for (const a of assignmentsIn(s)) {
          const key = `${a.subtask_id}/${a.attempt}`;
          if (handled.has(key)) continue;
          handled.add(key);
          manager.onResult(w, ok ? success(a.subtask_id!, a.attempt!) : failure(a.subtask_id!, a.attempt!));
        }
      }
    };
    for (let i = 0; i < 400 && !['succeeded', 'failed', 'partial'].includes(rec.state); i++) {
      drive();
      await sleep(10);
    }
    const failedOn = (w: WorkerSession) => w.failed;
    // Each broken worker failed far more than 3 retryable attempts within the window.
    expect(failedOn(worker)).toBeGreaterThanOrEqual(3);
    expect(failedOn(broken2.w)).toBeGreaterThanOrEqual(3);
    expect({ state: rec.state, broken1: worker.quarantines, broken2: broken2.w.quarantines }).toEqual({ state: 'succeeded', broken1: 1, broken2: 1 });
    manager.close();
    store.close();
  });

  it('one failure of the job on a healthy worker does not excuse a broken worker failing that job again and again', async () => {
    const { manager, registry, worker, sent, store } = setup(3);
    const healthy = addWorker(registry, 'h');
    const rec = manager.newJob(job(16), 'anonymous');
    manager.accept(rec);
    await until(() => assignmentsIn(sent).length >= 4 && assignmentsIn(healthy.sent).length >= 1, 'subtasks on both workers');
    // The healthy worker has one transient failure of this job (a stalled subtask, a lost mount).
    const h = assignmentsIn(healthy.sent)[0]!;
    manager.onResult(healthy.w, failure(h.subtask_id!, h.attempt!));
    // The broken worker fails its four subtasks of the same job.
    for (const a of assignmentsIn(sent).slice(0, 4)) manager.onResult(worker, failure(a.subtask_id!, a.attempt!));
    expect(worker.failed).toBe(4);
    expect(worker.state).toBe('quarantined');
    manager.close();
    store.close();
  });

  it('a worker that restarts quicker than the TTL keeps counting its failures in its new session', async () => {
    const { manager, registry, worker, sent, store } = setup(3);
    addWorker(registry, 'other');
    const rec = manager.newJob(job(40), 'anonymous');
    manager.accept(rec);
    await until(() => assignmentsIn(sent).length >= 2, 'subtasks on worker-1');
    const [a1, a2] = assignmentsIn(sent);
    manager.onResult(worker, failure(a1!.subtask_id!, a1!.attempt!));
    await sleep(5);
    manager.onResult(worker, failure(a2!.subtask_id!, a2!.attempt!));
    expect(worker.recentFailures).toHaveLength(2);
    // worker-1's process restarts and registers again under its name before its old session is found lost.
    const again = addWorker(registry, 'w1-again', { name: 'worker-1' });
    expect(again.w.recentFailures).toHaveLength(2);
    await until(() => assignmentsIn(again.sent).length >= 1, 'a subtask on the new session');
    const b = assignmentsIn(again.sent)[0]!;
    // Its third failure in the window: as before d13a5a9, quarantined.
    manager.onResult(again.w, failure(b.subtask_id!, b.attempt!));
    expect(again.w.state).toBe('quarantined');
    manager.close();
    store.close();
  });

  // A stray failure among a healthy worker's few results is no rate (review K27).
  it('one stray failure among a healthy worker\'s first three results of a job does not excuse a broken worker failing that job again and again', async () => {
    const { manager, registry, worker, sent, store } = setup(3);
    const healthy = addWorker(registry, 'h');
    const rec = manager.newJob(job(32), 'anonymous');
    manager.accept(rec);
    await until(() => assignmentsIn(sent).length >= 4 && assignmentsIn(healthy.sent).length >= 3, 'subtasks on both workers');
    // The healthy worker: one transient failure, two successes.
    const [h1, h2, h3] = assignmentsIn(healthy.sent);
    manager.onResult(healthy.w, failure(h1!.subtask_id!, h1!.attempt!));
    manager.onResult(healthy.w, success(h2!.subtask_id!, h2!.attempt!));
    manager.onResult(healthy.w, success(h3!.subtask_id!, h3!.attempt!));
    // The broken worker fails everything it is given of the job: 8 failures in a row.
    const handled = new Set<string>();
    for (let i = 0; i < 100 && handled.size < 8 && worker.state === 'active'; i++) {
      for (const a of assignmentsIn(sent)) {
        const key = `${a.subtask_id}/${a.attempt}`;
        if (handled.has(key) || handled.size >= 8) continue;
        handled.add(key);
        manager.onResult(worker, failure(a.subtask_id!, a.attempt!));
      }
      await sleep(10);
    }
    expect(worker.failed).toBeGreaterThanOrEqual(3);
    expect({ failed: worker.failed, state: worker.state }).toEqual({ failed: worker.failed, state: 'quarantined' });
    manager.close();
    store.close();
  });
});
