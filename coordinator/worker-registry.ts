/** Registered workers: sessions, heartbeats, leases and failure detection. */
import { randomBytes } from 'node:crypto';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { WORKER_FEATURES } from '../shared/job-kind.js';
import type { Capabilities__Output } from '../shared/proto/generated/tessera/v1/Capabilities.js';
import type { CoordinatorMessage } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { WorkerMessage__Output } from '../shared/proto/generated/tessera/v1/WorkerMessage.js';
import type { WorkerInfo } from '../shared/proto/generated/tessera/v1/WorkerInfo.js';
import type { Lease } from './model.js';
import { steadyNow, wallTimeOf } from '../shared/clock.js';

export type WorkerState = 'active' | 'draining' | 'lost' | 'quarantined';

export interface WorkerSession {
  id: string;
  name: string;
  instanceId: string;
  address: string;
  slots: number;
  /** Assignments the worker queues beyond its slots (lease-ahead for short subtasks). */
  prefetch: number;
  capabilities: Capabilities__Output;
  kinds: ReadonlySet<string>;
  encoders: ReadonlySet<string>;
  features: ReadonlySet<string>;
  state: WorkerState;
  lastHeartbeat: number;
  connectedAt: number;
  /** subtask id -> attempt currently leased to this worker. */
  leases: Map<string, number>;
  /**
   * The leases among `leases` that wait in the worker's prefetch queue, oldest first (the order
   * the worker runs them in): subtask id -> lease.
   */
  waiting: Map<string, Lease>;
  /**
   * Leases the coordinator took back from this worker and told it to cancel (moved to an idle
   * worker, a copy that lost): subtask id -> attempt. A result that still comes for one is
   * expected, not a sign of trouble. The oldest go past CANCELLED_KEPT.
   */
  cancelled: Map<string, number>;
  call: ServerDuplexStream<WorkerMessage__Output, CoordinatorMessage> | undefined;
  load: number;
  done: number;
  failed: number;
  /** Its failures within FAILURE_WINDOW_MS (when, and of which job), for quarantine. */
  recentFailures: Array<{ at: number; jobId: string }>;
  /**
   * Its attempts' results per job (succeeded, failed retryably) since the entry was last idle for
   * FAILURE_WINDOW_MS (`at`: the last one): whether a job fails on other workers as it does here.
   */
  jobOutcomes: Map<string, { ok: number; failed: number; at: number }>;
  /** When its quarantine ends (or last ended); 0: never quarantined. */
  quarantinedUntil: number;
  /** Quarantines in a row, each within QUARANTINE_RESET_MS of the last one's end: each lasts twice as long. */
  quarantines: number;
  /**
   * Since when it has held an attempt found stalled (no progress for --stall-ms), with no report
   * from it on any attempt since; 0: none. The scheduler gives it work only when no other worker
   * that can take it has room.
   */
  stalledSince: number;
  /**
   * Queue places kept for work of this priority or above until `reservedUntil` (steady ms): its
   * queue was cleared for a job of higher priority, and lower work queued there again would only be
   * taken back again at the next of that job's subtasks.
   */
  reservedFor: number;
  reservedUntil: number;
  /** The worker said it is draining (a planned stop): what its end cuts short is no failure of the work. */
  drainRequested: boolean;
  lostAt: number;
  /**
   * Shared output folders this worker wrote to where the coordinator did not find the file (its
   * mount at that path is another file system): its outputs for them go through the coordinator.
   */
  foreignSharedDirs: Set<string>;
  /**
   * Random per session, known only to this worker: with the attempt it makes each lease's token,
   * which names the temporary files the lease may write in place (one random draw per lease cost
   * 6% of the coordinator's CPU on 20,000 no-op subtasks).
   */
  leaseSecret: string;
}

/** A freshly registered, active session with no leases. */
export function newWorkerSession(r: Pick<WorkerSession, 'id' | 'name' | 'instanceId' | 'address' | 'slots' | 'capabilities' | 'call'> & Partial<Pick<WorkerSession, 'prefetch'>>): WorkerSession {
  const now = steadyNow();
  return {
    prefetch: 0,
    ...r,
    kinds: new Set(r.capabilities.kinds),
    encoders: new Set(r.capabilities.encoders),
    features: new Set(r.capabilities.features),
    state: 'active',
    lastHeartbeat: now,
    connectedAt: now,
    leases: new Map(),
    waiting: new Map(),
    cancelled: new Map(),
    load: 0,
    done: 0,
    failed: 0,
    recentFailures: [],
    jobOutcomes: new Map(),
    quarantinedUntil: 0,
    quarantines: 0,
    stalledSince: 0,
    reservedFor: -Infinity,
    reservedUntil: 0,
    drainRequested: false,
    lostAt: 0,
    foreignSharedDirs: new Set(),
    leaseSecret: randomBytes(12).toString('base64url'),
  };
}

