/**
 * The job manager's streaming plans (`PlanResult.later`), lease-ahead and publishing, driven through
 * its real store, spool, scheduler and registry. The worker is a session whose control stream
 * records what it is sent; results go back through `onResult` as the worker service would deliver
 * them. The move of an output into a shared folder is the real one, wrapped so that a test can act
 * the moment it has happened.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Channel } from '../shared/channel.js';
import type { CoordinatorKind, SpoolFile, SubtaskPlan } from '../shared/job-kind.js';
import type { CoordinatorMessage } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import type { OutputRef__Output } from '../shared/proto/generated/tessera/v1/OutputRef.js';
import { sharedOutputTemp } from '../shared/shared-output.js';
import { JobManager, retryBackoffMs } from './job-manager.js';
import { watch } from './job-service.js';
import { LiveHub } from './http/live.js';
import { SharedRoots } from './shared-inputs.js';
import { inProcessManager } from '../test/helpers/job-manager.js';
import { coordinatorKinds } from './kinds/index.js';
import { TERMINAL_JOB_STATES, jobProgress, type SubtaskRecord } from './model.js';
import { Spool } from './spool.js';
import { JobStore } from './store.js';
import { WorkerRegistry, newWorkerSession, type WorkerSession } from './worker-registry.js';
import { steadyNow } from '../shared/clock.js';

/** Called right after each real move of an output into place (publishing; see the last test). */
const afterMove = vi.hoisted(() => ({ hook: undefined as undefined | ((dest: string) => void) }));
vi.mock('../shared/shared-output.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../shared/shared-output.js')>();
  return {
    ...real,
    moveInto: async (src: string, dest: string, jobId: string) => {
      await real.moveInto(src, dest, jobId);
      afterMove.hook?.(dest);
    },
  };
});

/** Called right after each rename the job manager makes (taking a worker's output into the spool). */
const afterRename = vi.hoisted(() => ({ hook: undefined as undefined | ((dest: string) => void) }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    rename: async (src: string, dest: string) => {
      await real.rename(src, dest);
      afterRename.hook?.(dest);
    },
  };
});

const kinds = coordinatorKinds as Map<string, CoordinatorKind>;
const original = kinds.get('passthrough')!;
const dirs: string[] = [];
afterEach(() => {
  kinds.set('passthrough', original);
  afterMove.hook = undefined;
  afterRename.hook = undefined;
  vi.unstubAllEnvs();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const spec = { label: 'stream', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output;
const plan = (label: string): SubtaskPlan => ({ label, inputs: [], plan: { label }, weight: 1, items: [] });

/** A kind whose phase 0 is one subtask now and `later` ones released by the test. */
function streamingKind(release: AsyncIterable<SubtaskPlan>, merged: string[][]): CoordinatorKind {
  return {
    ...original,
    plan: async () => ({ subtasks: [plan('now')], later: release }),
    merge: async (ctx) => {
      merged.push(ctx.results.map((r) => r.label));
      return { outputs: [] };
    },
  };
}


function setup(dataDir?: string, slots = 8, prefetch = 0, quarantineFailures = 0, sharedRoots?: SharedRoots, extra: { quarantineMs?: number; stallMs?: number } = {}) {
  const dir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'tessera-jm-'));
  if (!dataDir) dirs.push(dir);
  const { store, registry, manager, worker, sent, assigned } = inProcessManager({ dataDir: dir, slots, prefetch, quarantineFailures, extra, ...(sharedRoots && { sharedRoots }) });
  const cancels = () => sent.flatMap((m) => (m.cancel ? [m.cancel] : []));
  const finish = (subtaskId: string, attempt: number, runMs?: number) =>
    manager.onResult(worker, { subtaskId, attempt, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined, ...(runMs !== undefined ? { runMs } : {}) });
  return { dir, store, registry, manager, worker, assigned, cancels, finish };
}

/** A second worker (one slot unless told), whose assignments land in `sent`. */
function secondWorker(registry: WorkerRegistry, sent: CoordinatorMessage[], o: { id?: string; slots?: number; kinds?: string[]; encoders?: string[] } = {}): WorkerSession {
  const id = o.id ?? 'w2';
  const w = newWorkerSession({
    id,
    name: `worker-${id.slice(1)}`,
    instanceId: `i-${id}`,
    address: 'test',
    slots: o.slots ?? 1,
    capabilities: { kinds: o.kinds ?? ['passthrough'], encoders: o.encoders ?? [] } as unknown as WorkerSession['capabilities'],
    call: { write: (m: CoordinatorMessage) => sent.push(m) } as unknown as WorkerSession['call'],
  });
  registry.add(w);
  return w;
}
const assignmentsIn = (sent: CoordinatorMessage[]) => sent.flatMap((m) => (m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])));

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('streaming plans', () => {
  it('dispatches later subtasks as they come and merges phase 0 only after the last one', async () => {
    const feed = new Channel<SubtaskPlan>();
    const merged: string[][] = [];
    kinds.set('passthrough', streamingKind(feed, merged));
    const { manager, assigned, finish, store } = setup();
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 1, 'the first subtask');
    // It finishes while more are still coming: the phase must stay open.
    finish(assigned()[0]!.subtask_id!, 1);
    feed.push(plan('later 1'));
    await until(() => assigned().length === 2, 'the second subtask');
    finish(assigned()[1]!.subtask_id!, 1);
    await sleep(50);
    expect(merged).toEqual([]);
    expect(job.state).toBe('running');
    feed.push(plan('later 2'));
    await until(() => assigned().length === 3, 'the third subtask');
    feed.end();
    await sleep(50);
    expect(merged).toEqual([]);
    finish(assigned()[2]!.subtask_id!, 1);
    await until(() => job.state === 'succeeded', 'the job to finish');
    expect(merged).toEqual([['now', 'later 1', 'later 2']]);
    expect(manager.subtasksOf(job.id).map((s) => s.index)).toEqual([0, 1, 2]);
    manager.close();
    store.close();
  });

  it('a coordinator stopped while planning plans the job again from the start', async () => {
    const feed = new Channel<SubtaskPlan>();
    kinds.set('passthrough', streamingKind(feed, []));
    const first = setup();
    const job = first.manager.newJob(spec, 'anonymous');
    first.manager.accept(job);
    feed.push(plan('later 1'));
    await until(() => first.assigned().length === 2, 'two subtasks');
    const before = first.assigned().map((a) => a.subtask_id!);
    first.manager.close();
    first.store.close();

    // Restarted on the same data: the old partial plan is dropped and planning starts over.
    const merged: string[][] = [];
    const again = new Channel<SubtaskPlan>();
    kinds.set('passthrough', streamingKind(again, merged));
    const second = setup(first.dir);
    expect(second.manager.resume()).toBe(1);
    await until(() => second.assigned().length === 1, 'the re-planned first subtask');
    again.push(plan('later A'));
    again.end();
    await until(() => second.assigned().length === 2, 'the re-planned second subtask');
    for (const a of second.assigned()) second.finish(a.subtask_id!, a.attempt!);
    const resumed = second.manager.get(job.id);
    await until(() => resumed.state === 'succeeded', 'the resumed job to finish');
    expect(merged).toEqual([['now', 'later A']]);
    expect(second.manager.subtasksOf(job.id)).toHaveLength(2);
    // A watcher saw the first run's subtasks start: each ends in its view (it stayed running for good).
    const last = new Map<string, string>();
    for (const e of second.manager.eventsAfter(job.id, 0)) if (e.type === 'subtask_state' && e.subtask) last.set(String(e.subtask.id), String(e.subtask.state));
    expect(before.map((id) => last.get(id))).toEqual(['SUBTASK_STATE_CANCELLED', 'SUBTASK_STATE_CANCELLED']);
    second.manager.close();
    second.store.close();
  });
});

/** A kind planned while its inputs arrive: one subtask per input, as each comes. */
function receivingKind(merged: string[][]): CoordinatorKind {
  return {
    ...original,
    plansWhileReceiving: () => true,
    plan: async (ctx) => ({
      subtasks: [],
      later: (async function* () {
        for (let run = await ctx.arriving!.take(); run; run = await ctx.arriving!.take()) for (const f of run) yield plan(f.name);
      })(),
    }),
    merge: async (ctx) => {
      merged.push(ctx.results.map((r) => r.label));
      return { outputs: [] };
    },
  };
}
const input = (name: string): SpoolFile => ({ name, path: `/nonexistent/${name}`, size: 1, sha256: '' });

describe('a job accepted while its upload runs', () => {
  it('runs each input as it comes, ends only after the upload has, and stores every input', async () => {
    const merged: string[][] = [];
    kinds.set('passthrough', receivingKind(merged));
    const { dir, manager, assigned, finish, store } = setup();
    const job = manager.newJob(spec, 'anonymous');
    job.inputs = [input('a')];
    const receiving = await manager.acceptReceiving(job);
    await until(() => assigned().length === 1, 'the first input\'s subtask');
    finish(assigned()[0]!.subtask_id!, 1);
    await sleep(50);
    expect(job.state).toBe('running');
    expect(merged).toEqual([]);
    receiving.add([input('b')], [{ input: 'bad', code: 'INVALID_ARGUMENT', message: 'bad: not an image' }]);
    await until(() => assigned().length === 2, 'the second input\'s subtask');
    finish(assigned()[1]!.subtask_id!, 1);
    await sleep(50);
    expect(job.state).toBe('running');
    await receiving.end();
    await until(() => ['succeeded', 'partially_succeeded', 'failed', 'cancelled'].includes(job.state), 'the job to end');
    // Its one error and no output (this kind makes none): failed, as a job planned at once would.
    expect(job).toMatchObject({ state: 'failed', errors: [{ input: 'bad' }] });
    expect(merged).toEqual([['a', 'b']]);
    expect(manager.eventsAfter(job.id, 0).map((e) => e.message)).toEqual(expect.arrayContaining(['accepted 1 input(s), more arriving', 'upload complete: 2 input(s)']));
    manager.close();
    store.close();
    // On disk: both inputs (the second appended after the job was first written) and the refused one's error.
    const again = new JobStore(path.join(dir, 'jobs.db'));
    const stored = again.loadAll().jobs.find((j) => j.id === job.id)!;
    expect(stored.inputs.map((f) => f.name)).toEqual(['a', 'b']);
    expect(stored.errors.map((e) => e.input)).toEqual(['bad']);
    expect(stored.receiving).toBe(false);
    again.close();
  });

  it('plans each arriving input with the workers there when it is planned: one that joined during the upload counts', async () => {
    const seen: number[] = [];
    kinds.set('passthrough', {
      ...receivingKind([]),
      plan: async (ctx) => ({
        subtasks: [],
        later: (async function* () {
          for (let run = await ctx.arriving!.take(); run; run = await ctx.arriving!.take()) {
            for (const f of run) {
              seen.push(ctx.cluster.slots);
              yield plan(f.name);
            }
          }
        })(),
      }),
    });
    const { manager, registry, store } = setup(undefined, 2);
    const job = manager.newJob(spec, 'anonymous');
    job.inputs = [input('a')];
    const receiving = await manager.acceptReceiving(job);
    await until(() => seen.length === 1, 'the first input planned');
    secondWorker(registry, []);
    receiving.add([input('b')], []);
    await until(() => seen.length === 2, 'the second input planned');
    expect(seen).toEqual([2, 3]);
    await receiving.end();
    manager.close();
    store.close();
  });

  it('cancelled while its upload runs: its subtasks stop, and nothing follows its final event when the upload ends', async () => {
    kinds.set('passthrough', receivingKind([]));
    const { manager, assigned, cancels, store } = setup();
    const job = manager.newJob(spec, 'anonymous');
    job.inputs = [input('a')];
    const receiving = await manager.acceptReceiving(job);
    await until(() => assigned().length === 1, 'the first input\'s subtask');
    manager.cancel(job.id);
    expect(cancels().map((c) => c.subtask_id)).toEqual([assigned()[0]!.subtask_id]);
    receiving.add([input('b')], []);
    await receiving.end();
    await sleep(20);
    expect(assigned()).toHaveLength(1);
    expect(job.state).toBe('cancelled');
    const events = manager.eventsAfter(job.id, 0);
    expect(events.at(-1)!.final).toBe(true);
    expect(events.filter((e) => e.final)).toHaveLength(1);
    expect(store.loadAll().jobs.find((j) => j.id === job.id)).toMatchObject({ state: 'cancelled', receiving: false });
    manager.close();
    store.close();
  });

  it('is dropped with its files when its submission fails half-way, its running subtask cancelled; a restart drops one whose upload had not ended', async () => {
    kinds.set('passthrough', receivingKind([]));
    const first = setup();
    const job = first.manager.newJob(spec, 'anonymous');
    job.inputs = [input('a')];
    const receiving = await first.manager.acceptReceiving(job);
    await until(() => first.assigned().length === 1, 'the first input\'s subtask');
    await receiving.discard(new Error('the client went away'));
    expect(() => first.manager.get(job.id)).toThrow(/not found/);
    expect(first.cancels().map((c) => c.subtask_id)).toEqual([first.assigned()[0]!.subtask_id]);
    expect(first.store.loadAll().jobs.map((j) => j.id)).not.toContain(job.id);
    // Adding to it afterwards changes nothing.
    receiving.add([input('b')], []);
    await sleep(20);
    expect(first.assigned()).toHaveLength(1);

    // Stopped while another one's upload runs: its next start drops it.
    const cut = first.manager.newJob(spec, 'anonymous');
    cut.inputs = [input('c')];
    await first.manager.acceptReceiving(cut);
    first.manager.close();
    first.store.close();
    const second = setup(first.dir);
    expect(second.manager.resume()).toBe(0);
    expect(() => second.manager.get(cut.id)).toThrow(/not found/);
    expect(second.store.loadAll().jobs).toEqual([]);
    second.manager.close();
    second.store.close();
  });
});

