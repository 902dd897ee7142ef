/**
 * The coordinator's HTTP side: the dashboard (static files + server-sent events), Prometheus
 * `/metrics`, JSON snapshots under `/api/`, and `/healthz` for load balancers and Docker.
 * Plain `node:http`: a handful of routes does not need a framework.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listenFailure } from '../../shared/config.js';
import { isIP } from 'node:net';
import type { Logger } from '../../shared/logger.js';
import type { JobManager } from '../job-manager.js';
import type { SubtaskRecord } from '../model.js';
import { pagesPerTurn } from '../subtask-pages.js';
import type { DashboardAccess } from '../auth.js';
import { bearerOf } from '../../shared/auth.js';
import { EVENT_STREAM_HEADERS, LiveHub } from './live.js';
import { CoordinatorMetrics } from './metrics.js';
import { jobView, recentJobs, subtaskView, workerView } from './views.js';

export interface HttpServerOptions {
  /** host:port (port 0 = any free port). */
  listen: string;
  manager: JobManager;
  log: Logger;
  /** Whether the coordinator accepts work (false while starting or draining): drives /healthz. */
  serving: () => boolean;
  /**
   * Set when clients need tokens: true for an admin client token. Then `/api/` and `/events`
   * (every client's jobs) need one, as `Authorization: Bearer TOKEN` or the `tessera_token`
   * cookie the dashboard page sets; `/metrics` and `/healthz` stay open.
   */
  dashboardAccess?: (token: string, peer: string) => DashboardAccess;
  /** Host names it answers to besides localhost and IP addresses (`--http-host`). */
  hosts?: readonly string[];
  /** How long a client may take to send a whole request, headers and body (default 30 s). */
  requestTimeoutMs?: number;
}

/** A request (headers and body) must arrive within this; a live feed's response may last forever. */
const REQUEST_TIMEOUT_MS = 30_000;

/** How long the dashboard's cookie keeps an admin token. */
const ACCESS_COOKIE_SECONDS = 12 * 3600;

/**
 * The dashboard's cookie, named after the port it is served on: a browser sends a host's cookies
 * to every port of it, and another coordinator (another cluster) on the same machine would
 * otherwise be handed this one's admin token.
 */
const cookieName = (req: IncomingMessage): string => `tessera_token_${req.socket.localPort}`;

/** The token of an HTTP request: its bearer header, else the dashboard's cookie. */
function requestToken(req: IncomingMessage): string | undefined {
  // `bearer` as gRPC takes it: some clients and proxies write the scheme in lower case.
  const bearer = bearerOf(req.headers.authorization);
  if (bearer) return bearer;
  const name = cookieName(req);
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k !== name) continue;
    // A cookie that does not decode is no token (a 401 like any wrong one), not a server error.
    try {
      return decodeURIComponent(v.join('='));
    } catch {
      return v.join('=');
    }
  }
  return undefined;
}

/**
 * The host name a request was addressed to (its `Host` header without the port), lower case and
 * without a trailing dot; '' when there is none (HTTP/1.0).
 */
function requestHost(req: IncomingMessage): string {
  const host = (req.headers.host ?? '').trim().toLowerCase();
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '');
  return name.replace(/\.$/, '');
}

/**
 * Whether a request was addressed to a name no one else can point at this dashboard. A web page the
 * user opens elsewhere can point its own host name at 127.0.0.1, or at the machine's address (DNS
 * rebinding), and then read the dashboard as same-origin: its requests carry that name, so they
 * are refused. An IP address cannot be rebound, and browsers resolve `localhost` and `*.localhost`
 * to loopback themselves; any other name must be one the operator gave (`--http-host`).
 */
function unrebindable(host: string, allowed: readonly string[]): boolean {
  return host === '' || host === 'localhost' || host.endsWith('.localhost') || isIP(host) !== 0 || allowed.includes(host);
}

/**
 * The dashboard's files live in the source tree (coordinator/http/assets), not in dist/: `tsc`
 * compiles TypeScript only, and the page needs no build step. From dist/coordinator/http/ the
 * source folder is three levels up.
 */
