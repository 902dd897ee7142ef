/**
 * Credit-based, fair scheduler.
 *
 * Each worker's free slots are its credit: it is never sent more than it can run. Jobs are served
 * by priority (higher first); within a priority, round-robin among the clients that submitted
 * them (their owners: the token's NAME, one for every job where clients are open), and among each
 * client's jobs in turn, so that neither one large job nor a client that splits its work into
 * many jobs starves the others. Within a job the heaviest pending subtask goes first.
 */
import type { SubtaskRecord } from './model.js';
import type { WorkerSession } from './worker-registry.js';

interface JobQueue {
  jobId: string;
  kind: string;
  priority: number;
  createdAt: number;
  /** Who submitted it (JobRecord.owner): the clients of a priority take turns. */
  owner: string;
  /**
   * Pending subtasks, heaviest first, from index `head` on. Taking the head advances `head`
   * rather than shifting: a queue of 20,000 lives in V8's large-object space, where shift() and
   * splice(0, 1) move the whole array every time.
   */
  pending: SubtaskRecord[];
  head: number;
}

const size = (q: JobQueue): number => q.pending.length - q.head;

/** Drops the consumed head of a queue (all of it, or once it is most of the array). */
function compact(q: JobQueue, always = false): void {
  if (q.head === 0 || (!always && (q.head < 1024 || q.head * 2 < q.pending.length))) return;
  q.pending = q.pending.slice(q.head);
  q.head = 0;
}

export interface Assignment {
  subtask: SubtaskRecord;
  worker: WorkerSession;
}

export class Scheduler {
  private readonly queues = new Map<string, JobQueue>();
  /**
   * Round-robin places: per priority tier, the owner served last; per tier and owner (`tierOwnerKey`),
   * that owner's job served last (its sort key). Not indexes: the jobs with pending work change
   * between passes (one runs out, one gets more as its inputs arrive), and an index would then
   * point at another job than the one whose turn it is. Only the keys are kept (the queue itself,
   * with every subtask it handed out, stayed for good with the job long gone), and an entry goes
   * with the last job it was kept for.
   */
  private readonly ownerCursor = new Map<number, string>();
  private readonly cursor = new Map<string, { createdAt: number; jobId: string }>();
  /** Jobs queued per tier and owner: that owner's place in the tier goes with its last job. */
  private readonly ownerJobs = new Map<string, number>();
  /**
   * Subtasks enqueued with a retry backoff (`notBefore` in the future). Kept apart so that
   * `nextRetryAt`, asked after every dispatch, looks at the few retries, not every pending subtask.
   */
  private readonly delayed = new Set<SubtaskRecord>();

  /** Jobs queued per priority: a tier's round-robin place goes with its last job. */
  private readonly tierJobs = new Map<number, number>();

  addJob(jobId: string, kind: string, priority: number, createdAt: number, owner = ''): void {
    if (this.queues.has(jobId)) return;
    this.queues.set(jobId, { jobId, kind, priority, createdAt, owner, pending: [], head: 0 });
    this.tierJobs.set(priority, (this.tierJobs.get(priority) ?? 0) + 1);
    const key = tierOwnerKey(priority, owner);
    this.ownerJobs.set(key, (this.ownerJobs.get(key) ?? 0) + 1);
  }

  removeJob(jobId: string): void {
    const gone = this.queues.get(jobId);
    this.queues.delete(jobId);
    // A priority no job has any more (a client may use any number of them): its place goes too.
    if (gone) {
      const left = (this.tierJobs.get(gone.priority) ?? 1) - 1;
      if (left > 0) this.tierJobs.set(gone.priority, left);
      else {
        this.tierJobs.delete(gone.priority);
        this.ownerCursor.delete(gone.priority);
      }
      const key = tierOwnerKey(gone.priority, gone.owner);
      const own = (this.ownerJobs.get(key) ?? 1) - 1;
      if (own > 0) this.ownerJobs.set(key, own);
      else {
        this.ownerJobs.delete(key);
        this.cursor.delete(key);
      }
    }
    for (const s of this.delayed) if (s.jobId === jobId) this.delayed.delete(s);
  }

