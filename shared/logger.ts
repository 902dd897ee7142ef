import { createRequire } from 'node:module';
import os from 'node:os';
import type Pino from 'pino';
import type { Logger, LevelWithSilent } from 'pino';
import type PinoPretty from 'pino-pretty';

const require = createRequire(import.meta.url);

export type { Logger } from 'pino';

/** The log levels `--log-level` accepts. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** `json`: one JSON object a line; `pretty`: coloured, human-readable; `auto`: pretty on a terminal. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

/**
 * Structured logs on stderr (stdout stays free for command output such as `--json`).
 * Every line carries `component` and `pid`; callers add `job`, `subtask`, `attempt` and `worker`
 * through child loggers. On a terminal the lines are pretty-printed; piped or redirected they stay
 * JSON, so that log shippers (Loki, Elasticsearch, `jq`) get one object per line.
 */
export function createLogger(
  name: string,
  level: LevelWithSilent = (process.env['TESSERA_LOG_LEVEL'] as LevelWithSilent | undefined) ?? 'info',
  format: LogFormat = (process.env['TESSERA_LOG_FORMAT'] as LogFormat | undefined) ?? 'auto',
): Logger {
  // hostname: lines from several machines stay apart in a central log store.
  const options = { name, level, base: { pid: process.pid, hostname: os.hostname(), component: name } };
  // pino is loaded here, not with the module: a command that only parses its flags (--help, a
  // usage error) or only calls the coordinator (every client command) never loads it.
  const pino = require('pino') as typeof Pino;
  const usePretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  if (usePretty) {
    // In-process pretty stream (not a worker-thread transport): no extra thread per process, and
    // lines written just before exit are not lost. Loaded only here: processes that log JSON (every
    // one started by a service manager or another program) need none of it.
    const pretty = require('pino-pretty') as typeof PinoPretty;
    // NO_COLOR (https://no-color.org): colorize forced on would override the colour library's own check (review CUX).
    const colorize = process.stderr.isTTY === true && !process.env['NO_COLOR'];
    return pino(options, pretty({ destination: 2, sync: true, colorize, ignore: 'pid,hostname,component', messageKey: 'msg' }));
  }
  return pino(options, pino.destination({ fd: 2, sync: false }));
}