function assetsDir(): string {
  // Built (.js, in dist/coordinator/http/) or run from the sources (.ts): told by the module itself,
  // not by a folder named dist in the path, which a checkout may lie under.
  const here = path.dirname(fileURLToPath(import.meta.url));
  return import.meta.url.endsWith('.ts') ? path.join(here, 'assets') : path.resolve(here, '../../../coordinator/http/assets');
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Starts on `listen`; `close()` stops it and the live feeds. */
export class CoordinatorHttpServer {
  readonly metrics: CoordinatorMetrics;
  readonly live: LiveHub;
  private readonly server: http.Server;
  private readonly assets = assetsDir();
  private readonly allowedHosts: readonly string[];
  /** The bound address, e.g. 127.0.0.1:7780. */
  address = '';

  constructor(private readonly opts: HttpServerOptions) {
    this.allowedHosts = (opts.hosts ?? []).map((h) => h.trim().toLowerCase().replace(/\.$/, ''));
    this.metrics = new CoordinatorMetrics(opts.manager);
    this.live = new LiveHub(opts.manager);
    // Node checks the timeouts below on this interval (30 s by default, longer than a short timeout).
    const requestTimeout = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.server = http.createServer({ connectionsCheckingInterval: Math.min(requestTimeout / 4, 5000) }, (req, res) => {
      this.route(req, res).catch((err: unknown) => {
        opts.log.error({ err, url: req.url }, 'http request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
    // The request timeout is for receiving the request only: a live feed's response (SSE) goes on
    // past it, but a client that trickles its headers or a body in holds a socket no longer than
    // this (408). Idle keep-alive sockets are closed sooner still.
    this.server.requestTimeout = requestTimeout;
    this.server.headersTimeout = requestTimeout;
    this.server.keepAliveTimeout = 5000;
  }

  async start(): Promise<string> {
    const i = this.opts.listen.lastIndexOf(':');
    const host = this.opts.listen.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(this.opts.listen.slice(i + 1));
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void => reject(listenFailure(this.opts.listen, err, '--http'));
      this.server.once('error', failed);
      this.server.listen(port, host, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    this.address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    return this.address;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A path only (an absolute URL is for proxies), and "//host..." is a path here, not an authority.
    const target = req.url ?? '/';
    let url: URL | undefined;
    try {
      if (target.startsWith('/')) url = new URL(`http://dashboard${target}`);
    } catch {
      url = undefined;
    }
    if (!url) return text(res, 400, 'bad request: the request target is not a path\n');
    const { manager } = this.opts;
    // RFC 9110: a 405 says which methods are (a client probing with OPTIONS learns it here).
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    const host = requestHost(req);
    // /healthz says only whether the coordinator serves: nothing a rebound page could learn, and
    // monitors (a compose service's probe, a load balancer, `tessera health --http NAME:PORT`) ask
    // it by name.
    if (url.pathname !== '/healthz' && !unrebindable(host, this.allowedHosts)) {
      return text(
        res,
        403,
        `this dashboard answers only requests addressed to localhost, an IP address or a name given with --http-host, ` +
          `not to "${host}": a page elsewhere may have pointed that name at this machine. ` +
          'Give the name you reach it by with --http-host NAME; a reverse proxy in front of it may instead pass the address it connects to as the Host (nginx does unless told otherwise).\n',
      );
    }
    // What shows every client's jobs needs an admin token when clients need tokens.
    const access = this.opts.dashboardAccess;
    if (access && (url.pathname === '/events' || url.pathname === '/access' || url.pathname.startsWith('/api/'))) {
      const token = requestToken(req);
      const sock = req.socket;
      const peer = sock.remoteFamily === 'IPv6' ? `[${sock.remoteAddress}]:${sock.remotePort}` : `${sock.remoteAddress}:${sock.remotePort}`;
      const verdict = token ? access(token, peer) : 'unauthenticated';
      // A client token is known but sees only its own jobs (through gRPC): forbidden, not unknown.
      if (verdict === 'forbidden') return text(res, 403, 'this client token is not an admin token; the dashboard shows every client\'s jobs\n');
      if (verdict !== 'admin') return text(res, 401, 'an admin client token is needed (Authorization: Bearer TOKEN)\n');
    }
    switch (url.pathname) {
      case '/':
        return this.file(res, 'index.html');
      case '/metrics': {
        const { body, contentType } = await this.metrics.render();
        res.writeHead(200, { 'content-type': contentType });
        res.end(body);
        return;
      }
      case '/events':
        // A HEAD (a probe) gets the stream's headers and its end, and no place among the browsers.
        if (req.method === 'HEAD') {
          res.writeHead(200, EVENT_STREAM_HEADERS);
          res.end();
          return;
        }
        this.live.attach(res, url.searchParams.get('job') ?? '');
        return;
      case '/access':
        // The page asks once whether it may see the jobs (401 above when it needs a token). A token
        // it shows as a bearer is kept in a cookie no script can read, for its later requests.
        const shown = bearerOf(req.headers.authorization);
        if (access && shown) {
          res.setHeader('set-cookie', `${cookieName(req)}=${encodeURIComponent(shown)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${ACCESS_COOKIE_SECONDS}`);
        }
        res.writeHead(204);
        res.end();
        return;
      case '/healthz':
        return this.opts.serving() ? text(res, 200, 'ok\n') : text(res, 503, 'not serving\n');
      case '/api/workers':
        return json(res, manager.registry.all().map(workerView));
      case '/api/jobs':
        return json(res, recentJobs(manager, 100).map((j) => jobView(manager, j)));
    }
    const jobMatch = /^\/api\/jobs\/([\w-]+)$/.exec(url.pathname);
    if (jobMatch) {
      let job;
      try {
        job = manager.get(jobMatch[1]!);
      } catch {
        return text(res, 404, 'no such job\n');
      }
      const live = manager.liveSubtasksOf(job.id);
      if (live) return json(res, { ...jobView(manager, job), subtaskList: live.map(subtaskView) });
      return jsonWithStoredSubtasks(res, jobView(manager, job), (offset, limit) => {
        // Removed between two pages (past its retention): the answer is cut, not a shorter list.
        if (offset > 0 && !manager.find(job.id)) throw new Error(`job ${job.id} was removed while its subtasks were sent`);
        return manager.subtasksPage(job.id, offset, limit);
      });
    }
    const assetMatch = /^\/assets\/([\w-]+\.(?:js|css|svg))$/.exec(url.pathname);
    if (assetMatch) return this.file(res, assetMatch[1]!);
    return text(res, 404, 'not found\n');
  }

  private async file(res: ServerResponse, name: string): Promise<void> {
    // `name` matched a strict pattern above: no path separators, so no traversal.
    const file = path.join(this.assets, name);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return text(res, 404, 'not found\n');
    res.writeHead(200, { 'content-type': CONTENT_TYPES[path.extname(name)] ?? 'application/octet-stream', 'content-length': st.size, 'cache-control': 'no-cache' });
    createReadStream(file).pipe(res);
  }

  /** Stops the feeds and the server; open event streams are ended. Idempotent. */
  async close(): Promise<void> {
    this.live.close();
    this.metrics.close();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function text(res: ServerResponse, code: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body);
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/**
 * `view` with the `subtaskList` of a job that ended, read from the store and written a page per
 * event-loop turn: read at once, a job of 100,000 held the coordinator most of a second. A page
 * that cannot be read (the job removed meanwhile) cuts the answer off.
 */
async function jsonWithStoredSubtasks(res: ServerResponse, view: object, page: (offset: number, limit: number) => SubtaskRecord[]): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json' });
  const head = JSON.stringify({ ...view, subtaskList: [] });
  res.write(head.slice(0, -2));
  let first = true;
  try {
    for await (const rows of pagesPerTurn(page)) {
      if (res.destroyed) return;
      const items = rows.map((r) => JSON.stringify(subtaskView(r))).join(',');
      if (items) res.write(`${first ? '' : ','}${items}`);
      first &&= !items;
    }
  } catch {
    res.destroy();
    return;
  }
  res.end(']}');
}
