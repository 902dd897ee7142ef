/**
 * Limits a worker enforces on the subtasks it runs, and its clean-up of killed workers' files:
 *
 * - README, "Fault tolerance" / "Isolation": a subtask that hangs past its timeout is killed on its
 *   worker (DEADLINE_EXCEEDED) and retried, here on the other worker; the job succeeds.
 * - README, "Fault tolerance" (temp files): on start a worker removes the temp folders of workers
 *   that were killed (`tessera-worker-NAME-PID` under its temp dir, PID dead), and nothing else.
 * - README, "Isolation": a subtask whose processor's memory passes `--memory-limit-mb` is killed and
 *   fails with RESOURCE_EXHAUSTED naming the limit; the worker carries on with the next job.
 *
 * The coordinator runs in-process (the subtask timeout is an option with no flag); the workers are
 * real `tessera worker` processes (dist/), each with its own TMPDIR.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator, type CoordinatorOptions } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { CLI_PATH } from '../helpers/cluster.js';

const log = createLogger('test', 'silent', 'json');
let dir: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-worker-limits-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** An in-process coordinator on loopback with its own data dir, and a client for it. */
async function startCoordinator(opts: Partial<CoordinatorOptions> = {}): Promise<{ address: string; client: TesseraClient }> {
  const data = await mkdtemp(path.join(dir, 'data-'));
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: data, log, http: '', ...opts });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const client = new TesseraClient({ address });
  cleanups.push(async () => client.close());
  return { address, client };
}

interface WorkerProcess {
  name: string;
  child: ChildProcess;
  /** Its TMPDIR. */
  tmp: string;
  /** Its log lines (JSON) so far. */
  lines: () => Record<string, unknown>[];
}

