/**
 * Priority take-back (JobManager.yieldQueuedToPriority) must clear a worker whose queue actually
 * stands in front of the higher-priority subtask. A worker with nothing queued because it cannot
 * queue at all (busy with a long subtask, or registered with no prefetch) does not "serve" the
 * higher-priority job: its slot may stay taken for minutes, while the lower-priority work queued
 * on the other worker keeps running first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import type { CoordinatorMessage } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import { inProcessManager } from '../test/helpers/job-manager.js';
import { newWorkerSession, type WorkerSession } from './worker-registry.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const job = (priority: number, subtasks: number, workMs = 10) =>
  ({ label: `p${priority}`, priority, max_attempts: 0, params: 'passthrough', passthrough: { subtasks, work_ms: workMs, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

function setup(w1Prefetch: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-takeback-busy-'));
  dirs.push(dir);
  // worker-1 (registered first) and worker-2, one slot each.
  const m = inProcessManager({ dataDir: dir, slots: 1, prefetch: w1Prefetch });
  const other: CoordinatorMessage[] = [];
  m.registry.add(
    newWorkerSession({
      id: 'w2',
      name: 'worker-2',
      instanceId: 'i-w2',
      address: 'test',
      slots: 1,
      prefetch: 4,
      capabilities: { kinds: ['passthrough'], encoders: [] } as unknown as WorkerSession['capabilities'],
      call: { write: (msg: CoordinatorMessage) => other.push(msg) } as unknown as WorkerSession['call'],
    }),
  );
  const assigns = (msgs: CoordinatorMessage[]) => msgs.flatMap((x) => (x.assign ? [x.assign] : (x.assign_batch?.assignments ?? [])));
  return { ...m, other, assigns };
}

describe('priority take-back when the first worker has nothing queued because it cannot queue', () => {
  it('worker-1 busy with a long low-priority subtask: the priority-10 subtask still gets worker-2\'s queue', async () => {
    const { manager, store, sent, other, assigns } = setup(4);
    // A long subtask (60 s: no queueing behind it) takes worker-1's only slot.
    const long = manager.newJob(job(0, 1, 60_000), 'anonymous');
    manager.accept(long);
    await until(() => assigns(sent).some((a) => a.job_id === long.id), 'the long subtask on worker-1');
    // Short low-priority work: worker-2 runs one and queues four.
    const low = manager.newJob(job(0, 40), 'anonymous');
    manager.accept(low);
    await until(() => assigns(other).length === 5, 'worker-2 full (1 running + 4 queued)');
    // One priority-10 subtask.
    const high = manager.newJob(job(10, 1), 'anonymous');
    manager.accept(high);
    await sleep(300);
    const highOn2 = assigns(other).some((a) => a.job_id === high.id);
    const cancelsOn2 = other.filter((m) => m.cancel).length;
    // Expected: worker-2's queued low-priority work taken back and the priority-10 subtask queued
    // first there (as before 55cc790). Observed: worker-1 (nothing queued, running a 60 s subtask)
    // counted as "serving" the priority-10 job; nothing taken back, the subtask left pending behind
    // four queued low-priority subtasks on worker-2 (or worker-1's minute-long one).
    expect({ highOn2, cancelsOn2 }).toEqual({ highOn2: true, cancelsOn2: 4 });
    manager.close();
    store.close();
  });

  it('worker-1 registered without a prefetch queue: the priority-10 subtask still gets worker-2\'s queue', async () => {
    const { manager, store, sent, other, assigns } = setup(0);
    const low = manager.newJob(job(0, 40), 'anonymous');
    manager.accept(low);
    await until(() => assigns(sent).length === 1 && assigns(other).length === 5, 'worker-1 running one, worker-2 1 running + 4 queued');
    const high = manager.newJob(job(10, 1), 'anonymous');
    manager.accept(high);
    await sleep(300);
    const highAssigned = [...assigns(sent), ...assigns(other)].some((a) => a.job_id === high.id);
    expect({ highAssigned, cancelsOn2: other.filter((m) => m.cancel).length }).toEqual({ highAssigned: true, cancelsOn2: 4 });
    manager.close();
    store.close();
  });
});
