import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobEvent } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import { newSubtaskRecord, type JobRecord, type SubtaskRecord } from './model.js';
import { JobStore, SCHEMA_VERSION } from './store.js';
import { batchBytes, splitBatch } from './store-writer.js';

const dirs: string[] = [];
function dbFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-store-'));
  dirs.push(dir);
  return path.join(dir, 'jobs.db');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function job(id: string): JobRecord {
  return {
    id,
    kind: 'passthrough',
    state: 'running',
    spec: { label: 'x', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 3, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobRecord['spec'],
    inputs: [],
    outputs: [],
    errors: [],
    createdAt: 1,
    startedAt: 0,
    finishedAt: 0,
    message: '',
    owner: 'anonymous',
    phase: 0,
    seq: 0,
    maxAttempts: 3,
  };
}

function subtask(jobId: string, index: number): SubtaskRecord {
  const plan = { label: `noop ${index}`, inputs: [], plan: { input: -1, workMs: 0 }, weight: 1, items: [] };
  return newSubtaskRecord(plan, { id: `${jobId}-0-${index}`, jobId, index, phase: 0, timeoutMs: 1000 });
}

const event = (jobId: string, seq: number): JobEvent => ({ seq: String(seq), time_ms: '1', job_id: jobId, type: 'log', message: `event ${seq}` });

describe('JobStore', () => {
  it('returns every event after a seq, in order, across many flushes and beyond one page', () => {
    const store = new JobStore(dbFile());
    let seq = 0;
    for (let flush = 0; flush < 30; flush++) {
      for (let i = 0; i < 500; i++) store.appendEvent(event('a', ++seq));
      store.appendEvent(event('b', flush + 1));
      store.flush();
    }
    const firstPage = store.eventsAfter('a', 0);
    expect(firstPage.length).toBeGreaterThanOrEqual(10_000);
    expect(firstPage.map((e) => Number(e.seq))).toEqual(Array.from({ length: firstPage.length }, (_, i) => i + 1));
    // Paging from the middle of a flushed batch returns exactly what follows.
    const rest = store.eventsAfter('a', 12_345, 100_000);
    expect(rest.map((e) => Number(e.seq))).toEqual(Array.from({ length: 15_000 - 12_345 }, (_, i) => 12_346 + i));
    expect(store.eventsAfter('b', 28).map((e) => e.seq)).toEqual(['29', '30']);
    store.close();
  });

  it('keeps a subtask plan written once and its state written on every change, across a reopen', () => {
    const file = dbFile();
    const store = new JobStore(file);
    const j = job('j1');
    store.saveJob(j);
    const subs = [subtask('j1', 0), subtask('j1', 1)];
    store.createSubtasks(subs);
    subs[1]!.state = 'succeeded';
    subs[1]!.attempt = 2;
    subs[1]!.outputs = [{ name: 'o.bin', path: '/x/o.bin', size: 3, sha256: 'abc' }];
    store.saveSubtask(subs[1]!);
    store.flush();
    subs[0]!.state = 'failed';
    subs[0]!.error = { input: '', code: 'INTERNAL', message: 'boom' };
    store.saveSubtask(subs[0]!);
    store.close();

    const reopened = new JobStore(file);
    const back = reopened.subtasksOf('j1');
    expect(back).toEqual(JSON.parse(JSON.stringify(subs)));
    const { jobs, subtasks } = reopened.loadAll();
    expect(jobs.map((x) => x.id)).toEqual(['j1']);
    expect(subtasks.get('j1')?.map((s) => s.state)).toEqual(['failed', 'succeeded']);
    reopened.close();
  });

  it("writes a job's inputs once and appends its outputs, however often the job is saved", () => {
    const file = dbFile();
    const store = new JobStore(file);
    const j = job('big');
    j.inputs = Array.from({ length: 2000 }, (_, i) => ({ name: `p${i}.jpg`, path: `/media/p${i}.jpg`, size: 1000 + i, sha256: '' }));
    const rowBytes = (db: Database.Database): number => (db.prepare('SELECT length(record) AS n FROM jobs WHERE id = ?').get('big') as { n: number }).n;
    for (let i = 0; i < 300; i++) {
      j.seq++;
      if (i % 3 === 0) j.outputs.push({ name: `p${i}.webp`, path: `/out/p${i}.webp`, size: i, sha256: 'f'.repeat(64), source: `p${i}.jpg`, contentType: 'image/webp' });
      store.saveJob(j);
      store.flush();
    }
    store.close();

    const db = new Database(file);
    // The record stays small; the lists are rows: one of inputs, one per flush that added outputs.
    expect(rowBytes(db)).toBeLessThan(1000);
    expect(db.prepare("SELECT count(*) AS n FROM job_files WHERE job_id = 'big' AND kind = 'input'").get()).toEqual({ n: 1 });
    expect(db.prepare("SELECT count(*) AS n FROM job_files WHERE job_id = 'big' AND kind = 'output'").get()).toEqual({ n: 100 });
    db.close();
    const reopened = new JobStore(file);
    const [back] = reopened.loadAll().jobs;
    expect(back).toEqual(JSON.parse(JSON.stringify(j)));
    // Saved again after the reopen: only what is new is written.
    back!.outputs.push({ name: 'last.webp', path: '/out/last.webp', size: 1, sha256: '', source: '', contentType: 'image/webp' });
    back!.seq++;
    reopened.saveJob(back!);
    reopened.close();
    const again = new JobStore(file);
    expect(again.loadAll().jobs[0]!.outputs.map((o) => o.name)).toEqual([...j.outputs.map((o) => o.name), 'last.webp']);
    again.close();
  });

  it('reads a store written before events were batched and subtask state split out', () => {
    const file = dbFile();
    const old = new Database(file);
    old.exec(`
      CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at INTEGER NOT NULL, record TEXT NOT NULL);
      CREATE TABLE subtasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, record TEXT NOT NULL);
      CREATE INDEX subtasks_job ON subtasks(job_id);
      CREATE TABLE events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (job_id, seq));
    `);
    const j = job('old');
    j.seq = 3;
    j.inputs = [{ name: 'in.bin', path: '/spool/in.bin', size: 1, sha256: 'a' }];
    j.outputs = [{ name: 'out.bin', path: '/out/out.bin', size: 1, sha256: 'b', source: 'in.bin', contentType: '' }];
    old.prepare('INSERT INTO jobs VALUES (?, ?, ?, ?)').run(j.id, j.state, j.createdAt, JSON.stringify(j));
    const s = { ...subtask('old', 0), state: 'succeeded', attempt: 1 };
    old.prepare('INSERT INTO subtasks VALUES (?, ?, ?)').run(s.id, s.jobId, JSON.stringify(s));
    for (let seq = 1; seq <= 3; seq++) old.prepare('INSERT INTO events VALUES (?, ?, ?)').run('old', seq, JSON.stringify(event('old', seq)));
    old.close();

    const store = new JobStore(file);
    expect(store.subtasksOf('old')).toEqual([s]);
    // The job's lists were in its record then: they load from there, and move out on the next save.
    const [loaded] = store.loadAll().jobs;
    expect(loaded!.inputs.map((i) => i.name)).toEqual(['in.bin']);
    expect(loaded!.outputs.map((o) => o.name)).toEqual(['out.bin']);
    store.saveJob(loaded!);
    // New events land after the old single-event rows and read back as one sequence.
    store.appendEvent(event('old', 4));
    store.appendEvent(event('old', 5));
    store.flush();
    expect(store.eventsAfter('old', 1).map((e) => e.seq)).toEqual(['2', '3', '4', '5']);
    s.failures = 1;
    store.saveSubtask(s as SubtaskRecord);
    expect(store.subtasksOf('old')[0]!.failures).toBe(1);
    store.close();
    const reopened = new JobStore(file);
    expect(reopened.loadAll().jobs[0]).toEqual(JSON.parse(JSON.stringify(loaded)));
    reopened.close();
  });

  it('keeps what a full disk refused and retries it by itself until there is room', async () => {
    const file = dbFile();
    const errors: Error[] = [];
    const store = new JobStore(file, { onFlushError: (err) => errors.push(err) });
    store.saveJob(job('first'));
    store.flush();
    // SQLite's own ceiling on the file's pages: past it, writes fail with SQLITE_FULL as on a full disk.
    const db = (store as unknown as { db: Database.Database }).db;
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const big = job('big');
    big.inputs = Array.from({ length: 2000 }, (_, i) => ({ name: `in-${i}.bin`, path: `/spool/in-${i}.bin`, size: i, sha256: 'ab'.repeat(32) }));
    store.saveJob(big);
    store.createSubtasks([subtask('big', 0), subtask('big', 1)]);
    for (let seq = 1; seq <= 3; seq++) store.appendEvent(event('big', seq));
    expect(() => store.flush()).toThrow(expect.objectContaining({ codeName: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/job store is full .*nothing was lost/) }));
    // What may happen only once this is on disk waits for the commit that succeeds.
    let stored = false;
    store.whenStored(() => (stored = true));
    expect(stored).toBe(false);
    // Nothing else changes: the failed write is retried on its own, every second, each failure
    // reported (logged by the coordinator), not thrown.
    await expect.poll(() => errors.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(errors[0]).toMatchObject({ codeName: 'RESOURCE_EXHAUSTED' });
    store.appendEvent(event('big', 4));
    // Room again: the next retry writes all of it, in order (read through another connection,
    // before anything closes the store).
    db.pragma('max_page_count = 1073741823');
    const reader = new Database(file, { readonly: true });
    const storedIds = (): string[] => (reader.prepare('SELECT id FROM jobs ORDER BY id').all() as { id: string }[]).map((r) => r.id);
    await expect.poll(storedIds, { timeout: 10_000 }).toEqual(['big', 'first']);
    expect(stored).toBe(true);
    expect((reader.prepare("SELECT count(*) AS n FROM subtasks WHERE job_id = 'big'").get() as { n: number }).n).toBe(2);
    reader.close();
    expect(store.eventsAfter('big', 0).map((e) => e.seq)).toEqual(['1', '2', '3', '4']);
    store.close();
    const reopened = new JobStore(file);
    expect(reopened.loadAll().jobs.find((j) => j.id === 'big')!.inputs).toHaveLength(2000);
    expect(reopened.subtasksOf('big').map((s) => s.index)).toEqual([0, 1]);
    reopened.close();
  });

  it('commits on its writer thread while the event loop goes on; reads meanwhile see everything, written or not', async () => {
    const file = dbFile();
    const store = new JobStore(file);
    const a = job('a');
    store.saveJob(a);
    const subtasks = [0, 1, 2].map((i) => subtask('a', i));
    store.createSubtasks(subtasks);
    for (let seq = 1; seq <= 5; seq++) store.appendEvent(event('a', seq));
    const done = store.committed();
    // Handed to the thread, not yet answered (this turn has not ended): reads still see all of it.
    expect((store as unknown as { inFlight?: unknown }).inFlight).toBeDefined();
    expect(store.eventsAfter('a', 2).map((e) => e.seq)).toEqual(['3', '4', '5']);
    expect(store.subtasksOf('a').map((s) => s.id)).toEqual(['a-0-0', 'a-0-1', 'a-0-2']);
    // Changed while the first batch is being written: the next batch carries it, after the first.
    subtasks[1]!.state = 'succeeded';
    store.saveSubtask(subtasks[1]!);
    store.appendEvent(event('a', 6));
    expect(store.subtasksOf('a')[1]!.state).toBe('succeeded');
    await done;
    await store.committed();
    const reader = new Database(file, { readonly: true });
    expect((reader.prepare("SELECT id FROM jobs").all() as { id: string }[]).map((r) => r.id)).toEqual(['a']);
    const live = reader.prepare("SELECT live FROM subtasks WHERE id = 'a-0-1'").get() as { live: string };
    expect(JSON.parse(live.live)).toMatchObject({ state: 'succeeded' });
    reader.close();
    expect(store.eventsAfter('a', 0).map((e) => e.seq)).toEqual(['1', '2', '3', '4', '5', '6']);
    store.close();
    const reopened = new JobStore(file);
    expect(reopened.subtasksOf('a').map((s) => s.state)).toEqual(['pending', 'succeeded', 'pending']);
    reopened.close();
  });

  it('writes an output published while the batch that wrote its job is still being committed', async () => {
    const file = dbFile();
    const store = new JobStore(file);
    const j = job('late');
    store.saveJob(j);
    const first = store.committed();
    // On the thread: the job as it was, without outputs.
    expect((store as unknown as { inFlight?: unknown }).inFlight).toBeDefined();
    j.outputs.push({ name: 'late.webp', path: '/out/late.webp', size: 5, sha256: 'f'.repeat(64), source: 'late.jpg', contentType: 'image/webp' });
    j.seq++;
    store.saveJob(j);
    await first;
    await store.committed();
    store.close();
    const reopened = new JobStore(file);
    expect(reopened.loadAll().jobs[0]!.outputs.map((o) => o.name)).toEqual(['late.webp']);
    reopened.close();
  });

  it('writes a batch the thread is committing first, then the rest, when a caller needs it all on disk now', () => {
    const file = dbFile();
    const store = new JobStore(file);
    const s = subtask('a', 0);
    store.saveJob(job('a'));
    store.createSubtasks([s]);
    void store.committed();
    s.state = 'running';
    store.saveSubtask(s);
    s.state = 'failed';
    store.saveSubtask(s);
    // Synchronous: waits for the thread's batch (the subtask's creation), then writes its last state.
    store.flush();
    expect((store as unknown as { inFlight?: unknown }).inFlight).toBeUndefined();
    const reader = new Database(file, { readonly: true });
    const row = reader.prepare("SELECT live FROM subtasks WHERE id = 'a-0-0'").get() as { live: string };
    expect(JSON.parse(row.live)).toMatchObject({ state: 'failed' });
    reader.close();
    store.close();
  });

  it('writes a job of 100,000 subtasks on its writer thread in slices of one transaction, the event loop going on meanwhile', async () => {
    const file = dbFile();
    const errors: Error[] = [];
    const store = new JobStore(file, { onFlushError: (e) => errors.push(e) });
    store.saveJob(job('big'));
    store.createSubtasks(Array.from({ length: 100_000 }, (_, i) => subtask('big', i)));
    const done = store.committed();
    // Handed to the thread (25 MB of strings, past its heap: in slices), not written here.
    expect((store as unknown as { inFlight?: unknown }).inFlight).toBeDefined();
    // Meanwhile the event loop turns, and a reader sees none of the job's subtasks or all of them.
    const reader = new Database(file, { readonly: true });
    const count = reader.prepare("SELECT count(*) AS n FROM subtasks WHERE job_id = 'big'");
    const seen = new Set<number>();
    let turns = 0;
    let committed = false;
    void done.then(() => (committed = true));
    while (!committed) {
      seen.add((count.get() as { n: number }).n);
      turns++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    seen.add((count.get() as { n: number }).n);
    reader.close();
    expect(turns).toBeGreaterThan(1);
    expect([...seen].filter((n) => n !== 0 && n !== 100_000)).toEqual([]);
    expect(seen.has(100_000)).toBe(true);
    expect(errors).toEqual([]);
    // The thread is still the one writing.
    store.appendEvent(event('big', 1));
    void store.committed();
    expect((store as unknown as { inFlight?: unknown }).inFlight).toBeDefined();
    store.close();
    const reopened = new JobStore(file);
    expect(reopened.subtasksOf('big')).toHaveLength(100_000);
    reopened.close();
  });

  it('cuts a big batch into slices of about the size asked, in order, losing nothing', () => {
    const batch = {
      jobs: [{ id: 'j', state: 'running', createdAt: 1, record: 'r'.repeat(10), rewriteOutputs: false, outputsFrom: 0 }],
      created: Array.from({ length: 50 }, (_, i): [string, string, string] => [`s${i}`, 'j', 'x'.repeat(100)]),
      updates: Array.from({ length: 30 }, (_, i): [string, string] => ['y'.repeat(50), `s${i}`]),
      events: [['j', 9, 'e'.repeat(2000)] as [string, number, string]],
    };
    const parts = splitBatch(batch, 1000);
    expect(parts.length).toBeGreaterThan(5);
    for (const p of parts.slice(0, -1)) expect(batchBytes(p)).toBeLessThanOrEqual(1000);
    // One row bigger than a slice is a slice of its own.
    expect(parts.at(-1)!.events).toEqual(batch.events);
    expect(parts.flatMap((p) => p.jobs)).toEqual(batch.jobs);
    expect(parts.flatMap((p) => p.created)).toEqual(batch.created);
    expect(parts.flatMap((p) => p.updates)).toEqual(batch.updates);
    expect(splitBatch({ jobs: [], created: [], updates: [], events: [] }, 1000)).toHaveLength(1);
  });

  it('starts its writer thread before the first write when asked, commits through it, and closes it unused', async () => {
    const file = dbFile();
    const store = new JobStore(file);
    store.startWriterThread();
    const writer = (store as unknown as { writer?: { worker: import('node:worker_threads').Worker } }).writer;
    expect(writer?.worker).toBeDefined();
    store.saveJob(job('a'));
    await store.committed();
    // The same thread took the first batch: none was started for it.
    expect((store as unknown as { writer?: unknown }).writer).toBe(writer);
    store.close();
    const reader = new Database(file, { readonly: true });
    expect((reader.prepare('SELECT id FROM jobs').all() as { id: string }[]).map((r) => r.id)).toEqual(['a']);
    reader.close();
    // A store that never writes ends its thread too, even one still starting.
    const idle = new JobStore(dbFile());
    idle.startWriterThread();
    const thread = (idle as unknown as { writer: { worker: import('node:worker_threads').Worker } }).writer.worker;
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    idle.close();
    await exited;
  });

  it('loses nothing when its writer thread is gone: it says so and writes on the main thread', async () => {
    const file = dbFile();
    const errors: Error[] = [];
    const store = new JobStore(file, { onFlushError: (err) => errors.push(err) });
    store.saveJob(job('a'));
    await store.committed();
    const writer = (store as unknown as { writer: { worker: import('node:worker_threads').Worker } }).writer;
    await writer.worker.terminate();
    await expect.poll(() => errors.length).toBe(1);
    expect(errors[0]).toMatchObject({ codeName: 'UNAVAILABLE', message: expect.stringMatching(/writer thread exited .*writing on the main thread, nothing was lost/) });
    store.saveJob(job('b'));
    store.appendEvent(event('b', 1));
    await store.committed();
    const reader = new Database(file, { readonly: true });
    expect((reader.prepare('SELECT id FROM jobs ORDER BY id').all() as { id: string }[]).map((r) => r.id)).toEqual(['a', 'b']);
    reader.close();
    store.close();
  });

  it('forgets a job given up before its first write', () => {
    const file = dbFile();
    const store = new JobStore(file);
    store.saveJob(job('kept'));
    store.appendEvent(event('kept', 1));
    store.saveJob(job('dropped'));
    store.appendEvent(event('dropped', 1));
    store.forget('dropped');
    store.close();
    const reopened = new JobStore(file);
    expect(reopened.loadAll().jobs.map((j) => j.id)).toEqual(['kept']);
    expect(reopened.eventsAfter('dropped', 0)).toEqual([]);
    expect(reopened.eventsAfter('kept', 0).map((e) => e.seq)).toEqual(['1']);
    reopened.close();
  });
});

describe('JobStore schema version', () => {
  const version = (file: string): number => {
    const db = new Database(file, { readonly: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  };

  it('marks a new store with the current version', () => {
    const file = dbFile();
    new JobStore(file).close();
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
    expect(version(file)).toBe(SCHEMA_VERSION);
  });

  it('takes an unversioned store of an older layout (subtasks without `live`, records with their files) forward, losing nothing', () => {
    const file = dbFile();
    // What the coordinator wrote before the split of subtasks and of job files, unversioned.
    const old = new Database(file);
    old.exec(`
      CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at INTEGER NOT NULL, record TEXT NOT NULL);
      CREATE TABLE subtasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, record TEXT NOT NULL);
      CREATE TABLE events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (job_id, seq));
    `);
    const j = { ...job('old'), inputs: [{ name: 'a.bin', size: 3 }] as unknown as JobRecord['inputs'] };
    old.prepare('INSERT INTO jobs VALUES (?, ?, ?, ?)').run(j.id, j.state, j.createdAt, JSON.stringify(j));
    old.prepare('INSERT INTO subtasks VALUES (?, ?, ?)').run('old-0-0', 'old', JSON.stringify(subtask('old', 0)));
    old.prepare('INSERT INTO events VALUES (?, ?, ?)').run('old', 1, JSON.stringify(event('old', 1)));
    old.close();
    expect(version(file)).toBe(0);

    const store = new JobStore(file);
    const loaded = store.loadAll();
    expect(loaded.jobs.map((x) => [x.id, x.inputs])).toEqual([['old', [{ name: 'a.bin', size: 3 }]]]);
    expect(loaded.subtasks.get('old')!.map((s) => s.id)).toEqual(['old-0-0']);
    expect(store.eventsAfter('old', 0).map((e) => e.seq)).toEqual(['1']);
    // A subtask's state can be saved (the `live` column exists now).
    const s = loaded.subtasks.get('old')![0]!;
    s.state = 'succeeded';
    store.saveSubtask(s);
    store.close();
    expect(version(file)).toBe(SCHEMA_VERSION);
    const reopened = new JobStore(file);
    expect(reopened.subtasksOf('old')[0]!.state).toBe('succeeded');
    reopened.close();
  });

  it("takes an unversioned store of today's layout as the current version", () => {
    const file = dbFile();
    const store = new JobStore(file);
    store.saveJob(job('today'));
    store.close();
    // As a coordinator from before the version was kept left it.
    const db = new Database(file);
    db.pragma('user_version = 0');
    db.close();
    const reopened = new JobStore(file);
    expect(reopened.loadAll().jobs.map((x) => x.id)).toEqual(['today']);
    reopened.close();
    expect(version(file)).toBe(SCHEMA_VERSION);
  });

  it('refuses a store of a newer version, naming the data dir and both versions, and leaves it as it was', () => {
    const file = dbFile();
    const store = new JobStore(file);
    store.saveJob(job('future'));
    store.close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.exec('CREATE TABLE from_the_future (x)');
    db.close();
    let err: Error | undefined;
    try {
      new JobStore(file).close();
    } catch (e) {
      err = e as Error;
    }
    expect(err, 'a store of a newer version was opened').toBeInstanceOf(Error);
    expect(err?.message).toContain(path.dirname(file));
    expect(err?.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(err?.message).toContain(`versions up to ${SCHEMA_VERSION}`);
    expect(version(file)).toBe(SCHEMA_VERSION + 1);
    // Nothing was written or left open: the file can be taken by a writer at once.
    const after = new Database(file, { timeout: 0 });
    after.exec('BEGIN EXCLUSIVE; COMMIT');
    expect(after.prepare('SELECT id FROM jobs').all()).toEqual([{ id: 'future' }]);
    after.close();
  });
});

describe('JobStore disk space', () => {
  /** Fills a store with `n` jobs of about 20 KB of events each, flushed. */
  function fill(store: JobStore, n: number): void {
    for (let j = 0; j < n; j++) {
      store.saveJob(job(`job-${j}`));
      for (let seq = 1; seq <= 20; seq++) store.appendEvent({ ...event(`job-${j}`, seq), message: 'x'.repeat(1000) });
    }
    store.flush();
  }

  it('gives the pages of removed jobs back to the file system, a bounded step at a time', () => {
    const file = dbFile();
    const store = new JobStore(file);
    fill(store, 200);
    const full = store.pageStats();
    for (let j = 0; j < 200; j++) store.deleteJob(`job-${j}`);
    expect(store.pageStats().free).toBeGreaterThan(full.pages / 2);
    // A step gives back at most what it is asked; repeated, everything.
    expect(store.reclaimSpace(100)).toBe(100);
    while (store.reclaimSpace(500) > 0);
    const after = store.pageStats();
    expect(after.free).toBe(0);
    expect(after.pages).toBeLessThan(full.pages / 10);
    store.close();
    // The file itself shrank (the WAL checkpointed at close).
    expect(new Database(file).pragma('page_count', { simple: true })).toBe(after.pages);
  });

  it('rewrites at open, once, a store made without auto_vacuum that is mostly free pages; leaves one that is not', () => {
    const make = (jobs: number, removed: number): string => {
      const file = dbFile();
      // As an older Tessera made it: no auto_vacuum.
      const old = new Database(file);
      old.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
      old.close();
      const store = new JobStore(file);
      fill(store, jobs);
      for (let j = 0; j < removed; j++) store.deleteJob(`job-${j}`);
      store.close();
      const db = new Database(file);
      expect(db.pragma('auto_vacuum', { simple: true })).toBe(0);
      db.close();
      return file;
    };
    // About 20 MB written, 90% removed: rewritten, and kept giving space back from then on.
    const mostlyFree = make(1000, 900);
    const before = new JobStore(mostlyFree);
    expect(before.vacuumed?.freedBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(before.pageStats().free).toBe(0);
    expect(before.loadAll().jobs.map((j) => j.id)).toHaveLength(100);
    before.deleteJob('job-950');
    expect(before.reclaimSpace()).toBeGreaterThan(0);
    before.close();
    // A quarter free is not worth a rewrite at start.
    const mostlyLive = make(1000, 100);
    const kept = new JobStore(mostlyLive);
    expect(kept.vacuumed).toBeUndefined();
    expect(kept.reclaimSpace()).toBe(0);
    kept.close();
  });
});
