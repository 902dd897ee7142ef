/**
 * A job cancelled while one of its outputs is being moved into its shared output folder: the
 * output is not listed (the job's record is final), so it must not stay in the folder either.
 * The move is the real one; the test only cancels the job the moment it has happened.
 */
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CoordinatorKind } from '../shared/job-kind.js';
import { createLogger } from '../shared/logger.js';
import type { CoordinatorMessage } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { JobManager } from './job-manager.js';
import { coordinatorKinds } from './kinds/index.js';
import { SharedRoots } from './shared-inputs.js';
import { Spool } from './spool.js';
import { JobStore } from './store.js';
import { WorkerRegistry, newWorkerSession, type WorkerSession } from './worker-registry.js';

/** Called right after each real move into place. */
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

const kinds = coordinatorKinds as Map<string, CoordinatorKind>;
const original = kinds.get('passthrough')!;
const dirs: string[] = [];
afterEach(() => {
  kinds.set('passthrough', original);
  afterMove.hook = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
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
      plan: async () => ({ subtasks: [{ label: 'one', inputs: [], plan: {}, weight: 1, items: [] }] }),
      merge: async (ctx) => {
        for (const n of ['first.bin', 'second.bin']) writeFileSync(path.join(ctx.outputDir, n), n);
        return { outputs: ['first.bin', 'second.bin'].map((n) => ({ name: n, path: path.join(ctx.outputDir, n), source: '' })) };
      },
    });
    const store = new JobStore(path.join(dir, 'jobs.db'));
    const registry = new WorkerRegistry();
    const sharedRoots = await SharedRoots.create([], path.join(dir, 'data'), [path.join(dir, 'shared')]);
    const manager = new JobManager(store, new Spool(path.join(dir, 'spool')), registry, createLogger('test', 'silent'), { maxAttempts: 3, subtaskTimeoutMs: 60_000, retryBaseMs: 10, quarantineFailures: 0, prefetchBelowMs: 1000, sharedRoots });
    const sent: CoordinatorMessage[] = [];
    const worker = newWorkerSession({
      id: 'w1',
      name: 'worker-1',
      instanceId: 'i1',
      address: 'test',
      slots: 1,
      capabilities: { kinds: ['passthrough'], encoders: [] } as unknown as WorkerSession['capabilities'],
      call: { write: (m: CoordinatorMessage) => sent.push(m) } as unknown as WorkerSession['call'],
    });
    registry.add(worker);
    const spec = { label: 'pub', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 }, shared_output_dir: out } as unknown as JobSpec__Output;
    const job = manager.newJob(spec, 'anonymous');
    // The job is cancelled the moment its second output has moved into the folder.
    afterMove.hook = (dest) => {
      if (path.basename(dest) === 'second.bin') manager.cancel(job.id);
    };
    manager.accept(job);
    const assigned = () => sent.flatMap((m) => (m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])));
    for (let i = 0; i < 200 && assigned().length === 0; i++) await sleep(10);
    manager.onResult(worker, { subtaskId: assigned()[0]!.subtask_id!, attempt: 1, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
    for (let i = 0; i < 300 && (job.state !== 'cancelled' || readdirSync(out).includes('second.bin')); i++) await sleep(10);
    expect(job.state).toBe('cancelled');
    expect(job.outputs.map((o) => o.name)).toEqual(['first.bin']);
    expect(readdirSync(out)).toEqual(['first.bin']);
    manager.close();
    store.close();
  });
});
