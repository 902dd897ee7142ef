/**
 * Runs the real `tessera` CLI as a child process with JSON logs and collects its log lines (stderr)
 * until a condition holds, then kills it: for checking what a long-running command (a worker)
 * tells its operator.
 */
import { spawn } from 'node:child_process';
import { CLI_PATH } from '../../client/local-cluster.js';

/** One pino line as written by `--log-format json`. */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** pino's numeric levels. */
export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** The test runner's environment without TESSERA_*, so that only each test's settings count. */
export const cleanEnv = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));

/**
 * Starts `tessera ARGS` with JSON logs at debug level, parses its stderr line by line and resolves
 * with every line so far once `done(lines)` is true; the process is killed either way. Rejects
 * when it exits first or after `timeoutMs`.
 */
export function logLinesUntil(args: string[], done: (lines: LogLine[]) => boolean, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<LogLine[]> {
  const child = spawn(process.execPath, [CLI_PATH, ...args, '--log-format', 'json', '--log-level', 'debug'], { env: { ...cleanEnv(), ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  let text = '';
  return new Promise<LogLine[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tessera ${args.join(' ')}: condition not met within ${opts.timeoutMs ?? 20_000} ms; logged:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)), opts.timeoutMs ?? 20_000);
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        const raw = text.slice(0, nl);
        text = text.slice(nl + 1);
        if (raw.startsWith('{')) lines.push(JSON.parse(raw) as LogLine);
      }
      if (done(lines)) {
        clearTimeout(timer);
        resolve(lines);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tessera ${args.join(' ')} exited with ${code}; logged:\n${lines.map((l) => JSON.stringify(l)).join('\n')}${text}`));
    });
  }).finally(() => {
    child.removeAllListeners('exit');
    child.kill('SIGKILL');
  });
}
