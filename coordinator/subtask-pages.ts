/**
 * A job's subtasks one page at a time (GetJob's `subtask_limit` and `subtask_page_token`). A job of
 * 100,000 subtasks in one answer held the coordinator's only thread for over 2 s (read from the
 * store, then encoded): every worker's heartbeat and every other client's call waited, and the
 * answer could pass any client's message limit. A page is read and encoded in tens of milliseconds;
 * the client library reads the pages one after another, so the thread is free between them.
 */
import { invalidArgument } from '../shared/errors.js';
import type { InputInfo } from '../shared/proto/generated/tessera/v1/InputInfo.js';
import type { ItemError } from '../shared/proto/generated/tessera/v1/ItemError.js';
import type { ItemWarning } from '../shared/proto/generated/tessera/v1/ItemWarning.js';
import type { OutputInfo } from '../shared/proto/generated/tessera/v1/OutputInfo.js';
import type { SubtaskInfo } from '../shared/proto/generated/tessera/v1/SubtaskInfo.js';
import { toOutputInfo, toSubtaskInfo, type JobRecord, type SubtaskRecord } from './model.js';

/** Subtasks per page when none or more are asked for. */
export const MAX_SUBTASK_PAGE = 10_000;
/** A page ends before its subtasks pass this (one failure's message may be 4 KiB). */
export const MAX_SUBTASK_PAGE_BYTES = 3 * 1024 * 1024;
/**
 * A job's lists (inputs, outputs, errors, warnings) in one answer stop before they pass this: 10,000
 * inputs with 200-byte names and their outputs came to over 5 MiB, which a client's default 4 MiB
 * refused, the job made all the same (review API).
 */
export const MAX_LIST_PAGE_BYTES = 2 * 1024 * 1024;
/** What one answer's lists and subtask page together stay within (a client takes 4 MiB by default). */
export const MAX_ANSWER_BYTES = 3.5 * 1024 * 1024;

export interface SubtaskPage {
  subtasks: SubtaskInfo[];
  /** Where the next page starts; "" when this one is the last. */
  next: string;
}

/** Reads `limit` subtasks of a job from `offset` on, in the order they were made. */
export type PageReader = (offset: number, limit: number) => SubtaskRecord[];

/**
 * A page token: the job, a tag naming what it pages (none for subtasks, as tokens from before
 * list pages are) and where each list goes on, as base64url JSON.
 */
function encodeToken(jobId: string, tag: string | undefined, offsets: readonly number[]): string {
  return Buffer.from(JSON.stringify([jobId, ...(tag ? [tag] : []), ...offsets]), 'utf8').toString('base64url');
}

/** The offsets of a token {@link encodeToken} made for `jobId`, or INVALID_ARGUMENT naming `field`. */
function decodeToken(token: string, jobId: string, field: 'subtask_page_token' | 'list_page_token', tag: string | undefined, count: number): number[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const head = tag ? 2 : 1;
  const at = Array.isArray(parsed) ? parsed.slice(head) : [];
  if (!Array.isArray(parsed) || parsed.length !== head + count || typeof parsed[0] !== 'string' || (tag && parsed[1] !== tag) || !at.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)) {
    throw invalidArgument(`${field}: not a next_${field} this coordinator gave (damaged or cut short)`);
  }
  if (parsed[0] !== jobId) throw invalidArgument(`${field}: made for job ${parsed[0] as string}, asked with job ${jobId}`);
  return at as number[];
}

/** Rough upper bound of a subtask's encoded size: its strings, and the rest's few dozen bytes. */
const infoBytes = (s: SubtaskInfo): number => 48 + Buffer.byteLength(s.id ?? '') + Buffer.byteLength(s.label ?? '') + Buffer.byteLength(s.worker ?? '') + Buffer.byteLength(s.error ?? '');

/**
 * The page `token` names (the first for ""), of at most `limit` subtasks (0 with a token: the
 * most; 0 without: all of them, as a client from before pages asks, and gets), and of at most
 * `maxBytes` (less than a page's own where the job's lists take room in the same answer).
 */
export function subtaskPage(jobId: string, read: PageReader, limit: number, token: string, maxBytes = MAX_SUBTASK_PAGE_BYTES): SubtaskPage {
  if (limit <= 0 && !token) return { subtasks: read(0, Number.MAX_SAFE_INTEGER).map(toSubtaskInfo), next: '' };
  const offset = token ? decodeToken(token, jobId, 'subtask_page_token', undefined, 1)[0]! : 0;
  const size = limit > 0 ? Math.min(limit, MAX_SUBTASK_PAGE) : MAX_SUBTASK_PAGE;
  // One more than the page: whether another page follows, without counting them all.
  const records = read(offset, size + 1);
  const subtasks: SubtaskInfo[] = [];
  let bytes = 0;
  for (const r of records) {
    if (subtasks.length === size) break;
    const info = toSubtaskInfo(r);
    bytes += infoBytes(info);
    if (bytes > maxBytes && subtasks.length > 0) break;
    subtasks.push(info);
  }
  return { subtasks, next: subtasks.length < records.length ? encodeToken(jobId, undefined, [offset + subtasks.length]) : '' };
}

