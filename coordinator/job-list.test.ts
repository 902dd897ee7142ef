import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { loadTesseraProto } from '../shared/proto.js';
import { DEFAULT_PAGE_SIZE, JobOrder, MAX_PAGE_BYTES, MAX_PAGE_SIZE, listPage as listPageOf } from './job-list.js';
import type { JobRecord, JobState } from './model.js';

/** A finished job as the manager keeps it; `n` sets its id and, with `sameMs`, its creation time. */
function record(n: number, o: { state?: JobState; label?: string; message?: string; sameMs?: number } = {}): JobRecord {
  return {
    id: `job-${String(n).padStart(6, '0')}`,
    kind: 'passthrough',
    state: o.state ?? 'succeeded',
    spec: { label: o.label ?? `job ${n}`, priority: 0, max_attempts: 0, shared_output_dir: '', request_id: '', input_count: 0, passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 }, params: 'passthrough' } as JobRecord['spec'],
    inputs: [],
    outputs: [],
    errors: [],
    createdAt: 1_700_000_000_000 + Math.floor(n / (o.sameMs ?? 1)),
    startedAt: 0,
    finishedAt: 0,
    message: o.message ?? '',
    owner: '',
    phase: 0,
    seq: 1,
    maxAttempts: 3,
  };
}

/** The jobs kept, in the order the coordinator keeps them in (added as given: out of order too). */
function kept(jobs: JobRecord[]): JobOrder {
  const order = new JobOrder(() => true);
  for (const j of jobs) order.add(j);
  return order;
}

/** A page of `jobs` (each visible to the caller). */
const listPage = (jobs: JobRecord[] | JobOrder, req: { limit: number; state: string; pageToken: string }, wanted: JobState | undefined): ReturnType<typeof listPageOf> => {
  const order = jobs instanceof JobOrder ? jobs : kept(jobs);
  return listPageOf((before) => order.newestFirst(before), () => true, req, wanted);
};

/** Every page in turn, as a client following next_page_token does. */
function allPages(jobs: JobRecord[], limit: number, state = '', wanted?: JobState): { ids: string[]; sizes: number[] } {
  const ids: string[] = [];
  const sizes: number[] = [];
  let pageToken = '';
  do {
    const page = listPage(jobs, { limit, state, pageToken }, wanted);
    ids.push(...page.jobs.map((j) => j.id!));
    sizes.push(page.jobs.length);
    pageToken = page.next_page_token;
  } while (pageToken);
  return { ids, sizes };
}

const newestFirst = (jobs: JobRecord[]): string[] => [...jobs].sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id)).map((j) => j.id);