describe('cancelled while planned', () => {
  it('a job cancelled before its plan is in gets no subtasks, no dispatch and no event after its final one', async () => {
    const { manager, assigned, store } = setup();
    const job = manager.newJob({ ...spec, passthrough: { subtasks: 5, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(job);
    // accept() has started planning, which waits on its first await: cancel now.
    manager.cancel(job.id);
    await sleep(50);
    expect(manager.get(job.id)).toMatchObject({ state: 'cancelled', message: 'cancelled by the client' });
    expect(assigned()).toEqual([]);
    expect(manager.subtasksOf(job.id)).toEqual([]);
    const events = manager.eventsAfter(job.id, 0);
    expect(events.at(-1)!.final).toBe(true);
    manager.close();
    store.close();
  });
});

describe('inputs of a batch one worker called bad', () => {
  /** A kind with one subtask of three inputs, cut one input a subtask by `split`. */
  const batchKind = (): CoordinatorKind => ({
    ...original,
    plan: async () => ({ subtasks: [{ ...plan('a, b, c'), items: ['a', 'b', 'c'] }] }),
    split: (s, only) => s.items.filter((i) => !only || only.includes(i)).map((i) => ({ ...plan(i), items: [i] })),
    merge: async () => ({ outputs: [] }),
  });
  const bad = (input: string) => ({ input, code: 'INVALID_ARGUMENT', message: `${input}: cannot decode it` });
  /** The batch running on worker-1 (subtask `id`); worker-2, idle, has joined (its assignments in `other`). */
  async function batchRunning() {
    kinds.set('passthrough', batchKind());
    const t = setup();
    const job = t.manager.newJob(spec, 'anonymous');
    t.manager.accept(job);
    await until(() => t.assigned().length === 1, 'the batch');
    const other: CoordinatorMessage[] = [];
    const w2 = secondWorker(t.registry, other);
    return { ...t, job, other, w2, id: t.assigned()[0]!.subtask_id! };
  }

  it('asks another opinion of an input the second worker calls bad that the first did not, and counts the first worker\'s wrong verdict', async () => {
    const { manager, worker, assigned, store, other, w2, id } = await batchRunning();
    // worker-1 fails the whole batch calling it bad input (a): worker-2 is asked.
    manager.onResult(worker, { subtaskId: id, attempt: 1, ok: false, outputs: [], itemErrors: [], retryable: false, result: undefined, error: bad('a') });
    await until(() => assignmentsIn(other).length === 1, 'the second opinion');
    // worker-2 processes a (worker-1 was wrong) but calls b bad: b has had one worker's word only.
    manager.onResult(w2, { subtaskId: id, attempt: 2, ok: true, outputs: [], itemErrors: [bad('b')], retryable: false, result: undefined });
    await sleep(100);
    // b runs again on another worker (worker-1) before it fails; worker-1's wrong verdict on a is counted.
    expect(assigned().length).toBe(2);
    expect(worker.recentFailures).toHaveLength(1);
    manager.close();
    store.close();
  });

  for (const agrees of [false, true]) {
    it(agrees ? 'fail when the other worker agrees, and the first is not counted for it' : 'run again on another worker, one subtask each; if it processes them, the first worker is counted for it', async () => {
      const { manager, worker, assigned, store, job, other, w2 } = await batchRunning();
      // The batch succeeds on worker-1, which calls b bad.
      manager.onResult(worker, { subtaskId: assigned()[0]!.subtask_id!, attempt: 1, ok: true, outputs: [], itemErrors: [bad('b')], retryable: false, result: undefined });
      // b alone goes to worker-2, though worker-1 has more room.
      await until(() => assignmentsIn(other).length === 1, 'b on the other worker');
      expect(assigned()).toHaveLength(1);
      const again = manager.subtasksOf(job.id).find((s) => s.id === assignmentsIn(other)[0]!.subtask_id)!;
      expect(again.items).toEqual(['b']);
      expect(manager.eventsAfter(job.id, 0).some((e) => e.message === 'worker worker-1 called b bad input: asking another worker')).toBe(true);
      manager.onResult(w2, { subtaskId: again.id, attempt: 1, ok: true, outputs: [], itemErrors: agrees ? [bad('b')] : [], retryable: false, result: undefined });
      await until(() => TERMINAL_JOB_STATES.has(manager.get(job.id).state), 'the end of the job');
      // (A job of no outputs with an error has failed.)
      expect(manager.get(job.id)).toMatchObject(agrees ? { state: 'failed', errors: [bad('b')] } : { state: 'succeeded', errors: [] });
      expect(worker.recentFailures).toHaveLength(agrees ? 0 : 1);
      manager.close();
      store.close();
    });
  }
});

describe('a job cancelled while it is planned', () => {
  it('loses what its planner wrote into its work folder after the cancel, once the planner is done', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let workDir = '';
    let wrote = false;
    kinds.set('passthrough', {
      ...original,
      writesFiles: true,
      // A planner that notices the cancel late: it writes a chunk after it, then gives up.
      plan: async (ctx) => {
        workDir = ctx.workDir;
        await released;
        mkdirSync(workDir, { recursive: true });
        writeFileSync(path.join(workDir, 'chunk-000.nut'), 'late');
        wrote = true;
        // Still busy a moment after the write (a chunk's muxer closing).
        await sleep(50);
        throw new DOMException('cancelled', 'AbortError');
      },
      merge: async () => ({ outputs: [] }),
    });
    const { manager, store } = setup();
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => workDir !== '', 'the planner');
    manager.cancel(job.id);
    // The cancel removes the folder at once, and again once its end is stored (within 20 ms); the
    // planner writes there after that.
    await until(() => !existsSync(workDir), 'the work folder to go');
    await sleep(150);
    release();
    await until(() => wrote, 'the late write');
    await until(() => !existsSync(workDir), 'the work folder to go again');
    expect(manager.get(job.id).state).toBe('cancelled');
    manager.close();
    store.close();
  });

  it('ends the planning its plan left going, so that what it holds is given back (disk reserved for a decode)', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding = false;
    let planned = false;
    // As the tiled path's decoded strips: started (its first strip out), holding room until its finally.
    async function* strips(): AsyncGenerator<SubtaskPlan> {
      holding = true;
      try {
        yield plan('strip 1');
        yield plan('strip 2');
      } finally {
        holding = false;
      }
    }
    kinds.set('passthrough', {
      ...original,
      plan: async () => {
        const later = strips();
        const first = await later.next();
        planned = true;
        await released;
        return { subtasks: [first.value as SubtaskPlan], later };
      },
      merge: async () => ({ outputs: [] }),
    });
    const { manager, store } = setup();
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => planned, 'the plan');
    manager.cancel(job.id);
    release();
    // Before, the dropped plan's generator stayed suspended: its reservation was never given back.
    await until(() => !holding, 'the planning to let go');
    expect(manager.get(job.id).state).toBe('cancelled');
    manager.close();
    store.close();
  });
});

