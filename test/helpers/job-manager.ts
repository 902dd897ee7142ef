/**
 * A coordinator's job manager in this process, as the in-process tests drive it: the real store,
 * spool, scheduler and registry, and one worker session whose control stream records what it is
 * sent (results go back through `manager.onResult`).
 */
import path from 'node:path';
import { JobManager, type JobManagerOptions } from '../../coordinator/job-manager.js';
import type { SharedRoots } from '../../coordinator/shared-inputs.js';
import { Spool } from '../../coordinator/spool.js';
import { JobStore } from '../../coordinator/store.js';
import { WorkerRegistry, newWorkerSession, type WorkerSession } from '../../coordinator/worker-registry.js';
import { createLogger } from '../../shared/logger.js';
import type { CoordinatorMessage } from '../../shared/proto/generated/tessera/v1/CoordinatorMessage.js';

export interface ManagerSetup {
  /** The data dir: the same one again is a restart. */
  dataDir: string;
  slots?: number;
  prefetch?: number;
  quarantineFailures?: number;
  sharedRoots?: SharedRoots;
  /** Further JobManager options (the stall rule's, the quarantine's...). */
  extra?: Partial<JobManagerOptions>;
}

export function inProcessManager(o: ManagerSetup) {
  const store = new JobStore(path.join(o.dataDir, 'jobs.db'));
  const registry = new WorkerRegistry();
  const manager = new JobManager(store, new Spool(path.join(o.dataDir, 'spool')), registry, createLogger('test', 'silent'), {
    maxAttempts: 3,
    subtaskTimeoutMs: 60_000,
    retryBaseMs: 10,
    quarantineFailures: o.quarantineFailures ?? 0,
    ...o.extra,
    prefetchBelowMs: 1000,
    ...(o.sharedRoots ? { sharedRoots: o.sharedRoots } : {}),
  });
  const sent: CoordinatorMessage[] = [];
  const worker = newWorkerSession({
    id: 'w1',
    name: 'worker-1',
    instanceId: 'i1',
    address: 'test',
    slots: o.slots ?? 8,
    prefetch: o.prefetch ?? 0,
    capabilities: { kinds: ['passthrough'], encoders: [] } as unknown as WorkerSession['capabilities'],
    call: { write: (m: CoordinatorMessage) => sent.push(m) } as unknown as WorkerSession['call'],
  });
  registry.add(worker);
  /** What the worker was assigned, in order. */
  const assigned = () => sent.flatMap((m) => (m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])));
  return { store, registry, manager, worker, sent, assigned };
}

/** Another passthrough worker session `id` (named `name`) of `slots` slots, whose control stream records what it is sent. */
export function addWorker(registry: WorkerRegistry, id: string, o: { name?: string; slots?: number } = {}): { w: WorkerSession; sent: CoordinatorMessage[] } {
  const sent: CoordinatorMessage[] = [];
  const w = newWorkerSession({
    id,
    name: o.name ?? `worker-${id}`,
    instanceId: `i-${id}`,
    address: 'test',
    slots: o.slots ?? 4,
    capabilities: { kinds: ['passthrough'], encoders: [] } as unknown as WorkerSession['capabilities'],
    call: { write: (m: CoordinatorMessage) => sent.push(m) } as unknown as WorkerSession['call'],
  });
  registry.add(w);
  return { w, sent };
}

/** The assignments among what a worker session was sent. */
export const assignmentsIn = (sent: CoordinatorMessage[]) => sent.flatMap((m) => (m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])));

/** A retryable failure of an attempt, as a worker whose scratch disk is gone reports it. */
export const failure = (subtaskId: string, attempt: number) => ({ subtaskId, attempt, ok: false, outputs: [], itemErrors: [], retryable: true, result: undefined, error: { input: '', code: 'UNAVAILABLE', message: 'its scratch disk is gone' } });

/** A success of an attempt. */
export const success = (subtaskId: string, attempt: number) => ({ subtaskId, attempt, ok: true, outputs: [], itemErrors: [], retryable: false, result: undefined });
