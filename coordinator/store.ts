/**
 * Durable job store: jobs, subtasks and the event log in SQLite (WAL).
 *
 * The coordinator works on in-memory records and marks them dirty; dirty records and new events
 * are written together at most every FLUSH_INTERVAL_MS, in one transaction, by a thread of their
 * own (store-writer.ts), so thousands of subtask transitions per second cost a few commits and
 * never hold up the event loop. Callers that need a write done before they go on (reads, shutdown)
 * wait for the thread's batch and write the rest on the store's own connection.
 *
 * A job's inputs and outputs live apart from its record (`job_files`), appended: the inputs as
 * they are accepted (all at once, unless the job started while its upload ran), the outputs as
 * they are published. The record itself changes with every event (its
 * sequence number), and rewriting a 10,000-photo job's file lists on each change made every
 * commit O(job size).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { status } from '../shared/grpc-status.js';
import { TesseraError } from '../shared/errors.js';
import type { JobEvent } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import type { SpoolFile } from '../shared/job-kind.js';
import { TERMINAL_JOB_STATES, type JobRecord, type OutputRecord, type SubtaskRecord } from './model.js';
import { applyBatch, batchBytes, WAL_SIZE_LIMIT_BYTES, writeStatements, type WriteBatch, type WriterData, type WriterReply, type WriterRequest, type WriteStatements } from './store-writer.js';
import { steadyNow } from '../shared/clock.js';

/** The writer thread's module (compiled: a worker thread runs plain Node, also under vitest). */
const WRITER_ENTRY = import.meta.url.endsWith('.ts') ? fileURLToPath(new URL('../dist/coordinator/store-writer.js', import.meta.url)) : fileURLToPath(new URL('./store-writer.js', import.meta.url));
/** Longest a caller that must have the write done waits for the writer thread before writing itself. */
const WRITER_STALL_MS = 30_000;
/**
 * The thread's heap: small, since all it holds is the batch being written (the limits also keep V8
 * from growing it far past that before collecting). Past the limit the thread ends, and the store
 * writes on its own thread from then on (see dropWriter).
 */
const WRITER_HEAP = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 };
/** Batches larger than this go to the writer thread in slices of this size (see flushInBackground). */
const WRITER_BATCH_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Longest a change waits in memory before it is committed. What a crash loses in that window is
 * re-run (subtask results) or re-sent under new sequence numbers (events: see RESUME_SEQ_GAP).
 */
export const FLUSH_INTERVAL_MS = 20;
/** After a failed write (a full disk), the next try: soon, but not in a tight loop. */
export const FLUSH_RETRY_MS = 1000;

/**
 * A resumed job's event numbers jump ahead by this much, so that a watcher that saw events which
 * never reached the disk before a crash still receives everything after its last seq.
 */
export const RESUME_SEQ_GAP = 100_000;

/**
 * The layout of the job store, kept in SQLite's `user_version`. A store is migrated forward when
 * opened; one with a higher version (written by a newer Tessera) is refused, never misread.
 * Stores from before the version was kept (0) have today's tables or older ones: migrated too.
 *   1: jobs, subtasks (with `live`), events, job_files.
 *   2: meta (the spool root the stored paths are under).
 */
export const SCHEMA_VERSION = 2;

/** Free space in a store without auto_vacuum past which it is converted at open (see JobStore). */
const CONVERT_FREE_BYTES = 16 * 1024 * 1024;

