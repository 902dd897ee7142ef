/**
 * The coordinator's HTTP side in-process: what /metrics counts when a worker is lost or hands back
 * its queue, what the live feed sends of a job planned while it streams, and the HTTP edges (a
 * target that is no path, HEAD of the event stream). A real JobManager (store, spool, scheduler,
 * registry) with fake worker sessions, as in coordinator/job-manager.test.ts, or a real Coordinator.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http, { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../../shared/channel.js';
import type { CoordinatorKind, SubtaskPlan } from '../../shared/job-kind.js';
import { createLogger } from '../../shared/logger.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../coordinator.js';
import { CoordinatorMetrics } from './metrics.js';
import { LiveHub } from './live.js';
import { CoordinatorHttpServer } from './server.js';

import { coordinatorKinds } from '../kinds/index.js';
import { inProcessManager } from '../../test/helpers/job-manager.js';

const log = createLogger('test', 'silent');
const kinds = coordinatorKinds as Map<string, CoordinatorKind>;
const original = kinds.get('passthrough')!;
const dirs: string[] = [];
afterEach(() => {
  kinds.set('passthrough', original);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const spec = (subtasks: number, maxAttempts = 0): JobSpec__Output =>
  ({ label: 'observability', priority: 0, max_attempts: maxAttempts, params: 'passthrough', passthrough: { subtasks, work_ms: 0, fail_first_attempts: 0 } }) as unknown as JobSpec__Output;

function setup(slots = 8, prefetch = 0) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-observability-'));
  dirs.push(dir);
  const { manager, registry, worker, assigned, store } = inProcessManager({ dataDir: dir, slots, prefetch });
  const close = () => {
    manager.close();
    store.close();
  };
  return { manager, registry, worker, assigned, store, close };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** `name{labels}` -> value, from the exposition text. */
async function samples(metrics: CoordinatorMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metrics.render()).body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('/metrics', () => {
  it('tessera_subtask_duration_seconds: an attempt that fails for good because its worker was lost is observed with its real duration, not 0', async () => {
    const { manager, worker, assigned, store, close } = setup(1);
    const metrics = new CoordinatorMetrics(manager);
    try {
      // One attempt only: the lost worker's attempt fails the subtask for good.
      const job = manager.newJob(spec(1, 1), 'anonymous');
      await manager.accept(job);
      await until(() => assigned().length === 1, 'the assignment');
      await sleep(400);
      manager.onWorkerLost(worker, 'no heartbeat');
      await until(() => manager.subtasksOf(job.id).every((s) => s.state === 'failed') || job.state === 'failed', 'the subtask to fail');
      // Events reach their listeners once on disk.
      await store.committed();
      const s = await samples(metrics);
      expect(s.get('tessera_subtask_duration_seconds_count{kind="passthrough",outcome="failed"}')).toBe(1);
      // The attempt ran ~0.4 s: before, observed as 0 (the duration was set only by a worker's result).
      expect(s.get('tessera_subtask_duration_seconds_sum{kind="passthrough",outcome="failed"}')).toBeGreaterThanOrEqual(0.35);
    } finally {
      metrics.close();
      close();
    }
  });

  it('tessera_subtask_retries_total: a draining worker giving back what waits in its prefetch queue is not a retry', async () => {
    // One slot, one queue place: one runs, one waits (as in job-manager.test.ts's drain test).
    const { manager, worker, assigned, close } = setup(1, 1);
    const metrics = new CoordinatorMetrics(manager);
    try {
      const job = manager.newJob(spec(10), 'anonymous');
      await manager.accept(job);
      await until(() => assigned().length === 2, 'a running and a queued subtask');
      manager.onWorkerDraining(worker);
      const back = manager.subtasksOf(job.id).find((x) => x.id === assigned()[1]!.subtask_id)!;
      // The job manager itself says: no failed attempt.
      expect([back.state, back.failures]).toEqual(['pending', 0]);
      const s = await samples(metrics);
      expect(s.get('tessera_subtask_retries_total{kind="passthrough"}') ?? 0).toBe(0);
    } finally {
      metrics.close();
      close();
    }
  });
});