/**
 * SubmitJob's answer to a client that asks for no page (request metadata tessera-subtask-limit:
 * every client from before pages, a stub of another language): all of the job's subtasks where
 * they fit in one page's 3 MiB (what a gRPC client takes by default is 4 MiB), else the first page
 * and its `next`. All of them at any size made a default client's answer RESOURCE_EXHAUSTED for a
 * job of about 70,000 subtasks, the job made and running all the same. Read a page at a time, and
 * no further than the 3 MiB.
 */
export function subtasksIfTheyFit(jobId: string, read: PageReader, maxBytes = MAX_SUBTASK_PAGE_BYTES): SubtaskPage {
  const all: SubtaskInfo[] = [];
  let bytes = 0;
  for (let offset = 0; ; offset += MAX_SUBTASK_PAGE) {
    const records = read(offset, MAX_SUBTASK_PAGE);
    for (const r of records) {
      const info = toSubtaskInfo(r);
      bytes += infoBytes(info);
      if (bytes > maxBytes) return subtaskPage(jobId, read, MAX_SUBTASK_PAGE, '', maxBytes);
      all.push(info);
    }
    if (records.length < MAX_SUBTASK_PAGE) return { subtasks: all, next: '' };
  }
}

/**
 * The pages of a job's subtasks from the start, {@link MAX_SUBTASK_PAGE} at a time, one per
 * event-loop turn: the dashboard and its API send an ended job's subtasks this way (read at once,
 * a job of 100,000 held the coordinator 0.7 s). Ends after the last page (a short one); `read`
 * may throw (the job removed meanwhile), and the caller stops with it.
 */
export async function* pagesPerTurn(read: PageReader): AsyncGenerator<SubtaskRecord[], void, undefined> {
  for (let offset = 0; ; ) {
    const page = read(offset, MAX_SUBTASK_PAGE);
    yield page;
    offset += page.length;
    if (page.length < MAX_SUBTASK_PAGE) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** A job's lists as one answer carries them (see {@link jobListsPage}). */
export interface ListPage {
  inputs: InputInfo[];
  outputs: OutputInfo[];
  errors: ItemError[];
  warnings: ItemWarning[];
  /** Where the next page starts; "" when nothing is left out. */
  next: string;
  /** Rough encoded size of the four lists. */
  bytes: number;
}

const LIST_TOKEN_TAG = 'lists';

const bytesOf = (...texts: Array<string | undefined>): number => texts.reduce((n, t) => n + Buffer.byteLength(t ?? ''), 16);

/**
 * The job's inputs, outputs, errors and warnings from where `token` left them (their starts for
 * ""), in that order, as far as they fit in {@link MAX_LIST_PAGE_BYTES} (a page's first entry
 * whatever its size, so that every page moves on).
 */
export function jobListsPage(job: JobRecord, token: string): ListPage {
  const [i0, o0, e0, w0] = token ? (decodeToken(token, job.id, 'list_page_token', LIST_TOKEN_TAG, 4) as [number, number, number, number]) : [0, 0, 0, 0];
  const page: ListPage = { inputs: [], outputs: [], errors: [], warnings: [], next: '', bytes: 0 };
  let full = false;
  const fill = <R, T>(records: readonly R[], from: number, into: T[], convert: (r: R) => T, size: (t: T) => number): number => {
    let k = from;
    for (; k < records.length && !full; k++) {
      const t = convert(records[k]!);
      const b = size(t);
      if (page.bytes + b > MAX_LIST_PAGE_BYTES && page.bytes > 0) {
        full = true;
        break;
      }
      page.bytes += b;
      into.push(t);
    }
    return k;
  };
  const i = fill(job.inputs, i0, page.inputs, (r) => ({ name: r.name, size: String(r.size), sha256: r.sha256, shared_path: r.shared ? r.path : '' }), (t) => bytesOf(t.name, t.sha256, t.shared_path));
  const o = fill(job.outputs, o0, page.outputs, toOutputInfo, (t) => bytesOf(t.name, t.sha256, t.source, t.content_type, t.shared_path));
  const e = fill(job.errors, e0, page.errors, (r) => ({ input: r.input, code: r.code, message: r.message }), (t) => bytesOf(t.input, t.code, t.message));
  const warnings = job.warnings ?? [];
  const w = fill(warnings, w0, page.warnings, (r) => ({ input: r.input, message: r.message }), (t) => bytesOf(t.input, t.message));
  if (i < job.inputs.length || o < job.outputs.length || e < job.errors.length || w < warnings.length) {
    page.next = encodeToken(job.id, LIST_TOKEN_TAG, [i, o, e, w]);
  }
  return page;
}
