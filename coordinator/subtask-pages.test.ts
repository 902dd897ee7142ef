import { describe, expect, it } from 'vitest';
import { newSubtaskRecord, type SubtaskRecord } from './model.js';
import { MAX_SUBTASK_PAGE, MAX_SUBTASK_PAGE_BYTES, subtaskPage } from './subtask-pages.js';

/** `n` failed subtasks, each with a failure message of 4 KiB (as long as a subtask's error gets). */
function failedSubtasks(n: number): SubtaskRecord[] {
  return Array.from({ length: n }, (_, index) => {
    const s = newSubtaskRecord({ label: `batch ${index}`, inputs: [], plan: {}, weight: 1, items: [] }, { id: `job-0-${index}`, jobId: 'job', index, phase: 0, timeoutMs: 0 });
    s.state = 'failed';
    s.error = { input: '', code: 'INTERNAL', message: 'x'.repeat(4096) };
    return s;
  });
}

describe('subtask pages', () => {
  it('end before 3 MiB of subtasks, and the next page starts where one ended', () => {
    const all = failedSubtasks(2_000);
    const read = (offset: number, limit: number) => all.slice(offset, offset + limit);
    const sizes: number[] = [];
    const seen: number[] = [];
    let token = '';
    do {
      const page = subtaskPage('job', read, MAX_SUBTASK_PAGE, token);
      sizes.push(page.subtasks.length);
      seen.push(...page.subtasks.map((s) => s.index ?? -1));
      // Each page's messages alone stay under the limit.
      expect(page.subtasks.reduce((n, s) => n + (s.error ?? "").length, 0)).toBeLessThan(MAX_SUBTASK_PAGE_BYTES);
      token = page.next;
    } while (token);
    expect(sizes.length).toBe(3);
    expect(sizes[0]).toBeGreaterThan(700);
    expect(seen).toEqual(all.map((s) => s.index));
  });

  it('holds one subtask however big it is, and takes a limit over 10,000 as 10,000', () => {
    const huge = failedSubtasks(2);
    huge[0]!.error!.message = 'y'.repeat(MAX_SUBTASK_PAGE_BYTES + 1);
    const first = subtaskPage('job', (o, l) => huge.slice(o, o + l), MAX_SUBTASK_PAGE, '');
    expect(first.subtasks).toHaveLength(1);
    expect(subtaskPage('job', (o, l) => huge.slice(o, o + l), 0, first.next).subtasks.map((s) => s.index)).toEqual([1]);
    // No limit and no token (a client from before pages): all of them, in one answer.
    expect(subtaskPage('job', (o, l) => huge.slice(o, o + l), 0, '')).toMatchObject({ next: '' });
    expect(subtaskPage('job', (o, l) => huge.slice(o, o + l), 0, '').subtasks).toHaveLength(2);
    const many = Array.from({ length: 12_000 }, (_, index) => newSubtaskRecord({ label: '', inputs: [], plan: {}, weight: 1, items: [] }, { id: `j-${index}`, jobId: 'job', index, phase: 0, timeoutMs: 0 }));
    expect(subtaskPage('job', (o, l) => many.slice(o, o + l), 1_000_000, '').subtasks).toHaveLength(10_000);
  });
});