describe("a job's progress", () => {
  it('never goes back while the job runs: not for a subtask that fails and starts again, nor after a restart that redoes what ran', async () => {
    const first = setup(undefined, 4);
    const job = first.manager.newJob({ ...spec, passthrough: { subtasks: 4, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    first.manager.accept(job);
    await until(() => first.assigned().length === 4, 'four subtasks running');
    const [a, b, c] = first.assigned();
    const progressIn = (m: JobManager) => jobProgress(m.get(job.id), m.subtasksOf(job.id));
    first.finish(a!.subtask_id!, 1, 10);
    first.manager.onProgress(first.worker, b!.subtask_id!, 1, 0.8, '');
    // One done and one at 80% of four, the subtasks carrying 95% of the bar.
    const before = progressIn(first.manager);
    expect(before).toBeCloseTo((1.8 / 4) * 0.95, 5);
    // The subtask at 80% fails and starts again from nothing: the bar holds.
    first.manager.onResult(first.worker, { subtaskId: b!.subtask_id!, attempt: 1, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'the worker lost its disk' } });
    await until(() => first.assigned().length === 5, 'its second attempt');
    expect(first.manager.subtasksOf(job.id).find((s) => s.id === b!.subtask_id)!.progress).toBe(0);
    expect(progressIn(first.manager)).toBeCloseTo(before, 5);
    // It moves again once the work passes where it stood.
    first.manager.onProgress(first.worker, c!.subtask_id!, 1, 0.9, '');
    const last = progressIn(first.manager);
    expect(last).toBeCloseTo((1.9 / 4) * 0.95, 5);

    // Restarted, the running subtasks run again from 0: its watchers' bars go on from where they stood.
    first.manager.close();
    first.store.close();
    const second = setup(first.dir, 4);
    expect(second.store.storedProgress(job.id).last).toBeCloseTo(last, 5);
    expect(second.manager.resume()).toBe(1);
    await until(() => second.assigned().length === 3, 'the unfinished subtasks to run again');
    expect(progressIn(second.manager)).toBeCloseTo(last, 5);
    second.manager.close();
    second.store.close();
  });
});

/**
 * A job of four subtasks on a worker of four slots, three of them finished at once; the fourth runs
 * far past them and an idle second worker (its assignments in `other`) gets a copy of it.
 */
async function aStragglerCopied() {
  const t = setup(undefined, 4);
  const job = t.manager.newJob({ ...spec, passthrough: { subtasks: 4, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
  t.manager.accept(job);
  await until(() => t.assigned().length === 4, 'four subtasks running');
  const [a, b, c, straggler] = t.assigned();
  for (const x of [a, b, c]) t.finish(x!.subtask_id!, 1, 10);
  const other: CoordinatorMessage[] = [];
  const w2 = secondWorker(t.registry, other);
  t.manager.speculate(steadyNow() + 10_000);
  expect(assignmentsIn(other).map((x) => x.subtask_id)).toEqual([straggler!.subtask_id]);
  return { ...t, job, straggler: straggler!, other, w2, copy: assignmentsIn(other)[0]! };
}

describe('speculative copies', () => {
  it("a copy's failure, even a non-retryable one, ends only the copy while the original runs; no second copy follows", async () => {
    const { manager, cancels, finish, store, job, straggler, other, w2, copy } = await aStragglerCopied();
    // Its worker's smaller memory ceiling kills it: not retryable, yet the original goes on.
    manager.onResult(w2, { subtaskId: copy.subtask_id!, attempt: copy.attempt!, ok: false, outputs: [], itemErrors: [], retryable: false, result: undefined, error: { input: '', code: 'RESOURCE_EXHAUSTED', message: 'over the memory ceiling' } });
    expect(cancels()).toEqual([]);
    expect(manager.subtasksOf(job.id).find((s) => s.id === straggler!.subtask_id)!.state).toBe('running');
    manager.speculate(steadyNow() + 20_000);
    expect(assignmentsIn(other)).toHaveLength(1);
    finish(straggler!.subtask_id!, 1, 10);
    await until(() => manager.get(job.id).state === 'succeeded', 'the job to succeed on the original');
    manager.close();
    store.close();
  });
});

describe('the straggler rule', () => {
  /** A kind whose phase 0 is one subtask per weight given. */
  const weighted = (weights: number[]): CoordinatorKind => ({
    ...original,
    plan: async () => ({ subtasks: weights.map((weight, i) => ({ label: `piece ${i}`, inputs: [], plan: { label: `piece ${i}` }, weight, items: [] })) }),
    merge: async () => ({ outputs: [] }),
  });

  async function threeDoneOneRunning(weights: number[]) {
    kinds.set('passthrough', weighted(weights));
    const t = setup(undefined, 4);
    const job = t.manager.newJob(spec, 'anonymous');
    t.manager.accept(job);
    await until(() => t.assigned().length === 4, 'four subtasks running');
    const byIndex = (i: number) => t.assigned().find((a) => JSON.parse(a.plan_json!).label === `piece ${i}`)!;
    for (const i of [0, 1, 2]) t.finish(byIndex(i).subtask_id!, 1, 100);
    const copies: CoordinatorMessage[] = [];
    secondWorker(t.registry, copies);
    return { ...t, last: byIndex(3), copies };
  }

  it('expects a subtask of four times the weight to take four times as long before it copies it', async () => {
    const { manager, store, last, copies } = await threeDoneOneRunning([1, 1, 1, 4]);
    // 300 ms: past 1.5x the others' 100 ms, but not past 1.5x the 400 ms its weight predicts.
    manager.speculate(steadyNow() + 300);
    expect(assignmentsIn(copies)).toEqual([]);
    manager.speculate(steadyNow() + 700);
    expect(assignmentsIn(copies).map((a) => [a.subtask_id, a.attempt])).toEqual([[last.subtask_id, 2]]);
    manager.close();
    store.close();
  });

  it('leaves a slow subtask whose progress says it ends sooner than a copy would', async () => {
    const { manager, worker, store, last, copies } = await threeDoneOneRunning([1, 1, 1, 1]);
    // 1 s in at 95%: about 53 ms left, less than the 100 ms a copy would take.
    manager.onProgress(worker, last.subtask_id!, 1, 0.95, '');
    manager.speculate(steadyNow() + 1000);
    expect(assignmentsIn(copies)).toEqual([]);
    // At half way after 1 s, a copy (100 ms) ends well before it.
    manager.onProgress(worker, last.subtask_id!, 1, 0.5, '');
    manager.speculate(steadyNow() + 1000);
    expect(assignmentsIn(copies).map((a) => [a.subtask_id, a.attempt])).toEqual([[last.subtask_id, 2]]);
    manager.close();
    store.close();
  });
});

describe('the stall rule', () => {
  it('copies, one at a time onto an idle worker, what a worker that took all of a job has reported no progress on for 60 s', async () => {
    // A worker of many slots takes all four subtasks and never reports on them: nothing of the job
    // finishes, so no straggler rule can apply, and its heartbeats keep its leases.
    const { manager, registry, worker, store, assigned, cancels } = setup(undefined, 8);
    const job = manager.newJob({ ...spec, passthrough: { subtasks: 4, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 4, 'four subtasks on the first worker');
    const held = assigned().map((a) => a.subtask_id!);
    const copies: CoordinatorMessage[] = [];
    const w2 = secondWorker(registry, copies);
    await sleep(100);
    // One of them it did report on, just now.
    manager.onProgress(worker, held[0]!, 1, 0.1, '');
    const reported = steadyNow();
    manager.speculate(reported + 30_000);
    expect(assignmentsIn(copies)).toEqual([]);
    // 60 s on: the three it said nothing about are stalled, the other has 50 ms to go. One copy (copies
    // stay a tenth of running work, at least one), on the idle worker.
    manager.speculate(reported + 59_950);
    expect(assignmentsIn(copies).map((a) => [a.subtask_id, a.attempt])).toEqual([[held[1], 2]]);
    // The worker is now the scheduler's last choice (see scheduler.test.ts), until it reports again.
    expect(worker.stalledSince).toBeGreaterThan(0);
    // The copy's result wins and the stalled attempt is cancelled, counted as its worker's failure
    // (towards its quarantine); the next stalled one gets its copy.
    manager.onResult(w2, { subtaskId: held[1]!, attempt: 2, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    expect(cancels().map((c) => c.subtask_id)).toEqual([held[1]]);
    expect(worker.recentFailures).toHaveLength(1);
    manager.speculate(reported + 59_950);
    expect(assignmentsIn(copies).map((a) => a.subtask_id)).toEqual([held[1], held[2]]);
    // This one its worker takes up again after the copy started: slow, not stalled, and not a failure.
    await sleep(5);
    manager.onProgress(worker, held[2]!, 1, 0.5, '');
    expect(worker.stalledSince).toBe(0);
    manager.onResult(w2, { subtaskId: held[2]!, attempt: 2, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    expect(cancels().map((c) => c.subtask_id)).toEqual([held[1], held[2]]);
    expect(worker.recentFailures).toHaveLength(1);
    manager.close();
    store.close();
  });
});

describe('work no connected worker can run', () => {
  it('is said in the job (what is missing), and said again when a worker that can run it connects', async () => {
    // As the video kind plans an av1 job on workers without an AV1 encoder: its segments require one.
    kinds.set('passthrough', {
      ...original,
      plan: async () => ({ subtasks: [{ ...plan('segment 1'), requires: { encoders: ['libsvtav1'] } }] }),
      merge: async () => ({ outputs: [] }),
    });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-cannot-'));
    dirs.push(dir);
    const { manager, registry, store, assigned } = inProcessManager({ dataDir: dir, slots: 4 });
    const job = manager.newJob(spec, 'anonymous');
    await manager.accept(job);
    await expect.poll(() => job.message).toBe('phase 0: 1 subtask(s)');
    manager.explainWaiting(steadyNow());
    expect(assigned()).toEqual([]);
    const waiting = 'waiting for a worker that can run it: none of the 1 connected worker(s) has the encoder libsvtav1 (its ffmpeg lacks it)';
    expect(job.message).toBe(waiting);
    // Said once, not at every look.
    manager.explainWaiting(steadyNow() + 1500);
    expect(manager.eventsAfter(job.id, 0).filter((e) => e.message === waiting)).toHaveLength(1);
    // A worker with the encoder connects: the work goes to it, and the job's message is its own again.
    const sent: CoordinatorMessage[] = [];
    const able = newWorkerSession({
      id: 'w2',
      name: 'worker-2',
      instanceId: 'i2',
      address: 'test',
      slots: 1,
      capabilities: { kinds: ['passthrough'], encoders: ['libsvtav1'] } as unknown as WorkerSession['capabilities'],
      call: { write: (m: CoordinatorMessage) => sent.push(m) } as unknown as WorkerSession['call'],
    });
    registry.add(able);
    manager.requestDispatch();
    await expect.poll(() => sent.length).toBe(1);
    manager.explainWaiting(steadyNow() + 3000);
    expect(job.message).toBe('phase 0: 1 subtask(s)');
    expect(manager.eventsAfter(job.id, 0).at(-1)?.message).toBe('a worker that can run it is connected');
    manager.close();
    store.close();
  });
});

describe('quarantine', () => {
  it('lasts twice as long each time a worker is quarantined again within 10 minutes of the last, and forgets after', async () => {
    const { manager, registry, worker, store, assigned } = setup(undefined, 8, 0, 1, undefined, { quarantineMs: 40 });
    secondWorker(registry, []);
    const job = manager.newJob({ ...spec, passthrough: { subtasks: 12, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 8, 'eight subtasks on the first worker');
    const held = assigned().map((a) => a.subtask_id!);
    // The quarantine is set from the manager's own clock reading inside onResult: bracketed by
    // readings just before and just after the call, `until - after <= period <= until - before`
    // holds exactly however long the call took (reading the time left after it, a loaded machine's
    // pause of 10 ms within the call read as a period 10 ms short).
    const failOne = (): { atLeast: number; atMost: number } => {
      const id = held.shift()!;
      const before = steadyNow();
      manager.onResult(worker, { subtaskId: id, attempt: 1, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'its disk is gone' } });
      const after = steadyNow();
      expect(worker.state).toBe('quarantined');
      return { atLeast: worker.quarantinedUntil - after, atMost: worker.quarantinedUntil - before };
    };
    const isPeriod = (p: { atLeast: number; atMost: number }, ms: number): boolean => p.atLeast <= ms && ms <= p.atMost;
    const periods: { atLeast: number; atMost: number }[] = [];
    for (let i = 0; i < 3; i++) {
      periods.push(failOne());
      await until(() => registry.endQuarantines() || worker.state === 'active', 'the quarantine to end', 1000);
    }
    expect(periods.map((p, i) => isPeriod(p, [40, 80, 160][i]!)), JSON.stringify(periods)).toEqual([true, true, true]);
    expect(worker.quarantines).toBe(3);
    // However many in a row, never longer than 10 minutes.
    worker.quarantines = 40;
    const capped = failOne();
    expect(isPeriod(capped, 10 * 60_000), JSON.stringify(capped)).toBe(true);
    worker.state = 'active';
    // Ten minutes without a quarantine: the next one is the first again.
    worker.quarantinedUntil = steadyNow() - 10 * 60_000 - 1;
    const fresh = failOne();
    expect(isPeriod(fresh, 40), JSON.stringify(fresh)).toBe(true);
    expect(worker.quarantines).toBe(1);
    manager.close();
    store.close();
  });
});

describe('quarantine counts what fails on this worker only', () => {
  it("leaves out failures of a job that failed on two other workers and succeeded on none, and counts them once it runs well anywhere", async () => {
    const { manager, registry, worker, store, assigned } = setup(undefined, 8, 0, 3);
    const other = secondWorker(registry, [], { id: 'w2', slots: 0 });
    const third = secondWorker(registry, [], { id: 'w3', slots: 0 });
    const job = manager.newJob({ ...spec, passthrough: { subtasks: 12, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 8, 'eight subtasks on the first worker');
    const held = assigned().map((a) => a.subtask_id!);
    const fail = (id: string) => manager.onResult(worker, { subtaskId: id, attempt: 1, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'failed' } });
    // The job fails on every other worker as it does here (one client's job failing wherever it runs): not this worker's fault.
    other.jobOutcomes.set(job.id, { ok: 0, failed: 5, at: steadyNow() });
    third.jobOutcomes.set(job.id, { ok: 0, failed: 4, at: steadyNow() });
    for (const id of held.slice(0, 4)) fail(id);
    expect(worker.state).toBe('active');
    // One other worker runs it well (a stray failure, another broken worker beside): this worker's failures are its own.
    third.jobOutcomes.set(job.id, { ok: 20, failed: 1, at: steadyNow() });
    fail(held[4]!);
    expect(worker.state).toBe('quarantined');
    manager.close();
    store.close();
  });
});

describe('quarantine and the encoders work requires', () => {
  /** Eight segments that require libsvtav1, as the video kind plans an AV1 job. */
  function av1Kind(): void {
    kinds.set('passthrough', {
      ...original,
      plan: async () => ({ subtasks: Array.from({ length: 8 }, (_, i) => ({ ...plan(`segment ${i}`), requires: { encoders: ['libsvtav1'] } })) }),
      merge: async () => ({ outputs: [] }),
    });
  }
  const failure = (subtaskId: string) => ({ subtaskId, attempt: 1, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'its disk is gone' } });

  it('never takes the only worker with the encoder pending work requires', async () => {
    av1Kind();
    const { manager, registry, worker, store, assigned } = setup(undefined, 8, 0, 2);
    (worker as { encoders: ReadonlySet<string> }).encoders = new Set(['libsvtav1']);
    // Another worker of the kind, without the encoder: the kinds rule alone would quarantine worker-1.
    const other = secondWorker(registry, []);
    const job = manager.newJob(spec, 'anonymous');
    await manager.accept(job);
    await until(() => assigned().length === 8, 'the segments on the only worker with libsvtav1');
    const held = assigned().map((a) => a.subtask_id!);
    manager.onResult(worker, failure(held[0]!));
    manager.onResult(worker, failure(held[1]!));
    expect(worker.state).toBe('active');
    expect(worker.recentFailures).toHaveLength(2);
    // With a second worker that has it, the rule applies as before.
    (other as { encoders: ReadonlySet<string> }).encoders = new Set(['libsvtav1']);
    manager.onResult(worker, failure(held[2]!));
    expect(worker.state).toBe('quarantined');
    manager.close();
    store.close();
  });

  it('ends the quarantine of the only worker that can run pending work', async () => {
    av1Kind();
    const { manager, registry, worker, store, assigned } = setup(undefined, 8, 0, 0, undefined, { quarantineMs: 60_000 });
    (worker as { encoders: ReadonlySet<string> }).encoders = new Set(['libsvtav1']);
    secondWorker(registry, []);
    // Quarantined before the job came (its failures were another job's).
    worker.state = 'quarantined';
    worker.quarantinedUntil = steadyNow() + 60_000;
    const job = manager.newJob(spec, 'anonymous');
    await manager.accept(job);
    await expect.poll(() => job.message).toBe('phase 0: 8 subtask(s)');
    expect(assigned()).toEqual([]);
    manager.explainWaiting(steadyNow());
    expect(worker.state).toBe('active');
    await until(() => assigned().length === 8, 'the segments on the worker whose quarantine ended');
    expect(manager.eventsAfter(job.id, 0).some((e) => /worker-1's quarantine ended early/.test(e.message ?? ''))).toBe(true);
    expect(job.message).toBe('phase 0: 8 subtask(s)');
    manager.close();
    store.close();
  });
});

describe('the stall rule while work waits', () => {
  it('marks what a worker has said nothing of at once, and copies it in the next slot that frees, before any waiting subtask', async () => {
    const { manager, registry, worker, store, assigned } = setup(undefined, 2, 0, 0, undefined, { stallMs: 200 });
    const job = manager.newJob({ ...spec, passthrough: { subtasks: 6, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 2, 'two subtasks on the first worker');
    const held = assigned().map((a) => a.subtask_id!);
    const copies: CoordinatorMessage[] = [];
    const w2 = secondWorker(registry, copies);
    manager.requestDispatch();
    await until(() => assignmentsIn(copies).length === 1, 'a subtask on the second worker');
    await sleep(250);
    // The second worker reports; the first has said nothing for 250 ms. Three subtasks wait, and no
    // slot is free: both of the first worker's attempts are marked stalled, and nothing is copied yet.
    const busy = assignmentsIn(copies)[0]!;
    manager.onProgress(w2, busy.subtask_id!, busy.attempt!, 0.5, '');
    manager.speculate();
    expect(worker.stalledSince).toBeGreaterThan(0);
    expect(assignmentsIn(copies)).toHaveLength(1);
    // Its slot frees: a copy of a stalled attempt runs there, not one of the waiting subtasks.
    manager.onResult(w2, { subtaskId: busy.subtask_id!, attempt: busy.attempt!, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    await until(() => assignmentsIn(copies).length === 2, 'the next assignment on the second worker');
    const next = assignmentsIn(copies)[1]!;
    expect(held).toContain(next.subtask_id);
    expect(next.attempt).toBe(2);
    // The copy wins; the stalled attempt is cancelled and counted.
    manager.onResult(w2, { subtaskId: next.subtask_id!, attempt: 2, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    await until(() => assignmentsIn(copies).length === 3, 'the other stalled attempt copied next');
    expect(assignmentsIn(copies)[2]!.subtask_id).toBe(held.find((id) => id !== next.subtask_id));
    expect(worker.recentFailures).toHaveLength(1);
    manager.close();
    store.close();
  });
});

describe('the stall rule while work waits: its edges', () => {
  const job = (n: number) => ({ ...spec, passthrough: { subtasks: n, work_ms: 0, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;
  /** The subtask of `jobId` that `pick` finds needs an encoder no worker here has. */
  const needsX265 = (manager: JobManager, jobId: string, pick: (s: SubtaskRecord) => boolean): void => {
    manager.subtasksOf(jobId).find(pick)!.requires = { encoders: ['libx265'] };
  };
  /** A second worker joins and a dispatch is asked for; its assignments land in the list returned. */
  const join = (registry: WorkerRegistry, manager: JobManager, o: { slots?: number } = {}): CoordinatorMessage[] => {
    const copies: CoordinatorMessage[] = [];
    secondWorker(registry, copies, o);
    manager.requestDispatch();
    return copies;
  };
  const attempts = (sent: CoordinatorMessage[]) => assignmentsIn(sent).map((x) => [x.subtask_id, x.attempt]);
  /** A first worker of `slots` slots running a job of `n` subtasks (stall rule at 200 ms), its first `slots` taken. */
  async function running(slots: number, n: number) {
    const t = setup(undefined, slots, 0, 0, undefined, { stallMs: 200 });
    const j = t.manager.newJob(job(n), 'anonymous');
    t.manager.accept(j);
    await until(() => t.assigned().length === Math.min(slots, n), 'the first worker full');
    return { ...t, j, held: t.assigned().map((x) => x.subtask_id!) };
  }

  it('copies the other stalled attempts when no free worker can take the first', async () => {
    const { manager, registry, worker, store, j, held } = await running(2, 5);
    const [a, b] = held;
    await sleep(250);
    manager.speculate();
    expect(worker.stalledSince).toBeGreaterThan(0);
    // The first stalled one needs an encoder the worker that frees up lacks.
    needsX265(manager, j.id, (s) => s.id === a);
    const copies = join(registry, manager);
    await until(() => assignmentsIn(copies).length === 1, 'an assignment on the second worker');
    expect(attempts(copies)).toEqual([[b, 2]]);
    manager.close();
    store.close();
  });

  it('copies a stalled attempt into an idle worker the waiting work cannot use, at once', async () => {
    const { manager, registry, store, j, held: [held] } = await running(1, 2);
    // What waits needs an encoder no worker has: it stays pending, and the cluster counts as busy.
    needsX265(manager, j.id, (s) => s.id !== held);
    const copies = join(registry, manager);
    await sleep(250);
    expect(assignmentsIn(copies)).toEqual([]);
    manager.speculate();
    await until(() => assignmentsIn(copies).length === 1, 'the copy on the idle worker');
    expect(attempts(copies)).toEqual([[held, 2]]);
    manager.close();
    store.close();
  });

  it('keeps the copies of stalled attempts within a tenth of running work, as every copy', async () => {
    const { manager, registry, store } = await running(8, 8);
    await sleep(250);
    // No slot free: all eight are marked. A worker of eight slots comes: one copy (eight running).
    manager.speculate();
    const copies = join(registry, manager, { slots: 8 });
    await until(() => assignmentsIn(copies).length === 1, 'a copy');
    await sleep(50);
    manager.speculate();
    await sleep(50);
    expect(assignmentsIn(copies)).toHaveLength(1);
    manager.close();
    store.close();
  });
});

describe('the stall rule when the copy fails', () => {
  /** A job of one subtask that its worker said nothing of for 61 s, copied onto a second worker. */
  async function copiedAfterAStall() {
    const t = setup(undefined, 1);
    const job = t.manager.newJob({ ...spec, passthrough: { subtasks: 1, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    t.manager.accept(job);
    await until(() => t.assigned().length === 1, 'the subtask on the first worker');
    const held = t.assigned()[0]!.subtask_id!;
    const copies: CoordinatorMessage[] = [];
    const w2 = secondWorker(t.registry, copies);
    t.manager.speculate(steadyNow() + 61_000);
    return { ...t, job, held, copies, w2 };
  }

  /** The copy failed and the stalled attempt was left running: nothing cancelled or counted, and its result ends the job. */
  async function originalDecides({ manager, worker, store, cancels, job, held }: Awaited<ReturnType<typeof copiedAfterAStall>>) {
    expect(cancels()).toEqual([]);
    expect(worker.recentFailures).toHaveLength(0);
    expect(manager.subtasksOf(job.id)[0]!.state).toBe('running');
    manager.onResult(worker, { subtaskId: held, attempt: 1, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    await until(() => manager.get(job.id).state === 'succeeded', 'the job to succeed on the original');
    manager.close();
    store.close();
  }

  it('takes the stalled attempt back too, counted as its worker’s failure, and runs the subtask again on a worker that reports', async () => {
    const { manager, worker, store, assigned, cancels, job, held, copies, w2 } = await copiedAfterAStall();
    expect(assignmentsIn(copies).map((a) => [a.subtask_id, a.attempt])).toEqual([[held, 2]]);
    // The copy's worker loses its disk. Left to decide, the stalled attempt would hold the subtask
    // until its timeout; it is cancelled instead, and the subtask runs again.
    manager.onResult(w2, { subtaskId: held, attempt: 2, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'the worker lost its disk' } });
    expect(cancels().map((c) => [c.subtask_id, c.attempt])).toEqual([[held, 1]]);
    expect(worker.recentFailures).toHaveLength(1);
    await until(() => assignmentsIn(copies).length === 2, 'a third attempt');
    // Not on the worker still silent about the second: on the one that answered.
    expect(assignmentsIn(copies)[1]!.attempt).toBe(3);
    expect(assigned()).toHaveLength(1);
    manager.onResult(w2, { subtaskId: held, attempt: 3, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    await until(() => manager.get(job.id).state === 'succeeded', 'the job to succeed');
    manager.close();
    store.close();
  });

  it('leaves the stalled attempt running when the copy failed for good on its own worker (a smaller memory ceiling)', async () => {
    const t = await copiedAfterAStall();
    const { manager, held, w2 } = t;
    manager.onResult(w2, { subtaskId: held, attempt: 2, ok: false, outputs: [], itemErrors: [], retryable: false, result: undefined, error: { input: '', code: 'RESOURCE_EXHAUSTED', message: "subtask used 600 MiB, over the worker's memory ceiling --memory-limit-mb=512: killed" } });
    await originalDecides(t);
  });

  it('copies the stalled attempt again when the copy’s worker is lost', async () => {
    const { manager, registry, store, job, held, w2 } = await copiedAfterAStall();
    manager.onWorkerLost(w2, 'crashed');
    const third: CoordinatorMessage[] = [];
    secondWorker(registry, third, { id: 'w3' });
    manager.requestDispatch();
    await until(() => assignmentsIn(third).length === 1, 'another copy');
    expect(assignmentsIn(third).map((a) => [a.subtask_id, a.attempt])).toEqual([[held, 3]]);
    expect(manager.subtasksOf(job.id)[0]!.leases).toHaveLength(2);
    manager.close();
    store.close();
  });

  it('leaves the original to decide once its worker has reported on it again', async () => {
    const t = await copiedAfterAStall();
    const { manager, worker, held, w2 } = t;
    await sleep(5);
    manager.onProgress(worker, held, 1, 0.5, '');
    manager.onResult(w2, { subtaskId: held, attempt: 2, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'the worker lost its disk' } });
    await originalDecides(t);
  });
});

describe('a worker marked stalled', () => {
  it('is no longer the last choice once its heartbeat shows the attempt taken back from it has ended', async () => {
    const { manager, registry, worker, store, assigned } = setup(undefined, 1);
    const first = manager.newJob({ ...spec, passthrough: { subtasks: 1, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(first);
    await until(() => assigned().length === 1, 'the subtask on the first worker');
    const held = assigned()[0]!.subtask_id!;
    const copies: CoordinatorMessage[] = [];
    const w2 = secondWorker(registry, copies);
    manager.speculate(steadyNow() + 61_000);
    manager.onResult(w2, { subtaskId: held, attempt: 2, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    await until(() => manager.get(first.id).state === 'succeeded', 'the first job');
    // Told to cancel, the worker sends no result for the stalled attempt. While it still runs it,
    // the mark stays; once its heartbeat no longer lists it, the mark goes.
    manager.onHeartbeat(worker, [{ subtask_id: held, attempt: 1 }]);
    expect(worker.stalledSince).toBeGreaterThan(0);
    manager.onHeartbeat(worker, []);
    expect(worker.stalledSince).toBe(0);
    // The other worker stalls next: its copy goes to the first one.
    const second = manager.newJob({ ...spec, passthrough: { subtasks: 1, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(second);
    await until(() => assigned().length + assignmentsIn(copies).length === 3, 'the second job assigned');
    manager.speculate(steadyNow() + 61_000);
    expect(assigned().length + assignmentsIn(copies).length).toBe(4);
    manager.close();
    store.close();
  });
});

describe('the stall rule and the prefetch queue', () => {
  it("gives back what waits in a stalled worker's prefetch queue, to run on another worker", async () => {
    const { manager, registry, store, assigned, cancels } = setup(undefined, 1, 1);
    const job = manager.newJob({ ...spec, passthrough: { subtasks: 2, work_ms: 10, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 2, 'one subtask running and one queued behind it');
    const [running, queued] = assigned();
    const copies: CoordinatorMessage[] = [];
    const w2 = secondWorker(registry, copies);
    // A minute without a word on the running one: it is copied, and the queued one, which the
    // stuck worker would never start, goes back to the queue.
    manager.speculate(steadyNow() + 61_000);
    expect(assignmentsIn(copies).map((a) => a.subtask_id)).toEqual([running!.subtask_id]);
    expect(cancels().map((c) => c.subtask_id)).toEqual([queued!.subtask_id]);
    expect(manager.subtasksOf(job.id).find((s) => s.id === queued!.subtask_id)!.state).toBe('pending');
    // The copy's result frees the other worker, which takes it (the stalled one, free too, comes last).
    manager.onResult(w2, { subtaskId: running!.subtask_id!, attempt: 2, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    await until(() => assignmentsIn(copies).length === 2, 'the queued subtask on the other worker');
    expect(assignmentsIn(copies)[1]!.subtask_id).toBe(queued!.subtask_id);
    manager.close();
    store.close();
  });
});

describe('lease-ahead (prefetch)', () => {
  const job = (workMs: number) => ({ ...spec, passthrough: { subtasks: 6, work_ms: workMs, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;

  it('queues one subtask ahead on a worker that offers it when subtasks are expected to be short', async () => {
    const { manager, assigned, store } = setup(undefined, 1, 1);
    manager.accept(manager.newJob(job(10), 'anonymous'));
    await until(() => assigned().length === 2, 'a running and a queued subtask');
    await sleep(30);
    expect(assigned()).toHaveLength(2);
    manager.close();
    store.close();
  });

  it('queues nothing ahead for long subtasks until three measured run times say they are short', async () => {
    const { manager, assigned, finish, store } = setup(undefined, 1, 1);
    manager.accept(manager.newJob(job(60_000), 'anonymous'));
    for (let i = 0; i < 3; i++) {
      await until(() => assigned().length === i + 1, `subtask ${i + 1}`);
      await sleep(20);
      // One at a time: nothing queued while fewer than three have run.
      expect(assigned()).toHaveLength(i + 1);
      finish(assigned()[i]!.subtask_id!, 1, 20);
    }
    // Three ran for 20 ms each: the slot is refilled and one more is queued behind it.
    await until(() => assigned().length === 5, 'a refill and a queued subtask');
    // Their durations are the workers' run times, not the leases' age.
    expect(manager.subtasksOf(assigned()[0]!.job_id!).filter((s) => s.state === 'succeeded').map((s) => s.durationMs)).toEqual([20, 20, 20]);
    manager.close();
    store.close();
  });

  it('never queues ahead for a job once one of its subtasks ran long', async () => {
    const { manager, assigned, finish, store } = setup(undefined, 1, 1);
    manager.accept(manager.newJob(job(10), 'anonymous'));
    await until(() => assigned().length === 2, 'a running and a queued subtask');
    // The first one ran for 5 s after all: the estimate is overruled. The queued one now runs, and
    // nothing new is queued behind it.
    finish(assigned()[0]!.subtask_id!, 1, 5_000);
    await sleep(30);
    expect(assigned()).toHaveLength(2);
    finish(assigned()[1]!.subtask_id!, 1, 20);
    await until(() => assigned().length === 3, 'a refill');
    await sleep(30);
    expect(assigned()).toHaveLength(3);
    manager.close();
    store.close();
  });

  it('a subtask waiting in the prefetch queue is not a straggler: the rule counts from when a slot takes it', async () => {
    const { manager, registry, assigned, finish, store } = setup(undefined, 1, 1);
    manager.accept(manager.newJob({ ...job(10), passthrough: { subtasks: 8, work_ms: 10, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous'));
    await until(() => assigned().length === 2, 'a running and a queued subtask');
    for (let i = 0; i < 6; i++) {
      finish(assigned()[i]!.subtask_id!, 1, 20);
      await until(() => assigned().length === Math.min(8, i + 3), `refill ${i + 1}`);
    }
    // Six of eight done in 20 ms each; the seventh runs and the eighth waits behind it for 250 ms,
    // far past 1.5x the median (and the 200 ms floor), then takes the slot.
    await sleep(250);
    finish(assigned()[6]!.subtask_id!, 1, 20);
    const copies: CoordinatorMessage[] = [];
    secondWorker(registry, copies);
    manager.speculate();
    expect(copies).toEqual([]);
    // Still running 300 ms after a slot took it: that is a straggler, and the idle worker gets a copy.
    manager.speculate(steadyNow() + 300);
    expect(assignmentsIn(copies).map((a) => [a.subtask_id, a.attempt])).toEqual([[assigned()[7]!.subtask_id, 2]]);
    manager.close();
    store.close();
  });

  it('once nothing is left to dispatch, an idle worker takes over a subtask waiting behind a long run elsewhere; the holder is told to cancel it', async () => {
    const { manager, registry, worker, assigned, cancels, finish, store } = setup(undefined, 1, 1);
    // Two subtasks expected to run 500 ms each: one runs on worker-1, the other waits in its queue.
    const j = manager.newJob({ ...job(500), passthrough: { subtasks: 2, work_ms: 500, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(j);
    await until(() => assigned().length === 2, 'a running and a queued subtask');
    const [running, waiting] = assigned();
    const other: CoordinatorMessage[] = [];
    const w2 = secondWorker(registry, other);
    manager.requestDispatch();
    await until(() => assignmentsIn(other).length === 1, 'the queued subtask on the idle worker');
    expect(assignmentsIn(other).map((a) => [a.subtask_id, a.attempt])).toEqual([[waiting!.subtask_id, 2]]);
    expect(cancels().map((c) => [c.subtask_id, c.attempt])).toEqual([[waiting!.subtask_id, 1]]);
    expect([...worker.leases.keys()]).toEqual([running!.subtask_id]);
    expect(manager.queuedMoved).toBe(1);
    // Moved, not failed: no attempt used up, no retry event.
    const moved = manager.subtasksOf(j.id).find((s) => s.id === waiting!.subtask_id)!;
    expect([moved.state, moved.failures, moved.worker]).toEqual(['running', 0, 'worker-2']);
    expect(manager.eventsAfter(j.id, 0).some((e) => e.subtask?.id === waiting!.subtask_id && e.subtask?.state === 'SUBTASK_STATE_PENDING' && (e.subtask?.attempt ?? 0) > 0)).toBe(false);
    // A late result of the cancelled attempt is fenced (known for one the coordinator cancelled:
    // not logged as trouble); both real attempts finish the job.
    expect(worker.cancelled.get(waiting!.subtask_id!)).toBe(1);
    finish(waiting!.subtask_id!, 1, 10);
    expect(worker.cancelled.has(waiting!.subtask_id!)).toBe(false);
    finish(running!.subtask_id!, 1, 500);
    manager.onResult(w2, { subtaskId: waiting!.subtask_id!, attempt: 2, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined, runMs: 500 });
    await until(() => manager.get(j.id).state === 'succeeded', 'the job to succeed');
    manager.close();
    store.close();
  });

  it('a subtask waiting behind one about to end stays where it is', async () => {
    const { manager, registry, assigned, cancels, finish, store } = setup(undefined, 1, 1);
    const j = manager.newJob({ ...job(500), passthrough: { subtasks: 3, work_ms: 500, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(j);
    await until(() => assigned().length === 2, 'a running and a queued subtask');
    // The first took 5 ms: the next one, now running, is expected to end within a round trip, so
    // the third, queued behind it, is not worth moving.
    finish(assigned()[0]!.subtask_id!, 1, 5);
    await until(() => assigned().length === 3, 'the third subtask queued');
    const other: CoordinatorMessage[] = [];
    secondWorker(registry, other);
    manager.requestDispatch();
    await sleep(50);
    expect(assignmentsIn(other)).toEqual([]);
    expect(cancels()).toEqual([]);
    expect(manager.queuedMoved).toBe(0);
    manager.close();
    store.close();
  });

  it('a draining worker gives back the subtask waiting in its queue at once, without a failed attempt; the running one finishes there', async () => {
    const { manager, registry, worker, assigned, cancels, finish, store } = setup(undefined, 1, 1);
    manager.accept(manager.newJob(job(10), 'anonymous'));
    await until(() => assigned().length === 2, 'a running and a queued subtask');
    const [running, waiting] = assigned();
    manager.onWorkerDraining(worker);
    expect(cancels().map((c) => [c.subtask_id, c.attempt])).toEqual([[waiting!.subtask_id, 1]]);
    const back = manager.subtasksOf(waiting!.job_id!).find((s) => s.id === waiting!.subtask_id)!;
    expect([back.state, back.failures]).toEqual(['pending', 0]);

    // The waiting subtask goes to the next free slot elsewhere, as a new attempt; nothing more to the draining one.
    const other: CoordinatorMessage[] = [];
    secondWorker(registry, other);
    finish(running!.subtask_id!, 1, 10);
    await until(() => assignmentsIn(other).length === 1, 'the second worker to take the subtask given back');
    expect(assignmentsIn(other).map((a) => [a.subtask_id, a.attempt])).toEqual([[waiting!.subtask_id, 2]]);
    await sleep(30);
    expect(assigned()).toHaveLength(2);
    manager.close();
    store.close();
  });

  it('a quarantined worker gives back what still waits in its queue once its freed slot has taken the next one', async () => {
    // One slot, two queue places: one runs, two wait.
    const { manager, registry, worker, assigned, cancels, store } = setup(undefined, 1, 2, 1);
    const other: CoordinatorMessage[] = [];
    manager.accept(manager.newJob(job(10), 'anonymous'));
    await until(() => assigned().length === 3, 'a running and two queued subtasks');
    // Another active worker, so that this one may be quarantined.
    secondWorker(registry, other);
    const [first, next, waiting] = assigned();
    // One retryable failure is the limit here: quarantined. The worker has already started the
    // next subtask in the freed slot; the one behind it is taken back.
    manager.onResult(worker, { subtaskId: first!.subtask_id!, attempt: 1, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'disk full' } });
    expect(worker.state).toBe('quarantined');
    expect(cancels().map((c) => [c.subtask_id, c.attempt])).toEqual([[waiting!.subtask_id, 1]]);
    const subtasks = manager.subtasksOf(first!.job_id!);
    const byId = (id: string | undefined) => subtasks.find((s) => s.id === id)!;
    expect([byId(first!.subtask_id).failures, byId(next!.subtask_id).state, byId(waiting!.subtask_id).failures]).toEqual([1, 'running', 0]);
    manager.close();
    store.close();
  });
});

describe('publishing into a shared output folder', () => {
  it('an output moved into place after its job was cancelled is taken back out; one published before stays', async () => {
    const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'tessera-pubcancel-')));
    dirs.push(dir);
    const out = path.join(dir, 'shared', 'out');
    mkdirSync(out, { recursive: true });
    // One subtask, then a merge that writes two outputs, published one after the other.
    kinds.set('passthrough', {
      ...original,
      writesFiles: true,
      plan: async () => ({ subtasks: [plan('one')] }),
      merge: async (ctx) => {
        for (const n of ['first.bin', 'second.bin']) writeFileSync(path.join(ctx.outputDir, n), n);
        return { outputs: ['first.bin', 'second.bin'].map((n) => ({ name: n, path: path.join(ctx.outputDir, n), source: '' })) };
      },
    });
    const sharedRoots = await SharedRoots.create([], path.join(dir, 'data'), [path.join(dir, 'shared')]);
    const { manager, assigned, finish, store } = setup(undefined, 1, 0, 0, sharedRoots);
    const job = manager.newJob({ ...spec, shared_output_dir: out } as JobSpec__Output, 'anonymous');
    // The job is cancelled the moment its second output has moved into the folder (the real move).
    afterMove.hook = (dest) => {
      if (path.basename(dest) === 'second.bin') manager.cancel(job.id);
    };
    manager.accept(job);
    await until(() => assigned().length === 1, 'the subtask');
    finish(assigned()[0]!.subtask_id!, 1);
    await until(() => job.state === 'cancelled' && !readdirSync(out).includes('second.bin'), 'the cancel and the take-back');
    expect(job.outputs.map((o) => o.name)).toEqual(['first.bin']);
    expect(readdirSync(out)).toEqual(['first.bin']);
    manager.close();
    store.close();
  });
});

describe('an output a worker wrote into a shared folder', () => {
  it('is published only if it is still the file the coordinator checked: one put at its temporary name since is refused and removed', async () => {
    const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'tessera-written-')));
    dirs.push(dir);
    const out = path.join(dir, 'shared', 'out');
    mkdirSync(out, { recursive: true });
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [{ ...plan('one'), items: ['out.bin'] }] }), merge: async () => ({ outputs: [] }) });
    const sharedRoots = await SharedRoots.create([], path.join(dir, 'data'), [path.join(dir, 'shared')]);
    const { manager, worker, assigned, store } = setup(undefined, 1, 0, 0, sharedRoots);
    const job = manager.newJob({ ...spec, shared_output_dir: out } as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 1, 'the subtask');
    const a = assigned()[0]!;
    expect(a.shared_output_dir).toBe(out);
    const bytes = Buffer.from('what the worker wrote');
    const temp = sharedOutputTemp(out, a.job_id!, a.subtask_id!, a.shared_output_token!, 'out.bin');
    writeFileSync(temp, bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const s = (manager as unknown as { subtasks: Map<string, SubtaskRecord> }).subtasks.get(a.subtask_id!)!;
    const got = await manager.workerWrittenOutput(worker, s, a.attempt!, 'out.bin', { name: 'out.bin', size: String(bytes.length), sha256: sha, source: 'out.bin', shared_path: temp } as OutputRef__Output);
    // Someone who may write in the folder replaces the checked file before it is published.
    writeFileSync(path.join(out, 'other'), 'something else, of its own size');
    renameSync(path.join(out, 'other'), temp);
    manager.onResult(worker, { subtaskId: a.subtask_id!, attempt: a.attempt!, ok: true, outputs: [got], itemErrors: [], retryable: false, result: undefined });
    await until(() => TERMINAL_JOB_STATES.has(job.state), 'the end of the job');
    expect(job.outputs.map((o) => o.name)).not.toContain('out.bin');
    expect(JSON.stringify(job.errors)).toMatch(/was replaced after the coordinator checked it/);
    expect(readdirSync(out)).toEqual([]);
    manager.close();
    store.close();
  });
});

describe("outputs a worker wrote into the spool itself", () => {
  it("takes its own spooled input linked back while another name of that input goes (a stale attempt's, discarded meanwhile)", async () => {
    const { manager, worker, assigned, store, dir } = setup();
    // Workers on this machine write into the spool (as with a coordinator's local reads on).
    await (manager as unknown as { spool: Spool }).spool.offerLocalReads();
    const bytes = Buffer.from('the bytes the coordinator received');
    const inputPath = path.join(dir, 'spool', 'in.bin');
    mkdirSync(path.dirname(inputPath), { recursive: true });
    writeFileSync(inputPath, bytes);
    const input: SpoolFile = { name: 'in.bin', path: inputPath, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [{ ...plan('one'), inputs: [input] }] }), merge: async () => ({ outputs: [] }) });
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 1, 'the subtask');
    const a = assigned()[0]!;
    // The worker hands the input back by a link at its temporary name; an earlier attempt's link
    // to the same input is removed the moment the coordinator has moved this one into place.
    const temp = sharedOutputTemp(a.shared_output_dir!, a.job_id!, a.subtask_id!, a.shared_output_token!, 'in.bin');
    mkdirSync(path.dirname(temp), { recursive: true });
    linkSync(inputPath, temp);
    const stale = path.join(dir, 'stale-attempt-link');
    linkSync(inputPath, stale);
    afterRename.hook = () => rmSync(stale);
    const s = (manager as unknown as { subtasks: Map<string, SubtaskRecord> }).subtasks.get(a.subtask_id!)!;
    const got = await manager.workerWrittenOutput(worker, s, a.attempt!, 'in.bin', { name: 'in.bin', size: String(bytes.length), sha256: input.sha256, source: 'in.bin', shared_path: temp } as OutputRef__Output);
    expect(got).toMatchObject({ name: 'in.bin', size: bytes.length, sha256: input.sha256 });
    expect(readFileSync(got.path)).toEqual(bytes);
    manager.close();
    store.close();
  });
});

describe('shared inputs checked again before a merge', () => {
  it("only where the kind's merge reads them: a file changed after its subtask ran fails a merge that reads it, not one that does not", async () => {
    const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'tessera-mergecheck-')));
    dirs.push(dir);
    mkdirSync(path.join(dir, 'shared'));
    const file = path.join(dir, 'shared', 'in.bin');
    const sharedRoots = await SharedRoots.create([path.join(dir, 'shared')], path.join(dir, 'data'));
    const outcome = async (reads: boolean | undefined): Promise<{ state: string; errors: string[] }> => {
      writeFileSync(file, 'as submitted');
      kinds.set('passthrough', {
        ...original,
        plan: async () => ({ subtasks: [plan('one')] }),
        merge: async () => ({ outputs: [] }),
        ...(reads === undefined ? { mergeReadsInputs: undefined } : { mergeReadsInputs: () => reads }),
      });
      const { manager, assigned, finish, store } = setup(undefined, 1, 0, 0, sharedRoots);
      const job = manager.newJob(spec, 'anonymous');
      job.inputs.push(await sharedRoots.resolve('in.bin', file));
      manager.accept(job);
      await until(() => assigned().length === 1, 'the subtask');
      // Rewritten once its subtask has run, before the merge.
      writeFileSync(file, 'rewritten since');
      finish(assigned()[0]!.subtask_id!, 1);
      await until(() => job.state === 'succeeded' || job.state === 'failed', 'the end of the job');
      manager.close();
      store.close();
      return { state: job.state, errors: job.errors.map((e) => e.message) };
    };
    // By default a merge is taken to read the inputs.
    for (const reads of [undefined, true]) {
      const o = await outcome(reads);
      expect(o.state).toBe('failed');
      expect(o.errors.join('; ')).toMatch(/input in\.bin: the shared file .* changed after the job was submitted/);
    }
    expect(await outcome(false)).toEqual({ state: 'succeeded', errors: [] });
  });
});

describe("the coordinator's own trouble", () => {
  it('retries a result its full disk could not take without using up an attempt, ever later, for as long as TESSERA_FULL_DISK_WAIT_MS', async () => {
    // 200 ms, 400 ms, ... rather than the default 2 s, 4 s, ...
    vi.stubEnv('TESSERA_FULL_DISK_RETRY_MS', '200');
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
    const { manager, worker, assigned, store } = setup();
    // One attempt allowed: a counted failure would fail the subtask at once.
    const job = manager.newJob({ ...spec, max_attempts: 1 } as JobSpec__Output, 'anonymous');
    manager.accept(job);
    const full = { input: '', code: 'RESOURCE_EXHAUSTED', message: "the coordinator's disk is full" };
    const at: number[] = [];
    for (let n = 1; n <= 3; n++) {
      await until(() => assigned().length === n, `attempt ${n}`, 15_000);
      at.push(Date.now());
      manager.onResult(worker, { subtaskId: assigned()[n - 1]!.subtask_id!, attempt: n, ok: false, outputs: [], itemErrors: [], error: full, retryable: true, result: undefined, coordinatorFault: true });
    }
    // Waited out as a merge is: 200 ms, then 400 ms, ...; more such failures than max_attempts (1), none counted.
    await until(() => assigned().length === 4, 'attempt 4', 20_000);
    at.push(Date.now());
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(190);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(390);
    expect(at[3]! - at[2]!).toBeGreaterThanOrEqual(790);
    expect(job.state).not.toBe('failed');
    manager.onResult(worker, { subtaskId: assigned()[3]!.subtask_id!, attempt: 4, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    await until(() => job.state === 'succeeded', 'the job to succeed once there is room');
    // Without the coordinator's fault, one failure is enough.
    const again = manager.newJob({ ...spec, max_attempts: 1 } as JobSpec__Output, 'anonymous');
    manager.accept(again);
    await until(() => assigned().length === 5, 'the next job');
    manager.onResult(worker, { subtaskId: assigned()[4]!.subtask_id!, attempt: 1, ok: false, outputs: [], itemErrors: [], error: { ...full, code: 'UNAVAILABLE' }, retryable: true, result: undefined });
    await until(() => again.state === 'failed', 'the next job to fail');
    expect(assigned()).toHaveLength(5);
    manager.close();
    store.close();
  });

  it('runs a merge its full disk stopped again, each into a folder of its own, and the job succeeds once there is room', async () => {
    vi.stubEnv('TESSERA_FULL_DISK_RETRY_MS', '200');
    let merges = 0;
    const dirsUsed: string[] = [];
    kinds.set('passthrough', {
      ...original,
      writesFiles: true,
      plan: async () => ({ subtasks: [plan('one')] }),
      merge: async (ctx) => {
        merges++;
        dirsUsed.push(ctx.outputDir);
        const file = path.join(ctx.outputDir, 'merged.bin');
        writeFileSync(file, `merge ${merges}`);
        if (merges === 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        return { outputs: [{ name: 'merged.bin', path: file, source: '' }] };
      },
    });
    const { manager, assigned, finish, store, dir } = setup();
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 1, 'the subtask');
    finish(assigned()[0]!.subtask_id!, 1);
    await until(() => merges === 1, 'the first merge');
    await sleep(20);
    expect(job.state).toBe('running');
    expect(job.message).toMatch(/merging phase 0 waits for the coordinator: .*no space left/);
    await until(() => job.state === 'succeeded', 'the second merge');
    expect(merges).toBe(2);
    // Merges never write where outputs are published: the output was moved into place from the second one's folder.
    const out = path.join(dir, 'spool', 'jobs', job.id, 'out');
    expect(new Set(dirsUsed).size).toBe(2);
    expect(dirsUsed.some((d) => d === out)).toBe(false);
    expect(job.outputs.map((o) => [o.name, o.path])).toEqual([['merged.bin', path.join(out, 'merged.bin')]]);
    expect(readFileSync(path.join(out, 'merged.bin'), 'utf8')).toBe('merge 2');
    manager.close();
    store.close();
  });
});

describe('overdue leases', () => {
  it('takes back a lease running well past its timeout, cancels it on the worker and runs the subtask again', async () => {
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('stuck')] }), merge: async () => ({ outputs: [] }) });
    const { manager, assigned, cancels, finish, store } = setup();
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 1, 'the subtask');
    const id = assigned()[0]!.subtask_id!;
    // Within its timeout (60 s here) and the grace after it, nothing happens.
    expect(manager.expireOverdue(steadyNow() + 60_000)).toBe(0);
    expect(cancels()).toEqual([]);
    expect(manager.expireOverdue(steadyNow() + 60_000 + 31_000)).toBe(1);
    expect(cancels()).toMatchObject([{ subtask_id: id, attempt: 1, reason: expect.stringContaining('timed out') }]);
    await until(() => assigned().length === 2, 'the second attempt');
    expect(assigned()[1]).toMatchObject({ subtask_id: id, attempt: 2 });
    // A late result of the first attempt is refused; the second one counts.
    finish(id, 1);
    expect(job.state).toBe('running');
    finish(id, 2);
    await until(() => job.state === 'succeeded', 'the job to finish');
    manager.close();
    store.close();
  });
});

describe('timeouts', () => {
  it('sends no timeout longer than a timer can keep (2^31 - 1 ms): a longer one would fire at once on the worker', async () => {
    // A kind's own timeout may be long (a video's audio track: 10 s per second of the source).
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [{ ...plan('long'), timeoutMs: 3_000_000_000 }] }), merge: async () => ({ outputs: [] }) });
    const { manager, assigned, store } = setup();
    manager.accept(manager.newJob(spec, 'anonymous'));
    await until(() => assigned().length === 1, 'the subtask');
    expect(assigned()[0]!.timeout_ms).toBe(2 ** 31 - 1);
    manager.close();
    store.close();
  });
});

describe('split after a failure', () => {
  it('runs a subtask of several inputs that failed without naming one again one input at a time: only the culprit fails', async () => {
    const three: SubtaskPlan = { label: 'a, b, c', inputs: [], plan: { label: 'abc' }, weight: 3, items: ['a', 'b', 'c'] };
    kinds.set('passthrough', {
      ...original,
      plan: async () => ({ subtasks: [three] }),
      split: (s) => s.items.map((item) => ({ label: item, inputs: [], plan: { label: item }, weight: 1, items: [item] })),
      merge: async () => ({ outputs: [] }),
    });
    const { manager, worker, assigned, finish, store } = setup();
    const job = manager.newJob({ ...spec, max_attempts: 1 } as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 1, 'the batch');
    // The processor went past its memory ceiling: not retryable, and no input named.
    const crash = { input: '', code: 'RESOURCE_EXHAUSTED', message: 'processor went past its memory ceiling' };
    manager.onResult(worker, { subtaskId: assigned()[0]!.subtask_id!, attempt: 1, ok: false, outputs: [], itemErrors: [], error: crash, retryable: false, result: undefined });
    await until(() => assigned().length === 4, 'one subtask per input');
    const parts = assigned().slice(1);
    const labelOf = (id: string) => manager.subtasksOf(job.id).find((s) => s.id === id)!.items;
    expect(parts.map((a) => labelOf(a.subtask_id!))).toEqual(expect.arrayContaining([['a'], ['b'], ['c']]));
    for (const a of parts) {
      if (labelOf(a.subtask_id!)[0] === 'b') manager.onResult(worker, { subtaskId: a.subtask_id!, attempt: 1, ok: false, outputs: [], itemErrors: [], error: crash, retryable: false, result: undefined });
      else finish(a.subtask_id!, 1);
    }
    await until(() => job.state !== 'running', 'the job to end');
    // Only b failed: a and c are not blamed for the batch's failure.
    expect(job.errors.map((e) => e.input)).toEqual(['b']);
    const batch = manager.subtasksOf(job.id).find((s) => s.items.length === 3)!;
    expect(batch).toMatchObject({ state: 'failed', replacedBy: 3 });
    manager.close();
    store.close();
  });
});

describe('retryBackoffMs', () => {
  it('doubles from the base, with jitter between half and all of it', () => {
    expect(retryBackoffMs(500, 1, () => 1)).toBe(500);
    expect(retryBackoffMs(500, 1, () => 0)).toBe(250);
    expect(retryBackoffMs(500, 3, () => 1)).toBe(2000);
    expect(retryBackoffMs(500, 3, () => 0.5)).toBe(1500);
  });

  it('never waits more than 30 s, however many attempts failed', () => {
    // Uncapped, the 19th retry of a 500 ms base would wait 2^18 x 500 ms: 36 hours.
    for (const tries of [7, 8, 12, 19, 40]) {
      expect(retryBackoffMs(500, tries, () => 1)).toBe(30_000);
      expect(retryBackoffMs(500, tries, () => 0)).toBe(15_000);
    }
  });
});

describe("a submission's checks", () => {
  it("count each owner's unfinished jobs, and find a kept job by its request id until it is removed", async () => {
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
    const { manager, assigned, finish, store } = setup();
    const a = manager.newJob({ ...spec, request_id: 'r-1' }, 'alice');
    const b = manager.newJob(spec, 'alice');
    const c = manager.newJob({ ...spec, request_id: 'r-1' }, 'bob');
    await Promise.all([a, b, c].map((j) => manager.accept(j)));
    expect([manager.unfinishedCount('alice'), manager.unfinishedCount('bob'), manager.unfinishedCount('carol')]).toEqual([2, 1, 0]);
    expect(manager.findByRequest('alice', 'r-1')).toBe(a);
    expect(manager.findByRequest('bob', 'r-1')).toBe(c);
    expect(manager.findByRequest('alice', 'r-2')).toBeUndefined();

    manager.cancel(b.id);
    expect(manager.unfinishedCount('alice')).toBe(1);
    await until(() => assigned().some((x) => x.job_id === a.id), "alice's subtask");
    finish(assigned().find((x) => x.job_id === a.id)!.subtask_id!, 1);
    await until(() => a.state === 'succeeded', "alice's job to succeed");
    expect(manager.unfinishedCount('alice')).toBe(0);
    // Finished, it is still kept: a repeated submission is answered with it.
    expect(manager.findByRequest('alice', 'r-1')).toBe(a);

    // Past its retention it is gone, and its request id may make a new job.
    await sleep(5);
    expect(await manager.removeExpired(1)).toBe(2);
    expect(manager.findByRequest('alice', 'r-1')).toBeUndefined();
    expect(manager.findByRequest('bob', 'r-1')).toBe(c);
    expect(manager.unfinishedCount('bob')).toBe(1);
    manager.close();
    store.close();
  });
});

describe('spool folders', () => {
  it('a job of no-op subtasks makes no folders; one whose kind writes files gets its work folder, and both end without them', async () => {
    const { manager, assigned, finish, store, dir } = setup();
    const jobDir = (id: string): string => path.join(dir, 'spool', 'jobs', id);
    const list = (id: string): string[] => {
      try {
        return readdirSync(jobDir(id)).sort();
      } catch {
        return [];
      }
    };
    const noop = manager.newJob({ ...spec, passthrough: { subtasks: 2, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output, 'anonymous');
    await manager.accept(noop);
    await until(() => assigned().filter((x) => x.job_id === noop.id).length === 2, 'the no-op subtasks');
    // Workers on this machine are not offered the spool here (no local reads): nothing to write into.
    expect(assigned()[0]!.shared_output_dir).toBe('');
    expect(list(noop.id)).toEqual([]);
    for (const x of assigned()) finish(x.subtask_id!, 1);
    await until(() => noop.state === 'succeeded', 'the no-op job');
    expect(list(noop.id)).toEqual([]);

    let workDir = '';
    kinds.set('passthrough', { ...original, writesFiles: true, plan: async (ctx) => ((workDir = ctx.workDir), { subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
    const writes = manager.newJob(spec, 'anonymous');
    await manager.accept(writes);
    await until(() => assigned().some((x) => x.job_id === writes.id), 'the subtask of the kind that writes');
    expect(workDir).toBe(path.join(jobDir(writes.id), 'work'));
    expect(list(writes.id)).toEqual(['work']);
    finish(assigned().find((x) => x.job_id === writes.id)!.subtask_id!, 1);
    await until(() => writes.state === 'succeeded', 'the job of the kind that writes');
    // Its intermediates go once its end is on disk.
    for (let i = 0; i < 100 && list(writes.id).length > 0; i++) await sleep(20);
    expect(list(writes.id)).toEqual([]);
    manager.close();
    store.close();
  });
});

describe('errors', () => {
  it("a merger that reports a subtask's failure again, without its input, leaves one error naming the input", async () => {
    // As the video, thumbnails and audio mergers did: the failed subtask's error pushed as it came.
    kinds.set('passthrough', {
      ...original,
      plan: async () => ({ subtasks: [{ ...plan('segment 1'), items: ['in.mp4'] }, { ...plan('segment 2'), items: ['in.mp4'] }] }),
      merge: async (ctx) => ({ outputs: [], errors: ctx.results.flatMap((r) => (!r.ok && r.error ? [r.error] : [])) }),
    });
    const { manager, worker, assigned, finish, store } = setup(undefined, 2);
    const job = manager.newJob({ ...spec, max_attempts: 1 } as unknown as JobSpec__Output, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length === 2, 'both subtasks running');
    const [a, b] = assigned();
    finish(a!.subtask_id!, 1, 10);
    manager.onResult(worker, { subtaskId: b!.subtask_id!, attempt: 1, ok: false, outputs: [], itemErrors: [], retryable: false, result: undefined, error: { input: '', code: 'RESOURCE_EXHAUSTED', message: 'the disk is full' } });
    await until(() => manager.get(job.id).state === 'failed', 'the job to fail');
    expect(manager.get(job.id).errors).toEqual([{ input: 'in.mp4', code: 'RESOURCE_EXHAUSTED', message: 'the disk is full' }]);
    manager.close();
    store.close();
  });
});

describe('a failure, with copies, setbacks and second opinions', () => {
  const one = (): CoordinatorKind => ({ ...original, plan: async () => ({ subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
  const fail = (retryable: boolean, code = 'UNAVAILABLE', extra: Record<string, unknown> = {}) => ({ ok: false, outputs: [], itemErrors: [], retryable, result: undefined, error: { input: '', code, message: `${code} here` }, ...extra });
  const bad = (input: string) => ({ input, code: 'INVALID_ARGUMENT', message: `${input}: cannot decode it` });
  /** A job of one subtask, max_attempts 1, whose first attempt the coordinator's full disk refused: attempt 2 runs. */
  async function afterAFullDiskSetback() {
    vi.stubEnv('TESSERA_FULL_DISK_RETRY_MS', '20');
    kinds.set('passthrough', one());
    const t = setup(undefined, 1);
    const job = t.manager.newJob({ ...spec, max_attempts: 1 } as JobSpec__Output, 'anonymous');
    t.manager.accept(job);
    await until(() => t.assigned().length === 1, 'attempt 1');
    const id = t.assigned()[0]!.subtask_id!;
    t.manager.onResult(t.worker, { subtaskId: id, attempt: 1, ...fail(true, 'RESOURCE_EXHAUSTED', { coordinatorFault: true }) });
    await until(() => t.assigned().length === 2, 'attempt 2', 5000);
    return { ...t, job, id };
  }

  it('retries at once on another worker when the original fails after its copy failed: not on the worker it just failed on', async () => {
    const { manager, worker, assigned, store, job, straggler, other, w2, copy } = await aStragglerCopied();
    // The copy fails (retryable): the original runs on.
    manager.onResult(w2, { subtaskId: copy.subtask_id!, attempt: copy.attempt!, ...fail(true) });
    // Then the original fails on worker-1 (retryable).
    manager.onResult(worker, { subtaskId: straggler!.subtask_id!, attempt: 1, ...fail(true) });
    const s = manager.subtasksOf(job.id).find((x) => x.id === straggler!.subtask_id)!;
    await sleep(50);
    const attempts = [...assigned().map((x) => [x.subtask_id, x.attempt, 'worker-1']), ...assignmentsIn(other).map((x) => [x.subtask_id, x.attempt, 'worker-2'])].filter((x) => x[0] === s.id);
    // Attempt 3 goes at once to worker-2, which has a free slot: it failed on worker-1 last.
    expect(attempts.find((x) => x[1] === 3)?.[2]).toBe('worker-2');
    manager.close();
    store.close();
  });

  it("waits out the coordinator's full disk on every worker, also after an earlier failure sent a retry elsewhere at once", async () => {
    vi.stubEnv('TESSERA_FULL_DISK_RETRY_MS', '2000');
    kinds.set('passthrough', one());
    const { manager, registry, worker, assigned, store } = setup(undefined, 1);
    const other: CoordinatorMessage[] = [];
    const w2 = secondWorker(registry, other);
    const job = manager.newJob(spec, 'anonymous');
    manager.accept(job);
    await until(() => assigned().length + assignmentsIn(other).length === 1, 'attempt 1');
    const [first, second, firstSent, secondSent] = assigned().length === 1 ? [worker, w2, assigned, () => assignmentsIn(other)] as const : [w2, worker, () => assignmentsIn(other), assigned] as const;
    const id = firstSent()[0]!.subtask_id!;
    // A counted failure on the first worker: the retry goes at once to the second.
    manager.onResult(first, { subtaskId: id, attempt: 1, ...fail(true) });
    await until(() => secondSent().length === 1, 'attempt 2 on the other worker');
    // The coordinator's disk refuses attempt 2's outputs: waited out, 2 s at least.
    const t0 = Date.now();
    manager.onResult(second, { subtaskId: id, attempt: 2, ...fail(true, 'RESOURCE_EXHAUSTED', { coordinatorFault: true }) });
    await sleep(300);
    const attempt3 = assigned().length + assignmentsIn(other).length === 3;
    expect({ attempt3, waitedMs: Date.now() - t0 }).toMatchObject({ attempt3: false });
    manager.close();
    store.close();
  });

  it('asks a second opinion after free retries too (max_attempts 1, one full-disk setback): one worker\'s word does not fail the input', async () => {
    const { manager, registry, worker, store, job, id } = await afterAFullDiskSetback();
    const other: CoordinatorMessage[] = [];
    secondWorker(registry, other);
    // worker-1 calls the input bad; worker-2 is there to ask.
    manager.onResult(worker, { subtaskId: id, attempt: 2, ok: false, outputs: [], itemErrors: [], retryable: false, result: undefined, error: bad('one') });
    const s = manager.subtasksOf(job.id)[0]!;
    expect({ state: s.state, failures: s.failures }).toEqual({ state: 'pending', failures: 0 });
    await until(() => assignmentsIn(other).length === 1, 'the second opinion');
    manager.close();
    store.close();
  });

  it('keeps a drain a free retry after a full-disk setback (max_attempts 1): each kind of setback has its own limit', async () => {
    const { manager, worker, store, job } = await afterAFullDiskSetback();
    // The worker drains and its grace ends with attempt 2 still running.
    worker.drainRequested = true;
    manager.onWorkerDraining(worker);
    manager.onWorkerLost(worker, 'grace over');
    const s = manager.subtasksOf(job.id)[0]!;
    expect({ state: s.state, failures: s.failures }).toEqual({ state: 'pending', failures: 0 });
    // Both retries counted as free, by why (tessera_subtask_free_retries_total; review OPS13).
    expect(Object.fromEntries(manager.freeRetries)).toEqual({ 'passthrough\ndisk_full': 1, 'passthrough\ndrain': 1 });
    manager.close();
    store.close();
  });

});

describe('jobs that leave, and jobs that come back', () => {
  const noop = (subtasks: number) => ({ ...spec, passthrough: { subtasks, work_ms: 0, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;

  it('ends a watch with NOT_FOUND when retention removes the job between two pages of its replay', async () => {
    const { manager, store } = setup();
    const job = manager.newJob(noop(0), 'anonymous');
    await manager.accept(job);
    // A finished job with more events than one page of the store (10,000).
    for (let i = 0; i < 10_050; i++) {
      manager.events.log(job, `line ${i}`);
      if (i % 1000 === 999) store.flush();
    }
    manager.cancel(job.id);
    store.flush();
    const stream = watch(manager, job.id, 0, new AbortController().signal);
    expect((await stream.next()).value!.length).toBeGreaterThan(0);
    expect(await manager.removeExpired(1, Date.now() + 10)).toBe(1);
    const rest = (async () => {
      for await (const _run of stream);
      return 'ended';
    })().catch((err: unknown) => err);
    const outcome = await Promise.race([rest, sleep(1500).then(() => 'still waiting')]);
    expect(outcome).toMatchObject({ code: 5, message: expect.stringMatching(/was removed while it was watched/) });
    manager.close();
    store.close();
  });

  it("goes on after a restart from the job's progress: the 'coordinator restarted' event does not say 0", async () => {
    const first = setup();
    const job = first.manager.newJob(noop(4), 'anonymous');
    void first.manager.accept(job);
    await until(() => first.assigned().length === 4, 'four subtasks running');
    first.finish(first.assigned()[0]!.subtask_id!, 1);
    await sleep(30);
    const before = Number(first.manager.eventsAfter(job.id, 0).at(-1)!.progress);
    expect(before).toBeGreaterThan(0.2);
    first.manager.close();
    first.store.close();
    const second = setup(first.dir);
    expect(second.manager.resume()).toBe(1);
    const resumed = second.manager.eventsAfter(job.id, 0).find((e) => e.message === 'coordinator restarted: resuming')!;
    expect(Number(resumed.progress)).toBeGreaterThanOrEqual(before);
    await sleep(50);
    second.manager.close();
    second.store.close();
  });

  it('does not bring back at the next start a submission that failed while the store could not write (a full disk)', async () => {
    kinds.set('passthrough', receivingKind([]));
    const first = setup();
    const job = first.manager.newJob(noop(0), 'anonymous');
    job.inputs = [{ name: 'a', path: '/nonexistent/a', size: 1, sha256: '' }];
    const receiving = await first.manager.acceptReceiving(job);
    await sleep(50);
    first.store.flush();
    // The disk fills: the store may not grow its file (as in store.test.ts), and the job's end needs room.
    const db = (first.store as unknown as { db: Database.Database }).db;
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    job.errors.push(...Array.from({ length: 3000 }, (_, i) => ({ input: `x${i}`, code: 'INVALID_ARGUMENT', message: 'y'.repeat(50) })));
    await receiving.discard(new Error('the client went away'));
    expect(() => first.manager.get(job.id)).toThrow(/not found/);
    // Room again: the store's own retry writes what waited, and the job is deleted after it.
    db.pragma('max_page_count = 1073741823');
    await sleep(1500);
    first.manager.close();
    first.store.close();
    const second = setup(first.dir);
    second.manager.resume();
    expect(() => second.manager.get(job.id)).toThrow(/not found/);
    second.manager.close();
    second.store.close();
  });

  it("tells the dashboard's browsers of a job retention removed, so that its row goes", async () => {
    const { manager, store } = setup();
    const hub = new LiveHub(manager);
    const server = createServer((_req, res) => hub.attach(res, ''));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const controller = new AbortController();
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, { signal: controller.signal });
      const reader = res.body!.getReader();
      let text = '';
      const read = async (until: (t: string) => boolean): Promise<void> => {
        while (!until(text)) text += new TextDecoder().decode((await reader.read()).value);
      };
      await read((t) => t.includes('event: snapshot'));
      expect(text).toMatch(/"jobLimit":100/);
      const job = manager.newJob(noop(0), 'anonymous');
      await manager.accept(job);
      manager.cancel(job.id);
      store.flush();
      expect(await manager.removeExpired(1, Date.now() + 10)).toBe(1);
      await read((t) => t.includes('event: removed'));
      expect(text).toContain(`event: removed\ndata: {"jobs":["${job.id}"]}`);
    } finally {
      controller.abort();
      hub.close();
      server.close();
      manager.close();
      store.close();
    }
  });

  it('removes each expired job once when two retention sweeps overlap (one takes longer than the interval)', async () => {
    const { manager, store } = setup();
    for (let i = 0; i < 50; i++) {
      const job = manager.newJob(noop(0), 'anonymous');
      await manager.accept(job);
      manager.cancel(job.id);
    }
    store.flush();
    const at = Date.now() + 10;
    const [a, b] = await Promise.all([manager.removeExpired(1, at), manager.removeExpired(1, at)]);
    expect(a + b).toBe(50);
    manager.close();
    store.close();
  });
});
