/**
 * `--keepalive-ms` and `--keepalive-timeout-ms`: the gRPC keepalive of the coordinator (its pings
 * of clients and workers), of a worker and of every client command (their pings of the
 * coordinator). Each is also TESSERA_KEEPALIVE_MS / TESSERA_KEEPALIVE_TIMEOUT_MS, which the client
 * library reads too, and for the coordinator and the worker a config file key.
 */
import { Option, type Command } from 'commander';
import { DEFAULT_KEEPALIVE, KEEPALIVE_ENV, MIN_KEEPALIVE_MS, MIN_KEEPALIVE_TIMEOUT_MS, keepaliveProblem, type Keepalive } from '../../shared/config.js';
import { byFlag, optionNamer, setting, type OptionNamer } from './security-options.js';
import { int } from './specs.js';
import { UsageError } from './usage-error.js';

/** The attribute of each keepalive setting on a parsed command. */
const ATTR = { timeMs: 'keepaliveMs', timeoutMs: 'keepaliveTimeoutMs' } as const;

/** The options as parsed (absent: the default). */
export interface KeepaliveFlags {
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
}

/**
 * The keepalive `o` sets, or a usage error naming the option as it was given (flag, variable or
 * config key) and the range it must be in.
 */
export function checkKeepalive(o: KeepaliveFlags, name: OptionNamer = byFlag): Keepalive {
  const k = { timeMs: o.keepaliveMs ?? DEFAULT_KEEPALIVE.timeMs, timeoutMs: o.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE.timeoutMs };
  const problem = keepaliveProblem(k);
  if (problem) throw new UsageError(`${setting(name(ATTR[problem.key]), k[problem.key])}: ${problem.rule}`);
  return k;
}

/**
 * Adds the two options to `tessera coordinator` or `tessera worker` (before `configurable`, which
 * gives them their variables and config keys), with their defaults shown in `--help`.
 */
export function serverKeepaliveOptions(c: Command, role: 'coordinator' | 'worker'): Command {
  const whom = role === 'coordinator' ? 'each client and worker connection' : 'the coordinator';
  return c
    .option('--keepalive-ms <ms>', `ping ${whom} this often (at least ${MIN_KEEPALIVE_MS}, the most often a coordinator permits)`, int('--keepalive-ms', { signed: true }), DEFAULT_KEEPALIVE.timeMs)
    .option('--keepalive-timeout-ms <ms>', `a connection whose ping goes unanswered this long is taken for dead (at least ${MIN_KEEPALIVE_TIMEOUT_MS}; raise it on slow or congested links)`, int('--keepalive-timeout-ms', { signed: true }), DEFAULT_KEEPALIVE.timeoutMs);
}

/**
 * Adds the two options to every client command (those that talk to a coordinator, but the one-shot
 * `health` check). Given as flags, they are checked and passed on through the environment, which
 * the client library reads.
 */
export function clientKeepaliveOptions(program: Command): Command {
  const visit = (c: Command): void => {
    const isClient = c.options.some((o) => o.long === '--coordinator') && c.name() !== 'worker' && c.name() !== 'health';
    if (isClient) {
      c.addOption(new Option('--keepalive-ms <ms>', `ping the coordinator this often (default ${DEFAULT_KEEPALIVE.timeMs}, at least ${MIN_KEEPALIVE_MS})`).argParser(int('--keepalive-ms', { signed: true })).env(KEEPALIVE_ENV.timeMs));
      c.addOption(
        new Option('--keepalive-timeout-ms <ms>', `take the connection for lost when a ping goes unanswered this long (default ${DEFAULT_KEEPALIVE.timeoutMs}, at least ${MIN_KEEPALIVE_TIMEOUT_MS}; raise it on slow links)`)
          .argParser(int('--keepalive-timeout-ms', { signed: true }))
          .env(KEEPALIVE_ENV.timeoutMs),
      );
      c.hook('preAction', (cmd) => {
        const o = cmd.opts<KeepaliveFlags>();
        const k = checkKeepalive(o, optionNamer(cmd));
        // The client library reads the environment (as it does for TLS and tokens).
        if (o.keepaliveMs !== undefined) process.env[KEEPALIVE_ENV.timeMs] = String(k.timeMs);
        if (o.keepaliveTimeoutMs !== undefined) process.env[KEEPALIVE_ENV.timeoutMs] = String(k.timeoutMs);
      });
    }
    c.commands.forEach(visit);
  };
  visit(program);
  return program;
}
