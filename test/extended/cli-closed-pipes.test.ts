/**
 * Commands whose output readers go away, as in shell pipelines (`| head`, `2>&1 | head`, a `| tee`
 * or log shipper that stops): the command's work and cleanup must not depend on them.
 *  - A coordinator whose log reader went away could not be stopped by SIGTERM: pino's sonic-boom
 *    retried its flush at exit every 100 ms for ever, and the process kept its port and the data
 *    dir's lock (review OPS).
 *  - `tessera submit ... 2>&1 | head -1`: the progress bar's write to stderr threw EPIPE, uncaught:
 *    exit 1 ("the job failed") and nothing downloaded (review CUX).
 *  - `tessera demo | head -1` exited at once on stdout's EPIPE, skipping its cleanup: its cluster's
 *    data folder and its sample images stayed in the temp folder (review CUX).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startCluster, type TestCluster } from '../helpers/cluster.js';
import { cleanEnv } from '../helpers/process-logs.js';

let dir: string;
let cluster: TestCluster;
const children: ChildProcess[] = [];
let demoPid: number | undefined;

/** What a demo of process `p` left in the temp folder. */
const demoLeftovers = async (p: number): Promise<string[]> => (await readdir(os.tmpdir())).filter((e) => e.startsWith(`tessera-cluster-${p}-`) || e.startsWith(`tessera-demo-${p}-`));

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-closed-pipes-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await cluster?.stop();
  if (demoPid) for (const e of await demoLeftovers(demoPid)) await rm(path.join(os.tmpdir(), e), { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

/** Starts `tessera ARGS` with stdout and stderr on pipes; `close` closes the named ones once the first byte comes on `on`. */
function start(args: string[], on: 'stdout' | 'stderr', close: Array<'stdout' | 'stderr'>): { child: ChildProcess; first: Promise<string>; ended: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: { ...cleanEnv(), TESSERA_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const first = new Promise<string>((resolve) => {
    let text = '';
    child[on]!.on('data', (d: Buffer) => {
      text += d.toString();
      if (!text.includes('\n')) return;
      for (const s of close) child[s]!.destroy();
      resolve(text);
    });
  });
  const ended = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, first, ended };
}

/** Resolves how `p` ended within `ms`, or 'still running'. */
function within(p: Promise<number | null>, ms: number): Promise<string> {
  return Promise.race([p.then((code) => `exited ${code}`), new Promise<string>((r) => setTimeout(() => r('still running'), ms))]);
}

describe('a reader that goes away', () => {
  it('a coordinator still stops on SIGTERM (and frees its data dir)', async () => {
    const { child, first, ended } = start(['coordinator', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--log-format', 'json'], 'stdout', ['stdout', 'stderr']);
    const port = /listening on 127\.0\.0\.1:(\d+)/.exec(await first)![1];
    // Something to log after the reader went: a worker registers, then goes.
    const worker = spawn(process.execPath, [CLI_PATH, 'worker', '--coordinator', `127.0.0.1:${port}`, '--slots', '1'], { env: cleanEnv(), stdio: 'ignore' });
    children.push(worker);
    await new Promise((r) => setTimeout(r, 2000));
    worker.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGTERM');
    // It was: still running (and listening, its data dir locked) minutes later.
    expect(await within(ended, 8000)).toBe('exited 0');
  }, 30_000);

  it("tessera submit whose stderr reader went still downloads the outputs and exits with the job's status", async () => {
    const input = path.join(dir, 'a.bin');
    await writeFile(input, Buffer.alloc(200_000, 7));
    const out = path.join(dir, 'out');
    const { ended } = start(['submit', 'passthrough', input, '--subtasks', '3', '--work-ms', '400', '-o', out, '--coordinator', cluster.address], 'stderr', ['stderr']);
    // It was: exit 1 (an uncaught "write EPIPE" from the progress bar), nothing downloaded.
    expect(await within(ended, 60_000)).toBe('exited 0');
    expect(existsSync(path.join(out, 'a.bin'))).toBe(true);
  }, 90_000);

  it('tessera watch --json whose stdout reader went (| head -1) ends 141, as by SIGPIPE: not 0, which says the job succeeded', async () => {
    const job = await cluster.client.submit({ passthrough: { subtasks: 3, work_ms: 1500 } }, []);
    const { ended } = start(['watch', job.id, '--json', '--coordinator', cluster.address], 'stdout', ['stdout']);
    // It was: exited 0 at the next event, the job still running.
    expect(await within(ended, 20_000)).toBe('exited 141');
    expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
  }, 40_000);

  it('tessera demo whose stdout reader went still stops its cluster and removes its temporary folders', async () => {
    const { child, ended } = start(['demo', '-o', path.join(dir, 'demo'), '--images', '2'], 'stdout', ['stdout']);
    demoPid = child.pid!;
    expect(await within(ended, 60_000)).toMatch(/^exited/);
    // Its children (which stop with it) have let go of their files by now.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await demoLeftovers(demoPid)).toEqual([]);
  }, 90_000);
});
