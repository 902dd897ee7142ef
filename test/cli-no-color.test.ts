/**
 * NO_COLOR (https://no-color.org): a user who sets it gets no colour escapes from any program that
 * honours it. `tessera coordinator` (and `worker`) on a terminal pretty-print their logs with
 * pino-pretty, and `colorize` is set from `process.stderr.isTTY` alone (shared/logger.ts): the log
 * lines keep their ANSI colours with NO_COLOR=1. A real pseudo-terminal (util-linux `script`).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH } from './helpers/cluster.js';
import { deadAddress } from './helpers/addresses.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cli-no-color-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the coordinator on a pseudo-terminal until it says it listens; all it drew. */
function coordinatorOnTerminal(env: NodeJS.ProcessEnv): Promise<string> {
  return deadAddress().then(
    (listen) =>
      new Promise((resolve, reject) => {
        const command = [process.execPath, CLI_PATH, 'coordinator', '--listen', listen, '--http', 'off', '--data-dir', path.join(dir, `data-${Date.now()}`)].map((a) => `'${a}'`).join(' ');
        const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TESSERA_LOG_LEVEL: 'info', TESSERA_LOG_FORMAT: 'auto', ...env } });
        let screen = '';
        let typed = false;
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the coordinator did not say it listens; it drew: ${JSON.stringify(screen)}`));
        }, 30_000);
        child.stdout.on('data', (d: Buffer) => {
          screen += d.toString();
          if (!typed && /tessera coordinator listening/.test(screen)) {
            typed = true;
            child.stdin.write('\x03');
          }
        });
        child.on('close', () => {
          clearTimeout(timer);
          resolve(screen);
        });
      }),
  );
}

describe('NO_COLOR', () => {
  it('turns off the colours of the pretty logs on a terminal', async () => {
    const screen = await coordinatorOnTerminal({ NO_COLOR: '1' });
    expect(screen).toMatch(/coordinator listening/);
    // SGR colour sequences, e.g. \x1b[32mINFO\x1b[39m: there with NO_COLOR=1.
    // eslint-disable-next-line no-control-regex
    const colours = screen.match(/\x1b\[\d+m/g) ?? [];
    expect(colours, JSON.stringify(screen.slice(0, 300))).toEqual([]);
  });
});