/** A real `tessera worker` process (1 slot, no prefetch) with TMPDIR `tmp`; stopped after the test. */
function startWorker(name: string, address: string, tmp: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): WorkerProcess {
  const child = spawn(process.execPath, [CLI_PATH, 'worker', '--coordinator', address, '--name', name, '--slots', '1', '--prefetch', '0', '--drain-grace-ms', '1000', '--log-format', 'json', ...extra], {
    env: { ...process.env, TESSERA_LOG_LEVEL: 'info', TMPDIR: tmp, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let buf = '';
  const lines: Record<string, unknown>[] = [];
  child.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  });
  return { name, child, tmp, lines: () => lines };
}

/** Polls `fn` every 50 ms until it returns a truthy value, for at most `ms`. */
async function until<T>(fn: () => Promise<T> | T, ms: number, what: string): Promise<Exclude<T, undefined | null | false | 0 | ''>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as Exclude<T, undefined | null | false | 0 | ''>;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function waitForWorkers(client: TesseraClient, names: string[]): Promise<void> {
  await until(async () => {
    const active = (await client.listWorkers()).filter((w) => w.state === 'active').map((w) => w.name);
    return names.every((n) => active.includes(n));
  }, 30_000, `workers ${names.join(', ')} to register`);
}

/** Whether process `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describe('subtask timeout', () => {
  it('a subtask hanging past its timeout is ended on its worker (DEADLINE_EXCEEDED) and runs again on the other worker; the job succeeds', async () => {
    const TIMEOUT_MS = 3000;
    // One retryable failure quarantines a worker (never the last one): the retry cannot go back to
    // the hanging worker. No prefetch places: each worker holds only the subtask it runs.
    const { address, client } = await startCoordinator({ subtaskTimeoutMs: TIMEOUT_MS, quarantineFailures: 1, prefetchBelowMs: 0, retryBaseMs: 50 });
    const slowTmp = await mkdtemp(path.join(dir, 'slow-tmp-'));
    const fastTmp = await mkdtemp(path.join(dir, 'fast-tmp-'));
    // Every passthrough subtask on `slow` sleeps 2 minutes: only its timeout ends it.
    const slow = startWorker('slow', address, slowTmp, [], { TESSERA_DIAG_DELAY_MS: '120000' });
    startWorker('fast', address, fastTmp);
    await waitForWorkers(client, ['slow', 'fast']);

    const inputs = [randomBytes(100_000), randomBytes(120_000)];
    const files = await Promise.all(inputs.map(async (b, i) => {
      const f = path.join(dir, `part-${i}.bin`);
      await writeFile(f, b);
      return f;
    }));
    // Two subtasks (one per input), one per worker.
    const job = await client.submit({ passthrough: {} }, files);
    const events: JobEvent__Output[] = [];
    const out = path.join(dir, 'timeout-out');
    let finished = false;
    const collecting = client.collect(job.id, out, { onEvent: (e) => events.push(e), signal: AbortSignal.timeout(60_000) }).finally(() => (finished = true));

    // The slow worker's folder for the attempt it runs (its inputs are fetched into it).
    // tessera-worker-NAME-PID-r<8 hex digits>: the random part keeps a restarted container's apart.
    const rootName = await until(async () => (await readdir(slowTmp)).find((e) => e.startsWith(`tessera-worker-slow-${slow.child.pid}-r`)), 20_000, "the slow worker's temp root");
    const slowRoot = path.join(slowTmp, rootName);
    const workDir = await until(async () => (await readdir(slowRoot).catch(() => [] as string[])).find((e) => /^st-.*-a1$/.test(e)), 20_000, "the slow worker's attempt folder");
    const { job: done, paths } = await collecting;
    expect(finished).toBe(true);

    expect(done.state, done.message).toBe('JOB_STATE_SUCCEEDED');
    expect(done.errors).toEqual([]);
    for (const [i, b] of inputs.entries()) expect((await readFile(paths.get(`part-${i}.bin`)!)).equals(b), `part-${i}.bin comes back byte for byte`).toBe(true);

    // Attempt 1 of one subtask ran on `slow` and was ended by its timeout, reported by the worker
    // (the coordinator's own take-back of an overdue lease would say "did not stop it").
    const messages = events.filter((e) => e.type === 'subtask_state').map((e) => `${e.subtask?.id} ${e.message}`);
    const timedOut = messages.find((m) => m.includes(`attempt 1 failed (DEADLINE_EXCEEDED: subtask timed out after ${TIMEOUT_MS} ms); retrying`));
    expect(timedOut, messages.join('\n')).toBeDefined();
    expect(messages.join('\n')).not.toContain('did not stop it');
    const subtaskId = timedOut!.split(' ')[0]!;
    expect(messages, 'attempt 1 ran on the slow worker').toContain(`${subtaskId} attempt 1 on slow`);
    expect(messages, 'attempt 2 ran on the other worker').toContain(`${subtaskId} attempt 2 on fast`);
    expect(done.subtasks.find((s) => s.id === subtaskId)).toMatchObject({ state: 'SUBTASK_STATE_SUCCEEDED', attempt: 2, worker: 'fast' });
    const other = done.subtasks.find((s) => s.id !== subtaskId);
    expect(other).toMatchObject({ state: 'SUBTASK_STATE_SUCCEEDED', attempt: 1, worker: 'fast' });

    // The slow worker stopped the attempt itself: its folder is gone, the process lives on, and
    // the coordinator counts the failure against it (quarantined, as configured).
    await until(() => !existsSync(path.join(slowRoot, workDir)), 10_000, "the slow worker's attempt folder to be removed");
    expect(slow.child.exitCode).toBe(null);
    const slowInfo = (await client.listWorkers()).find((w) => w.name === 'slow');
    expect(slowInfo).toMatchObject({ subtasks_failed: '1', subtasks_done: '0', slots_used: 0 });
  });
});

describe('temp folders of killed workers', () => {
  it('a worker starting removes tessera-worker-NAME-PID folders whose PID is dead, and keeps those of live processes and anything else', async () => {
    const { address, client } = await startCoordinator();
    const tmp = await mkdtemp(path.join(dir, 'stale-tmp-'));
    // Two pids that are certainly dead: processes that ran and were reaped.
    const deadPids: number[] = [];
    for (let i = 0; i < 2; i++) {
      const c = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
      await new Promise((resolve) => c.once('exit', resolve));
      deadPids.push(c.pid!);
    }
    for (const pid of deadPids) expect(alive(pid), `pid ${pid} is dead`).toBe(false);
    const dead = [`tessera-worker-ghost-${deadPids[0]}`, `tessera-worker-host_1.example-${deadPids[1]}`];
    const live = [`tessera-worker-ghost-${process.pid}`, `tessera-worker-other-${process.ppid}`];
    const unrelated = [`tessera-cluster-${deadPids[0]}`, `tessera-worker-no-pid`, `someone-else-${deadPids[0]}`];
    for (const name of [...dead, ...live, ...unrelated]) {
      // Each with something inside, as an attempt's folder would be.
      await mkdir(path.join(tmp, name, `st-job-0-0-x-a1`), { recursive: true });
      await writeFile(path.join(tmp, name, `st-job-0-0-x-a1`, 'input.bin'), randomBytes(1000));
    }

    const w = startWorker('sweeper', address, tmp);
    const line = await until(() => w.lines().find((l) => l['msg'] === 'removed temp folders of dead workers'), 30_000, 'the worker to log its sweep');
    expect(line['removed'], 'two folders of dead workers removed').toBe(2);
    for (const name of dead) expect(existsSync(path.join(tmp, name)), `${name} (dead pid) is removed`).toBe(false);
    for (const name of live) expect(existsSync(path.join(tmp, name, 'st-job-0-0-x-a1', 'input.bin')), `${name} (live pid) is kept with its contents`).toBe(true);
    for (const name of unrelated) expect(existsSync(path.join(tmp, name, 'st-job-0-0-x-a1', 'input.bin')), `${name} (not a worker temp root) is kept`).toBe(true);
    // And the worker is up.
    await waitForWorkers(client, ['sweeper']);
  });
});

describe('--memory-limit-mb', () => {
  const LIMIT_MB = 256;

  /** Pids of a worker's processor children (worker/isolation.js). */
  function processorChildren(pid: number): number[] {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number)
        .filter((p) => {
          try {
            return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('isolation.js');
          } catch {
            return false;
          }
        });
    } catch {
      return [];
    }
  }

  it(`a subtask whose processor passes it is killed and fails with RESOURCE_EXHAUSTED naming the limit; the worker runs the next job`, async () => {
    const { address, client } = await startCoordinator();
    const tmp = await mkdtemp(path.join(dir, 'mem-tmp-'));
    const w = startWorker('mem', address, tmp, ['--memory-limit-mb', String(LIMIT_MB)]);
    await waitForWorkers(client, ['mem']);

    // A 6300 x 6300 RGBA PNG (170 KB, 39.7 Mpx: one worker's batch, not tiled) turned a quarter:
    // the whole decoded image is held (160 MB of pixels) while it is rotated and encoded to WebP,
    // which puts the processor far over 256 MiB (over 700 MiB without a ceiling). Small photos
    // keep it near 70 MiB.
    const big = path.join(dir, 'huge.png');
    await sharp({ create: { width: 6300, height: 6300, channels: 4, background: { r: 128, g: 128, b: 128, alpha: 0.5 } } }).png().toFile(big);
    const small = path.join(dir, 'small.png');
    await sharp({ create: { width: 300, height: 200, channels: 3, background: '#208020' } }).png().toFile(small);

    const before = await until(() => processorChildren(w.child.pid!).length > 0 && processorChildren(w.child.pid!), 20_000, 'a prewarmed processor child');
    const failed = await client.wait((await client.submit({ image: { rotate: 90, format: 'webp' } }, [big])).id, undefined, AbortSignal.timeout(60_000));
    expect(failed.state, failed.message).toBe('JOB_STATE_FAILED');
    expect(failed.errors).toHaveLength(1);
    expect(failed.errors[0]).toMatchObject({ input: 'huge.png', code: 'RESOURCE_EXHAUSTED' });
    expect(failed.errors[0]!.message).toContain(`over the worker's memory ceiling --memory-limit-mb=${LIMIT_MB}`);
    // Not retried: the same input would balloon again.
    expect(failed.subtasks).toEqual([expect.objectContaining({ state: 'SUBTASK_STATE_FAILED', attempt: 1, worker: 'mem' })]);
    expect(failed.outputs).toEqual([]);
    // The processor that ballooned was killed; the worker process was not.
    for (const pid of before) await until(() => !alive(pid), 10_000, `processor child ${pid} to be killed`);
    const killed = await until(() => w.lines().find((l) => l['msg'] === 'subtask over its memory ceiling: killed'), 10_000, "the worker's log of the kill");
    expect(killed).toMatchObject({ limitMb: LIMIT_MB, rssMb: expect.any(Number) });
    // Over the ceiling by bytes (rounded to MiB, 256.3 MiB reads 256).
    expect(killed['rssBytes'] as number).toBeGreaterThan(LIMIT_MB * 2 ** 20);
    expect(killed['rssMb'] as number).toBeGreaterThanOrEqual(LIMIT_MB);
    expect(w.child.exitCode).toBe(null);

    // The same worker runs the next job.
    const out = path.join(dir, 'mem-out');
    const { job: next, paths } = await client.collect((await client.submit({ image: { width: 150, format: 'webp' } }, [small])).id, out, { signal: AbortSignal.timeout(60_000) });
    expect(next.state, next.message).toBe('JOB_STATE_SUCCEEDED');
    expect(next.subtasks).toEqual([expect.objectContaining({ state: 'SUBTASK_STATE_SUCCEEDED', attempt: 1, worker: 'mem' })]);
    const meta = await sharp(paths.get('small.webp')!).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 150, 100]);
    expect((await client.listWorkers()).find((x) => x.name === 'mem')?.state).toBe('active');
  });
});
