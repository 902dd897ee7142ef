/**
 * Credit-based, fair scheduler.
 *
 * Each worker's free slots are its credit: it is never sent more than it can run. Jobs are served
 * by priority (higher first), and round-robin among jobs of the same priority so one large job
 * cannot starve the others; within a job the heaviest pending subtask goes first.
 */
import type { SubtaskRecord } from './model.js';
import type { WorkerSession } from './worker-registry.js';

interface JobQueue {
  jobId: string;
  kind: string;
  priority: number;
  createdAt: number;
  /** Pending subtasks, heaviest first. */
  pending: SubtaskRecord[];
}

export interface Assignment {
  subtask: SubtaskRecord;
  worker: WorkerSession;
}

export class Scheduler {
  private readonly queues = new Map<string, JobQueue>();
  /** Round-robin cursor per priority tier. */
  private readonly cursor = new Map<number, number>();

  addJob(jobId: string, kind: string, priority: number, createdAt: number): void {
    if (!this.queues.has(jobId)) this.queues.set(jobId, { jobId, kind, priority, createdAt, pending: [] });
  }

  removeJob(jobId: string): void {
    this.queues.delete(jobId);
  }

  enqueue(subtasks: SubtaskRecord[]): void {
    const touched = new Set<JobQueue>();
    for (const s of subtasks) {
      const q = this.queues.get(s.jobId);
      if (!q) continue;
      q.pending.push(s);
      touched.add(q);
    }
    for (const q of touched) q.pending.sort((a, b) => b.weight - a.weight || a.index - b.index);
  }

  /** Drops a subtask from its queue (cancelled, or finished by a speculative twin). */
  dequeue(subtask: SubtaskRecord): void {
    const q = this.queues.get(subtask.jobId);
    if (!q) return;
    const i = q.pending.indexOf(subtask);
    if (i >= 0) q.pending.splice(i, 1);
  }

  pendingCount(jobId?: string): number {
    if (jobId) return this.queues.get(jobId)?.pending.length ?? 0;
    let n = 0;
    for (const q of this.queues.values()) n += q.pending.length;
    return n;
  }

  /** Earliest retry time among pending subtasks held back by backoff (Infinity when none). */
  nextRetryAt(now: number): number {
    let t = Infinity;
    for (const q of this.queues.values()) for (const s of q.pending) if (s.notBefore > now && s.notBefore < t) t = s.notBefore;
    return t;
  }

  /**
   * Matches pending subtasks to workers with free slots. `canRun` checks capabilities; the
   * returned assignments are removed from the queues and already count against the workers' credit
   * (the caller records the lease before sending).
   */
  dispatch(workers: WorkerSession[], now: number, canRun: (w: WorkerSession, s: SubtaskRecord, kind: string) => boolean): Assignment[] {
    const out: Assignment[] = [];
    const credit = new Map<WorkerSession, number>();
    for (const w of workers) credit.set(w, w.slots - w.leases.size);
    const tiers = [...new Set([...this.queues.values()].filter((q) => q.pending.length > 0).map((q) => q.priority))].sort((a, b) => b - a);
    for (const priority of tiers) {
      const jobs = [...this.queues.values()].filter((q) => q.priority === priority && q.pending.length > 0).sort((a, b) => a.createdAt - b.createdAt);
      let start = (this.cursor.get(priority) ?? 0) % Math.max(1, jobs.length);
      let progressed = true;
      while (progressed && hasCredit(credit)) {
        progressed = false;
        for (let k = 0; k < jobs.length && hasCredit(credit); k++) {
          const q = jobs[(start + k) % jobs.length]!;
          const picked = this.pickFrom(q, credit, now, canRun);
          if (picked) {
            out.push(picked);
            credit.set(picked.worker, credit.get(picked.worker)! - 1);
            progressed = true;
          }
        }
        start = (start + 1) % Math.max(1, jobs.length);
      }
      this.cursor.set(priority, start);
    }
    return out;
  }

  private pickFrom(q: JobQueue, credit: Map<WorkerSession, number>, now: number, canRun: (w: WorkerSession, s: SubtaskRecord, kind: string) => boolean): Assignment | undefined {
    for (let i = 0; i < q.pending.length; i++) {
      const s = q.pending[i]!;
      if (s.notBefore > now) continue;
      // The worker with the most free credit that can run it: spreads work evenly.
      let best: WorkerSession | undefined;
      let bestCredit = 0;
      for (const [w, c] of credit) {
        if (c > bestCredit && canRun(w, s, q.kind)) {
          best = w;
          bestCredit = c;
        }
      }
      if (best) {
        q.pending.splice(i, 1);
        return { subtask: s, worker: best };
      }
    }
    return undefined;
  }
}

function hasCredit(credit: Map<WorkerSession, number>): boolean {
  for (const c of credit.values()) if (c > 0) return true;
  return false;
}
