/**
 * Configuration of the long-running commands (`tessera coordinator`, `tessera worker`): every
 * option is a flag, an environment variable (TESSERA_ + the flag in upper snake case) and a key of
 * an optional config file (`--config FILE`, JSON or YAML, keys as the flags: `data-dir` or `dataDir`).
 * Precedence, highest first: flag, environment, config file, default (as in Docker, systemd units
 * and twelve-factor apps: the file is the base, the environment overrides it per deployment).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Help, Option, type Command } from 'commander';
import { SWITCH_VALUES, parseSwitch } from '../../shared/config.js';
import { UsageError } from './usage-error.js';
import { redactSecrets, resolveSecretSources } from './security-options.js';
import { checkServerSettings } from './servers.js';

/** The YAML parser, loaded by the commands given a config file only. */
const parseYaml = (text: string): unknown => (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);

/** Environment variable of a flag: `--data-dir` -> `TESSERA_DATA_DIR`. */
export function envVarOf(option: Option): string {
  return `TESSERA_${option.attributeName().replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/**
 * TESSERA_ variables read by code rather than as an option's variable: the clients' and workers'
 * connection settings, limits, tuning of the tests and benchmarks. (`test/config-unknown-variables`
 * checks the sources name no other.)
 */
export const OTHER_VARIABLES: ReadonlySet<string> = new Set([
  'TESSERA_CONFIG', 'TESSERA_COORDINATOR', 'TESSERA_TOKEN', 'TESSERA_TOKEN_FILE', 'TESSERA_TLS', 'TESSERA_TLS_CA', 'TESSERA_TLS_CERT', 'TESSERA_TLS_KEY',
  'TESSERA_KEEPALIVE_MS', 'TESSERA_KEEPALIVE_TIMEOUT_MS', 'TESSERA_LOG_FORMAT', 'TESSERA_LOG_LEVEL', 'TESSERA_NODE_ARGS', 'TESSERA_UPLOAD_IDLE_MS',
  'TESSERA_FULL_DISK_RETRY_MS', 'TESSERA_FULL_DISK_WAIT_MS', 'TESSERA_ISOLATION_CHILD', 'TESSERA_ISOLATION_PROCESSORS', 'TESSERA_FAIL_ON_CRASH',
  'TESSERA_DIAG_DELAY_MS', 'TESSERA_DIAG_FAIL', 'TESSERA_TEST_TEMP_HEARTBEAT_MS', 'TESSERA_TEST_UNARY_DEADLINE_MS',
  'TESSERA_MAX_CLIENT_PRIORITY', 'TESSERA_MAX_FILE_BYTES', 'TESSERA_MAX_FRAMES', 'TESSERA_MAX_INPUTS', 'TESSERA_MAX_INPUT_PIXELS', 'TESSERA_MAX_JOBS_PER_CLIENT',
  'TESSERA_MAX_JOB_BYTES', 'TESSERA_MAX_MEDIA_SECONDS', 'TESSERA_MAX_PIXELS', 'TESSERA_MAX_STREAMS_PER_CLIENT', 'TESSERA_MAX_VIDEO_FRAMES', 'TESSERA_MAX_VIDEO_PIXELS', 'TESSERA_STREAM_BUFFER_BYTES',
  'TESSERA_TILE_LIMIT_INPUT_PIXELS', 'TESSERA_TILE_MAX_STRIP_PIXELS', 'TESSERA_TILE_STRIP_READ', 'TESSERA_TILE_THRESHOLD_PIXELS',
  // docker-compose.yml's own (README "Running with Docker"), read by compose, not by Tessera; the
  // upgrade tests' older CLI.
  'TESSERA_GRPC_PUBLISH', 'TESSERA_MEDIA', 'TESSERA_RESULTS', 'TESSERA_SCRATCH', 'TESSERA_WORKER_CPUS', 'TESSERA_WORKER_MEMORY', 'TESSERA_OLD_CLI',
]);

/**
 * The TESSERA_ variables set in `env` that nothing reads: a misspelt one (TESSERA_CLIENT_TOKEN for
 * TESSERA_CLIENT_TOKENS left the client API open) was dropped without a word, where an unknown key
 * of a config file is refused (review OPS7). Known: every command's option variables (a worker's
 * TESSERA_DATA_DIR, set for every service in compose, too) and {@link OTHER_VARIABLES}.
 */
export function unknownVariables(root: Command, env: NodeJS.ProcessEnv = process.env): { name: string; closest?: string }[] {
  const known = new Set(OTHER_VARIABLES);
  const visit = (c: Command): void => {
    for (const o of c.options) {
      if (o.envVar) known.add(o.envVar);
      if (o.negate && o.long) known.add(`TESSERA_${o.long.slice(2).replace(/-/g, '_').toUpperCase()}`);
    }
    c.commands.forEach(visit);
  };
  visit(root);
  return Object.keys(env)
    .filter((k) => k.startsWith('TESSERA_') && !known.has(k))
    .sort()
    .map((name) => {
      const near = [...known].map((k) => ({ k, d: editDistance(name, k) })).sort((a, b) => a.d - b.d)[0];
      // Close for its length: TESSERA_X is no misspelt TESSERA_TLS.
      return near && near.d <= Math.min(3, Math.floor((name.length - 'TESSERA_'.length) / 4)) ? { name, closest: near.k } : { name };
    });
}

/** Levenshtein distance of two short strings. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
}

/** Options that are about the command line itself, not the service. */
const NOT_CONFIGURABLE = new Set(['help', 'version', 'config', 'printConfig']);

/** Reads a JSON or YAML object from `file` (by extension; YAML is a superset of JSON otherwise). */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = path.extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(`config file ${file} is not valid ${path.extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new UsageError(`config file ${file} must hold an object of option: value`);
  return data as Record<string, unknown>;
}

/** Turns a value from a config file into what the option's parser would have produced. */
function coerce(option: Option, key: string, value: unknown, file: string): unknown {
  const where = `config file ${file}, key "${key}"`;
  // Commander's isBoolean() is false for a `--no-x` switch, which takes no value either.
  if (option.isBoolean() || option.negate) {
    if (typeof value !== 'boolean') throw new UsageError(`${where}: expected true or false`);
    // `--no-x` sets `x` too, so `x: false` in a file means the same for either spelling.
    return value;
  }
  const values = Array.isArray(value) ? value : [value];
  if (!option.variadic && values.length !== 1) throw new UsageError(`${where}: expected one value`);
  const parsed = values.map((v) => {
    if (v === null || typeof v === 'object') throw new UsageError(`${where}: expected a string or number`);
    const raw = String(v);
    if (option.argChoices && !option.argChoices.includes(raw)) throw new UsageError(`${where}: "${raw}" is not one of ${option.argChoices.join(', ')}`);
    // Same parser as the flag, so a config file cannot smuggle in what the flag would refuse.
    const parseArg = (option as Option & { parseArg?: (value: string, previous: unknown) => unknown }).parseArg;
    try {
      return parseArg ? parseArg(raw, undefined) : raw;
    } catch (err) {
      // Thrown from a hook, a parser's InvalidArgumentError would reach the command's error
      // handler as a commander error that commander never printed: exit 2 and no word of why.
      throw new UsageError(`${where}: ${(err as Error).message}`);
    }
  });
  return option.variadic ? parsed.flat() : parsed[0];
}

/**
 * Adds `--config FILE` (env TESSERA_CONFIG), an environment variable for every option that has
 * none yet, and `--print-config` (prints the resolved options as JSON, secrets as fingerprints, and
 * exits: for checking a deployment's flags, environment and file without starting anything). Call
 * after the command's options are defined.
 */
export function configurable(cmd: Command, defaults?: (options: Record<string, unknown>) => Record<string, unknown>): Command {
  // Commander's help names an option's variable itself; not where the description already does.
  cmd.configureHelp({
    optionDescription(this: Help, option: Option): string {
      if ((option as Option & { helpEnv?: false }).helpEnv !== false) return Help.prototype.optionDescription.call(this, option);
      const envVar = option.envVar;
      option.envVar = undefined;
      try {
        return Help.prototype.optionDescription.call(this, option);
      } finally {
        option.envVar = envVar;
      }
    },
  });
  for (const option of cmd.options) {
    if (NOT_CONFIGURABLE.has(option.attributeName()) || option.envVar) continue;
    option.env(envVarOf(option));
    // A `--no-x` switch is also TESSERA_NO_X, as the flag is spelt (TESSERA_NO_X=1 is TESSERA_X=false);
    // both set, they must agree.
    const spelt = option.negate && option.long ? `TESSERA_${option.long.slice(2).replace(/-/g, '_').toUpperCase()}` : undefined;
    // The help says the variable as the flag is spelt: "env: TESSERA_LOCAL_READS" read as turning it on.
    if (spelt) {
      option.description = `${option.description} (env: ${spelt}=1, or ${option.envVar}=false)`;
      (option as Option & { helpEnv?: false }).helpEnv = false;
    }
    if (spelt && process.env[spelt] !== undefined && process.env[option.envVar!] === undefined) {
      const raw = process.env[spelt]!;
      const on = parseSwitch(raw);
      // Refused when this command runs, as a usage error: thrown here, as the commands are being
      // defined, it was a stack trace that stopped every command, --help and --version included.
      if (on === undefined) {
        cmd.hook('preAction', () => {
          throw new UsageError(`${spelt}=${raw}: expected ${SWITCH_VALUES}`);
        });
      } else process.env[option.envVar!] = on ? 'false' : 'true';
    } else if (spelt && process.env[spelt] !== undefined) {
      // Both spellings set: taking one silently hid a deployment's contradiction (review OPS12).
      const off = parseSwitch(process.env[spelt]!);
      const on = parseSwitch(process.env[option.envVar!]!);
      if (off !== undefined && on !== undefined && off === on) {
        const said = `${spelt}=${process.env[spelt]} and ${option.envVar}=${process.env[option.envVar!]}`;
        // Only where they decide the value: a flag given overrides both.
        cmd.hook('preAction', (command) => {
          if (command.getOptionValueSource(option.attributeName()) !== 'cli') throw new UsageError(`${said} say opposite things: keep one`);
        });
      }
    }
    // Commander wires environment handling in addOption(); for an option that gained its variable
    // afterwards, listen for the same event it emits and parse the value as the flag would be.
    cmd.on(`optionEnv:${option.name()}`, (raw: string | undefined) => {
      const key = option.attributeName();
      const parseArg = (option as Option & { parseArg?: (value: string, previous: unknown) => unknown }).parseArg;
      let value: unknown = raw;
      if (raw === undefined) {
        // A switch: commander passes no value; unlike commander, TESSERA_X=false means off. The
        // variable is named after the value, also for a `--no-x` flag (TESSERA_LOCAL_READS=false
        // is --no-local-reads).
        const raw = process.env[option.envVar!] ?? '';
        value = parseSwitch(raw);
        if (value === undefined) throw new UsageError(`${option.envVar}=${raw}: expected ${SWITCH_VALUES}`);
      }
      else if (option.variadic) value = raw.split(',').filter(Boolean).map((v) => (parseArg ? parseArg(v, undefined) : v)).flat();
      else if (parseArg) {
        try {
          value = parseArg(raw, undefined);
        } catch (err) {
          throw new UsageError(`${option.envVar}=${raw}: ${(err as Error).message}`);
        }
      }
      if (option.argChoices && typeof value === 'string' && !option.argChoices.includes(value)) throw new UsageError(`${option.envVar}=${raw}: must be one of ${option.argChoices.join(', ')}`);
      cmd.setOptionValueWithSource(key, value, 'env');
    });
  }
  cmd.addOption(new Option('--config <file>', 'read options from a JSON or YAML file (flags and environment override it)').env('TESSERA_CONFIG'));
  cmd.option('--print-config', 'print the resolved options as JSON and exit');
  cmd.hook('preAction', (command) => {
    const file = command.getOptionValue('config') as string | undefined;
    if (file) applyConfigFile(command, file);
    // Only now are all sources known: a token file from the config file loses to TESSERA_WORKER_TOKEN.
    resolveSecretSources(command);
    if (command.getOptionValue('printConfig')) {
      // A configuration that would not start is a usage error here too (exit 2, naming the setting).
      checkServerSettings(command);
      const { printConfig: _p, ...given } = command.opts();
      // Relative paths (from any source, a config file's included) are taken from the working
      // directory: shown as they will be opened.
      const resolved = Object.fromEntries(Object.entries(given).map(([k, v]) => [k, PATH_OPTIONS.has(k) ? absolute(v) : v]));
      const sources: Record<string, string> = Object.fromEntries(Object.keys(resolved).map((k) => [k, command.getOptionValueSource(k) ?? 'unset']));
      // Settings whose default the command works out at start (from the machine, or a table of
      // limits), which commander does not know: shown too, as `default`.
      for (const [k, v] of Object.entries(defaults?.(resolved) ?? {})) {
        if (resolved[k] !== undefined) continue;
        resolved[k] = v;
        sources[k] = 'default';
      }
      // The output gets pasted into tickets and CI logs: secrets appear as fingerprints only.
      process.stdout.write(`${JSON.stringify({ command: command.name(), options: redactSecrets(resolved), sources })}\n`);
      process.exit(0);
    }
  });
  return cmd;
}

/** Options whose values are paths (one or several). */
const PATH_OPTIONS = new Set(['dataDir', 'sharedRoot', 'sharedOutputRoot', 'tlsCert', 'tlsKey', 'tlsCa', 'workerTokenFile', 'clientTokensFile', 'tokenFile']);

const absolute = (v: unknown): unknown => (typeof v === 'string' && v !== '' ? path.resolve(v) : Array.isArray(v) ? v.map(absolute) : v);

/** Applies the file's values to options that were neither given as flags nor in the environment. */
export function applyConfigFile(cmd: Command, file: string): void {
  const data = readConfigFile(file);
  const byKey = new Map<string, Option>();
  for (const o of cmd.options) {
    if (NOT_CONFIGURABLE.has(o.attributeName())) continue;
    byKey.set(o.attributeName(), o);
    byKey.set(o.long?.replace(/^--(no-)?/, '') ?? o.attributeName(), o);
    // `--no-x` also as its flag is spelt: `no-x: true` is `x: false` (`noX: true` too).
    if (o.negate && o.long) {
      byKey.set(o.long.slice(2), o);
      byKey.set(camelCase(o.long.slice(2)), o);
    }
  }
  const keyOf = new Map<Option, { key: string; meant: unknown }>();
  for (const [key, value] of Object.entries(data)) {
    const option = byKey.get(key);
    // Refuse unknown keys: a typo ("slot: 4") must not silently fall back to the default.
    if (!option) throw new UsageError(`config file ${file}: unknown option "${key}" for \`tessera ${cmd.name()}\` (known: ${[...new Set([...byKey.values()].map((o) => (o.negate ? `${o.long?.slice(5)} (or ${o.long?.slice(2)})` : o.long?.slice(2))))].join(', ')})`);
    const coerced = coerce(option, key, value, file);
    const spelt = option.negate && option.long ? option.long.slice(2) : undefined;
    const meant = spelt && (key === spelt || key === camelCase(spelt)) ? !coerced : coerced;
    // Two keys of one option (data-dir and dataDir, local-reads and no-local-reads) that disagree:
    // the last won without a word (review OPS12). Where a flag or a variable decides, it does.
    const earlier = keyOf.get(option);
    const source = cmd.getOptionValueSource(option.attributeName());
    if (earlier && JSON.stringify(earlier.meant) !== JSON.stringify(meant) && source !== 'cli' && source !== 'env') {
      throw new UsageError(`config file ${file}: keys "${earlier.key}" and "${key}" set ${option.long} differently: keep one`);
    }
    keyOf.set(option, { key, meant });
    if (source === 'cli' || source === 'env') continue;
    cmd.setOptionValueWithSource(option.attributeName(), meant, 'config');
  }
}

/** `no-local-reads` as `noLocalReads`. */
const camelCase = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