/** Brings a store of an older (or no) version to SCHEMA_VERSION, all in one transaction. */
function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at INTEGER NOT NULL, record TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS subtasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, record TEXT NOT NULL, live TEXT);
      CREATE INDEX IF NOT EXISTS subtasks_job ON subtasks(job_id);
      CREATE TABLE IF NOT EXISTS events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (job_id, seq));
      CREATE TABLE IF NOT EXISTS job_files (job_id TEXT NOT NULL, kind TEXT NOT NULL, first INTEGER NOT NULL, files TEXT NOT NULL, PRIMARY KEY (job_id, kind, first));
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
    // Stores from before the split of a subtask into its plan (`record`, written once) and its
    // changing state (`live`) get the new column; their rows keep working (live NULL). Records
    // from before job_files carry their inputs and outputs, moved on their next save (loadAll).
    const columns = db.prepare('PRAGMA table_info(subtasks)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'live')) db.exec('ALTER TABLE subtasks ADD COLUMN live TEXT');
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

/**
 * Opens a SQLite file, saying in one line what to do when better-sqlite3's native module cannot be
 * loaded (its install script skipped, as npm 11 does unless allowed, or built for another Node.js),
 * instead of its list of a dozen paths tried.
 */
export function openDatabase(file: string, options?: Database.Options): Database.Database {
  try {
    return new Database(file, options);
  } catch (err) {
    throw nativeModuleTrouble(err) ?? err;
  }
}

/** The error to give for a failure to load better-sqlite3's native module; undefined for any other. */
export function nativeModuleTrouble(err: unknown): Error | undefined {
  const message = err instanceof Error ? err.message : String(err);
  const missing = /Could not locate the bindings file/.test(message);
  const otherNode = /NODE_MODULE_VERSION|compiled against a different Node\.js version|invalid ELF header|wrong ELF class/.test(message);
  if (!missing && !otherNode) return undefined;
  const why = missing ? 'it was never built (its install script did not run: an install with --ignore-scripts, or one that allowScripts denied)' : `it was built for another Node.js (${process.version} runs here)`;
  return new Error(`the coordinator's job store needs better-sqlite3's native module, and ${why}: run \`npm rebuild better-sqlite3\` where Tessera is installed (see README, "Installing")`);
}

/**
 * An exclusive hold on a data dir, for as long as one coordinator runs on it: two coordinators on
 * one dir would both resume and run the same jobs. It is a lock SQLite takes on a small file of
 * its own (`coordinator.lock`, a POSIX record lock): the system drops it when the process ends,
 * however it ends (SIGKILL too), so a restart never needs a cleanup. A second coordinator, in
 * another process or in this one, is refused at once.
 */
export class DataDirLock {
  private constructor(private db: Database.Database | undefined) {}

  static readonly FILE = 'coordinator.lock';

  static acquire(dataDir: string): DataDirLock {
    const file = path.join(dataDir, DataDirLock.FILE);
    const db = openDatabase(file, { timeout: 0 });
    try {
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      const e = err as Error & { code?: string };
      if (e.code === 'SQLITE_BUSY' || e.code === 'SQLITE_LOCKED') {
        throw new Error(`data dir ${dataDir} is in use by another coordinator (it holds ${file}): stop that one first, or give this one another --data-dir`);
      }
      throw new Error(`cannot lock data dir ${dataDir} (${file}: ${e.code ?? 'error'}: ${e.message})`);
    }
    return new DataDirLock(db);
  }

  release(): void {
    const db = this.db;
    this.db = undefined;
    db?.close();
  }
}

export class JobStore {
  private readonly db: Database.Database;
  private readonly dirtyJobs = new Map<string, JobRecord>();
  private newSubtasks: SubtaskRecord[] = [];
  private readonly dirtySubtasks = new Map<string, SubtaskRecord>();
  private pendingEvents: JobEvent[] = [];
  /** Per job: how many of its inputs and of its outputs are stored. */
  private readonly filesStored = new Map<string, { inputs: number; outputs: number }>();
  private flushScheduled = false;
  /** Called after the next commit that succeeds (what was saved before them is on disk then). */
  private afterCommit: (() => void)[] = [];
  /** Waiting for the next commit, whether it succeeds or not (see committed). */
  private commitWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly stmts;
  private readonly writeStmts: WriteStatements;
  private readonly file: string;
  /** The writer thread: started with the first background write; null once it failed (then all writes are synchronous). */
  private writer: Writer | undefined | null;
  /** The batch the writer thread is committing (at most one at a time: batches commit in order). */
  /** The batch the writer thread has; `rest`: its slices not posted yet (see postParts). */
  private inFlight: (Taken & { id: number; rest?: { parts: Generator<WriteBatch>; next: WriteBatch; index: number } }) | undefined;

  /** `onFlushError`: a write that nobody waits for failed (it is kept and tried again); the coordinator logs it. */
  constructor(
    file: string,
    private readonly opts: { onFlushError?: (err: TesseraError) => void } = {},
  ) {
    this.file = file;
    this.db = openDatabase(file);
    try {
      // Checked before anything is written: a store from a newer Tessera is left exactly as it is.
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(
          `the job store ${file} in data dir ${path.dirname(file)} has schema version ${version}, but this coordinator knows versions up to ${SCHEMA_VERSION}: ` +
            'it was written by a newer Tessera, whose records this one would misread. Run that version (or a newer one) on this data dir; nothing was changed',
        );
      }
      // A new store gives the pages of removed jobs back to the file system (reclaimSpace):
      // auto_vacuum is settable only before the first table is made (or by a VACUUM).
      if (version === 0 && this.pageStats().pages <= 1) this.db.pragma('auto_vacuum = INCREMENTAL');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      if (version < SCHEMA_VERSION) migrate(this.db);
      this.convertToIncrementalVacuum();
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.stmts = {
      deleteSubtasks: this.db.prepare('DELETE FROM subtasks WHERE job_id = ?'),
      deleteJob: this.db.prepare('DELETE FROM jobs WHERE id = ?'),
      deleteEvents: this.db.prepare('DELETE FROM events WHERE job_id = ?'),
      deleteAllFiles: this.db.prepare('DELETE FROM job_files WHERE job_id = ?'),
      eventsAfter: this.db.prepare('SELECT event FROM events WHERE job_id = ? AND seq > ? ORDER BY seq'),
      lastEvents: this.db.prepare('SELECT event FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT 8'),
      jobs: this.db.prepare('SELECT record FROM jobs ORDER BY created_at'),
      jobIds: this.db.prepare('SELECT id FROM jobs'),
      subtasksOf: this.db.prepare('SELECT record, live FROM subtasks WHERE job_id = ?'),
      // Rows in the order they were inserted, which is the order the subtasks were made (an upsert keeps its row).
      subtasksPage: this.db.prepare('SELECT record, live FROM subtasks WHERE job_id = ? ORDER BY rowid LIMIT ? OFFSET ?'),
      files: this.db.prepare('SELECT job_id, kind, first, files FROM job_files ORDER BY job_id, kind, first'),
    };
    this.writeStmts = writeStatements(this.db);
  }

  /** The file's pages, those free among them, and the page size. */
  pageStats(): { pages: number; free: number; pageSize: number } {
    return {
      pages: this.db.pragma('page_count', { simple: true }) as number,
      free: this.db.pragma('freelist_count', { simple: true }) as number,
      pageSize: this.db.pragma('page_size', { simple: true }) as number,
    };
  }

  /**
   * A store made before auto_vacuum was set keeps the pages of every job it ever removed: after a
   * busy day, mostly free pages. Once a quarter of it (and at least CONVERT_FREE_BYTES) is free,
   * it is rewritten once with auto_vacuum on (a VACUUM: its time is that of the live data, no
   * more than of what it frees), at start.
   */
  private convertToIncrementalVacuum(): void {
    if ((this.db.pragma('auto_vacuum', { simple: true }) as number) !== 0) return;
    const { pages, free, pageSize } = this.pageStats();
    if (free * pageSize < CONVERT_FREE_BYTES || free * 4 < pages) return;
    this.db.pragma('auto_vacuum = INCREMENTAL');
    this.db.exec('VACUUM');
    this.vacuumed = { freedBytes: (pages - this.pageStats().pages) * pageSize };
  }

  /** What the conversion at open freed (for the coordinator to log), if it ran. */
  vacuumed: { freedBytes: number } | undefined;

  /**
   * Gives up to `maxPages` free pages (those of removed jobs) back to the file system; the file
   * shrinks at the next checkpoint. A bounded step, since it runs on the event loop: call again
   * while it returns `maxPages`. 0 for a store without auto_vacuum (see convertToIncrementalVacuum).
   */
  reclaimSpace(maxPages = 2048): number {
    const { free } = this.pageStats();
    if (free === 0 || (this.db.pragma('auto_vacuum', { simple: true }) as number) !== 2) return 0;
    this.flush();
    this.db.pragma(`incremental_vacuum(${Math.min(free, maxPages)})`);
    return free - this.pageStats().free;
  }

  /**
   * Writes the WAL into the database file and truncates both: the pages {@link reclaimSpace} gave
   * back leave the file only then (an idle coordinator started no checkpoint: 36 MB for no jobs).
   * Best effort: a checkpoint that finds the writer thread busy leaves the rest to a later one.
   */
  checkpoint(): void {
    try {
      this.flush();
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // A busy or full store: SQLite checkpoints on its own later.
    }
  }

  saveJob(job: JobRecord): void {
    this.dirtyJobs.set(job.id, job);
    this.scheduleFlush();
  }

  /** Records new subtasks whole (their plan never changes afterwards). */
  createSubtasks(subtasks: SubtaskRecord[]): void {
    for (const s of subtasks) this.newSubtasks.push(s);
    this.scheduleFlush();
  }

  /** Forgets every subtask of a job (a job planned again from the start after a restart). */
  deleteSubtasks(jobId: string): void {
    this.flush();
    this.stmts.deleteSubtasks.run(jobId);
  }

  /** Removes a finished job for good: its record, subtasks, events and file lists. */
  deleteJob(jobId: string): void {
    this.flush();
    this.db.transaction(() => {
      this.stmts.deleteJob.run(jobId);
      this.stmts.deleteSubtasks.run(jobId);
      this.stmts.deleteEvents.run(jobId);
      this.stmts.deleteAllFiles.run(jobId);
    })();
    this.filesStored.delete(jobId);
  }

  /** Records a subtask's changed state (the fields of `liveState`). */
  saveSubtask(subtask: SubtaskRecord): void {
    this.dirtySubtasks.set(subtask.id, subtask);
    this.scheduleFlush();
  }

  appendEvent(event: JobEvent): void {
    this.pendingEvents.push(event);
    this.scheduleFlush();
  }

  /**
   * Events of a job with seq > afterSeq, oldest first: those written, then those waiting for the
   * next commit (no commit is forced: a watcher attaching to each of hundreds of jobs would make
   * one each). At least `limit` of them when there are that many (callers page with the last seq
   * they got). A row holds one event (older stores) or the array of events written in one flush.
   */
  eventsAfter(jobId: string, afterSeq: number, limit = 10_000, o: { stored?: boolean } = {}): JobEvent[] {
    const out: JobEvent[] = [];
    let last = afterSeq;
    for (const row of this.stmts.eventsAfter.iterate(jobId, afterSeq) as IterableIterator<{ event: string }>) {
      const parsed = JSON.parse(row.event) as JobEvent | JobEvent[];
      for (const e of Array.isArray(parsed) ? parsed : [parsed]) {
        if (Number(e.seq) <= last) continue;
        out.push(e);
        last = Number(e.seq);
      }
      if (out.length >= limit) return out;
    }
    // Then those being written (read before their commit, or after it: then skipped as seen) and
    // those waiting; `stored`: only those on disk (what a watcher may be told).
    if (o.stored) return out;
    for (const e of (this.inFlight?.events ?? []).concat(this.pendingEvents)) {
      if (e.job_id !== jobId || Number(e.seq) <= last) continue;
      out.push(e);
      last = Number(e.seq);
    }
    return out;
  }

  /**
   * Progress among a job's last events (the last rows written: a row is one flush): `last`, the
   * highest figure of those not final (where its clients' bars stood when the coordinator stopped;
   * 0 without any), and `final`, what its final event gave (a cancelled job's: where it stopped).
   */
  storedProgress(jobId: string): { last: number; final: number | undefined } {
    let last = 0;
    let final: number | undefined;
    for (const row of this.stmts.lastEvents.iterate(jobId) as IterableIterator<{ event: string }>) {
      const parsed = JSON.parse(row.event) as JobEvent | JobEvent[];
      for (const e of Array.isArray(parsed) ? parsed : [parsed]) {
        if (!e.final) last = Math.max(last, Number(e.progress) || 0);
        else final ??= Number(e.progress) || 0;
      }
    }
    return { last, final };
  }

  /** Every job, with its subtasks for the unfinished ones (used at start-up to resume). */
  loadAll(): { jobs: JobRecord[]; subtasks: Map<string, SubtaskRecord[]> } {
    const jobs = (this.stmts.jobs.all() as { record: string }[]).map((r) => JSON.parse(r.record) as JobRecord);
    const files = new Map<string, { input: SpoolFile[]; output: OutputRecord[] }>();
    for (const row of this.stmts.files.iterate() as IterableIterator<{ job_id: string; kind: 'input' | 'output'; first: number; files: string }>) {
      let f = files.get(row.job_id);
      if (!f) files.set(row.job_id, (f = { input: [], output: [] }));
      const list = f[row.kind] as unknown[];
      // Rows are ordered by `first`; one that does not continue the list is a leftover of a rewrite.
      if (row.first === list.length) for (const x of JSON.parse(row.files) as unknown[]) list.push(x);
    }
    for (const job of jobs) {
      // Records written before the split carry their lists; they move to job_files on the next save.
      const f = files.get(job.id);
      const split = job.inputs === undefined;
      job.inputs ??= f?.input ?? [];
      job.outputs ??= f?.output ?? [];
      if (split) this.filesStored.set(job.id, { inputs: job.inputs.length, outputs: job.outputs.length });
    }
    const subtasks = new Map<string, SubtaskRecord[]>();
    for (const job of jobs) {
      if (TERMINAL_JOB_STATES.has(job.state)) continue;
      const list = (this.stmts.subtasksOf.all(job.id) as SubtaskRow[]).map(fromRow);
      list.sort((a, b) => a.phase - b.phase || a.index - b.index);
      subtasks.set(job.id, list);
    }
    return { jobs, subtasks };
  }

  /**
   * Records hold absolute paths under the spool (inputs, subtask outputs, outputs, plans). When the
   * spool is now at `root` but the paths on record are under another folder (the data dir moved, a
   * volume mounted elsewhere, a backup restored), they are rewritten in one transaction before
   * anything is loaded. Returns the move, or undefined when there was none.
   */
  relocate(root: string): { from: string; to: string; rows: number } | undefined {
    this.flush();
    const setRoot = this.db.prepare("INSERT INTO meta (key, value) VALUES ('spool_root', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    // A store from before the root was recorded: read it off a stored path (moved along with the upgrade).
    const row = (this.db.prepare("SELECT value FROM meta WHERE key = 'spool_root'").get() as { value: string } | undefined) ?? this.rootOnRecord();
    if (!row || row.value === root) {
      setRoot.run(root);
      return undefined;
    }
    // A path is the start of a JSON string: `"/old/spool/` (as JSON writes it), never a part of another.
    const prefix = (dir: string): string => JSON.stringify(dir + path.sep).slice(0, -1);
    const from = prefix(row.value);
    const to = prefix(root);
    let rows = 0;
    this.db.transaction(() => {
      for (const [table, column] of [['jobs', 'record'], ['subtasks', 'record'], ['subtasks', 'live'], ['job_files', 'files']] as const) {
        rows += this.db.prepare(`UPDATE ${table} SET ${column} = replace(${column}, ?, ?) WHERE instr(${column}, ?) > 0`).run(from, to, from).changes;
      }
      setRoot.run(root);
    })();
    return { from: row.value, to: root, rows };
  }

  /** True when nothing waits to be written. */
  private get clean(): boolean {
    return this.dirtyJobs.size === 0 && this.newSubtasks.length === 0 && this.dirtySubtasks.size === 0 && this.pendingEvents.length === 0;
  }

  /**
   * Resolves once everything saved so far is on disk; rejects if the commit that should have
   * written it fails (a full disk). The commit starts now, on the writer thread; when the thread is
   * busy with the one before, this one follows it, sharing its commit with whatever else is saved
   * meanwhile.
   */
  committed(): Promise<void> {
    if (this.closed) return this.clean ? Promise.resolve() : Promise.reject(new TesseraError(status.UNAVAILABLE, 'the job store is closed'));
    if (this.clean && !this.inFlight) return Promise.resolve();
    return new Promise((resolve, reject) => {
      if (this.clean) {
        this.inFlight!.waiters.push({ resolve, reject });
        return;
      }
      this.commitWaiters.push({ resolve, reject });
      if (!this.inFlight) this.flushInBackground();
    });
  }

  /**
   * Calls `fn` once everything saved so far is on disk: after the next commit that succeeds (at
   * once if nothing waits to be written). For what may only happen then, such as removing a
   * finished job's inputs, when the commit of its end failed (a full disk) and is being retried.
   */
  whenStored(fn: () => void): void {
    if (!this.clean) this.afterCommit.push(fn);
    else if (this.inFlight) this.inFlight.after.push(fn);
    else runAll([fn]);
  }

  /** The spool root the stored paths are under, read off one of them (`ROOT/jobs/<uuid>/...`). */
  private rootOnRecord(): { value: string } | undefined {
    const pattern = /"path":"((?:[^"\\]|\\.)*?)\/jobs\/[0-9a-f-]{36}\//;
    for (const sql of ["SELECT files AS text FROM job_files WHERE instr(files, '/jobs/') > 0 LIMIT 1", "SELECT record AS text FROM subtasks WHERE instr(record, '/jobs/') > 0 LIMIT 1"]) {
      const found = this.db.prepare(sql).get() as { text: string } | undefined;
      const m = found && pattern.exec(found.text);
      if (m) return { value: JSON.parse(`"${m[1]!}"`) as string };
    }
    return undefined;
  }

  /** The ids of every job on record. */
  jobIds(): Set<string> {
    this.flush();
    return new Set((this.stmts.jobIds.all() as { id: string }[]).map((r) => r.id));
  }

  /**
   * Subtasks of any job (for GetJob of finished jobs): as stored, overlaid with what is being or
   * waiting to be written (no commit is forced: a client reading each job as it ends would make one each).
   */
  subtasksOf(jobId: string): SubtaskRecord[] {
    const byId = new Map<string, SubtaskRecord>();
    for (const row of this.stmts.subtasksOf.all(jobId) as SubtaskRow[]) {
      const s = fromRow(row);
      byId.set(s.id, s);
    }
    for (const list of [this.inFlight?.created, this.inFlight?.subtasks, this.newSubtasks, this.dirtySubtasks.values()]) {
      for (const s of list ?? []) if (s.jobId === jobId) byId.set(s.id, s);
    }
    return [...byId.values()].sort((a, b) => a.phase - b.phase || a.index - b.index);
  }

  /**
   * `limit` subtasks of a job from `offset` on, in the order they were made (phase, then index): only
   * those rows are read and parsed, not a big job's every one.
   */
  subtasksPage(jobId: string, offset: number, limit: number): SubtaskRecord[] {
    // Some not written yet (a job just planned): where they fall among the rows is known only from all of them.
    const unwritten = (list: SubtaskRecord[] | undefined): boolean => list?.some((s) => s.jobId === jobId) ?? false;
    if (unwritten(this.inFlight?.created) || unwritten(this.newSubtasks)) return this.subtasksOf(jobId).slice(offset, offset + limit);
    const changed = new Map<string, SubtaskRecord>();
    for (const list of [this.inFlight?.subtasks, this.dirtySubtasks.values()]) {
      for (const s of list ?? []) if (s.jobId === jobId) changed.set(s.id, s);
    }
    return (this.stmts.subtasksPage.all(jobId, limit, offset) as SubtaskRow[])
      .map((row) => {
        const s = fromRow(row);
        return changed.get(s.id) ?? s;
      })
      .sort((a, b) => a.phase - b.phase || a.index - b.index);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    // Every commit rewrites the touched B-tree pages into the WAL: committing once per event-loop
    // turn made SQLite a fifth of the coordinator's CPU at thousands of subtasks a second.
    this.flushTimer = setTimeout(() => this.flushInBackground(), FLUSH_INTERVAL_MS);
    this.flushTimer.unref();
  }

  /**
   * Flushes; a failure (kept in memory, retried by the timer) is reported to `onFlushError`
   * rather than thrown. For callers that must go on whatever the disk says (shutdown).
   */
  flushQuietly(): boolean {
    try {
      this.flush();
      return true;
    } catch (err) {
      this.opts.onFlushError?.(err as TesseraError);
      return false;
    }
  }

  /** After a failed write: the next try in FLUSH_RETRY_MS, whoever called. */
  private retryLater(): void {
    if (this.closed) return;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushScheduled = true;
    this.flushTimer = setTimeout(() => this.flushQuietly(), FLUSH_RETRY_MS);
    this.flushTimer.unref();
  }

  /**
   * Drops what is waiting to be written for a job the coordinator gives up before anyone was told
   * of it (a submission whose first write failed): it must not appear later, half made.
   */
  forget(jobId: string): void {
    this.dirtyJobs.delete(jobId);
    this.filesStored.delete(jobId);
    this.pendingEvents = this.pendingEvents.filter((e) => e.job_id !== jobId);
  }

  /**
   * Writes everything dirty in one transaction, on this thread, once the writer thread's batch (if
   * one is being written) is done. When the transaction fails (SQLITE_FULL: the disk is full),
   * nothing is lost: all of it stays to be written by the next flush, and the error
   * (RESOURCE_EXHAUSTED for a full disk, UNAVAILABLE otherwise) goes to the caller.
   */
  flush(): void {
    this.cancelTimer();
    this.settle();
    if (this.closed) {
      for (const w of this.commitWaiters.splice(0)) w.reject(new TesseraError(status.UNAVAILABLE, 'the job store is closed'));
      return;
    }
    if (this.clean) {
      for (const w of this.commitWaiters.splice(0)) w.resolve();
      return;
    }
    const taken = this.take();
    const err = this.writeHere(taken, this.serialise(taken));
    if (err) throw err;
  }

  /** Hands everything dirty to the writer thread (the event loop goes on); synchronously if there is none. */
  private flushInBackground(): void {
    this.cancelTimer();
    // One batch at a time, in order: the one in flight starts the next when it is done.
    if (this.closed || this.inFlight) return;
    if (this.clean) {
      for (const w of this.commitWaiters.splice(0)) w.resolve();
      return;
    }
    const taken = this.take();
    const writer = this.startWriter();
    if (!writer) {
      const err = this.writeHere(taken, this.serialise(taken));
      // The failure is reported to whoever waited for the batch; with nobody, to the log.
      if (err && taken.waiters.length === 0) this.opts.onFlushError?.(err);
      return;
    }
    const id = ++writer.lastId;
    // Only the records stay referenced while the thread writes: the strings are garbage once posted
    // (kept alive, they set how far V8 lets the heap grow before its next full collection). A job of
    // tens of thousands of subtasks planned at once goes in slices, still one transaction: the
    // thread never holds more than one of them (its heap would grow for good), and each is made
    // and posted in a turn of the event loop of its own (made and written here at once, the
    // 100,000 subtasks of one job held every call and heartbeat for 1-2.6 s).
    const parts = this.serialiseParts(taken, WRITER_BATCH_MAX_BYTES);
    const first = parts.next().value as WriteBatch;
    const second = parts.next();
    this.inFlight = { ...taken, id };
    if (second.done) {
      writer.port.postMessage({ id, batch: first } satisfies WriterRequest);
    } else {
      writer.port.postMessage({ id, batch: first, part: { index: 0, last: false } } satisfies WriterRequest);
      this.inFlight.rest = { parts, next: second.value, index: 1 };
      setImmediate(() => this.postParts(id, false));
    }
    // Keeps the process up until the batch is committed (the thread itself never does).
    writer.port.ref();
  }

  /**
   * Posts the next slice of the batch in flight (`all`: every one left, for a caller that waits for
   * the batch now), then the next in a later turn.
   */
  private postParts(id: number, all: boolean): void {
    const t = this.inFlight;
    const writer = this.writer;
    if (!t || t.id !== id || !t.rest || !writer) return;
    do {
      const rest: { parts: Generator<WriteBatch>; next: WriteBatch; index: number } = t.rest;
      const after = rest.parts.next();
      writer.port.postMessage({ id, batch: rest.next, part: { index: rest.index, last: Boolean(after.done) } } satisfies WriterRequest);
      if (after.done) t.rest = undefined;
      else t.rest = { parts: rest.parts, next: after.value, index: rest.index + 1 };
    } while (all && t.rest);
    if (t.rest) setImmediate(() => this.postParts(id, false));
  }

  /** Writes a taken batch on the main connection; the error (the batch put back, its waiters told) if it failed. */
  private writeHere(taken: Taken, batch: WriteBatch): TesseraError | undefined {
    try {
      applyBatch(this.db, this.writeStmts, batch);
    } catch (err) {
      return this.failed(taken, err as Error & { code?: string });
    }
    this.succeeded(taken);
    return undefined;
  }

  private cancelTimer(): void {
    this.flushScheduled = false;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** Takes everything dirty, and who waits for it. */
  private take(): Taken {
    const jobs = [...this.dirtyJobs.values()];
    const created = this.newSubtasks;
    // A subtask first written in this batch is written whole, as it is now: no update beside it.
    // Looked up by record, from the (few) changed ones: deleting 100,000 new ids by their strings
    // took 130 ms of the event loop.
    if (this.dirtySubtasks.size > 0 && created.length > 0) {
      const made = new Set(created);
      for (const [id, s] of this.dirtySubtasks) if (made.has(s)) this.dirtySubtasks.delete(id);
    }
    const subtasks = [...this.dirtySubtasks.values()];
    const events = this.pendingEvents;
    this.newSubtasks = [];
    this.pendingEvents = [];
    this.dirtyJobs.clear();
    this.dirtySubtasks.clear();
    const waiters = this.commitWaiters;
    const after = this.afterCommit;
    this.commitWaiters = [];
    this.afterCommit = [];
    return { jobs, created, subtasks, events, waiters, after, inputsTaken: jobs.map((j) => j.inputs.length), outputsTaken: jobs.map((j) => j.outputs.length) };
  }

  /** What a batch writes, as SQL parameters (at once after `take`: it reads which files are stored). */
  private serialise(t: Taken): WriteBatch {
    const parts = [...this.serialiseParts(t, Infinity)];
    return parts.length === 1 ? parts[0]! : { jobs: parts.flatMap((p) => p.jobs), created: parts.flatMap((p) => p.created), updates: parts.flatMap((p) => p.updates), events: parts.flatMap((p) => p.events) };
  }

  /**
   * A batch as SQL parameters in slices of about `maxBytes` of strings, made as they are asked for:
   * the jobs at once (at once after `take`: it reads which files are stored), the subtasks and
   * events a slice at a time (100,000 new subtasks are 140 ms of JSON).
   */
  private *serialiseParts({ jobs, created, subtasks, events, inputsTaken, outputsTaken }: Taken, maxBytes: number): Generator<WriteBatch> {
    let part: WriteBatch = {
      jobs: jobs.map((j, i) => {
        const { inputs, outputs: all, ...record } = j;
        const outputs = all.slice(0, outputsTaken[i]);
        const had = this.filesStored.get(j.id) ?? { inputs: 0, outputs: 0 };
        // Inputs only grow (a job accepted while its upload runs gets the rest later).
        const newInputs = inputs.slice(had.inputs, inputsTaken[i]);
        const rewriteOutputs = outputs.length < had.outputs;
        const outputsFrom = rewriteOutputs ? 0 : had.outputs;
        return {
          id: j.id,
          state: j.state,
          createdAt: j.createdAt,
          record: JSON.stringify(record),
          // The first save of a job writes its inputs, none so far included: the row marks them stored.
          ...(newInputs.length > 0 || !this.filesStored.has(j.id) ? { inputs: JSON.stringify(newInputs), inputsFrom: had.inputs } : {}),
          rewriteOutputs,
          outputsFrom,
          ...(outputs.length > outputsFrom ? { outputs: JSON.stringify(outputs.slice(outputsFrom)) } : {}),
        };
      }),
      created: [],
      updates: [],
      events: [],
    };
    let bytes = batchBytes(part);
    const room = (): boolean => bytes < maxBytes;
    const next = (): WriteBatch => {
      const full = part;
      part = { jobs: [], created: [], updates: [], events: [] };
      bytes = 0;
      return full;
    };
    for (const s of created) {
      if (!room()) yield next();
      const record = JSON.stringify(s);
      part.created.push([s.id, s.jobId, record]);
      bytes += record.length;
    }
    for (const s of subtasks) {
      if (!room()) yield next();
      const live = JSON.stringify(liveState(s));
      part.updates.push([live, s.id]);
      bytes += live.length;
    }
    // One row per job per flush, keyed by its last seq: a job emitting thousands of events a
    // second costs one insert per commit, not one each.
    for (const [jobId, list] of groupByJob(events)) {
      if (!room()) yield next();
      const row = JSON.stringify(list);
      part.events.push([jobId, Number(list[list.length - 1]!.seq), row]);
      bytes += row.length;
    }
    yield part;
  }

  /** A batch is on disk: its waiters and what waited for it go on. */
  private succeeded(t: Taken): void {
    // The outputs this batch wrote, not the job's now: one published while it was being written
    // is in the next batch, which must not take it for stored.
    t.jobs.forEach((j, i) => this.filesStored.set(j.id, { inputs: t.inputsTaken[i]!, outputs: t.outputsTaken[i]! }));
    for (const w of t.waiters) w.resolve();
    runAll(t.after);
  }

  /** A batch was rolled back: everything in it goes back, to be written by the next try. */
  private failed(t: Taken, err: Error & { code?: string }): TesseraError {
    this.restore(t);
    this.retryLater();
    const e = storeWriteError(err);
    for (const w of t.waiters) w.reject(e);
    return e;
  }

  /** Puts a batch's records back as dirty (behind newer versions of them), and what waited for it. */
  private restore(t: Taken): void {
    for (const j of t.jobs) if (!this.dirtyJobs.has(j.id)) this.dirtyJobs.set(j.id, j);
    this.newSubtasks = t.created.concat(this.newSubtasks);
    for (const s of t.subtasks) if (!this.dirtySubtasks.has(s.id)) this.dirtySubtasks.set(s.id, s);
    this.pendingEvents = t.events.concat(this.pendingEvents);
    this.afterCommit = t.after.concat(this.afterCommit);
  }

  /**
   * Starts the writer thread now rather than with the first write: a thread takes about 100 ms to
   * start (an isolate, the SQLite module, its connection), which the first job's acceptance waited
   * for. The coordinator calls it as it opens the store, so the thread starts beside the rest of
   * its start-up.
   */
  startWriterThread(): void {
    if (!this.closed) this.startWriter();
  }

  /** The writer thread, started on first use; undefined when it cannot run (writes then stay on this thread). */
  private startWriter(): Writer | undefined {
    if (this.writer !== undefined) return this.writer ?? undefined;
    try {
      const { port1, port2 } = new MessageChannel();
      const flag = new Int32Array(new SharedArrayBuffer(4));
      const data: WriterData = { tesseraStoreWriter: true, file: this.file, port: port2, flag };
      const worker = new Worker(WRITER_ENTRY, { workerData: data, transferList: [port2], resourceLimits: WRITER_HEAP });
      const writer: Writer = { worker, port: port1, flag, lastId: 0 };
      port1.on('message', (reply: WriterReply) => this.onReply(reply, true));
      // After the listener (adding one refs the port): only a batch in flight keeps the process up.
      worker.unref();
      port1.unref();
      worker.on('error', (err) => this.dropWriter(writer, `failed: ${err.message}`));
      worker.on('exit', (code) => this.dropWriter(writer, `exited (code ${code})`));
      this.writer = writer;
    } catch (err) {
      this.writer = null;
      this.opts.onFlushError?.(new TesseraError(status.UNAVAILABLE, `the job store's writer thread could not start (${(err as Error).message}); writing on the main thread`));
    }
    return this.writer ?? undefined;
  }

  /** The writer thread's answer for the batch in flight (`next`: start the next batch if there is one). */
  private onReply(reply: WriterReply, next: boolean): void {
    const t = this.inFlight;
    if (!t || reply.id !== t.id) return;
    this.inFlight = undefined;
    this.writer?.port.unref();
    if (reply.ok) this.succeeded(t);
    else {
      const err = Object.assign(new Error(reply.message), reply.code ? { code: reply.code } : {});
      const e = this.failed(t, err);
      // The failure is reported to whoever waited for the batch; with nobody, to the log.
      if (t.waiters.length === 0) this.opts.onFlushError?.(e);
      return;
    }
    // Next: at once when its time has come or someone waits for it; otherwise when its timer fires.
    if (next && !this.clean && (!this.flushScheduled || this.commitWaiters.length > 0)) this.flushInBackground();
  }

  /**
   * Waits (blocking this thread) until the batch in flight is committed or refused, and takes its
   * answer. A writer that does not answer within WRITER_STALL_MS is dropped and its batch taken back.
   */
  private settle(): void {
    const t = this.inFlight;
    const writer = this.writer;
    if (!t || !writer) return;
    // Its slices not posted yet go now: the thread answers after the last.
    this.postParts(t.id, true);
    const deadline = steadyNow() + WRITER_STALL_MS;
    while (this.inFlight === t) {
      const got = receiveMessageOnPort(writer.port) as { message: WriterReply } | undefined;
      if (got) {
        this.onReply(got.message, false);
        continue;
      }
      const seen = Atomics.load(writer.flag, 0);
      if (steadyNow() > deadline) {
        this.dropWriter(writer, `did not answer in ${WRITER_STALL_MS / 1000} s`);
        return;
      }
      // The answer is posted before the flag moves; a short wait covers the gap between the two.
      Atomics.wait(writer.flag, 0, seen, seen >= t.id ? 1 : 100);
    }
  }

  /** The writer thread is gone: its batch is written again from here, and so is everything after. */
  private dropWriter(writer: Writer, why: string): void {
    if (this.writer !== writer) return;
    this.writer = null;
    void writer.worker.terminate().catch(() => undefined);
    writer.port.close();
    if (this.closed) return;
    const t = this.inFlight;
    this.inFlight = undefined;
    if (t) {
      this.restore(t);
      this.commitWaiters = t.waiters.concat(this.commitWaiters);
    }
    this.opts.onFlushError?.(new TesseraError(status.UNAVAILABLE, `the job store's writer thread ${why}; writing on the main thread, nothing was lost`));
    if (!this.clean) this.scheduleFlush();
  }

  /** Ends the writer thread after its batch: its connection is closed when this returns (or it is dropped). */
  private stopWriter(): void {
    const writer = this.writer;
    if (!writer) return;
    this.writer = null;
    const id = ++writer.lastId;
    writer.port.postMessage({ id, close: true } satisfies WriterRequest);
    // A thread that died just before (its exit not yet seen) does not answer: not worth more than a few seconds.
    const deadline = steadyNow() + 5000;
    while (Atomics.load(writer.flag, 0) < id && steadyNow() < deadline) Atomics.wait(writer.flag, 0, Atomics.load(writer.flag, 0), 100);
    writer.port.close();
    void writer.worker.terminate().catch(() => undefined);
  }

  close(): void {
    if (this.closed) return;
    try {
      this.flush();
    } finally {
      this.closed = true;
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.stopWriter();
      this.db.close();
    }
  }
}

