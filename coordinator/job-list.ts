/**
 * ListJobs' pages: jobs newest first (jobs made in the same millisecond by id, so that a cursor falls
 * between two of them), cut by the page size and by the answer's size,
 * with an opaque token that says where the next page starts.
 */
import { invalidArgument } from '../shared/errors.js';
import type { Job } from '../shared/proto/generated/tessera/v1/Job.js';
import { jobStateFromEnum, toJobSummary, type JobRecord, type JobState } from './model.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;
/** A page ends before its summaries pass this: well under grpc-js's default 4 MiB for a received message. */
export const MAX_PAGE_BYTES = 3 * 1024 * 1024;

interface Cursor {
  /** The last job of the page before: its creation time and id. */
  createdAt: number;
  id: string;
  /** The filter the page before was asked with. */
  state: string;
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id, c.state]), 'utf8').toString('base64url');
}

function decodeCursor(token: string, state: string): Cursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== 3 || !Number.isSafeInteger(parsed[0]) || typeof parsed[1] !== 'string' || typeof parsed[2] !== 'string') {
    throw invalidArgument('page_token: not a next_page_token this coordinator gave (damaged or cut short)');
  }
  const [createdAt, id, tokenState] = parsed as [number, string, string];
  // A token of a coordinator before 2026-12-05 holds the filter as the client spelled it.
  if ((jobStateFromEnum(tokenState) ?? tokenState) !== state) {
    throw invalidArgument(`page_token: made for state "${tokenState}", asked with state "${state}"; ask the next page with the same filter`);
  }
  return { createdAt, id, state };
}

type JobKey = { createdAt: number; id: string };

/** Whether job `a` comes before `b` in creation order (ties by id). */
const olderThan = (a: JobKey, b: JobKey): boolean => a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);

/**
 * Kept jobs in creation order (then by id), so that a page starts where the last one ended, found
 * by a binary search, instead of every kept job being filtered and sorted for every page (a
 * coordinator may keep hundreds of thousands). A removed job leaves its key in the order (its
 * record is let go at once: a batch's can hold thousands of errors), skipped, until removed ones
 * are half of it.
 */
export class JobOrder {
  /** Oldest first: kept jobs, and the keys of removed ones. */
  private order: Array<JobRecord | JobKey> = [];
  private removedSince = 0;

  /** `isKept`: whether a job in the order is still kept (not removed since). */
  constructor(private readonly isKept: (job: JobRecord) => boolean) {}

  private kept = (job: JobRecord | JobKey): job is JobRecord => 'state' in job && this.isKept(job);

  /** A job newly kept: at the end, as a new job almost always goes. */
  add(job: JobRecord): void {
    const last = this.order[this.order.length - 1];
    if (!last || olderThan(last, job)) this.order.push(job);
    else this.order.splice(this.firstAtOrAfter(job), 0, job);
  }

  /** A kept job was removed: only its key stays, until removed ones are compacted away. */
  removed(job: JobKey): void {
    const i = this.firstAtOrAfter(job);
    const at = this.order[i];
    if (at && at.id === job.id) this.order[i] = { createdAt: job.createdAt, id: job.id };
    if (++this.removedSince > 1024 && this.removedSince * 2 > this.order.length) {
      this.order = this.order.filter(this.kept);
      this.removedSince = 0;
    }
  }

  /** Kept jobs newest first, from just before `before` (a job's time and id) when given. */
  *newestFirst(before?: JobKey): Generator<JobRecord, void, undefined> {
    const order = this.order;
    for (let i = (before ? this.firstAtOrAfter(before) : order.length) - 1; i >= 0; i--) {
      const job = order[i]!;
      if (this.kept(job)) yield job;
    }
  }

  /** The index of the first job that is not older than `key`. */
  private firstAtOrAfter(key: JobKey): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (olderThan(this.order[mid]!, key)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Rough upper bound of a summary's encoded size: its JSON, which spells every field's name. */
const summaryBytes = (job: Job): number => Buffer.byteLength(JSON.stringify(job), 'utf8');

/**
 * One page of the kept jobs, read newest first from `newestFirst` (from just before the cursor's
 * job): those `visible` to the caller and in `wanted` (all when undefined), after the page
 * `pageToken` ends, at most `limit` (0 = the default) and MAX_PAGE_BYTES of them. Only what the
 * page needs is looked at (and one job more), not every kept job.
 */
export function listPage(
  newestFirst: (before?: JobKey) => Iterable<JobRecord>,
  visible: (job: JobRecord) => boolean,
  req: { limit: number; state: string; pageToken: string },
  wanted: JobState | undefined,
): { jobs: Job[]; next_page_token: string } {
  const size = Math.min(req.limit || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  // The filter as the coordinator reads it ("failed" and "JOB_STATE_FAILED" are one), so that a
  // page token made with either spelling is good for the other.
  const cursor = req.pageToken ? decodeCursor(req.pageToken, wanted ?? '') : undefined;
  const page: Job[] = [];
  let last: JobRecord | undefined;
  let more = false;
  let bytes = 0;
  for (const job of newestFirst(cursor)) {
    if ((wanted && job.state !== wanted) || !visible(job)) continue;
    if (page.length === size) {
      more = true;
      break;
    }
    const summary = toJobSummary(job);
    bytes += summaryBytes(summary);
    if (bytes > MAX_PAGE_BYTES && page.length > 0) {
      more = true;
      break;
    }
    page.push(summary);
    last = job;
  }
  return { jobs: page, next_page_token: more && last ? encodeCursor({ createdAt: last.createdAt, id: last.id, state: wanted ?? '' }) : '' };
}
