/**
 * An operator pipes a coordinator's or worker's output into another program (`| tee`, `| logger`,
 * a log shipper, `| head`) and that program goes away. The process must still stop on SIGTERM:
 * a coordinator that cannot be stopped keeps its port and the data dir's lock, so the next
 * coordinator (a restart, an upgrade) refuses to start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH } from './helpers/cluster.js';
import { cleanEnv } from './helpers/process-logs.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Starts `tessera ARGS` with stdout and stderr on pipes, waits for its first stdout line, then closes our ends of both pipes. */
async function startThenCloseItsPipes(args: string[]): Promise<{ child: ChildProcess; first: string }> {
  const child = spawn(process.execPath, [CLI_PATH, ...args, '--log-format', 'json'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    setTimeout(() => reject(new Error('no first line within 15 s')), 15_000);
  });
  child.removeAllListeners('exit');
  // The reader goes away (a `| head` that has what it wanted, a log shipper that crashed).
  child.stdout!.destroy();
  child.stderr!.destroy();
  return { child, first: out };
}

/** Sends SIGTERM and resolves with how it ended, or 'still running' after `ms`. */
function stopWithin(child: ChildProcess, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('still running'), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(`exited ${code ?? signal}`);
    });
    child.kill('SIGTERM');
  });
}

describe('a process whose log reader went away', () => {
  it('a coordinator still stops on SIGTERM (and frees its data dir)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ops-pipe-'));
    dirs.push(dir);
    const { child: coordinator, first } = await startThenCloseItsPipes(['coordinator', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', path.join(dir, 'data')]);
    // Something to log after the reader went: a worker registers, then goes.
    const port = /listening on 127\.0\.0\.1:(\d+)/.exec(first)![1];
    const worker = spawn(process.execPath, [CLI_PATH, 'worker', '--coordinator', `127.0.0.1:${port}`, '--slots', '1'], { env: cleanEnv(), stdio: 'ignore' });
    children.push(worker);
    await new Promise((r) => setTimeout(r, 2000));
    worker.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    expect(await stopWithin(coordinator, 8000)).toBe('exited 0');
  }, 30_000);
});