describe('/metrics across a restart', () => {
  it('counts a resumed job that fails at once (a spec this version no longer takes) as finished, as it counts it as resumed', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-observability-resume-'));
    dirs.push(dir);
    const data = path.join(dir, 'data');
    // No workers: the job waits, and is resumed by the next start.
    const first = new Coordinator({ listen: '127.0.0.1:0', http: '', dataDir: data, log });
    const lib = new TesseraClient({ address: await first.start() });
    const job = await lib.submit({ passthrough: { subtasks: 2, work_ms: 1000 } }, []);
    lib.close();
    await first.close();
    // As a version with a lower limit would read it (passthrough.work_ms over 600000).
    const db = new Database(path.join(data, 'tessera.db'));
    const row = db.prepare('SELECT record FROM jobs WHERE id = ?').get(job.id) as { record: string };
    const record = JSON.parse(row.record) as { spec: { passthrough: { work_ms: number } } };
    record.spec.passthrough.work_ms = 900_000;
    db.prepare('UPDATE jobs SET record = ? WHERE id = ?').run(JSON.stringify(record), job.id);
    db.close();
    const second = new Coordinator({ listen: '127.0.0.1:0', http: '127.0.0.1:0', dataDir: data, log });
    await second.start();
    const again = new TesseraClient({ address: second.address });
    try {
      expect((await again.getJob(job.id)).state).toBe('JOB_STATE_FAILED');
      const metricsText = async (): Promise<string> => (await fetch(`http://${second.httpAddress}/metrics`)).text();
      // Before, it failed before the metrics listened: resumed 1, finished 0, for good. (Events
      // reach the metrics once on disk, within a few ms.)
      await expect.poll(metricsText).toMatch(/tessera_jobs_finished_total\{kind="passthrough",state="failed"\} 1/);
      expect(await metricsText()).toMatch(/tessera_jobs_resumed_total\{kind="passthrough"\} 1/);
    } finally {
      again.close();
      await second.close();
    }
  });
});

