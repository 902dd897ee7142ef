/**
 * The dashboard in a real browser (Debian's headless Chromium through playwright-core) against a
 * real cluster: the page shows the workers, follows a running job's subtasks from pending through
 * running (on both workers) to succeeded with the retries visible, sees a killed worker turn lost,
 * and does all that over one event stream per selection (no polling). Screenshots land in
 * test-output/.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchBrowser, type Browser } from './helpers/browser.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { TesseraClient } from '../client/client.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';

/** The few DOM shapes the page functions touch (this project compiles without the DOM lib). */
interface Tile {
  dataset: Record<string, string | undefined>;
  classList: { contains(c: string): boolean };
}
interface Canvas {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}

const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url));

let cluster: TestCluster;
let browser: Browser;

beforeAll(async () => {
  if (!chromiumAvailable()) throw new Error('Chromium not found at /usr/bin/chromium: apt-get install -y chromium (.ci/run does this)');
  await mkdir(OUTPUT, { recursive: true });
  [cluster, browser] = await Promise.all([startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '2500', '--quarantine-failures', '0'] }), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
});

describe('dashboard', () => {
  it('shows workers, a job and its subtasks changing state live, then a lost worker', async () => {
    const { page } = browser;
    const requests: string[] = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    const base = `http://${cluster.httpAddress}`;
    await page.goto(`${base}/`);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    for (const w of cluster.workers) await page.locator(`#workers tr[data-worker="${w.name}"][data-state="active"]`).waitFor({ timeout: 10_000 });

    // 6 subtasks of 1.5 s on 2 one-slot workers (a few seconds in which the page must catch them
    // running, even with Chromium loading the machine); each fails once first, so retries show up.
    const job = await cluster.client.submit({ label: 'dashboard test', passthrough: { subtasks: 6, work_ms: 1500, fail_first_attempts: 1 } }, []);
    const row = page.locator(`#jobs tr[data-job="${job.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    await row.click();
    await expect.poll(() => page.locator('#mosaic .tile').count(), { timeout: 10_000 }).toBe(6);

    // Mid-run: a tile is running and a worker shows a slot in use.
    await page.locator('#mosaic .tile[data-state="running"]').first().waitFor({ timeout: 15_000 });
    await page.locator('#workers tr[data-slots-used="1"]').first().waitFor({ timeout: 10_000 });
    await page.screenshot({ path: path.join(OUTPUT, 'dashboard-running.png'), fullPage: true });

    // The end: every tile succeeded, after a retry each, on both workers.
    await page.locator(`#jobs tr[data-job="${job.id}"][data-state="succeeded"]`).waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator('#mosaic .tile[data-state="succeeded"]').count(), { timeout: 10_000 }).toBe(6);
    const tiles = await page.locator('#mosaic .tile').evaluateAll((els) =>
      els.map((el) => {
        const e = el as unknown as Tile;
        return { id: e.dataset['id'], worker: e.dataset['worker'], attempt: Number(e.dataset['attempt']), retried: e.classList.contains('retried') };
      }),
    );
    expect(new Set(tiles.map((t) => t.worker))).toEqual(new Set(cluster.workers.map((w) => w.name)));
    // Each failed once first, so it took at least two attempts (more only if the loaded machine
    // starved a heartbeat long enough for a worker to count as lost), and the page marks it.
    expect(tiles.every((t) => t.attempt >= 2 && t.retried)).toBe(true);
    // What the API says matches what the page shows, tile for tile.
    const done = await cluster.client.getJob(job.id);
    const byId = (list: { id?: string; worker?: string; attempt: number }[]) => list.map((t) => ({ id: t.id, worker: t.worker, attempt: t.attempt })).sort((a, b) => String(a.id).localeCompare(String(b.id)));
    expect(byId(tiles)).toEqual(byId(done.subtasks));

    // A worker killed outright turns lost on the page (TTL 2.5 s).
    const victim = cluster.workers[1]!;
    victim.child.kill('SIGKILL');
    await page.locator(`#workers tr[data-worker="${victim.name}"][data-state="lost"]`).waitFor({ timeout: 15_000 });
    await expect.poll(async () => page.locator('#summary').textContent(), { timeout: 10_000 }).toMatch(/^1 worker\(s\)/);
    // The chart has drawn the finished subtasks.
    const chartPixels = await page.locator('#chart').evaluate((c) => {
      const canvas = c as unknown as Canvas;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let green = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i + 1]! > 120 && data[i]! < 80) green++;
      return green;
    });
    expect(chartPixels).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(OUTPUT, 'dashboard.png'), fullPage: true });

    // Live updates came over server-sent events: one stream before and one after selecting the job.
    expect(requests.filter((p) => p === '/events')).toHaveLength(2);
    expect(requests.filter((p) => p.startsWith('/api/'))).toHaveLength(0);
  });

  it('drops a job the coordinator no longer keeps (past its retention), its mosaic with it', async () => {
    const { page } = browser;
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-dash-retention-'));
    // Retention of 2 s; no workers: the job waits with its tiles pending until it is cancelled.
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', http: '127.0.0.1:0', dataDir, log: createLogger('test', 'silent', 'json'), retentionMs: 2000 });
    const client = new TesseraClient({ address: await coordinator.start() });
    try {
      const job = await client.submit({ passthrough: { subtasks: 3 } }, []);
      await page.goto(`http://${coordinator.httpAddress}/#${job.id}`);
      await expect.poll(() => page.locator('#mosaic .tile').count(), { timeout: 10_000 }).toBe(3);
      await client.cancel(job.id);
      await page.locator(`#jobs tr[data-job="${job.id}"]`).waitFor({ state: 'detached', timeout: 15_000 });
      // Before, the row went and the removed job's tiles stayed on the page until a reload.
      await expect.poll(() => page.locator('#mosaic .tile').count(), { timeout: 5_000 }).toBe(0);
    } finally {
      client.close();
      await coordinator.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