  enqueue(subtasks: SubtaskRecord[]): void {
    const touched = new Set<JobQueue>();
    for (const s of subtasks) {
      const q = this.queues.get(s.jobId);
      if (!q) continue;
      if (!touched.has(q)) compact(q, true);
      q.pending.push(s);
      if (s.notBefore > 0) this.delayed.add(s);
      touched.add(q);
    }
    for (const q of touched) q.pending.sort((a, b) => b.weight - a.weight || a.index - b.index);
  }

  /** Drops a subtask from its queue (cancelled, or finished by a speculative twin). */
  dequeue(subtask: SubtaskRecord): void {
    const q = this.queues.get(subtask.jobId);
    if (!q) return;
    const i = q.pending.indexOf(subtask, q.head);
    if (i === q.head) q.head++;
    else if (i > q.head) q.pending.splice(i, 1);
    this.delayed.delete(subtask);
  }

  pendingCount(jobId?: string): number {
    if (jobId) {
      const q = this.queues.get(jobId);
      return q ? size(q) : 0;
    }
    let n = 0;
    for (const q of this.queues.values()) n += size(q);
    return n;
  }

  /** Whether the jobs known here are of more than one priority (else none can outrank another). */
  hasMixedPriorities(): boolean {
    return this.tierJobs.size > 1;
  }

  /** A job's priority as queued here (0 for one not known). */
  priorityOf(jobId: string): number {
    return this.queues.get(jobId)?.priority ?? 0;
  }

  /** The lowest priority of any job known here (its work may wait in workers' queues), or Infinity. */
  lowestPriority(): number {
    let low = Infinity;
    for (const p of this.tierJobs.keys()) if (p < low) low = p;
    return low;
  }

  /**
   * Each job above `priority` with work ready now: its next pending subtask and how many it has
   * pending, highest priority first. What queued work of lower priority stands in front of.
   */
  readyHeadsAbove(priority: number, now: number): { jobId: string; priority: number; kind: string; subtask: SubtaskRecord; pending: number }[] {
    const out: { jobId: string; priority: number; kind: string; subtask: SubtaskRecord; pending: number }[] = [];
    for (const q of this.queues.values()) {
      if (q.priority <= priority) continue;
      for (let i = q.head; i < q.pending.length; i++) {
        const s = q.pending[i]!;
        if (s.notBefore > now) continue;
        out.push({ jobId: q.jobId, priority: q.priority, kind: q.kind, subtask: s, pending: size(q) });
        break;
      }
    }
    return out.sort((a, b) => b.priority - a.priority);
  }

  /** Earliest retry time among pending subtasks held back by backoff (Infinity when none). */
  nextRetryAt(now: number): number {
    let t = Infinity;
    for (const s of this.delayed) {
      if (s.notBefore <= now || s.state !== 'pending') this.delayed.delete(s);
      else if (s.notBefore < t) t = s.notBefore;
    }
    return t;
  }

