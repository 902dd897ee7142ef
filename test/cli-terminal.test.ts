/**
 * On a terminal the CLI draws a progress bar, which hides the cursor: Ctrl-C must give the
 * terminal its cursor back in every command that draws one (`watch` and `submit`'s upload left it
 * hidden). A real pseudo-terminal: util-linux's `script` runs the CLI on one, and ^C typed into
 * it reaches the CLI as SIGINT from the terminal, as a user's would.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startCluster, type TestCluster } from './helpers/cluster.js';

const HIDE = '\x1b[?25l';
const SHOW = '\x1b[?25h';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cli-terminal-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI on a pseudo-terminal, types ^C once `ready` matches what it drew; its exit code and all it drew. */
function interruptOnTerminal(args: string[], ready: RegExp): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, CLI_PATH, ...args, '--coordinator', cluster.address].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  // -e: script exits with the command's status.
  const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' } });
  let screen = '';
  let typed = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tessera ${args.join(' ')} on a terminal did not end; it drew: ${JSON.stringify(screen)}`));
    }, 60_000);
    const take = (d: Buffer): void => {
      screen += d.toString();
      if (!typed && ready.test(screen)) {
        typed = true;
        child.stdin.write('\x03');
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, screen });
    });
  });
}

describe('Ctrl-C on a terminal', () => {
  it('gives the cursor back in tessera watch, submit (uploading and waiting) and download', async () => {
    const slow = path.join(dir, 'slow.bin');
    await writeFile(slow, 'slow');
    const job = await cluster.client.submit({ passthrough: { work_ms: 30_000 } }, [slow]);
    const big = path.join(dir, 'big.bin');
    await writeFile(big, randomBytes(256 * 2 ** 20));
    const runs: [string[], RegExp][] = [
      [['watch', job.id], /\[.*\]/],
      // ^C as soon as the upload's bar shows, long before 256 MiB are in.
      [['submit', 'passthrough', big, '-o', path.join(dir, 'out')], /uploading .*\[/],
      [['submit', 'passthrough', slow, '--work-ms', '30000', '-o', path.join(dir, 'out')], /job \S+ \(passthrough\) \[/],
      [['download', job.id, '-o', path.join(dir, 'out')], /\[.*\]/],
    ];
    for (const [args, ready] of runs) {
      const { code, screen } = await interruptOnTerminal(args, ready);
      const what = `tessera ${args.join(' ')}`;
      expect(screen, what).toContain(HIDE);
      expect(screen.lastIndexOf(SHOW), `${what}: ${JSON.stringify(screen)}`).toBeGreaterThan(screen.lastIndexOf(HIDE));
      expect(code, what).toBe(130);
    }
    await cluster.client.cancel(job.id);
  }, 180_000);
});
