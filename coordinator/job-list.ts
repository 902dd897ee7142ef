/**
 * ListJobs' pages: jobs newest first (ties by id), cut by the page size and by the answer's size,
 * with an opaque token that says where the next page starts.
 */
import { invalidArgument } from '../shared/errors.js';
import type { Job } from '../shared/proto/generated/tessera/v1/Job.js';
import { toJobSummary, type JobRecord, type JobState } from './model.js';

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

/** Newest first; jobs made in the same millisecond by id, so that a cursor falls between two of them. */
const newerFirst = (a: JobRecord, b: JobRecord): number => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** Whether `job` comes after the cursor's job in that order. */
const after = (job: JobRecord, c: Cursor): boolean => job.createdAt < c.createdAt || (job.createdAt === c.createdAt && job.id < c.id);

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
  if (tokenState !== state) {
    throw invalidArgument(`page_token: made for state "${tokenState}", asked with state "${state}"; ask the next page with the same filter`);
  }
  return { createdAt, id, state };
}

/** Rough upper bound of a summary's encoded size: its JSON, which spells every field's name. */
const summaryBytes = (job: Job): number => Buffer.byteLength(JSON.stringify(job), 'utf8');

/**
 * One page of `jobs` (already narrowed to what the caller may see): those in `wanted` (all when
 * undefined), after the page `pageToken` ends, at most `limit` (0 = the default) and
 * MAX_PAGE_BYTES of them.
 */
export function listPage(jobs: Iterable<JobRecord>, req: { limit: number; state: string; pageToken: string }, wanted: JobState | undefined): { jobs: Job[]; next_page_token: string } {
  const size = Math.min(req.limit || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  const cursor = req.pageToken ? decodeCursor(req.pageToken, req.state) : undefined;
  const candidates: JobRecord[] = [];
  for (const j of jobs) if ((!wanted || j.state === wanted) && (!cursor || after(j, cursor))) candidates.push(j);
  candidates.sort(newerFirst);
  const page: Job[] = [];
  let bytes = 0;
  for (const job of candidates) {
    if (page.length === size) break;
    const summary = toJobSummary(job);
    bytes += summaryBytes(summary);
    // The first one always goes in (a summary is far under the limit): every page moves on.
    if (bytes > MAX_PAGE_BYTES && page.length > 0) break;
    page.push(summary);
  }
  const last = candidates[page.length - 1];
  const more = page.length < candidates.length && last !== undefined;
  return { jobs: page, next_page_token: more ? encodeCursor({ createdAt: last.createdAt, id: last.id, state: req.state }) : '' };
}
