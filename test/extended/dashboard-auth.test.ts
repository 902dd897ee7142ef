/**
 * The dashboard and its JSON show every client's jobs. When clients need tokens, `/api/` and
 * `/events` need an admin client token; the dashboard is plain HTTP, so off loopback it needs
 * `--insecure` like gRPC; and client tokens without a worker token are refused, `--insecure` or not.
 * An address with too many failed authentications is held back, except for tokens already at work
 * from it (the others behind the same NAT), so that a guesser learns nothing while held.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const log = createLogger('test', 'silent', 'json');
const ADMIN = 'admin-token-aaaaaaaaaaaaaaaa';
const ALICE = 'alice-token-bbbbbbbbbbbbbbbb';
const WORKER = 'worker-token-cccccccccccccccc';
const CAROL = 'carol-token-dddddddddddddddd';
let dir: string;
let coordinator: Coordinator;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-dash-auth-'));
  coordinator = new Coordinator({
    listen: '127.0.0.1:0',
    http: '127.0.0.1:0',
    dataDir: path.join(dir, 'data'),
    log,
    auth: {
      clientTokens: [
        { id: 'root', role: 'admin', token: ADMIN },
        { id: 'alice', role: 'client', token: ALICE },
      ],
      workerToken: WORKER,
    },
  });
  await coordinator.start();
});

afterAll(async () => {
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const get = (p: string, headers: Record<string, string> = {}): Promise<Response> => fetch(`http://${coordinator.httpAddress}${p}`, { headers, signal: AbortSignal.timeout(5000) });

describe('the dashboard with client tokens', () => {
  it('shows jobs and workers only to an admin client token (header or cookie)', async () => {
    for (const p of ['/api/jobs', '/api/workers', '/api/jobs/x', '/access']) {
      expect((await get(p)).status, p).toBe(401);
      // A client token is known, but not allowed: forbidden.
      const alice = await get(p, { authorization: `Bearer ${ALICE}` });
      expect(alice.status, p).toBe(403);
      expect(await alice.text(), p).toMatch(/not an admin token/);
      expect((await get(p, { authorization: `Bearer ${WORKER}` })).status, p).toBe(401);
    }
    expect((await get('/api/jobs', { authorization: `Bearer ${ADMIN}` })).status).toBe(200);
    const access = await get('/access', { authorization: `Bearer ${ADMIN}` });
    expect(access.status).toBe(204);
    // The page's token goes into a cookie no script of the page can read, that expires.
    // Named after its port: a browser sends it to every port of the host, and another
    // coordinator on this machine must not be handed it (nor take another's for its own).
    const name = `tessera_token_${coordinator.httpAddress.split(':').at(-1)}`;
    expect(access.headers.get('set-cookie')).toBe(`${name}=${encodeURIComponent(ADMIN)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200`);
    expect((await get('/access', { cookie: `${name}=${encodeURIComponent(ADMIN)}` })).headers.get('set-cookie')).toBeNull();
    expect((await get('/api/workers', { cookie: `other=1; ${name}=${encodeURIComponent(ADMIN)}` })).status).toBe(200);
    expect((await get('/api/workers', { cookie: `tessera_token_1=${encodeURIComponent(ADMIN)}; tessera_token=${encodeURIComponent(ADMIN)}` })).status).toBe(401);
    // A cookie that does not decode is a wrong token, not a server error.
    expect((await get('/api/jobs', { cookie: `${name}=%E0%A4%A` })).status).toBe(401);
    // Nor one outside ASCII, as a header (Latin-1 "é") or a cookie (UTF-8): grpc-js's Metadata,
    // which checks it, threw, and the request got 500 and an error with a stack in the log.
    expect((await get('/api/jobs', { authorization: 'Bearer caf\u00e9-token-aaaaaaaaaaaa' })).status).toBe(401);
    expect((await get('/api/workers', { cookie: `${name}=caf%C3%A9-token-aaaaaaaaaa` })).status).toBe(401);
    // The live stream too (read no further than its status).
    const events = await get('/events');
    expect(events.status).toBe(401);
    // What holds no job stays open: the page, /metrics for Prometheus, /healthz for probes.
    for (const p of ['/', '/metrics', '/healthz']) expect((await get(p)).status, p).toBe(200);
  });
});

describe('the dashboard page in a browser', () => {
  it('asks for an admin token once, keeps it where no script of the page can read it, and asks again once it is refused', async () => {
    const { launchBrowser } = await import('../helpers/browser.js');
    const browser = await launchBrowser();
    // The page through a proxy whose connections the test can cut.
    const [host, port] = [coordinator.httpAddress.slice(0, coordinator.httpAddress.lastIndexOf(':')), Number(coordinator.httpAddress.split(':').at(-1))];
    const proxy = new TcpProxy({ host, port });
    const via = await proxy.start();
    try {
      const asked: string[] = [];
      browser.page.on('dialog', (d) => {
        asked.push(d.message());
        // First a client token that is not an admin's, then the admin's.
        void d.accept(asked.length === 1 ? ALICE : ADMIN);
      });
      const events = browser.page.waitForResponse((r) => new URL(r.url()).pathname === '/events' && r.status() === 200, { timeout: 15_000 });
      await browser.page.goto(`http://${via}/`);
      await events;
      expect(asked).toEqual([
        'This coordinator needs an admin client token to show its jobs:',
        "That client token is not an admin token; the dashboard needs one to show every client's jobs:",
      ]);
      expect(await browser.page.evaluate('document.cookie')).not.toContain('tessera_token');
      const [cookie] = (await browser.context.cookies()).filter((c) => c.name === `tessera_token_${coordinator.httpAddress.split(':').at(-1)}`);
      expect(cookie).toMatchObject({ value: encodeURIComponent(ADMIN), httpOnly: true, sameSite: 'Strict' });
      expect(cookie!.expires).toBeGreaterThan(Date.now() / 1000 + 11 * 3600);
      // The cookie gone (expired after its 12 hours), the stream cut: its reconnect is refused, and
      // the page asks again and goes on. Before, an EventSource refused stopped for good.
      await browser.context.clearCookies();
      const again = browser.page.waitForResponse((r) => new URL(r.url()).pathname === '/events' && r.status() === 200, { timeout: 30_000 });
      proxy.cut();
      await again;
      expect(asked).toHaveLength(3);
      expect(asked[2]).toBe('This coordinator needs an admin client token to show its jobs:');
      await browser.page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    } finally {
      await browser.close();
      await proxy.stop();
    }
  }, 60_000);
});

/** A GET with the `Host` header given (fetch will not set one). */
function getAs(address: string, host: string, p: string): Promise<{ status: number; body: string }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.get({ host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)), path: p, headers: { host }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe('the dashboard and DNS rebinding', () => {
  it('answers only requests addressed to localhost, an IP address or a name given: another name pointed at it is refused, on loopback and off it', async () => {
    // Off loopback too (a container's 0.0.0.0, published on the host's 127.0.0.1): before, only a dashboard bound to loopback checked.
    for (const http of ['127.0.0.1:0', '0.0.0.0:0']) {
      const open = new Coordinator({ listen: '127.0.0.1:0', http, insecure: true, dataDir: path.join(dir, `rebind-${http.split(':')[0]}`), log, httpHosts: ['dash.example.org'] });
      await open.start();
      try {
        const port = open.httpAddress.split(':').at(-1)!;
        const address = `127.0.0.1:${port}`;
        // No client tokens: all of it is open to whoever reaches it, so the name is what guards it.
        for (const p of ['/api/jobs', '/api/workers', '/', '/events', '/metrics']) {
          const r = await getAs(address, `evil.example:${port}`, p);
          expect(r.status, `${http} ${p}`).toBe(403);
          expect(r.body, p).toContain('answers only requests addressed to localhost, an IP address or a name given with --http-host, not to "evil.example"');
        }
        // /healthz tells nothing but "serving": monitors ask it by whatever name they know.
        expect((await getAs(address, `evil.example:${port}`, '/healthz')).status, `${http} /healthz`).toBe(200);
        for (const host of ['EVIL.example.', '127.0.0.1.nip.io', 'localhost.evil.example']) expect((await getAs(address, host, '/api/jobs')).status, host).toBe(403);
        for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `localhost.:${port}`, `dash.localhost:${port}`, `[::1]:${port}`, '127.1.2.3', '10.1.2.3:7780', `DASH.example.org:${port}`, '']) {
          expect((await getAs(address, host, '/api/jobs')).status, `${http} ${host}`).toBe(200);
        }
      } finally {
        await open.close();
      }
    }
  });
});