describe('the live feed', () => {
  it('sends each subtask of a job planned while it streams about once, not the whole picture again at every flush', async () => {
    const feed = new Channel<SubtaskPlan>();
    const plan = (label: string): SubtaskPlan => ({ label, inputs: [], plan: { label }, weight: 1, items: [] });
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('now')], later: feed }), merge: async () => ({ outputs: [] }) });
    // No slots free for the streamed subtasks: only planning moves (one event per batch, a log).
    const { manager, close } = setup(1);
    const hub = new LiveHub(manager);
    const job = manager.newJob(spec(0), 'anonymous');
    await manager.accept(job);
    const server = createServer((req, res) => hub.attach(res, new URL(req.url!, 'http://x').searchParams.get('job') ?? ''));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const controller = new AbortController();
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/events?job=${job.id}`, { signal: controller.signal });
      const reader = res.body!.getReader();
      let text = '';
      let bytes = 0;
      const pump = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          bytes += value.length;
          text += new TextDecoder().decode(value);
        }
      })().catch(() => undefined);
      await until(() => text.includes('event: subtasks'), 'the first picture');
      const BATCHES = 12;
      const PER = 100;
      for (let b = 0; b < BATCHES; b++) {
        feed.push(...Array.from({ length: PER }, (_, i) => plan(`b${b}-${i}`)));
        // One flush (250 ms) per batch, as an upload of inputs a few a second would.
        await sleep(300);
      }
      await sleep(300);
      const total = 1 + BATCHES * PER;
      expect(manager.subtasksOf(job.id)).toHaveLength(total);
      let entries = 0;
      for (const m of text.matchAll(/event: subtasks\ndata: (.*)\n/g)) entries += (JSON.parse(m[1]!) as { subtasks: unknown[] }).subtasks.length;
      // Each new subtask about once (~1,200 entries). Before, the full picture at every flush: ~7,800
      // (quadratic in the subtasks: a 20,000-tile plan streamed over minutes sent megabytes per
      // browser per flush, serialised once per browser).
      expect(entries, `${bytes} bytes sent`).toBeLessThanOrEqual(2 * total);
      void pump;
    } finally {
      controller.abort();
      hub.close();
      server.close();
      close();
    }
  });
});

describe('HTTP edges', () => {
  it('answers a request target that is no path with 400, and one that only looks like an authority as a path, never a 500 and an error in the log', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-observability-http-'));
    dirs.push(dir);
    const errors: string[] = [];
    const logger = createLogger('test', 'silent');
    const origError = logger.error.bind(logger);
    logger.error = ((...args: unknown[]) => {
      errors.push(String(args.at(-1)));
      return (origError as (...a: unknown[]) => void)(...args);
    }) as typeof logger.error;
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', http: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log: logger });
    await coordinator.start();
    const [host, port] = [coordinator.httpAddress.slice(0, coordinator.httpAddress.lastIndexOf(':')), Number(coordinator.httpAddress.split(':').at(-1))];
    const statusLine = (target: string): Promise<string> =>
      new Promise<string>((resolve, reject) => {
        const sock = net.connect(port, host, () => sock.end(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
        let out = '';
        sock.setEncoding('utf8');
        sock.on('data', (c: string) => (out += c));
        sock.on('end', () => resolve(out.split('\r\n')[0]!));
        sock.on('error', reject);
        sock.setTimeout(5000, () => reject(new Error('timeout')));
      });
    try {
      // Before: 500 Internal Server Error, and an error line in the log for each, from anyone who connects.
      expect(await statusLine('//[')).toBe('HTTP/1.1 404 Not Found');
      expect(await statusLine('http://[')).toBe('HTTP/1.1 400 Bad Request');
      expect(await statusLine('http://127.0.0.1/api/jobs')).toBe('HTTP/1.1 400 Bad Request');
      expect(errors).toEqual([]);
    } finally {
      await coordinator.close();
    }
  });

  it('HEAD /events is answered (headers, no body) and ended, so a keep-alive connection can ask again', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-observability-head-'));
    dirs.push(dir);
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', http: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log });
    await coordinator.start();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const [host, port] = [coordinator.httpAddress.slice(0, coordinator.httpAddress.lastIndexOf(':')), Number(coordinator.httpAddress.split(':').at(-1))];
    const request = (method: string, p: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host, port, path: p, method, agent, timeout: 3000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${p}: no answer within 3 s`)));
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await request('HEAD', '/events')).toBe(200);
      // The same socket (one per agent) is reused for the next request.
      expect(await request('GET', '/healthz')).toBe(200);
    } finally {
      agent.destroy();
      await coordinator.close();
    }
  });
  it('closes a connection whose request trickles in (408) within the request timeout, while a live feed lasts past it', async () => {
    const { manager, close } = setup();
    const server = new CoordinatorHttpServer({ listen: '127.0.0.1:0', manager, log, serving: () => true, requestTimeoutMs: 800 });
    const address = await server.start();
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.split(':').at(-1))];
    /** Sends `head` then one byte of `drip` every 100 ms; resolves with what came back and when the server closed it. */
    const trickle = (head: string, drip: string): Promise<{ answer: string; ms: number }> =>
      new Promise((resolve, reject) => {
        const t0 = Date.now();
        let answer = '';
        const sock = net.connect(port, host, () => sock.write(head));
        const timer = setInterval(() => sock.writable && sock.write(drip), 100);
        const give = setTimeout(() => sock.destroy(new Error('still open after 6 s')), 6000);
        sock.setEncoding('utf8');
        sock.on('data', (c: string) => (answer += c));
        sock.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
        sock.on('close', () => {
          clearInterval(timer);
          clearTimeout(give);
          resolve({ answer, ms: Date.now() - t0 });
        });
      });
    const feed = new Promise<number>((resolve, reject) => {
      http.get({ host, port, path: '/events' }, (res) => {
        res.resume();
        setTimeout(() => {
          resolve(res.statusCode ?? 0);
          res.destroy();
        }, 2500);
        res.on('close', () => reject(new Error('the live feed was closed')));
      });
    });
    try {
      // Before: requestTimeout 0, so both sockets stayed open as long as the client kept dripping.
      const body = await trickle('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n', 'a');
      expect(body.answer).toContain('408 Request Timeout');
      expect(body.ms).toBeLessThan(5000);
      const headers = await trickle('GET /healthz HTTP/1.1\r\n', 'X');
      expect(headers.answer).toContain('408 Request Timeout');
      expect(headers.ms).toBeLessThan(5000);
      expect(await feed).toBe(200);
    } finally {
      await server.close();
      close();
    }
  });
});
