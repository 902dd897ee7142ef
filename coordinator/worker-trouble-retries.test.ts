/**
 * A worker's own trouble (its temp folder full: SubtaskResult.worker_trouble) uses up no attempt
 * while it is that one worker's, retried elsewhere first; reported for the same subtask by a
 * second worker, it says the subtask is what fills them, and counts (self-review: a subtask needing
 * more scratch than any worker has was retried for ten minutes, filling and quarantining each).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { addWorker, assignmentsIn, inProcessManager } from '../test/helpers/job-manager.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

const full = (subtaskId: string, attempt: number) => ({
  subtaskId, attempt, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, workerTrouble: true,
  error: { input: '', code: 'UNAVAILABLE', message: 'worker failed, not because of the input: its temp folder is full' },
});

describe("a worker's own full disk", () => {
  it('is free while one worker reports it, and counts once a second one does', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-worker-trouble-'));
    dirs.push(dir);
    const { manager, registry, worker, sent, store } = inProcessManager({ dataDir: dir, slots: 1, extra: { retryBaseMs: 10 } });
    const spec = { label: 'full', priority: 0, max_attempts: 1, params: 'passthrough', passthrough: { subtasks: 1, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output;
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => assignmentsIn(sent).length === 1, 'the first attempt on worker-1');
    const first = assignmentsIn(sent)[0]!;
    // worker-1's disk is full: not counted (max_attempts 1 would have failed the job here).
    manager.onResult(worker, full(first.subtask_id!, first.attempt!));
    const s = () => manager.subtasksOf(job.id)[0]!;
    expect(s().failures).toBe(0);
    expect(s().state).toBe('pending');
    // Another worker comes and is given it (the retry goes elsewhere first); its disk fills too.
    const other = addWorker(registry, 'w2', { slots: 1 });
    await until(() => assignmentsIn(other.sent).length === 1, 'the retry on worker-w2', 10_000);
    const second = assignmentsIn(other.sent)[0]!;
    manager.onResult(other.w, full(second.subtask_id!, second.attempt!));
    // Counted: its one attempt used up, the job failed.
    expect(s().failures).toBe(1);
    await until(() => manager.get(job.id).state === 'failed', 'the job to fail');
    manager.close();
    store.close();
  }, 20_000);
});