describe('ListJobs pages', () => {
  it('walks every job once, newest first, across jobs made in the same millisecond', () => {
    // Seven jobs per millisecond, shuffled: a page boundary falls inside such runs.
    const jobs = Array.from({ length: 2_345 }, (_, n) => record((n * 7_919) % 2_345, { sameMs: 7 }));
    const { ids, sizes } = allPages(jobs, 100);
    expect(ids).toEqual(newestFirst(jobs));
    expect(sizes).toEqual([...Array(23).fill(100), 45]);
  });

  it('gives 50 by default and at most 1000 a page; the last page has no token', () => {
    const jobs = Array.from({ length: 2_500 }, (_, n) => record(n));
    expect(listPage(jobs, { limit: 0, state: '', pageToken: '' }, undefined).jobs).toHaveLength(DEFAULT_PAGE_SIZE);
    const big = listPage(jobs, { limit: 1_000_000, state: '', pageToken: '' }, undefined);
    expect(big.jobs).toHaveLength(MAX_PAGE_SIZE);
    expect(big.next_page_token).not.toBe('');
    expect(allPages(jobs, 5_000).sizes).toEqual([1000, 1000, 500]);
    expect(listPage(jobs.slice(0, 3), { limit: 3, state: '', pageToken: '' }, undefined).next_page_token).toBe('');
    expect(listPage([], { limit: 3, state: '', pageToken: '' }, undefined)).toEqual({ jobs: [], next_page_token: '' });
  });

  it('ends a page before its encoded answer passes 3 MiB, whatever the labels and messages', () => {
    // Summaries of about 1.6 KiB: a thousand of them would be over the limit.
    const jobs = Array.from({ length: 2_500 }, (_, n) => record(n, { label: 'é'.repeat(500), message: 'failed: '.repeat(60) }));
    const serialize = loadTesseraProto().proto.tessera.v1.JobService.service.ListJobs.responseSerialize;
    const ids: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = listPage(jobs, { limit: 1000, state: '', pageToken }, undefined);
      const bytes = serialize(page).length;
      expect(bytes).toBeLessThanOrEqual(MAX_PAGE_BYTES);
      // Cut by size, not by count, and not by much.
      if (page.next_page_token) expect(bytes).toBeGreaterThan(MAX_PAGE_BYTES * 0.5);
      ids.push(...page.jobs.map((j) => j.id!));
      pageToken = page.next_page_token;
      pages++;
    } while (pageToken);
    expect(pages).toBeGreaterThan(2);
    expect(ids).toEqual(newestFirst(jobs));
  });

  it('filters by state, and keeps the filter across pages', () => {
    const jobs = Array.from({ length: 300 }, (_, n) => record(n, { state: n % 3 === 0 ? 'failed' : 'succeeded' }));
    const { ids } = allPages(jobs, 40, 'JOB_STATE_FAILED', 'failed');
    expect(ids).toEqual(newestFirst(jobs.filter((j) => j.state === 'failed')));
  });

  it('refuses a token asked with another filter, or one it did not make, as INVALID_ARGUMENT', () => {
    const jobs = Array.from({ length: 10 }, (_, n) => record(n));
    const { next_page_token } = listPage(jobs, { limit: 3, state: '', pageToken: '' }, undefined);
    expect(() => listPage(jobs, { limit: 3, state: 'failed', pageToken: next_page_token }, 'failed')).toThrow(
      expect.objectContaining({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/^page_token: made for state "", asked with state "failed"/) }),
    );
    // The same filter spelled the other way is the same filter.
    const failed = Array.from({ length: 10 }, (_, n) => record(n, { state: 'failed' }));
    const first = listPage(failed, { limit: 3, state: 'failed', pageToken: '' }, 'failed');
    expect(listPage(failed, { limit: 3, state: 'JOB_STATE_FAILED', pageToken: first.next_page_token }, 'failed').jobs.map((j) => j.id)).toEqual(newestFirst(failed).slice(3, 6));
    // A token of the coordinator before, which kept the filter as spelled, still serves.
    const older = Buffer.from(JSON.stringify([...JSON.parse(Buffer.from(first.next_page_token, 'base64url').toString()).slice(0, 2), 'JOB_STATE_FAILED'])).toString('base64url');
    expect(listPage(failed, { limit: 3, state: 'failed', pageToken: older }, 'failed').jobs).toHaveLength(3);
    for (const bad of ['nonsense', next_page_token.slice(0, 10), Buffer.from('[1,2,3]').toString('base64url'), Buffer.from('["x","y",""]').toString('base64url')]) {
      expect(() => listPage(jobs, { limit: 3, state: '', pageToken: bad }, undefined)).toThrow(expect.objectContaining({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/^page_token: not a next_page_token/) }));
    }
  });

  it('a job submitted between two pages does not appear in the later one', () => {
    const jobs = Array.from({ length: 10 }, (_, n) => record(n));
    const order = kept(jobs);
    const first = listPage(order, { limit: 4, state: '', pageToken: '' }, undefined);
    order.add(record(100));
    const second = listPage(order, { limit: 100, state: '', pageToken: first.next_page_token }, undefined);
    expect([...first.jobs, ...second.jobs].map((j) => j.id)).toEqual(newestFirst(jobs));
    expect(listPage(order, { limit: 1, state: '', pageToken: '' }, undefined).jobs[0]!.id).toBe('job-000100');
  });

  it('skips jobs removed since they were kept, and pages by the owner asked for', () => {
    const jobs = Array.from({ length: 3_000 }, (_, n) => ({ ...record(n), owner: n % 2 ? 'alice' : 'bob' }));
    const gone = new Set<string>();
    const order = new JobOrder((j) => !gone.has(j.id));
    for (const j of jobs) order.add(j);
    // Two thirds removed, one at a time, as retention does: the order drops them as it goes.
    for (const j of jobs) {
      if (Number(j.id.slice(4)) % 3 === 0) continue;
      gone.add(j.id);
      order.removed(j);
    }
    const left = jobs.filter((j) => !gone.has(j.id));
    const alice = (j: JobRecord): boolean => j.owner === 'alice';
    const ids: string[] = [];
    let pageToken = '';
    do {
      const page = listPageOf((before) => order.newestFirst(before), alice, { limit: 70, state: '', pageToken }, undefined);
      ids.push(...page.jobs.map((j) => j.id!));
      pageToken = page.next_page_token;
    } while (pageToken);
    expect(ids).toEqual(newestFirst(left.filter(alice)));
  });
});