  /**
   * Matches pending subtasks to workers with free slots. `canRun` checks capabilities; the
   * returned assignments are removed from the queues and already count against the workers' credit
   * (the caller records the lease before sending).
   *
   * Free slots are filled first, everywhere. Only then do workers that queue work (`prefetch`) get
   * one more subtask per queue place, and only of jobs `prefetch.job` accepts (short subtasks), on
   * workers `prefetch.worker` accepts (busy only with short subtasks): a queued subtask waits for a
   * slot on its worker, so one queued behind a long subtask could finish later than on a worker
   * that frees up meanwhile.
   */
  dispatch(
    workers: WorkerSession[],
    now: number,
    canRun: (w: WorkerSession, s: SubtaskRecord, kind: string) => boolean,
    prefetch?: { job(jobId: string): boolean; worker(w: WorkerSession): boolean; queueOn?(w: WorkerSession, priority: number): boolean },
  ): Assignment[] {
    const out: Assignment[] = [];
    this.fill(out, workers, (w) => w.slots - w.leases.size, now, canRun, () => true);
    // Asked only while work is left: `prefetch.worker` looks at every lease of every worker.
    const queueing = prefetch && this.pendingCount() > 0 ? workers.filter((w) => w.prefetch > 0 && prefetch.worker(w)) : [];
    if (prefetch && queueing.length > 0) {
      // Leases made in the first pass are not in `w.leases` yet: count them, and a long one among
      // them makes its worker unfit for queueing too.
      const taken = new Map<WorkerSession, number>();
      const unfit = new Set<WorkerSession>();
      for (const a of out) {
        taken.set(a.worker, (taken.get(a.worker) ?? 0) + 1);
        if (!prefetch.job(a.subtask.jobId)) unfit.add(a.worker);
      }
      const fit = queueing.filter((w) => !unfit.has(w));
      // A job that does not use queue places (long or not yet measured subtasks) waiting at the same
      // or a higher priority: queue nothing for the others, so that the next subtask to finish
      // frees a real slot for it. Else a running short-subtask job would keep every slot to itself,
      // a queued subtask taking each slot the moment it frees.
      // (Each job is asked once per pass: `prefetch.job` is not free, and there may be hundreds.)
      let waiting = -Infinity;
      const queueable = new Set<string>();
      for (const q of this.queues.values()) {
        if (size(q) === 0) continue;
        if (prefetch.job(q.jobId)) queueable.add(q.jobId);
        else if (q.priority > waiting) waiting = q.priority;
      }
      // A queue kept for higher work (see WorkerSession.reservedFor) takes nothing below it.
      const queueOn = prefetch.queueOn;
      const canQueue = queueOn ? (w: WorkerSession, s: SubtaskRecord, kind: string): boolean => canRun(w, s, kind) && queueOn(w, this.priorityOf(s.jobId)) : canRun;
      this.fill(out, fit, (w) => w.slots + w.prefetch - w.leases.size - (taken.get(w) ?? 0), now, canQueue, (q) => q.priority > waiting && queueable.has(q.jobId));
    }
    return out;
  }

  private fill(
    out: Assignment[],
    workers: WorkerSession[],
    creditOf: (w: WorkerSession) => number,
    now: number,
    canRun: (w: WorkerSession, s: SubtaskRecord, kind: string) => boolean,
    eligible: (q: JobQueue) => boolean,
  ): void {
    const credit = new CreditBook();
    for (const w of workers) credit.add(w, creditOf(w));
    if (credit.total === 0) return;
    const queues = [...this.queues.values()].filter((q) => size(q) > 0 && eligible(q));
    const tiers = [...new Set(queues.map((q) => q.priority))].sort((a, b) => b - a);
    const holds = this.retryHolds(workers, now, tiers.at(-1) ?? 0);
    // What this dispatch placed already (a retry placed elsewhere holds nothing).
    const placed = holds.length > 0 ? new Set(out.map((a) => a.subtask)) : undefined;
    for (const priority of tiers) {
      // A retry in its backoff keeps a place on the worker it failed on from lower work: that work
      // took the slot its failure freed, and the retry (of a higher priority) then waited for all
      // of it, minutes behind a video segment (review FS).
      for (const h of holds) {
        // (Not for one placed on another worker in this very pass.)
        if (h.held || h.priority <= priority || placed?.has(h.subtask)) continue;
        h.held = true;
        credit.take(h.worker);
      }
      if (credit.total === 0) break;
      // Round robin over the tier's owners (by name), one subtask each in turn, resuming after the
      // owner served last time; each owner's turn goes to its jobs round robin (oldest first),
      // resuming after its job served last. An owner none of whose jobs can place anything more in
      // this pass is passed over: credit only goes down within it, so it cannot again. The pass
      // ends when credit runs out or every owner is passed over.
      const byOwner = new Map<string, JobQueue[]>();
      for (const q of queues) {
        if (q.priority !== priority) continue;
        const list = byOwner.get(q.owner);
        if (list) list.push(q);
        else byOwner.set(q.owner, [q]);
      }
      const names = [...byOwner.keys()].sort();
      const turns = names.map((owner) => {
        const jobs = byOwner.get(owner)!.sort(byAge);
        const last = this.cursor.get(tierOwnerKey(priority, owner));
        const pos = last ? jobs.findIndex((q) => byAge(q, last) > 0) : 0;
        return { owner, jobs, pos: pos < 0 ? 0 : pos, spent: false };
      });
      const lastOwner = this.ownerCursor.get(priority);
      let at = lastOwner === undefined ? 0 : names.findIndex((o) => o > lastOwner);
      if (at < 0) at = 0;
      let passed = 0;
      while (credit.total > 0 && passed < turns.length) {
        const t = turns[at]!;
        at = (at + 1) % turns.length;
        if (t.spent) {
          passed++;
          continue;
        }
        let picked: Assignment | undefined;
        for (let tried = 0; tried < t.jobs.length && !picked; tried++) {
          const q = t.jobs[t.pos]!;
          t.pos = (t.pos + 1) % t.jobs.length;
          picked = this.pickFrom(q, credit, now, canRun);
          if (picked) this.cursor.set(tierOwnerKey(priority, t.owner), { createdAt: q.createdAt, jobId: q.jobId });
        }
        if (!picked) {
          t.spent = true;
          passed++;
          continue;
        }
        passed = 0;
        out.push(picked);
        placed?.add(picked.subtask);
        credit.take(picked.worker);
        this.ownerCursor.set(priority, t.owner);
      }
    }
  }