/** The window in which a worker's retryable failures count towards its quarantine. */
export const FAILURE_WINDOW_MS = 60_000;

/** Slots in use: leases beyond the slots wait in the worker's prefetch queue and do not count. */
export const slotsInUse = (w: WorkerSession): number => Math.min(w.leases.size, w.slots);

/** What a worker's name carries over to its next session (see WorkerRegistry.add). */
type FailureRecord = Pick<WorkerSession, 'recentFailures' | 'quarantines' | 'quarantinedUntil'>;

/** Most lost workers (and workers that left with failures on record) kept for listings and quarantines. */
const MAX_LOST_KEPT = 1000;

export class WorkerRegistry {
  private readonly sessions = new Map<string, WorkerSession>();
  /** The failure records of workers that left after draining, by name, until pruned. */
  private readonly left = new Map<string, FailureRecord & { at: number }>();

  add(session: WorkerSession, now = steadyNow()): void {
    // Its record goes with the name: a worker that crashes and restarts (a container's worker keeps
    // its name, hostname and pid 1), reconnects, or is stopped and started again sheds neither its
    // quarantine nor its count of quarantines in a row: from its lost session (which it replaces:
    // one row per worker), from one not yet found lost (a restart quicker than the TTL), or from
    // one that left after draining.
    const left = this.left.get(session.name);
    if (left) {
      this.left.delete(session.name);
      this.inherit(session, left, now);
    }
    for (const [id, w] of this.sessions) {
      if (w.name !== session.name) continue;
      if (w.state === 'lost') this.sessions.delete(id);
      this.inherit(session, w, now);
    }
    this.sessions.set(session.id, session);
  }

  /**
   * Takes over `from`'s failures and quarantine; quarantined unless it would be the only active
   * worker of one of its kinds (a cluster that stops itself helps nobody, as a quarantine never
   * takes the last one).
   */
  private inherit(session: WorkerSession, from: FailureRecord, now: number): void {
    const seen = new Set(session.recentFailures);
    session.recentFailures = [...session.recentFailures, ...from.recentFailures.filter((f) => now - f.at < FAILURE_WINDOW_MS && !seen.has(f))].sort((a, b) => a.at - b.at);
    session.quarantines = Math.max(session.quarantines, from.quarantines);
    session.quarantinedUntil = Math.max(session.quarantinedUntil, from.quarantinedUntil);
    if (session.quarantinedUntil > now && this.othersRun(session)) session.state = 'quarantined';
  }

  get(id: string): WorkerSession | undefined {
    return this.sessions.get(id);
  }

  all(): WorkerSession[] {
    return [...this.sessions.values()];
  }

  /** Whether every kind `w` runs has another active worker: only then may `w` sit out a quarantine. */
  othersRun(w: WorkerSession): boolean {
    const active = [...this.sessions.values()].filter((o) => o !== w && o.state === 'active');
    return [...w.kinds].every((k) => active.some((o) => o.kinds.has(k)));
  }

  /**
   * Ends the quarantines that are over, and those of workers left alone with a kind (the others
   * that ran it lost or quarantined themselves: quarantines of up to 10 minutes must not hold a
   * cluster idle, as a quarantine never takes the last worker of a kind); true when one ended
   * (there is a worker to dispatch to).
   */
  endQuarantines(now = steadyNow()): boolean {
    let ended = false;
    for (const w of this.sessions.values()) {
      if (w.state === 'quarantined' && (w.quarantinedUntil <= now || !this.othersRun(w))) {
        w.state = 'active';
        ended = true;
      }
    }
    return ended;
  }