function storeWriteError(err: Error & { code?: string }): TesseraError {
  if (err.code === 'SQLITE_FULL') return new TesseraError(status.RESOURCE_EXHAUSTED, `the coordinator's job store is full (${err.message}): free space in its --data-dir; nothing was lost, the write is retried`, { retryable: true });
  return new TesseraError(status.UNAVAILABLE, `the coordinator's job store could not be written (${err.code ?? 'error'}: ${err.message}); the write is retried`, { retryable: true });
}

interface Writer {
  worker: Worker;
  port: MessagePort;
  /** The id of the last answer the thread gave (it stores it there, then notifies). */
  flag: Int32Array;
  lastId: number;
}

/** A batch taken from the dirty records, and who waits for it. */
interface Taken {
  jobs: JobRecord[];
  created: SubtaskRecord[];
  subtasks: SubtaskRecord[];
  events: JobEvent[];
  waiters: { resolve: () => void; reject: (err: Error) => void }[];
  after: (() => void)[];
  /** How many outputs each of `jobs` had when taken: what the batch writes of them. */
  inputsTaken: number[];
  outputsTaken: number[];
}

/** Calls each; what one throws is its caller's business, not the store's. */
function runAll(fns: readonly (() => void)[]): void {
  for (const fn of fns) {
    try {
      fn();
    } catch {
      // Ignored (see above).
    }
  }
}

