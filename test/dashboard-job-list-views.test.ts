/**
 * The dashboard's job list in a real browser against a real coordinator (no workers: the jobs stay
 * queued): what it shows must match ListJobs/GetJob, also past the newest 100 jobs it lists, and
 * one client's long label (1 KiB is accepted) must not push every other job's state off the page.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchBrowser, type Browser } from './helpers/browser.js';
import { TesseraClient } from '../client/client.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';

interface El {
  textContent: string | null;
  getBoundingClientRect(): { left: number; right: number };
}

const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url));
let dir: string;
let coordinator: Coordinator;
let client: TesseraClient;
let browser: Browser;

beforeAll(async () => {
  if (!chromiumAvailable()) throw new Error('Chromium not found at /usr/bin/chromium');
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-dash-list-'));
  coordinator = new Coordinator({ listen: '127.0.0.1:0', http: '127.0.0.1:0', dataDir: dir, log: createLogger('test', 'silent', 'json'), limits: { maxJobsPerClient: 1000 } });
  client = new TesseraClient({ address: await coordinator.start() });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  client?.close();
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the dashboard with more than 100 jobs', () => {
  it('counts every unfinished job in its summary, and knows a selected job older than the newest 100', async () => {
    const oldest = await client.submit({ label: 'the long one', passthrough: { subtasks: 2 } }, []);
    for (let i = 0; i < 110; i++) await client.submit({ label: `j${i}`, passthrough: { subtasks: 1 } }, []);
    const queued = (await client.listJobs({ state: 'queued', limit: 1000 })).length;
    expect(queued).toBe(111);

    const { page } = browser;
    await page.goto(`http://${coordinator.httpAddress}/#${oldest.id}`);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#mosaic .tile').count(), { timeout: 10_000 }).toBe(2);

    // The job exists (GetJob answers, its tiles are on the page), yet its header says "unknown job".
    expect((await client.getJob(oldest.id)).state).toBe('JOB_STATE_QUEUED');
    const meta = await page.locator('#job-meta').textContent();
    const summary = await page.locator('#summary').textContent();
    expect({ meta, summary }).toEqual({ meta: expect.stringMatching(/^queued/), summary: expect.stringContaining(`${queued} job(s) in progress`) });
  });
});

describe('the dashboard and a long job label', () => {
  it('keeps the other jobs\' state and progress on screen when one job has a 1 KiB label', async () => {
    const plain = await client.submit({ label: 'short', passthrough: { subtasks: 1 } }, []);
    await client.submit({ label: 'L'.repeat(1024), passthrough: { subtasks: 1 } }, []);
    const { page } = browser;
    await page.goto(`http://${coordinator.httpAddress}/`);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    const badge = page.locator(`#jobs tr[data-job="${plain.id}"] .badge`);
    await badge.waitFor({ timeout: 10_000 });
    const { right, viewport, table, panel } = await badge.evaluate((b) => {
      const el = b as unknown as El;
      const doc = (globalThis as unknown as { document: { documentElement: { clientWidth: number }; getElementById(id: string): { scrollWidth: number; clientWidth: number } } }).document;
      return { right: el.getBoundingClientRect().right, viewport: doc.documentElement.clientWidth, table: doc.getElementById('jobs').scrollWidth, panel: doc.getElementById('jobs-panel').clientWidth };
    });
    await mkdir(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, 'dashboard-long-label.png') });
    // Before: the table was ~8,500 px wide, and every job's state badge sat thousands of pixels off screen.
    expect({ badgeOnScreen: right <= viewport, tableFitsPanel: table <= panel }).toEqual({ badgeOnScreen: true, tableFitsPanel: true });
  });
});