  /** Workers that can take new work now. */
  schedulable(now = steadyNow()): WorkerSession[] {
    const out: WorkerSession[] = [];
    for (const w of this.sessions.values()) {
      if (w.state === 'quarantined' && w.quarantinedUntil <= now) w.state = 'active';
      if (w.state === 'active' && w.leases.size < w.slots + w.prefetch) out.push(w);
    }
    return out;
  }

  /** Workers silent for longer than ttlMs (still marked active or draining). */
  expired(ttlMs: number, now = steadyNow()): WorkerSession[] {
    return this.all().filter((w) => w.state !== 'lost' && now - w.lastHeartbeat > ttlMs);
  }

  /**
   * The coordinator could read nothing for `ms` (its event loop was held up: a long GC, a big
   * SQLite transaction): the heartbeats sent meanwhile still wait unread in the sockets, and the
   * sweep's timer runs before they are read. That silence is the coordinator's, not the workers':
   * each is credited it (never past `now`).
   */
  credit(ms: number, now = steadyNow()): void {
    if (!(ms > 0)) return;
    for (const w of this.sessions.values()) if (w.state !== 'lost') w.lastHeartbeat = Math.min(now, w.lastHeartbeat + ms);
  }

  /**
   * Forgets a worker at once (one that left as planned); its failures and quarantine are kept
   * under its name for as long as a lost worker's (see add, prune).
   */
  remove(id: string, now = steadyNow()): void {
    const w = this.sessions.get(id);
    this.sessions.delete(id);
    if (w && (w.quarantines > 0 || w.recentFailures.length > 0)) this.left.set(w.name, { recentFailures: w.recentFailures, quarantines: w.quarantines, quarantinedUntil: w.quarantinedUntil, at: now });
  }

  /**
   * Forgets lost workers after a while so listings stay short, and the records of those that left;
   * past `keepLost` of either, the oldest first: a peer that registers and leaves again and again
   * must not grow them without end.
   */
  prune(keepLostMs: number, now = steadyNow(), keepLost = MAX_LOST_KEPT): void {
    for (const [id, w] of this.sessions) if (w.state === 'lost' && now - w.lostAt > keepLostMs) this.sessions.delete(id);
    for (const [name, r] of this.left) if (now - r.at > keepLostMs) this.left.delete(name);
    const lost = [...this.sessions.values()].filter((w) => w.state === 'lost');
    if (lost.length > keepLost) for (const w of lost.sort((a, b) => a.lostAt - b.lostAt).slice(0, lost.length - keepLost)) this.sessions.delete(w.id);
    if (this.left.size > keepLost) for (const [name] of [...this.left].sort((a, b) => a[1].at - b[1].at).slice(0, this.left.size - keepLost)) this.left.delete(name);
  }

  /**
   * The active workers (of `kind`): how many, their slots, their encoders (the union, and each
   * worker's) and the features every one of them has. With none there are no features: a job
   * planned before any worker (re)connects, say right after a restart in a rolling upgrade, must
   * not rely on what older workers that connect next may lack.
   */
  activeCount(kind?: string): { workers: number; slots: number; encoders: Set<string>; encoderSets: ReadonlySet<string>[]; features: Set<string> } {
    let workers = 0;
    let slots = 0;
    const encoders = new Set<string>();
    const encoderSets: ReadonlySet<string>[] = [];
    const features = new Set(WORKER_FEATURES);
    for (const w of this.sessions.values()) {
      if (w.state === 'lost') continue;
      if (kind && !w.kinds.has(kind)) continue;
      workers++;
      slots += w.slots;
      for (const e of w.encoders) encoders.add(e);
      encoderSets.push(w.encoders);
      for (const f of features) if (!w.features.has(f)) features.delete(f);
    }
    if (workers === 0) features.clear();
    return { workers, slots, encoders, encoderSets, features };
  }

  send(w: WorkerSession, msg: CoordinatorMessage): boolean {
    if (!w.call || w.state === 'lost') return false;
    try {
      w.call.write(msg);
      return true;
    } catch {
      return false;
    }
  }

  toInfo(w: WorkerSession): WorkerInfo {
    return {
      id: w.id,
      name: w.name,
      address: w.address,
      state: w.state,
      slots: w.slots,
      slots_used: slotsInUse(w),
      last_heartbeat_ms: String(wallTimeOf(w.lastHeartbeat)),
      capabilities: w.capabilities,
      subtasks_done: String(w.done),
      subtasks_failed: String(w.failed),
      load: w.load,
    };
  }
}
