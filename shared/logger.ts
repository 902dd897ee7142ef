import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/**
 * Structured JSON logs on stderr (stdout stays free for command output such as `--json`).
 * Set TESSERA_LOG_LEVEL or `--log-level`; `silent` turns logging off.
 */
export function createLogger(name: string, level: LevelWithSilent = (process.env['TESSERA_LOG_LEVEL'] as LevelWithSilent | undefined) ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid, component: name } }, pino.destination({ fd: 2, sync: false }));
}