describe('a coordinator refuses to start', () => {
  const start = (o: Partial<ConstructorParameters<typeof Coordinator>[0]>): Promise<unknown> =>
    new Coordinator({ listen: '127.0.0.1:0', http: '', dataDir: path.join(dir, `refused-${Math.random()}`), log, ...o }).start().then(
      () => undefined,
      (e: unknown) => e,
    );

  it('with the dashboard off loopback unless --insecure', async () => {
    expect(String(await start({ http: '0.0.0.0:0' }))).toMatch(/refusing to serve the dashboard on 0\.0\.0\.0:0: it is plain HTTP/);
  });

  it('with client tokens but no worker token, --insecure or not', async () => {
    const auth = { clientTokens: [{ id: 'alice', role: 'client' as const, token: ALICE }] };
    for (const insecure of [false, true]) expect(String(await start({ auth, insecure }))).toMatch(/client tokens are set but no worker token/);
  });
});

describe('failed authentications from one address', () => {
  it('hold back every token not already at work from it, over gRPC and HTTP alike', async () => {
    const held = new Coordinator({
      listen: '127.0.0.1:0',
      http: '127.0.0.1:0',
      dataDir: path.join(dir, 'held'),
      log,
      auth: {
        clientTokens: [
          { id: 'root', role: 'admin', token: ADMIN },
          { id: 'alice', role: 'client', token: ALICE },
          { id: 'carol', role: 'client', token: CAROL },
        ],
        workerToken: WORKER,
        // Three failures, then one back every 100 s: held back for the whole test.
        rateLimit: { burst: 3, perSecond: 0.01 },
      },
    });
    const address = await held.start();
    const clients: TesseraClient[] = [];
    const as = (token: string): TesseraClient => {
      const c = new TesseraClient({ address, token, deadlineMs: 5000 });
      clients.push(c);
      return c;
    };
    const code = (p: Promise<unknown>): Promise<number | string> => p.then(() => 'ok', (e: { code: number }) => e.code);
    try {
      expect(await code(as(ALICE).listJobs())).toBe('ok');
      for (let i = 0; i < 3; i++) expect(await code(as('wrong-token-guess-0123456789').listJobs())).toBe(grpc.status.UNAUTHENTICATED);
      // Held back now: a guess is not even looked at, right or wrong...
      expect(await code(as('wrong-token-guess-0123456789').listJobs())).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(await code(as(CAROL).listJobs())).toBe(grpc.status.RESOURCE_EXHAUSTED);
      const dash = await fetch(`http://${held.httpAddress}/access`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(dash.status).toBe(401);
      // ...while a client already at work from that address goes on.
      expect(await code(as(ALICE).listJobs())).toBe('ok');
    } finally {
      for (const c of clients) c.close();
      await held.close();
    }
  });
});