  /**
   * Retries waiting out their backoff (README: "on the same worker after an exponential backoff")
   * above the `lowest` priority waiting (none holds anything from its own): the worker each failed
   * on, among `workers`, and its job's priority. Found in the set kept for wake-ups, the workers by
   * an index made once: a failure storm leaves tens of thousands in backoff, and a look through
   * the workers for each cost a pass 15 ms with 500 workers instead of 0.03 (review K8).
   */
  private retryHolds(workers: WorkerSession[], now: number, lowest: number): Array<{ subtask: SubtaskRecord; worker: WorkerSession; priority: number; held: boolean }> {
    const holds: Array<{ subtask: SubtaskRecord; worker: WorkerSession; priority: number; held: boolean }> = [];
    let byId: Map<string, WorkerSession> | undefined;
    for (const s of this.delayed) {
      if (s.failedOn === undefined || s.state !== 'pending' || s.notBefore <= now) continue;
      const priority = this.priorityOf(s.jobId);
      if (priority <= lowest) continue;
      byId ??= new Map(workers.map((w) => [w.id, w]));
      const worker = byId.get(s.failedOn);
      if (worker) holds.push({ subtask: s, worker, priority, held: false });
    }
    return holds;
  }

  private pickFrom(q: JobQueue, credit: CreditBook, now: number, canRun: (w: WorkerSession, s: SubtaskRecord, kind: string) => boolean): Assignment | undefined {
    // Requirements no worker with credit meets, found in this call: the job's other subtasks with
    // the same ones (and nothing of their own: no worker to avoid, no second opinion) are skipped
    // without asking every worker again. 20,000 pending subtasks no idle worker can run (a mixed
    // cluster) cost a scan of 500 workers each, per pass.
    let unmet: Set<string> | undefined;
    for (let i = q.head; i < q.pending.length; i++) {
      const s = q.pending[i]!;
      const plain = s.failedOn === undefined && s.blamedBy === undefined;
      if (plain && unmet?.has(requiresKey(s))) continue;
      // A retry goes at once to a worker it has not failed on (whose own trouble it may have been: a
      // full temp disk, a broken library), and to any after its backoff;
      // not at once to a worker holding a stalled attempt, which would sit on it as well.
      let best = s.failedOn === undefined ? undefined : credit.most((w) => w.id !== s.failedOn && !s.failedOnAll?.includes(w.id) && canRun(w, s, q.kind));
      if (best && best.stalledSince > 0) best = undefined;
      // The worker with the most free credit that can run it: spreads work evenly.
      if (!best && s.notBefore <= now) {
        best = credit.most((w) => canRun(w, s, q.kind));
        if (!best && plain) (unmet ??= new Set()).add(requiresKey(s));
      }
      if (best) {
        if (i === q.head) {
          q.head++;
          compact(q);
        } else q.pending.splice(i, 1);
        return { subtask: s, worker: best };
      }
    }
    return undefined;
  }
}

