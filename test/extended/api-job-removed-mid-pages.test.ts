/**
 * GET /api/jobs/ID of a job that ended writes its subtask list a page per event-loop turn: a job
 * removed between two pages (its retention over) cuts the answer off, so that no client takes a
 * valid document listing a third of the subtasks for the whole job (review K9).
 */
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { afterEach, expect, it, vi } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

it('a job removed while its ended-job subtask pages are written is not answered 200 with a third of its subtasks', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-api-pages-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '127.0.0.1:0' });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const worker = new Worker({ coordinator: address, slots: 16, log, memoryLimitMb: 0, name: 'w1' });
  worker.start();
  cleanups.push(() => worker.close());
  const client = new TesseraClient({ address, deadlineMs: 20_000 });
  cleanups.push(async () => client.close());

  const job = await client.wait((await client.submit({ passthrough: { subtasks: 25_000, work_ms: 0 } }, [])).id);
  expect(job.state).toBe('JOB_STATE_SUCCEEDED');
  const manager = coordinator.manager;
  const page = manager.subtasksPage.bind(manager);
  let removal: Promise<number> | undefined;
  vi.spyOn(manager, 'subtasksPage').mockImplementation((id, offset, limit) => {
    const rows = page(id, offset, limit);
    // The retention sweep, due now, runs between this page and the next.
    if (offset === 0) removal ??= manager.removeExpired(0, Date.now() + 1000);
    return rows;
  });

  const res = await fetch(`http://${coordinator.httpAddress}/api/jobs/${job.id}`);
  // Cut off where the job went: the client sees the answer was not whole.
  const text = await res.text().catch(() => '');
  await removal;
  let body: { subtaskList?: unknown[] } | undefined;
  try {
    body = JSON.parse(text) as { subtaskList: unknown[] };
  } catch {
    body = undefined; // a cut-off document: the client sees it was not whole
  }
  // It was status 200, valid JSON, a subtaskList of 10,000 (of 25,000).
  if (res.status === 200 && body) expect(body.subtaskList?.length, 'a 200 answer lists every subtask of the job').toBe(25_000);
}, 60_000);
