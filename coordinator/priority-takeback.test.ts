/**
 * Queued work of lower priority giving way (JobManager.yieldQueuedToPriority): a higher-priority
 * job that found no slot takes back assignments waiting in workers' prefetch queues. It should take
 * back what it can use, not every queued assignment on every worker: each one taken back is a
 * cancel the worker may already be acting on (it may have started it), an event, a store write and
 * a new attempt number for the subtask, and most are re-queued straight away.
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
import { Channel } from '../shared/channel.js';
import type { CoordinatorKind, SubtaskPlan } from '../shared/job-kind.js';
import { coordinatorKinds } from './kinds/index.js';

const kinds = coordinatorKinds as Map<string, CoordinatorKind>;
const original = kinds.get('passthrough')!;

const dirs: string[] = [];
afterEach(() => {
  kinds.set('passthrough', original);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const job = (priority: number, subtasks: number, workMs = 10) =>
  ({ label: `p${priority}`, priority, max_attempts: 0, params: 'passthrough', passthrough: { subtasks, work_ms: workMs, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** Registers worker-2 (one slot, four queue places) beside the manager's worker-1; what it is sent. */
function addWorker2(registry: { add(w: WorkerSession): void }): CoordinatorMessage[] {
  const other: CoordinatorMessage[] = [];
  registry.add(
    newWorkerSession({
      id: 'w2',
      name: 'worker-2',
      instanceId: 'i-w2',
      address: 'test',
      slots: 1,
      prefetch: 4,
      capabilities: { kinds: ['passthrough'], encoders: [] } as unknown as WorkerSession['capabilities'],
      call: { write: (m: CoordinatorMessage) => other.push(m) } as unknown as WorkerSession['call'],
    }),
  );
  return other;
}

describe('priority take-back of queued assignments', () => {
  it('one pending higher-priority subtask clears one worker\'s queue, not every queue', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-takeback-'));
    dirs.push(dir);
    const { manager, registry, sent, store } = inProcessManager({ dataDir: dir, slots: 1, prefetch: 4 });
    const other = addWorker2(registry);
    const assigns = (m: CoordinatorMessage[]) => m.flatMap((x) => (x.assign ? [x.assign] : (x.assign_batch?.assignments ?? [])));
    const cancels = () => [...sent, ...other].flatMap((m) => (m.cancel ? [m.cancel] : []));
    // A big low-priority job of short subtasks: each worker runs one and queues four.
    manager.accept(manager.newJob(job(0, 40), 'anonymous'));
    await until(() => assigns(sent).length + assigns(other).length === 10, 'both workers full (1 running + 4 queued each)');
    // One subtask of priority 10 arrives: it needs one place.
    const high = manager.newJob(job(10, 1), 'anonymous');
    manager.accept(high);
    await until(() => [...assigns(sent), ...assigns(other)].some((a) => a.job_id === high.id), 'the priority-10 subtask assigned');
    await sleep(50);
    const taken = cancels().map((c) => c.reason);
    // One worker's queue, all of it (it runs its queue first in, first out: what stays queued on it
    // would still run first). Observed before: all 8, on both workers (and 7 of them assigned again
    // at once, as new attempts).
    expect(taken, 'queued assignments taken back for one higher-priority subtask').toHaveLength(4);
    manager.close();
    store.close();
  });

  it('a higher-priority job whose subtasks come one at a time (inputs still uploading) does not take back and re-send every queued assignment for each one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-takeback-'));
    dirs.push(dir);
    // The priority-10 job's subtasks are planned one by one (as a job planned while its inputs arrive).
    const feed = new Channel<SubtaskPlan>();
    const plan = (label: string): SubtaskPlan => ({ label, inputs: [], plan: { label }, weight: 1, items: [] });
    kinds.set('passthrough', {
      ...original,
      plan: async (ctx) => (ctx.spec.priority === 10 ? { subtasks: [plan('h0')], later: feed } : original.plan(ctx)),
      merge: async (ctx) => (ctx.spec.priority === 10 ? { outputs: [] } : original.merge(ctx)),
    } as CoordinatorKind);
    const { manager, sent, store } = inProcessManager({ dataDir: dir, slots: 1, prefetch: 4 });
    const assigns = () => sent.flatMap((x) => (x.assign ? [x.assign] : (x.assign_batch?.assignments ?? [])));
    const cancels = () => sent.flatMap((m) => (m.cancel ? [m.cancel] : []));
    const low = manager.newJob(job(0, 40), 'anonymous');
    manager.accept(low);
    await until(() => assigns().length === 5, '1 running + 4 queued');
    const high = manager.newJob(job(10, 1), 'anonymous');
    manager.accept(high);
    await until(() => assigns().some((a) => a.job_id === high.id), 'the first priority-10 subtask');
    // Three more priority-10 subtasks, one at a time; the worker's running subtask never ends meanwhile.
    for (let i = 1; i <= 3; i++) {
      feed.push(plan(`h${i}`));
      await until(() => assigns().filter((a) => a.job_id === high.id).length === i + 1, `priority-10 subtask ${i + 1}`);
      await sleep(20);
    }
    // Four priority-10 subtasks need four queue places: four low-priority assignments given back.
    // Observed: 4 + 3 + 2 + 1 = 10 cancels, the low-priority subtasks re-sent as attempt 2, 3, 4...
    const lowAttempts = manager.subtasksOf(low.id).map((s) => s.attempt);
    expect({ cancels: cancels().length, highestLowAttempt: Math.max(...lowAttempts) }).toEqual({ cancels: 4, highestLowAttempt: 1 });
    feed.end();
    manager.close();
    store.close();
  });

  it('looks at no worker while every job is of one priority (500 full workers, prefetch 4)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-takeback-'));
    dirs.push(dir);
    const { manager, registry, store } = inProcessManager({ dataDir: dir, slots: 1, prefetch: 4 });
    for (let i = 2; i <= 500; i++) {
      registry.add(
        newWorkerSession({
          id: `w${i}`,
          name: `worker-${i}`,
          instanceId: `i-w${i}`,
          address: 'test',
          slots: 1,
          prefetch: 4,
          capabilities: { kinds: ['passthrough'], encoders: [] } as unknown as WorkerSession['capabilities'],
          call: { write: () => undefined } as unknown as WorkerSession['call'],
        }),
      );
    }
    // One job of 20,000 short subtasks, every slot and queue place taken: a pass has nothing to do.
    manager.accept(manager.newJob(job(0, 20_000), 'anonymous'));
    await until(() => registry.all().every((w) => w.waiting.size === 4), 'every worker full', 10_000);
    // Observed before: every pass copied each worker's queue and looked at each queued assignment
    // (about 200 us a pass against 1.5 without), thousands of passes a second.
    let walks = 0;
    const all = registry.all.bind(registry);
    registry.all = () => {
      walks++;
      return all();
    };
    const dispatch = (manager as unknown as { dispatch(): void }).dispatch.bind(manager);
    for (let i = 0; i < 100; i++) dispatch();
    expect(walks, 'walks of every worker in 100 passes').toBe(0);
    manager.close();
    store.close();
  }, 30_000);
});

/*
 * The worker cleared must be one whose queue stands in front of the higher-priority subtask: one
 * with nothing queued because it cannot queue (busy with a long subtask, or no prefetch) does not
 * serve that job, its slot perhaps taken for minutes.
 */
function setup(w1Prefetch: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-takeback-busy-'));
  dirs.push(dir);
  // worker-1 (registered first) and worker-2, one slot each.
  const m = inProcessManager({ dataDir: dir, slots: 1, prefetch: w1Prefetch });
  const other = addWorker2(m.registry);
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