/** How much a worker can run: its kinds, encoders and features, counted. */
function breadth(w: WorkerSession): number {
  return w.kinds.size + w.encoders.size + w.features.size;
}

/** What a subtask requires of a worker beyond its job's kind, as a key ("" for nothing). */
function requiresKey(s: SubtaskRecord): string {
  const r = s.requires;
  return r ? `${r.encoders?.join(',') ?? ''}|${r.features?.join(',') ?? ''}` : '';
}

/** Oldest job first; jobs made in the same millisecond by id, so that the order is total. */
/** The key of an owner's round-robin place within a priority tier. */
function tierOwnerKey(priority: number, owner: string): string {
  return `${priority}\n${owner}`;
}

function byAge(a: { createdAt: number; jobId: string }, b: { createdAt: number; jobId: string }): number {
  return a.createdAt - b.createdAt || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0);
}

/**
 * Free credit of the workers in one dispatch pass, grouped by amount, so that finding the worker
 * with the most costs about the same with 500 workers as with 2: scanning every worker for each
 * pick made a job's first pass over 500 idle workers quadratic (and allocated an entry per worker
 * scanned, a fifth of the coordinator's garbage in the 500-worker benchmark).
 */
class CreditBook {
  /** Workers by their credit (index), in the order they were added or last reached that credit. */
  private readonly byCredit: Set<WorkerSession>[] = [];
  private readonly credit = new Map<WorkerSession, number>();
  /** The highest credit any worker may have (the buckets above are empty). */
  private top = 0;
  /** Credit left in all. */
  total = 0;
  /** The breadth ({@link breadth}) of the first worker added, and whether another's differs. */
  private firstBreadth = -1;
  private mixed = false;

  add(w: WorkerSession, c: number): void {
    if (c <= 0 || this.credit.has(w)) return;
    const b = breadth(w);
    if (this.firstBreadth < 0) this.firstBreadth = b;
    else if (b !== this.firstBreadth) this.mixed = true;
    this.credit.set(w, c);
    (this.byCredit[c] ??= new Set()).add(w);
    this.total += c;
    if (c > this.top) this.top = c;
  }

  /**
   * The worker with the most credit that `fits`; among equals, the one that can run the least
   * (kinds, encoders, features), then the one that got there first: work any worker can run leaves
   * the only worker with ffmpeg (an encoder, a feature) to the jobs that need it. Taking the first
   * of equals, a passthrough or image subtask took it while a worker without ffmpeg sat idle, and
   * an audio job waited for that subtask to end (review FS). A worker holding a stalled attempt
   * (`stalledSince`) comes after every other that fits, whatever its credit: one that takes work
   * and never does it has the most room of all.
   */
  most(fits: (w: WorkerSession) => boolean): WorkerSession | undefined {
    let stalled: WorkerSession | undefined;
    for (let c = this.top; c > 0; c--) {
      const bucket = this.byCredit[c];
      if (!bucket) continue;
      let pick: WorkerSession | undefined;
      for (const w of bucket) {
        if (w.stalledSince > 0) {
          if (!stalled && fits(w)) stalled = w;
        } else if ((!pick || breadth(w) < breadth(pick)) && fits(w)) {
          pick = w;
          // Workers alike (the usual cluster): the first that fits, as it comes.
          if (!this.mixed) return w;
        }
      }
      if (pick) return pick;
    }
    return stalled;
  }

  /** One unit of `w`'s credit is used. */
  take(w: WorkerSession): void {
    const c = this.credit.get(w);
    if (c === undefined) return;
    this.byCredit[c]!.delete(w);
    this.total--;
    if (c > 1) {
      this.credit.set(w, c - 1);
      (this.byCredit[c - 1] ??= new Set()).add(w);
    } else this.credit.delete(w);
    while (this.top > 0 && !this.byCredit[this.top]?.size) this.top--;
  }
}
