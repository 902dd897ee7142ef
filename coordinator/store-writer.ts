/**
 * The job store's writes, and the thread that commits them.
 *
 * At thousands of subtask transitions a second, SQLite's inserts, commits and WAL checkpoints
 * (with their fsyncs) took a quarter of the coordinator's event loop, and everything else on it
 * (dispatch, results, watchers) waited behind them. The store now hands each batch, already
 * serialised, to this thread on its own connection; the event loop goes on meanwhile. The same
 * `applyBatch` runs on the main connection when a caller must have the write done before it
 * returns (reads, shutdown, retries after a failed write).
 *
 * Protocol: the store posts `{ id, batch }` (or `{ id, close: true }`) on `port`; the thread
 * answers `{ id, ok }` or `{ id, ok: false, code, message }` on the same port, then stores `id` in
 * `flag[0]` and notifies it, so that the store can also wait for an answer synchronously
 * (`Atomics.wait` + `receiveMessageOnPort`).
 */
import { isMainThread, workerData, type MessagePort } from 'node:worker_threads';
import Database from 'better-sqlite3';

/** One job's part of a batch: its record, and the runs of its file lists not yet stored. */
export interface JobWrite {
  id: string;
  state: string;
  createdAt: number;
  record: string;
  /** Inputs from `inputsFrom` on (JSON array), when there are new ones (or the job was never saved). */
  inputs?: string;
  inputsFrom?: number;
  /** The stored outputs shrank (a merge redone): drop them all before writing `outputs` from 0. */
  rewriteOutputs: boolean;
  outputsFrom: number;
  /** Outputs from `outputsFrom` on (JSON array), when there are any new ones. */
  outputs?: string;
}

/** Everything one commit writes, as SQL parameters (strings built on the main thread). */
export interface WriteBatch {
  jobs: JobWrite[];
  /** New subtasks: id, job id, whole record. */
  created: [string, string, string][];
  /** Changed subtasks: live state, id. */
  updates: [string, string][];
  /** One row per job: job id, last seq, the events as a JSON array. */
  events: [string, number, string][];
}

/**
 * `part`: one of the slices of a batch too big for the thread's heap (see splitBatch), posted one
 * after another: the first begins the transaction, the last commits it and is answered. A slice
 * that fails rolls it back and is answered; the rest of that batch is then dropped.
 */
export type WriterRequest = { id: number; batch: WriteBatch; part?: { index: number; last: boolean } } | { id: number; close: true };
export type WriterReply = { id: number; ok: true } | { id: number; ok: false; code?: string; message: string };

export interface WriterData {
  tesseraStoreWriter: true;
  file: string;
  port: MessagePort;
  flag: Int32Array;
}

export type WriteStatements = Record<'upsertJob' | 'insertSubtask' | 'updateSubtask' | 'insertEvent' | 'insertFiles' | 'deleteFiles', Database.Statement>;

export function writeStatements(db: Database.Database): WriteStatements {
  return {
    upsertJob: db.prepare('INSERT INTO jobs (id, state, created_at, record) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, record = excluded.record'),
    insertSubtask: db.prepare('INSERT INTO subtasks (id, job_id, record, live) VALUES (?, ?, ?, NULL) ON CONFLICT(id) DO UPDATE SET record = excluded.record, live = NULL'),
    updateSubtask: db.prepare('UPDATE subtasks SET live = ? WHERE id = ?'),
    insertEvent: db.prepare('INSERT OR IGNORE INTO events (job_id, seq, event) VALUES (?, ?, ?)'),
    // A row holds a run of a job's inputs or outputs (a JSON array) starting at index `first`.
    insertFiles: db.prepare('INSERT OR REPLACE INTO job_files (job_id, kind, first, files) VALUES (?, ?, ?, ?)'),
    deleteFiles: db.prepare('DELETE FROM job_files WHERE job_id = ? AND kind = ?'),
  };
}

/** Writes a batch in one transaction (all of it or, on an error, none). */
export function applyBatch(db: Database.Database, stmts: WriteStatements, batch: WriteBatch): void {
  db.transaction(() => applyWrites(stmts, batch))();
}

