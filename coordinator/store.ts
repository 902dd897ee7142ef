/**
 * Durable job store: jobs, subtasks and the event log in SQLite (WAL).
 *
 * The coordinator works on in-memory records and marks them dirty; dirty records and new events
 * are written in one transaction per event-loop turn, so thousands of subtask transitions per
 * second cost a handful of fsyncs rather than one each.
 */
import Database from 'better-sqlite3';
import type { JobEvent } from '../shared/proto/generated/tessera/v1/JobEvent.js';
import { TERMINAL_JOB_STATES, type JobRecord, type SubtaskRecord } from './model.js';

export class JobStore {
  private readonly db: Database.Database;
  private readonly dirtyJobs = new Map<string, JobRecord>();
  private readonly dirtySubtasks = new Map<string, SubtaskRecord>();
  private pendingEvents: JobEvent[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly stmts;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at INTEGER NOT NULL, record TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS subtasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, record TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS subtasks_job ON subtasks(job_id);
      CREATE TABLE IF NOT EXISTS events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (job_id, seq));
    `);
    this.stmts = {
      upsertJob: this.db.prepare('INSERT INTO jobs (id, state, created_at, record) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, record = excluded.record'),
      upsertSubtask: this.db.prepare('INSERT INTO subtasks (id, job_id, record) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record'),
      insertEvent: this.db.prepare('INSERT OR IGNORE INTO events (job_id, seq, event) VALUES (?, ?, ?)'),
      eventsAfter: this.db.prepare('SELECT event FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
      jobs: this.db.prepare('SELECT record FROM jobs ORDER BY created_at'),
      subtasksOf: this.db.prepare('SELECT record FROM subtasks WHERE job_id = ?'),
    };
  }

  saveJob(job: JobRecord): void {
    this.dirtyJobs.set(job.id, job);
    this.scheduleFlush();
  }

  saveSubtask(subtask: SubtaskRecord): void {
    this.dirtySubtasks.set(subtask.id, subtask);
    this.scheduleFlush();
  }

  appendEvent(event: JobEvent): void {
    this.pendingEvents.push(event);
    this.scheduleFlush();
  }

  /** Events of a job with seq > afterSeq, oldest first (flushes first so nothing is missed). */
  eventsAfter(jobId: string, afterSeq: number, limit = 10_000): JobEvent[] {
    this.flush();
    return (this.stmts.eventsAfter.all(jobId, afterSeq, limit) as { event: string }[]).map((r) => JSON.parse(r.event) as JobEvent);
  }

  /** Every job, with its subtasks for the unfinished ones (used at start-up to resume). */
  loadAll(): { jobs: JobRecord[]; subtasks: Map<string, SubtaskRecord[]> } {
    const jobs = (this.stmts.jobs.all() as { record: string }[]).map((r) => JSON.parse(r.record) as JobRecord);
    const subtasks = new Map<string, SubtaskRecord[]>();
    for (const job of jobs) {
      if (TERMINAL_JOB_STATES.has(job.state)) continue;
      const list = (this.stmts.subtasksOf.all(job.id) as { record: string }[]).map((r) => JSON.parse(r.record) as SubtaskRecord);
      list.sort((a, b) => a.phase - b.phase || a.index - b.index);
      subtasks.set(job.id, list);
    }
    return { jobs, subtasks };
  }

  /** Subtasks of any job (for GetJob of finished jobs after a restart). */
  subtasksOf(jobId: string): SubtaskRecord[] {
    this.flush();
    const list = (this.stmts.subtasksOf.all(jobId) as { record: string }[]).map((r) => JSON.parse(r.record) as SubtaskRecord);
    return list.sort((a, b) => a.phase - b.phase || a.index - b.index);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes everything dirty in one transaction. */
  flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    if (this.dirtyJobs.size === 0 && this.dirtySubtasks.size === 0 && this.pendingEvents.length === 0) return;
    const jobs = [...this.dirtyJobs.values()];
    const subtasks = [...this.dirtySubtasks.values()];
    const events = this.pendingEvents;
    this.dirtyJobs.clear();
    this.dirtySubtasks.clear();
    this.pendingEvents = [];
    this.db.transaction(() => {
      for (const j of jobs) this.stmts.upsertJob.run(j.id, j.state, j.createdAt, JSON.stringify(j));
      for (const s of subtasks) this.stmts.upsertSubtask.run(s.id, s.jobId, JSON.stringify(s));
      for (const e of events) this.stmts.insertEvent.run(e.job_id, Number(e.seq), JSON.stringify(e));
    })();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }
}