function groupByJob(events: JobEvent[]): Map<string, JobEvent[]> {
  const byJob = new Map<string, JobEvent[]>();
  for (const e of events) {
    let list = byJob.get(e.job_id!);
    if (!list) byJob.set(e.job_id!, (list = []));
    list.push(e);
  }
  return byJob;
}

/** The fields of a subtask that change after it is planned: all a state update writes. */
type LiveState = Pick<
  SubtaskRecord,
  'state' | 'attempt' | 'workerId' | 'worker' | 'progress' | 'startedAt' | 'durationMs' | 'notBefore' | 'error' | 'itemErrors' | 'outputs' | 'result' | 'speculative' | 'leases' | 'failures' | 'replacedBy' | 'retargeted'
>;

function liveState(s: SubtaskRecord): LiveState {
  return {
    state: s.state,
    attempt: s.attempt,
    workerId: s.workerId,
    worker: s.worker,
    progress: s.progress,
    startedAt: s.startedAt,
    durationMs: s.durationMs,
    notBefore: s.notBefore,
    error: s.error,
    itemErrors: s.itemErrors,
    outputs: s.outputs,
    result: s.result,
    speculative: s.speculative,
    leases: s.leases,
    failures: s.failures,
    replacedBy: s.replacedBy,
    retargeted: s.retargeted,
  };
}

interface SubtaskRow {
  record: string;
  live: string | null;
}

/** The fields {@link liveState} writes. */
const LIVE_KEYS = Object.keys(liveState({} as SubtaskRecord)) as (keyof LiveState)[];

function fromRow(row: SubtaskRow): SubtaskRecord {
  const record = JSON.parse(row.record) as SubtaskRecord;
  if (!row.live) return record;
  // Every live field as the last update had it, one it left out (cleared, as a retried subtask's
  // error once it succeeds) included: the row's first snapshot may have held it (the failed
  // attempt's error, read back for good on a subtask that succeeded).
  const live = JSON.parse(row.live) as Partial<LiveState>;
  for (const key of LIVE_KEYS) (record as unknown as Record<string, unknown>)[key] = live[key];
  if (record.retargeted) {
    record.plan = record.retargeted.plan;
    record.requires = record.retargeted.requires;
  }
  return record;
}