/** A batch's statements, in the transaction open on their connection. */
function applyWrites(stmts: WriteStatements, batch: WriteBatch): void {
  for (const j of batch.jobs) {
    if (j.inputs !== undefined) stmts.insertFiles.run(j.id, 'input', j.inputsFrom ?? 0, j.inputs);
    if (j.rewriteOutputs) stmts.deleteFiles.run(j.id, 'output');
    if (j.outputs !== undefined) stmts.insertFiles.run(j.id, 'output', j.outputsFrom, j.outputs);
    stmts.upsertJob.run(j.id, j.state, j.createdAt, j.record);
  }
  for (const [id, jobId, record] of batch.created) stmts.insertSubtask.run(id, jobId, record);
  for (const [live, id] of batch.updates) stmts.updateSubtask.run(live, id);
  for (const [jobId, seq, events] of batch.events) stmts.insertEvent.run(jobId, seq, events);
}

/** About how many bytes a batch's strings hold (one per UTF-16 unit: a bound, not a count). */
export function batchBytes(b: WriteBatch): number {
  let n = 0;
  for (const j of b.jobs) n += jobBytes(j);
  for (const c of b.created) n += c[2].length;
  for (const u of b.updates) n += u[0].length;
  for (const e of b.events) n += e[2].length;
  return n;
}

const jobBytes = (j: JobWrite): number => j.record.length + (j.inputs?.length ?? 0) + (j.outputs?.length ?? 0);

/**
 * A batch cut into slices of about `maxBytes` each (one row may pass it alone), in its order: the
 * writer thread applies them one after another in one transaction, holding one slice at a time (a
 * plan of 100,000 subtasks is 25 MB of strings, past the thread's heap). Written on the event loop
 * instead, it held every call and heartbeat for 1-2.6 s.
 */
export function splitBatch(b: WriteBatch, maxBytes: number): WriteBatch[] {
  const parts: WriteBatch[] = [];
  let part: WriteBatch = { jobs: [], created: [], updates: [], events: [] };
  let bytes = 0;
  const add = <K extends keyof WriteBatch>(key: K, row: WriteBatch[K][number], size: number): void => {
    if (bytes > 0 && bytes + size > maxBytes) {
      parts.push(part);
      part = { jobs: [], created: [], updates: [], events: [] };
      bytes = 0;
    }
    (part[key] as WriteBatch[K][number][]).push(row);
    bytes += size;
  };
  for (const j of b.jobs) add('jobs', j, jobBytes(j));
  for (const c of b.created) add('created', c, c[2].length);
  for (const u of b.updates) add('updates', u, u[0].length);
  for (const e of b.events) add('events', e, e[2].length);
  parts.push(part);
  return parts;
}

/** Opens a connection to the store for writing, as the store's own is set up. */
function openForWriting(file: string): Database.Database {
  const db = new Database(file);
  // Per connection: WAL is the file's, but the sync level is each connection's.
  db.pragma('synchronous = NORMAL');
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
  return db;
}

/**
 * What the WAL is cut back to after a checkpoint (per connection: each one that checkpoints). A
 * large transaction (a plan of 100,000 subtasks) grows it to its size, 66 MB, and SQLite's own
 * checkpoints then reuse the file from its start without ever shrinking it: it kept its peak on
 * disk until a retention sweep truncated it (never with --retention-hours 0).
 */
export const WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024;

function serve({ file, port, flag }: WriterData): void {
  let db: Database.Database | undefined;
  let stmts: WriteStatements | undefined;
  /** The batch whose slices are being applied (its transaction open). */
  let open: number | undefined;
  const answer = (reply: WriterReply): void => {
    port.postMessage(reply);
    Atomics.store(flag, 0, reply.id);
    Atomics.notify(flag, 0);
  };
  port.on('message', (req: WriterRequest) => {
    if ('close' in req) {
      db?.close();
      db = undefined;
      answer({ id: req.id, ok: true });
      port.close();
      return;
    }
    const part = req.part;
    // A later slice of a batch whose transaction is not open (an earlier slice failed): dropped.
    if (part && part.index > 0 && open !== req.id) return;
    try {
      db ??= openForWriting(file);
      stmts ??= writeStatements(db);
      if (!part) {
        applyBatch(db, stmts, req.batch);
        answer({ id: req.id, ok: true });
        return;
      }
      if (part.index === 0) {
        db.exec('BEGIN');
        open = req.id;
      }
      applyWrites(stmts, req.batch);
      if (part.last) {
        db.exec('COMMIT');
        open = undefined;
        answer({ id: req.id, ok: true });
      }
    } catch (err) {
      if (part && db?.inTransaction) db.exec('ROLLBACK');
      open = undefined;
      const e = err as Error & { code?: string };
      answer({ id: req.id, ok: false, ...(e.code ? { code: e.code } : {}), message: e.message });
    }
  });
}

if (!isMainThread && (workerData as Partial<WriterData> | undefined)?.tesseraStoreWriter) serve(workerData as WriterData);
