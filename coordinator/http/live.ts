/**
 * Server-sent events for the dashboard. Job events are coalesced: a flush every 250 ms sends the
 * rows that changed, so a job of 5,000 tiles costs each browser a few messages a second, not one
 * per event (no polling and no event storms). Workers are sent once a second (heartbeats move
 * their "last seen"), and a throughput sample once a second.
 */
import type { ServerResponse } from 'node:http';
import type { JobEvent } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import type { JobManager } from '../job-manager.js';
import type { SubtaskRecord } from '../model.js';
import { pagesPerTurn } from '../subtask-pages.js';
import { fromInfo, jobView, recentJobs, subtaskView, workerView, type SubtaskView } from './views.js';

/** Jobs listed in the snapshot. */
const JOB_LIMIT = 100;
/** Seconds of throughput history kept for new browsers. */
const HISTORY = 180;

/** One throughput sample: what finished during one second. */
export interface ThroughputSample {
  t: number;
  subtasks: number;
  jobs: number;
  failures: number;
}

interface Client {
  res: ServerResponse;
  /** The job whose subtasks this browser shows ('' = none). */
  job: string;
  /** How many of its subtasks the browser was sent in full (planning adds more without events). */
  known: number;
  /**
   * Bytes of its first picture still unsent: not backlog. A big job's picture (5 MB for 30,000
   * subtasks) counted as falling behind dropped every browser slower than loopback before it was
   * through, and its reconnect got the same picture and the same drop, for ever.
   */
  picture: number;
}

/** Headers of the event stream. */
export const EVENT_STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // Reverse proxies (nginx) would otherwise buffer the stream.
  'x-accel-buffering': 'no',
};

export class LiveHub {
  private readonly clients = new Set<Client>();
  private readonly dirtyJobs = new Set<string>();
  /** job id -> subtask id -> latest view, since the last flush. */
  private readonly dirtySubtasks = new Map<string, Map<string, SubtaskView>>();
  /** Jobs that reached their final state since the last flush: their browsers get every subtask again. */
  private readonly endedJobs = new Set<string>();
  private readonly history: ThroughputSample[] = [];
  private current: ThroughputSample = { t: Math.floor(Date.now() / 1000), subtasks: 0, jobs: 0, failures: 0 };
  /** The job manager's retries counted into the samples so far. */
  private retriesSeen: number;
  /** Jobs that left the coordinator since the last flush (retention): browsers drop their rows. */
  private readonly goneJobs = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: () => void;
  private readonly offGone: () => void;

  constructor(private readonly manager: JobManager) {
    this.retriesSeen = manager.retries;
    this.unsubscribe = manager.events.subscribeAll((e) => this.onEvent(e));
    this.offGone = manager.events.onGone((id) => {
      this.dirtyJobs.delete(id);
      this.dirtySubtasks.delete(id);
      this.endedJobs.delete(id);
      if (this.clients.size > 0) this.goneJobs.add(id);
    });
    const flush = setInterval(() => this.flush(), 250);
    const second = setInterval(() => this.tick(), 1000);
    const ping = setInterval(() => this.broadcast(': ping\n\n'), 15_000);
    for (const t of [flush, second, ping]) t.unref();
    this.timers.push(flush, second, ping);
  }

  private onEvent(e: JobEvent): void {
    const jobId = e.job_id ?? '';
    this.dirtyJobs.add(jobId);
    if (e.type === 'job_state' && e.final) {
      this.current.jobs++;
      if (e.job_state === 'JOB_STATE_FAILED') this.current.failures++;
      // A job that ends takes its unfinished subtasks with it, without an event each (a cancelled
      // job of thousands): its browsers get the whole picture again.
      this.endedJobs.add(jobId);
    }
    if ((e.type === 'subtask_state' || e.type === 'progress') && e.subtask) {
      const state = e.subtask.state;
      if (e.type === 'subtask_state' && state === 'SUBTASK_STATE_SUCCEEDED') this.current.subtasks++;
      // Retries are the job manager's count (see tick): a subtask back in `pending` may have been taken back unstarted.
      if (e.type === 'subtask_state' && state === 'SUBTASK_STATE_FAILED') this.current.failures++;
      // Deltas are for connected browsers only (a new one gets the full picture): with none
      // watching, thousands of subtask events a second cost a counter each, not a view each.
      if (this.clients.size === 0) return;
      const view = fromInfo(e.subtask);
      let m = this.dirtySubtasks.get(jobId);
      if (!m) this.dirtySubtasks.set(jobId, (m = new Map()));
      m.set(view.id, view);
    }
  }

  /** Registers a browser: sends the full picture at once, then deltas. */
  attach(res: ServerResponse, job: string): void {
    res.writeHead(200, EVENT_STREAM_HEADERS);
    const client: Client = { res, job, known: 0, picture: 0 };
    this.clients.add(client);
    res.on('close', () => this.clients.delete(client));
    // Once the socket has taken everything written so far, the picture is through.
    res.on('drain', () => (client.picture = 0));
    // Browsers reconnect on their own after a drop; tell them not to wait long.
    res.write('retry: 1000\n\n');
    // The selected job is described too when it is older than the newest JOB_LIMIT (a link to it).
    const recent = recentJobs(this.manager, JOB_LIMIT);
    const selected = job && !recent.some((j) => j.id === job) ? this.manager.find(job) : undefined;
    send(res, 'snapshot', {
      now: Date.now(),
      workers: this.manager.registry.all().map(workerView),
      jobs: [...recent, ...(selected ? [selected] : [])].map((j) => jobView(this.manager, j)),
      jobLimit: JOB_LIMIT,
      inProgress: this.manager.inProgressCount(),
      throughput: this.history,
    });
    if (job) {
      let subtasks: SubtaskView[] = [];
      let live: readonly SubtaskRecord[] | undefined;
      try {
        this.manager.get(job);
        live = this.manager.liveSubtasksOf(job);
      } catch {
        // Unknown job: the page shows an empty mosaic and a message.
      }
      if (live) subtasks = live.map(subtaskView);
      else if (this.manager.find(job)) {
        // A store that fails to read (an I/O error) ends this browser's stream, not the coordinator.
        this.sendStoredSubtasks(client, job).catch(() => client.res.destroy());
        client.picture = res.writableLength;
        return;
      }
      send(res, 'subtasks', { job, full: true, subtasks });
      client.known = subtasks.length;
    }
    client.picture = res.writableLength;
  }

