/**
 * HTTP edges of the dashboard server, against a real coordinator on 127.0.0.1: what a 405 says,
 * how the admin token's auth scheme is read, and the page opened at a link whose fragment is not
 * valid percent-encoding, and the event stream of a big job to a browser on a slower link.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { chromiumAvailable, launchBrowser } from '../helpers/browser.js';

const log = createLogger('test', 'silent', 'json');
const ADMIN = 'admin-token-aaaaaaaaaaaaaaaa';
const WORKER = 'worker-token-cccccccccccccccc';
let dir: string;
let open: Coordinator;
let guarded: Coordinator;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-http-edges-'));
  open = new Coordinator({ listen: '127.0.0.1:0', http: '127.0.0.1:0', dataDir: path.join(dir, 'open'), log });
  guarded = new Coordinator({
    listen: '127.0.0.1:0',
    http: '127.0.0.1:0',
    dataDir: path.join(dir, 'guarded'),
    log,
    auth: { clientTokens: [{ id: 'root', role: 'admin', token: ADMIN }], workerToken: WORKER },
  });
  await Promise.all([open.start(), guarded.start()]);
});

afterAll(async () => {
  await Promise.all([open?.close(), guarded?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the dashboard over HTTP', () => {
  it('answers a method it does not serve with 405 and the Allow header (RFC 9110 15.5.6: MUST)', async () => {
    for (const method of ['OPTIONS', 'POST', 'PUT', 'DELETE']) {
      for (const p of ['/', '/api/jobs', '/metrics', '/healthz']) {
        const r = await fetch(`http://${open.httpAddress}${p}`, { method, signal: AbortSignal.timeout(5000) });
        expect(r.status, `${method} ${p}`).toBe(405);
        expect(r.headers.get('allow') ?? '(none)', `${method} ${p}`).toMatch(/GET/);
      }
    }
  });

  it('takes an admin token whatever the case of its "Bearer" scheme, as gRPC does (RFC 9110 11.1: the scheme is case-insensitive)', async () => {
    // gRPC takes it (shared/auth.ts bearerToken: /^Bearer\s+/i)...
    const client = new TesseraClient({ address: guarded.address, token: ADMIN, deadlineMs: 5000 });
    try {
      await client.listJobs();
    } finally {
      client.close();
    }
    // ...and so must the dashboard's API and its token cookie's endpoint.
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      for (const p of ['/api/jobs', '/access']) {
        const r = await fetch(`http://${guarded.httpAddress}${p}`, { headers: { authorization: `${scheme} ${ADMIN}` }, signal: AbortSignal.timeout(5000) });
        expect(r.status, `${scheme} ${p}`).toBeLessThan(300);
      }
    }
  });

  it.skipIf(!chromiumAvailable())('opened at a link whose fragment is not valid percent-encoding, still goes live', async () => {
    const browser = await launchBrowser();
    const errors: string[] = [];
    browser.page.on('pageerror', (e) => errors.push(e.message));
    try {
      // "#50%" (a typo, a half-copied link): decodeURIComponent throws URIError on it.
      await browser.page.goto(`http://${open.httpAddress}/#50%`);
      await browser.page.waitForFunction("document.getElementById('conn')?.dataset.state === 'live'", undefined, { timeout: 5000 }).catch(() => undefined);
      expect(errors).toEqual([]);
      expect(await browser.page.locator('#conn').getAttribute('data-state')).toBe('live');
    } finally {
      await browser.close();
    }
  });
});

describe('the event stream', () => {
  it('gives a browser that reads at 2 MB/s the whole picture of a 30,000-subtask job, instead of dropping it mid-picture', async () => {
    const client = new TesseraClient({ address: open.address, deadlineMs: 10_000 });
    // No worker: the job stays queued, its subtasks pending; the picture is about 5 MB of JSON.
    const job = await client.submit({ label: 'big', passthrough: { subtasks: 30_000, work_ms: 0 } }, []);
    client.close();
    // Planned (its subtasks exist) before the browser comes.
    for (let i = 0; i < 100; i++) {
      const view = (await (await fetch(`http://${open.httpAddress}/api/jobs/${job.id}`)).json()) as { subtaskList: unknown[] };
      if (view.subtaskList.length === 30_000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const [host, port] = [open.httpAddress.slice(0, open.httpAddress.lastIndexOf(':')), Number(open.httpAddress.split(':').at(-1))];
    const s = net.connect(port, host);
    s.write(`GET /events?job=${job.id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    let text = '';
    const rate = 2_000_000;
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      // A browser on a 16 Mbit/s link (a VPN, a remote desk): slow, but reading all along.
      s.pause();
      setTimeout(() => s.resume(), (d.length / rate) * 1000);
    });
    s.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    const complete = (): boolean => /event: subtasks\ndata: \{[^\n]*\}\n\n/.test(text.replace(/\r\n[0-9a-f]+\r\n/g, ''));
    try {
      // Up to 30 s for about 5 MB at 2 MB/s (a dropped stream ends the wait at once).
      for (let i = 0; i < 300 && !complete() && !s.destroyed; i++) await Promise.race([closed, new Promise((r) => setTimeout(r, 100))]);
      expect(s.destroyed, 'the coordinator dropped the stream before its first picture was through').toBe(false);
      expect(complete()).toBe(true);
      expect(text.length).toBeGreaterThan(4_000_000);
    } finally {
      s.destroy();
    }
  }, 60_000);
});
