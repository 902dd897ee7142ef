/**
 * A step of the system's wall clock (NTP correcting a drifted clock, a VM resumed after a
 * suspend or live migration) is no silence of the workers: their heartbeats keep coming. The
 * coordinator runs in this process so that its clock can be stepped; the worker is a real process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { CLI_PATH } from '../helpers/cluster.js';

const realNow = Date.now;
const cleanups: (() => Promise<unknown> | void)[] = [];

afterEach(async () => {
  Date.now = realNow;
  for (const c of cleanups.splice(0).reverse()) await c();
});

it('a forward step of the wall clock during a job loses no worker and fails no subtask', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-clock-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // A TTL of four heartbeats: on a loaded machine (the suite runs two files at a time on two
  // cores) a worker starved of the CPU may send one late, which is not what this test is about.
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log: pino({ level: 'silent' }), http: '', retentionMs: 0, heartbeatMs: 1000, ttlMs: 4000, maxAttempts: 1 });
  const address = await coordinator.start();
  const client = new TesseraClient({ address });
  cleanups.push(async () => {
    client.close();
    await coordinator.close();
  });
  const workers: ChildProcess[] = [];
  for (const name of ['w1', 'w2']) {
    const worker: ChildProcess = spawn(process.execPath, [CLI_PATH, 'worker', '--coordinator', address, '--name', name, '--slots', '1'], { env: { ...process.env, TESSERA_LOG_LEVEL: 'error' }, stdio: 'ignore' });
    workers.push(worker);
    const exited = new Promise((r) => worker.once('exit', r));
    cleanups.push(async () => {
      worker.kill('SIGKILL');
      await exited;
    });
  }
  for (let i = 0; i < 200 && (await client.listWorkers()).filter((w) => w.state === 'active').length < 2; i++) await sleep(50);

  const file = path.join(dir, 'a.bin');
  await writeFile(file, randomBytes(10_000));
  const job = await client.submit({ passthrough: { work_ms: 3000 } }, [file]);
  for (let i = 0; i < 100 && (await client.getJob(job.id)).subtasks[0]?.state !== 'SUBTASK_STATE_RUNNING'; i++) await sleep(50);
  // NTP steps the clock 61 s forward (the workers keep heartbeating all along). Expected: nothing
  // happens. Seen: the sweep finds every worker silent for 61 s and loses them (the job fails with
  // "worker w1 lost: no heartbeat for 2000 ms" with a TTL of 2 s), and the stall rule (--stall-ms 60 s) finds every
  // running attempt quiet for 61 s and copies it.
  Date.now = () => realNow() + 61_000;

  const done = await client.wait(job.id);
  expect(done.errors).toEqual([]);
  expect(done.state).toBe('JOB_STATE_SUCCEEDED');
  expect(done.subtasks.map((s) => s.attempt)).toEqual([1]);
  const listed = await client.listWorkers();
  expect(listed.map((w) => w.state)).toEqual(['active', 'active']);
  // What is shown stays wall-clock time: a heartbeat of the last second or two, as the clock now
  // reads (not 61 s off; 15 s leaves room for a worker starved of the CPU on a loaded machine).
  for (const w of listed) expect(Math.abs(Date.now() - Number(w.last_heartbeat_ms))).toBeLessThan(15_000);

  // A worker that hangs (stopped: its connection stays open, its heartbeats stop) as the clock
  // steps back ten minutes is still found lost within its TTL; by the wall clock its last
  // heartbeat lay ten minutes in the future.
  workers[1]!.kill('SIGSTOP');
  Date.now = () => realNow() - 600_000;
  let states: string[] = [];
  for (let i = 0; i < 100; i++) {
    states = (await client.listWorkers()).map((w) => w.state).sort();
    if (states.includes('lost')) break;
    await sleep(100);
  }
  expect(states).toEqual(['active', 'lost']);
}, 30_000);
