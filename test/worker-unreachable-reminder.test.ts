/**
 * A worker that cannot reach its coordinator (a wrong address, a firewall, a coordinator down for
 * hours) logged one warning when the outage began and its tries after it at debug only: opened an
 * hour later, its log did not say it had never connected (review OPS5). It now says so again at
 * warn once a minute (here every second), with how long the coordinator has been out of reach.
 */
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { expect, it } from 'vitest';
import { Worker } from '../worker/worker.js';

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

it('a worker whose coordinator is out of reach says so at warn when it starts, and again every remindEveryMs', async () => {
  const lines: { level: number; msg: string; downForS?: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  const address = `127.0.0.1:${await closedPort()}`;
  const worker = new Worker({ coordinator: address, slots: 1, memoryLimitMb: 0, name: 'w', log: pino({ level: 'warn' }, sink), remindEveryMs: 1000 });
  const reminders = (): typeof lines => lines.filter((l) => l.msg.startsWith(`still cannot reach the coordinator at ${address} after `));
  const started = Date.now();
  worker.start();
  try {
    // Tries come every 0.1-5 s (backoff: at 0, 0.2, 0.6, 1.4, 3.0 s...), a reminder at the first
    // try 1 s or more after the last: two by about 3 s, later on a loaded machine (CI ran it late).
    while (reminders().length < 2 && Date.now() - started < 30_000) await new Promise((resolve) => setTimeout(resolve, 100));
  } finally {
    await worker.close();
  }
  const elapsedS = (Date.now() - started) / 1000;
  const warned = lines.filter((l) => l.level === 40).map((l) => l.msg);
  expect(warned[0]).toBe('disconnected from coordinator; reconnecting');
  expect(reminders().length).toBeGreaterThanOrEqual(2);
  expect(reminders().every((l) => l.level === 40 && (l.downForS ?? 0) >= 1)).toBe(true);
  // Not one a try: at most one a second (the tries in between stay at debug).
  expect(reminders().length).toBeLessThanOrEqual(Math.ceil(elapsedS));
}, 40_000);
