/**
 * A client that never reached its coordinator, at an address where something takes the TCP
 * connection and never answers (a hung process, a stopped VM, a port forward to nowhere). The
 * README: such a client fails "with that same UNAVAILABLE at its deadline"; `watch` "fails at once
 * with UNAVAILABLE, as getJob and submit do"; `tessera watch` exits 4 for "a connection that never
 * got an answer". getJob did (at its deadline); wait, watch and collect waited for ever.
 */
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/index.js';
import { exitAfterMark } from '../helpers/exit-timing.js';

let hole: net.Server;
const sockets = new Set<net.Socket>();
let address = '';
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-unanswered-'));
  // Takes every connection and says nothing.
  hole = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined).on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(hole.address() as net.AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => hole?.close(resolve));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Settles within `ms`, or says it did not. */
async function within(ms: number, p: Promise<unknown>): Promise<{ err?: unknown; pending?: true; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    p.then(() => ({}), (err: unknown) => ({ err })),
    new Promise<{ pending: true }>((resolve) => (timer = setTimeout(() => resolve({ pending: true }), ms))),
  ]);
  clearTimeout(timer);
  return { ...r, ms: Date.now() - started };
}

describe('an address that takes the connection and never answers', () => {
  it('getJob, wait, watch and collect all fail with UNAVAILABLE, not wait forever', async () => {
    const client = new TesseraClient({ address, deadlineMs: 3000 });
    try {
      const calls: [string, Promise<unknown>][] = [
        ['getJob', client.getJob('some-job')],
        ['wait', client.wait('some-job')],
        [
          'watch',
          (async () => {
            for await (const _ of client.watch('some-job')) void _;
          })(),
        ],
        ['collect', client.collect('some-job', path.join(dir, 'out'))],
      ];
      const outcomes = await Promise.all(calls.map(async ([what, p]) => [what, await within(30_000, p)] as const));
      for (const [what, r] of outcomes) {
        // Before: getJob UNAVAILABLE after 3 s; wait, watch and collect still pending after 30 s (for good).
        expect(r.pending, `${what} still waiting after ${r.ms} ms`).toBeUndefined();
        expect((r.err as grpc.ServiceError).code, `${what}: ${String(r.err)}`).toBe(grpc.status.UNAVAILABLE);
      }
    } finally {
      client.close();
    }
  }, 60_000);
});

describe('a coordinator that hangs (SIGSTOP) while a job is watched', () => {
  it('wait gives up after reconnectForMs with UNAVAILABLE, and tessera watch exits 4 after --reconnect-for', async () => {
    const { startCluster } = await import('../helpers/cluster.js');
    const { writeFile } = await import('node:fs/promises');
    const cluster = await startCluster({ workers: 1, slots: 1 });
    // Pings every 5 s, the connection taken for dead 1 s after one goes unanswered.
    const client = new TesseraClient({ address: cluster.address, keepalive: { timeMs: 5000, timeoutMs: 1000 }, deadlineMs: 3000 });
    try {
      const file = path.join(dir, 'slow.bin');
      await writeFile(file, 'slow');
      const job = await client.submit({ passthrough: { work_ms: 120_000 } }, [file]);
      const lost: number[] = [];
      const started = Date.now();
      const waiting = client.wait(job.id, undefined, { reconnectForMs: 5000, onReconnect: () => void lost.push(Date.now() - started) });
      const cli = cluster.runCli(['watch', job.id, '--reconnect-for', '5', '--keepalive-ms', '5000', '--keepalive-timeout-ms', '1000'], { timeoutMs: 55_000 }).catch((err: Error) => ({ code: 'timed out', stderr: err.message }));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      cluster.coordinator!.child.kill('SIGSTOP');
      const r = await within(45_000, waiting);
      // Before: the loss was noted (onReconnect at ~6 s), then the re-attaching call waited in
      // CONNECTING for good: still pending at 45 s, reconnectForMs never applied.
      expect(lost.length, 'the loss is noticed').toBe(1);
      expect(r.pending, `wait still waiting after ${r.ms} ms`).toBeUndefined();
      expect((r.err as grpc.ServiceError).code, String(r.err)).toBe(grpc.status.UNAVAILABLE);
      const c = await cli;
      expect(c.code, c.stderr).toBe(4);
    } finally {
      cluster.coordinator?.child.kill('SIGCONT');
      client.close();
      await cluster.stop();
    }
  }, 120_000);
});

// A call aborted while connecting leaves nothing that keeps the process alive.
/** Aborts `call` to an address that takes connections and never answers: the ms from the abort to the process's exit. */
function exitAfterAbort(call: 'submit' | 'getJob', ms: number): Promise<number | 'still running'> {
  return exitAfterMark(
    `// Takes connections and never answers (its sockets do not keep this process alive).
const srv = net.createServer((s) => { s.on('error', () => {}); s.unref(); });
await new Promise((r) => srv.listen(0, '127.0.0.1', r));
srv.unref();
const client = new TesseraClient({ address: '127.0.0.1:' + srv.address().port });
const ac = new AbortController();
const p = ${call === 'submit' ? 'client.submit({ passthrough: {} }, [file], { signal: ac.signal })' : "client.getJob('x', { signal: ac.signal })"};
setTimeout(() => ac.abort(), 300);
await p.catch((e) => { if (e.name !== 'AbortError') throw e; });
mark();`,
    ms,
  );
}

describe('an aborted call to a coordinator that has not answered yet', () => {
  it('getJob: the process exits at once after the abort (control)', async () => {
    expect(await exitAfterAbort('getJob', 8000)).toBeLessThan(4000);
  }, 15_000);

  it('submit: the process exits soon after the abort, not at the 15 s deadline', async () => {
    // Before: 'still running' (it exited about 15 s after the abort: a connectivity watch's timer
    // to the deadline was left behind; review L).
    expect(await exitAfterAbort('submit', 8000)).toBeLessThan(4000);
  }, 15_000);
});