  /**
   * The subtasks of a job that ended, read back from the store a page per event-loop turn: read
   * at once, a job of 100,000 held the coordinator 0.7 s (every heartbeat and call waited) when a
   * browser opened it. It no longer changes, so the pages need no reconciling with deltas.
   */
  private async sendStoredSubtasks(client: Client, job: string): Promise<void> {
    let offset = 0;
    for await (const page of pagesPerTurn((from, limit) => this.manager.subtasksPage(job, from, limit))) {
      if (!this.clients.has(client)) return;
      send(client.res, 'subtasks', { job, full: offset === 0, subtasks: page.map(subtaskView) });
      offset += page.length;
      client.known = offset;
    }
  }

  private flush(): void {
    if (this.goneJobs.size > 0) {
      this.broadcast(frame('removed', { jobs: [...this.goneJobs] }));
      this.goneJobs.clear();
    }
    if (this.dirtyJobs.size === 0) return;
    // Nobody watching: drop the changes rather than build views (a new browser gets a snapshot).
    if (this.clients.size === 0) {
      this.dirtyJobs.clear();
      this.dirtySubtasks.clear();
      this.endedJobs.clear();
      return;
    }
    const jobs = [];
    for (const id of this.dirtyJobs) {
      try {
        jobs.push(jobView(this.manager, this.manager.get(id)));
      } catch {
        // The job left meanwhile (its removal is sent on its own): nothing to show.
      }
    }
    const jobsMsg = frame('jobs', { jobs });
    // Each job's subtasks read, and each frame made, once per flush whatever the browsers watching it.
    const lists = new Map<string, readonly SubtaskRecord[]>();
    const frames = new Map<string, string>();
    const once = (key: string, make: () => string): string => {
      let f = frames.get(key);
      if (f === undefined) frames.set(key, (f = make()));
      return f;
    };
    for (const c of this.clients) {
      write(c, jobsMsg);
      const job = c.job;
      if (!job || !this.dirtyJobs.has(job)) continue;
      let all = lists.get(job);
      if (!all) lists.set(job, (all = this.manager.subtasksOf(job)));
      const list = all;
      const changed = this.dirtySubtasks.get(job);
      if (list.length < c.known || this.endedJobs.has(job)) {
        // The end of the job (its unfinished subtasks cancelled without an event each): the whole picture.
        write(c, once(`${job} full`, () => frame('subtasks', { job, full: true, subtasks: list.map(subtaskView) })));
      } else if (list.length > c.known) {
        // Planned since the browser's last picture (no event of their own): those, and the changes.
        const known = c.known;
        write(c, once(`${job} ${known}`, () => {
          const added = list.slice(known).map(subtaskView);
          const seen = new Set(added.map((v) => v.id));
          return frame('subtasks', { job, full: false, subtasks: [...added, ...[...(changed?.values() ?? [])].filter((v) => !seen.has(v.id))] });
        }));
      } else if (changed) {
        write(c, once(`${job} changes`, () => frame('subtasks', { job, full: false, subtasks: [...changed.values()] })));
      }
      c.known = list.length;
    }
    // Synchronous from the top: no event can have arrived since.
    this.dirtyJobs.clear();
    this.dirtySubtasks.clear();
    this.endedJobs.clear();
  }

  private tick(): void {
    const now = Math.floor(Date.now() / 1000);
    this.current.failures += this.manager.retries - this.retriesSeen;
    this.retriesSeen = this.manager.retries;
    this.history.push(this.current);
    if (this.history.length > HISTORY) this.history.shift();
    const sample = this.current;
    this.current = { t: now, subtasks: 0, jobs: 0, failures: 0 };
    if (this.clients.size === 0) return;
    this.broadcast(frame('tick', { now: Date.now(), sample, workers: this.manager.registry.all().map(workerView), inProgress: this.manager.inProgressCount() }));
  }

  private broadcast(text: string): void {
    for (const c of this.clients) write(c, text);
  }

  /** Number of connected browsers. */
  get size(): number {
    return this.clients.size;
  }

  close(): void {
    this.unsubscribe();
    this.offGone();
    for (const t of this.timers) clearInterval(t);
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Most a browser may fall behind before it is dropped (it reconnects and gets a fresh snapshot). */
const MAX_BACKLOG = 4 * 1024 * 1024;

function write(c: Client, text: string): void {
  if (c.res.writableLength - c.picture > MAX_BACKLOG) {
    c.res.destroy();
    return;
  }
  c.res.write(text);
}

function send(res: ServerResponse, event: string, data: unknown): void {
  res.write(frame(event, data));
}
