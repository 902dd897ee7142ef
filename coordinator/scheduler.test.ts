import { describe, expect, it } from 'vitest';
import type { SubtaskRecord } from './model.js';
import { Scheduler } from './scheduler.js';
import type { WorkerSession } from './worker-registry.js';

const worker = (name: string, slots: number, kinds = ['image'], prefetch = 0): WorkerSession =>
  ({ id: name, name, slots, prefetch, leases: new Map(), kinds: new Set(kinds), encoders: new Set(), features: new Set(), state: 'active' }) as unknown as WorkerSession;

const subtask = (jobId: string, index: number, weight = 1): SubtaskRecord => ({ id: `${jobId}-${index}`, jobId, index, weight, notBefore: 0, state: 'pending' }) as SubtaskRecord;

const canRun = (w: WorkerSession, _s: SubtaskRecord, kind: string): boolean => w.kinds.has(kind);

describe('Scheduler', () => {
  it('keeps nothing of a priority tier once its last job is removed (a client may use any number of priorities)', () => {
    const s = new Scheduler();
    const w = worker('w', 100);
    for (let p = 0; p < 8; p++) {
      s.addJob(`j${p}`, 'image', 100 + p, p);
      s.enqueue(Array.from({ length: 50 }, (_, i) => subtask(`j${p}`, i)));
    }
    expect(s.dispatch([w], Date.now(), canRun)).toHaveLength(100);
    for (let p = 0; p < 8; p++) s.removeJob(`j${p}`);
    // Before: one round-robin place per priority ever used, each the whole queue of its last job,
    // with every subtask record it had handed out, for good.
    const inside = s as unknown as { cursor: Map<string, unknown>; ownerCursor: Map<number, string>; tierJobs: Map<number, number>; ownerJobs: Map<string, number> };
    expect([inside.cursor.size, inside.ownerCursor.size, inside.tierJobs.size, inside.ownerJobs.size]).toEqual([0, 0, 0, 0]);
  });

  it('is fair across the clients of a priority: one that splits its work into many jobs gets no more slots than one with one job', () => {
    const s = new Scheduler();
    // Client "many" submits 10 jobs of 10 subtasks, then client "one" a single job of 100.
    for (let j = 0; j < 10; j++) {
      s.addJob(`m${j}`, 'image', 0, j, 'many');
      s.enqueue(Array.from({ length: 10 }, (_, i) => subtask(`m${j}`, i)));
    }
    s.addJob('o', 'image', 0, 100, 'one');
    s.enqueue(Array.from({ length: 100 }, (_, i) => subtask('o', i)));
    // Before: round robin over the 11 jobs gave "many" 10 of every 11 slots.
    const first = s.dispatch([worker('w', 20)], Date.now(), canRun);
    const owners = first.map((a) => (a.subtask.jobId === 'o' ? 'one' : 'many'));
    expect(owners.filter((o) => o === 'one')).toHaveLength(10);
    // Within its turns, "many"'s jobs take turns too: ten slots, ten jobs.
    expect(new Set(first.filter((a) => a.subtask.jobId !== 'o').map((a) => a.subtask.jobId)).size).toBe(10);
    // A slot at a time (as they free), the clients alternate, and "many"'s turns go round its jobs.
    const next: string[] = [];
    for (let k = 0; k < 6; k++) next.push(...s.dispatch([worker('w', 1)], Date.now(), canRun).map((a) => a.subtask.jobId));
    expect(next.filter((j) => j === 'o')).toHaveLength(3);
    expect(new Set(next.filter((j) => j !== 'o')).size).toBe(3);
    // A client whose jobs nothing can run (no worker of its kind) leaves every slot to the other.
    s.addJob('v', 'video', 0, 200, 'video-client');
    s.enqueue(Array.from({ length: 10 }, (_, i) => subtask('v', i)));
    expect(s.dispatch([worker('w', 8)], Date.now(), canRun)).toHaveLength(8);
    // Without owners (clients open: every job is one client's), jobs take turns as before.
    const open = new Scheduler();
    for (const j of ['a', 'b']) {
      open.addJob(j, 'image', 0, j === 'a' ? 1 : 2);
      open.enqueue(Array.from({ length: 4 }, (_, i) => subtask(j, i)));
    }
    expect(open.dispatch([worker('w', 4)], Date.now(), canRun).map((a) => a.subtask.jobId)).toEqual(['a', 'b', 'a', 'b']);
  });

  it('never assigns more than a worker has free slots (credit)', () => {
    const s = new Scheduler();
    s.addJob('a', 'image', 0, 1);
    s.enqueue(Array.from({ length: 10 }, (_, i) => subtask('a', i)));
    const w1 = worker('w1', 2);
    const w2 = worker('w2', 1);
    w2.leases.set('x', 1);
    const out = s.dispatch([w1, w2], Date.now(), canRun);
    expect(out.map((a) => a.worker.name)).toEqual(['w1', 'w1']);
    expect(s.pendingCount('a')).toBe(8);
  });

  it('gives each subtask to the worker with the most free credit that can run it, taking turns among equals', () => {
    const s = new Scheduler();
    s.addJob('a', 'image', 0, 1);
    s.enqueue(Array.from({ length: 7 }, (_, i) => subtask('a', i)));
    const big = worker('big', 3);
    const small = worker('small', 1);
    const other = worker('other', 4, ['video']);
    const out = s.dispatch([small, other, big], Date.now(), canRun);
    // big 3 -> 2 -> then small (1) and big (1) take turns in the order they reached that credit.
    expect(out.map((a) => a.worker.name)).toEqual(['big', 'big', 'small', 'big']);
    expect(s.pendingCount('a')).toBe(3);
    // 500 idle workers: one pass gives every one of them one subtask, none two.
    const many = Array.from({ length: 500 }, (_, i) => worker(`w${i}`, 2));
    s.addJob('b', 'image', 0, 2);
    s.enqueue(Array.from({ length: 500 }, (_, i) => subtask('b', i)));
    s.removeJob('a');
    const spread = s.dispatch(many, Date.now(), canRun);
    expect(spread).toHaveLength(500);
    expect(new Set(spread.map((a) => a.worker)).size).toBe(500);
  });

  it('gives a worker holding a stalled attempt work only when no other worker that can run it has room', () => {
    const s = new Scheduler();
    s.addJob('a', 'image', 0, 1);
    s.enqueue(Array.from({ length: 4 }, (_, i) => subtask('a', i)));
    // The most room of all, from a worker that takes work and never does it.
    const hoarder = Object.assign(worker('hoarder', 64), { stalledSince: Date.now() });
    const small = worker('small', 2);
    expect(s.dispatch([hoarder, small], Date.now(), canRun).map((a) => a.worker.name)).toEqual(['small', 'small', 'hoarder', 'hoarder']);
    // Once it reports again, it is like any other.
    hoarder.stalledSince = 0;
    s.enqueue([subtask('a', 4)]);
    expect(s.dispatch([hoarder, worker('other', 2)], Date.now(), canRun).map((a) => a.worker.name)).toEqual(['hoarder']);
  });

  it('is fair across jobs of the same priority and serves higher priority first', () => {
    const s = new Scheduler();
    s.addJob('old', 'image', 0, 1);
    s.addJob('new', 'image', 0, 2);
    s.addJob('urgent', 'image', 5, 3);
    s.enqueue([...Array.from({ length: 4 }, (_, i) => subtask('old', i)), ...Array.from({ length: 4 }, (_, i) => subtask('new', i)), subtask('urgent', 0)]);
    const out = s.dispatch([worker('w', 5)], Date.now(), canRun);
    expect(out.map((a) => a.subtask.jobId)).toEqual(['urgent', 'old', 'new', 'old', 'new']);
  });

  it('runs the heaviest subtask of a job first and respects capabilities and backoff', () => {
    const s = new Scheduler();
    s.addJob('a', 'video', 0, 1);
    const late = subtask('a', 0, 100);
    late.notBefore = Date.now() + 60_000;
    s.enqueue([subtask('a', 1, 5), subtask('a', 2, 50), late]);
    expect(s.dispatch([worker('img', 4, ['image'])], Date.now(), canRun)).toEqual([]);
    const out = s.dispatch([worker('vid', 4, ['video'])], Date.now(), canRun);
    expect(out.map((a) => a.subtask.index)).toEqual([2, 1]);
    expect(s.nextRetryAt(Date.now())).toBe(late.notBefore);
  });

  it('resumes the round robin where the previous dispatch stopped', () => {
    const s = new Scheduler();
    for (const [i, id] of ['a', 'b', 'c'].entries()) s.addJob(id, 'image', 0, i);
    s.enqueue(['a', 'b', 'c'].flatMap((id) => Array.from({ length: 3 }, (_, i) => subtask(id, i))));
    const first = s.dispatch([worker('w', 2)], Date.now(), canRun).map((a) => a.subtask.jobId);
    const second = s.dispatch([worker('w', 4)], Date.now(), canRun).map((a) => a.subtask.jobId);
    expect([...first, ...second]).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('serves a job whose turn it is after another job ran out of pending work', () => {
    const s = new Scheduler();
    for (const [i, id] of ['a', 'b', 'c'].entries()) s.addJob(id, 'image', 0, i);
    s.enqueue([...Array.from({ length: 5 }, (_, i) => subtask('a', i)), subtask('b', 0), ...Array.from({ length: 5 }, (_, i) => subtask('c', i))]);
    // One slot frees at a time: a, b (its last pending subtask), then it is c's turn.
    const served = Array.from({ length: 3 }, () => s.dispatch([worker('w', 1)], Date.now(), canRun)[0]!.subtask.jobId);
    expect(served).toEqual(['a', 'b', 'c']);
  });

  it('does not starve a job while another one gets one subtask at a time (its inputs still arriving)', () => {
    const s = new Scheduler();
    for (const [i, id] of ['a', 'b', 'c'].entries()) s.addJob(id, 'image', 0, i);
    s.enqueue([...Array.from({ length: 50 }, (_, i) => subtask('a', i)), ...Array.from({ length: 50 }, (_, i) => subtask('c', i))]);
    // b's subtasks are planned one by one as its upload goes on: one more arrives after each slot
    // that a took, while b has none pending.
    const served: string[] = [];
    let next = 0;
    s.enqueue([subtask('b', next++)]);
    for (let pass = 0; pass < 20; pass++) {
      if (served.at(-1) === 'a' && s.pendingCount('b') === 0) s.enqueue([subtask('b', next++)]);
      served.push(s.dispatch([worker('w', 1)], Date.now(), canRun)[0]!.subtask.jobId);
    }
    // c has pending work at every pass, a and b at most: c must get about a third of the 20 slots.
    expect(served.filter((j) => j === 'c').length, served.join('')).toBeGreaterThanOrEqual(5);
  });

  it('asks the workers once per pass about subtasks of the same requirements none of them meets, not once per subtask', () => {
    const s = new Scheduler();
    s.addJob('v', 'image', 0, 1);
    s.enqueue(Array.from({ length: 2000 }, (_, i) => ({ ...subtask('v', i), requires: { encoders: ['libsvtav1'] } }) as SubtaskRecord));
    const idle = Array.from({ length: 500 }, (_, i) => worker(`w${i}`, 1));
    let asked = 0;
    const counting = (w: WorkerSession, sub: SubtaskRecord, kind: string): boolean => {
      asked++;
      return canRun(w, sub, kind) && (sub.requires?.encoders ?? []).every((e) => w.encoders.has(e));
    };
    expect(s.dispatch(idle, Date.now(), counting)).toEqual([]);
    // Before: each of the 2,000 subtasks asked every one of the 500 workers (a million calls a pass).
    expect(asked).toBeLessThanOrEqual(500);
    expect(s.pendingCount('v')).toBe(2000);
  });

  it('fills free slots everywhere before queueing ahead, and queues ahead only for the jobs allowed to', () => {
    const s = new Scheduler();
    s.addJob('short', 'image', 0, 1);
    s.addJob('long', 'image', 0, 2);
    s.enqueue([...Array.from({ length: 10 }, (_, i) => subtask('short', i)), ...Array.from({ length: 10 }, (_, i) => subtask('long', i))]);
    const ahead = worker('ahead', 1, ['image'], 2);
    const plain = worker('plain', 1);
    const short = { job: (jobId: string) => jobId === 'short', worker: () => true };
    const out = s.dispatch([ahead, plain], Date.now(), canRun, short);
    // Pass 1: one per free slot, round robin across jobs. Pass 2: nothing queued, since the long
    // job waits at the same priority: the next slot to free is its turn, not a queued short one's.
    expect(out.map((a) => `${a.worker.name}:${a.subtask.jobId}`)).toEqual(['ahead:short', 'plain:long']);
    // Below the short job's priority the long job does not hold it back: two queue places, short only.
    const t = new Scheduler();
    t.addJob('short', 'image', 0, 1);
    t.addJob('long', 'image', -1, 2);
    t.enqueue([...Array.from({ length: 10 }, (_, i) => subtask('short', i)), ...Array.from({ length: 10 }, (_, i) => subtask('long', i))]);
    const ahead2 = worker('ahead', 1, ['image'], 2);
    const plain2 = worker('plain', 1);
    const queued = t.dispatch([ahead2, plain2], Date.now(), canRun, short);
    expect(queued.map((a) => `${a.worker.name}:${a.subtask.jobId}`)).toEqual(['ahead:short', 'plain:short', 'ahead:short', 'ahead:short']);
    // Leases count against slots + prefetch: a full worker gets nothing more.
    for (const a of queued) a.worker.leases.set(a.subtask.id, 1);
    expect(t.dispatch([ahead2, plain2], Date.now(), canRun, { job: () => true, worker: () => true })).toEqual([]);
    // Without the predicates (the default) nothing is queued ahead.
    const fresh = worker('fresh', 1, ['image'], 3);
    expect(s.dispatch([fresh], Date.now(), canRun).map((a) => a.worker.name)).toEqual(['fresh']);
  });

  it('queues nothing on a worker busy with a long subtask, held before or leased in the same pass', () => {
    const s = new Scheduler();
    s.addJob('long', 'image', 0, 1);
    s.addJob('short', 'image', 0, 2);
    s.enqueue([subtask('long', 0), ...Array.from({ length: 5 }, (_, i) => subtask('short', i))]);
    const busy = worker('busy', 1, ['image'], 1);
    busy.leases.set('running-long', 1);
    const idle = worker('idle', 1, ['image'], 1);
    const prefetch = { job: (jobId: string) => jobId === 'short', worker: (w: WorkerSession) => w !== busy };
    const out = s.dispatch([busy, idle], Date.now(), canRun, prefetch);
    // `idle` takes the long subtask in the first pass, so it gets no queue place either.
    expect(out.map((a) => `${a.worker.name}:${a.subtask.jobId}`)).toEqual(['idle:long']);
  });

  it('queues nothing ahead while a job that does not use queue places waits at the same or a higher priority', () => {
    // Two workers of one slot and one queue place, both running and queueing the short job.
    const s = new Scheduler();
    s.addJob('short', 'image', 0, 1);
    s.enqueue(Array.from({ length: 50 }, (_, i) => subtask('short', i)));
    const a = worker('a', 1, ['image'], 1);
    const b = worker('b', 1, ['image'], 1);
    const prefetch = { job: (jobId: string) => jobId === 'short', worker: () => true };
    const lease = (out: ReturnType<Scheduler['dispatch']>): string[] => out.map((x) => (x.worker.leases.set(x.subtask.id, 1), `${x.worker.name}:${x.subtask.jobId}`));
    expect(lease(s.dispatch([a, b], Date.now(), canRun, prefetch))).toEqual(['a:short', 'b:short', 'a:short', 'b:short']);
    // A new job (not measured yet: no queue places) of a lower priority waits; queueing goes on.
    s.addJob('low', 'image', -1, 2);
    s.enqueue([subtask('low', 0)]);
    a.leases.delete('short-0');
    expect(lease(s.dispatch([a, b], Date.now(), canRun, prefetch))).toEqual(['a:short']);
    // One of the same priority: each running subtask that ends leaves its slot to the one queued
    // behind it, and the queue place is not refilled, so that the next to end frees a real slot.
    s.addJob('same', 'image', 0, 3);
    s.enqueue([subtask('same', 0)]);
    a.leases.delete('short-2');
    expect(lease(s.dispatch([a, b], Date.now(), canRun, prefetch))).toEqual([]);
    b.leases.delete('short-1');
    expect(lease(s.dispatch([a, b], Date.now(), canRun, prefetch))).toEqual([]);
    // The next to end frees b's slot for it; nothing else waits at its priority, so the queue
    // places fill again in the same pass.
    b.leases.delete('short-3');
    expect(lease(s.dispatch([a, b], Date.now(), canRun, prefetch))).toEqual(['b:same', 'a:short']);
  });

  it('tracks retry backoff without scanning every pending subtask, and forgets dispatched retries', () => {
    const s = new Scheduler();
    s.addJob('a', 'image', 0, 1);
    s.enqueue(Array.from({ length: 1000 }, (_, i) => subtask('a', i)));
    const retry = subtask('a', 1000, 1000);
    retry.notBefore = Date.now() + 50;
    s.enqueue([retry]);
    expect(s.nextRetryAt(Date.now())).toBe(retry.notBefore);
    // Once its time has come it is dispatched like any other, and no longer holds a timer.
    const out = s.dispatch([worker('w', 1)], retry.notBefore, canRun);
    expect(out[0]!.subtask).toBe(retry);
    retry.state = 'running';
    expect(s.nextRetryAt(Date.now())).toBe(Infinity);
  });

  /** A scheduler holding one retry of job `a` that failed on worker `failedOn`, in its 5 s backoff. */
  const retryThatFailedOn = (failedOn: string) => {
    const s = new Scheduler();
    s.addJob('a', 'image', 0, 1);
    const retry = subtask('a', 0);
    const now = Date.now();
    retry.notBefore = now + 5_000;
    retry.failedOn = failedOn;
    s.enqueue([retry]);
    return { s, retry, now };
  };

  it('sends a retry at once to another worker than the one it failed on, and to that one only after its backoff', () => {
    const { s, retry, now } = retryThatFailedOn('cramped');
    // Only the worker it failed on has room: it waits.
    const cramped = worker('cramped', 4);
    expect(s.dispatch([cramped], now, canRun)).toEqual([]);
    // Another worker joins (with less room): it takes the retry at once.
    const out = s.dispatch([cramped, worker('roomy', 1)], now, canRun);
    expect(out.map((a) => a.worker.name)).toEqual(['roomy']);
    // Past the backoff, the worker it failed on may take it, if no other has room.
    s.enqueue([retry]);
    expect(s.dispatch([cramped], now, canRun)).toEqual([]);
    expect(s.dispatch([cramped], retry.notBefore, canRun).map((a) => a.worker.name)).toEqual(['cramped']);
  });

  it('does not send a retry at once to a worker holding a stalled attempt: the one it failed on takes it after its backoff', () => {
    const { s, retry, now } = retryThatFailedOn('flaky');
    const flaky = worker('flaky', 1);
    const hoarder = Object.assign(worker('hoarder', 4), { stalledSince: now });
    expect(s.dispatch([flaky, hoarder], now, canRun)).toEqual([]);
    expect(s.dispatch([flaky, hoarder], retry.notBefore, canRun).map((a) => a.worker.name)).toEqual(['flaky']);
  });

  it("keeps the slot a higher-priority retry's failure freed from lower work during its backoff, then gives it the retry", () => {
    const s = new Scheduler();
    s.addJob('high', 'image', 10, 1);
    s.addJob('low', 'image', 0, 2);
    const now = Date.now();
    const retry = subtask('high', 0);
    retry.notBefore = now + 500;
    retry.failedOn = 'w';
    s.enqueue([retry, subtask('low', 0), subtask('low', 1)]);
    const w = worker('w', 1);
    // It took low's subtask, and the retry then waited for all of it after its backoff (review FS).
    expect(s.dispatch([w], now, canRun)).toEqual([]);
    // Another worker's room goes to the retry at once; with the retry gone, low work flows again.
    const other = worker('other', 1);
    expect(s.dispatch([w, other], now, canRun).map((a) => [a.subtask.jobId, a.worker.name])).toEqual([
      ['high', 'other'],
      ['low', 'w'],
    ]);
  });

  it('holds nothing for a retry of equal or lower priority, nor after its backoff', () => {
    const s = new Scheduler();
    s.addJob('a', 'image', 0, 1);
    s.addJob('b', 'image', 0, 2);
    const now = Date.now();
    const retry = subtask('a', 0);
    retry.notBefore = now + 500;
    retry.failedOn = 'w';
    s.enqueue([retry, subtask('b', 0)]);
    expect(s.dispatch([worker('w', 1)], now, canRun).map((a) => a.subtask.jobId)).toEqual(['b']);
    s.addJob('h', 'image', 5, 3);
    const late = subtask('h', 0);
    late.notBefore = now + 500;
    late.failedOn = 'w';
    s.enqueue([late, subtask('b', 1)]);
    expect(s.dispatch([worker('w', 1)], late.notBefore, canRun).map((a) => a.subtask.jobId)).toEqual(['h']);
  });
});
