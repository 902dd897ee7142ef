/**
 * Security flags of the `tessera` commands (TLS, tokens, limits), kept out of cli.ts so that the
 * command definitions stay readable. Each adder returns the command, so it composes with the others;
 * the `*Security` functions turn parsed flags into Coordinator / Worker options.
 */
import { Option, type Command } from 'commander';
import { parseClientTokens, readSecret, tokenFingerprint } from '../../shared/auth.js';
import { LIMIT_SPECS, type Limits } from '../../shared/limits.js';
import { channelCredentials, type ServerTlsFiles } from '../../shared/tls.js';
import type { CoordinatorOptions } from '../../coordinator/coordinator.js';
import type { WorkerOptions } from '../../worker/worker.js';
import { UsageError } from './submit.js';

const positiveInt = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${flag}: "${v}" is not a positive integer`);
  return n;
};

/** Adds the coordinator's TLS, token and limit flags. */
export function coordinatorSecurityOptions(c: Command): Command {
  c.option('--tls-cert <file>', 'serve TLS with this certificate (PEM)')
    .option('--tls-key <file>', 'private key of --tls-cert (PEM)')
    .option('--tls-ca <file>', 'CA that client certificates must chain to (asks every peer for one)')
    .option('--require-worker-cert', 'workers must present a certificate signed by --tls-ca (mutual TLS)')
    .option('--insecure', 'allow plaintext on a non-loopback address (trusted networks only)')
    .option('--worker-token <token>', 'join token every worker must present (prefer the env var or a file)')
    .option('--worker-token-file <file>', 'file holding the worker join token')
    .option('--client-tokens <list>', 'client API tokens, NAME:TOKEN[:admin],... (prefer a file)')
    .option('--client-tokens-file <file>', 'file of client API tokens, one NAME:TOKEN[:admin] per line');
  for (const s of LIMIT_SPECS) c.addOption(new Option(`${s.flag} <n>`, `limit: ${s.description} (default ${s.fallback})`).argParser(positiveInt(s.flag)));
  return c;
}

/** Parsed coordinator security flags. */
interface CoordinatorSecurityFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  requireWorkerCert?: boolean;
  insecure?: boolean;
  workerToken?: string;
  workerTokenFile?: string;
  clientTokens?: string;
  clientTokensFile?: string;
}

/** Coordinator options from the parsed flags (the rest of `o` is ignored). */
export function coordinatorSecurity(o: object): Pick<CoordinatorOptions, 'tls' | 'insecure' | 'auth' | 'limits'> {
  const f = o as CoordinatorSecurityFlags & Partial<Record<keyof Limits, number>>;
  if (Boolean(f.tlsCert) !== Boolean(f.tlsKey)) throw new Error('--tls-cert and --tls-key go together');
  if (f.requireWorkerCert && !f.tlsCa) throw new Error('--require-worker-cert needs --tls-ca (the CA that signs worker certificates)');
  const tls: ServerTlsFiles | undefined = f.tlsCert && f.tlsKey ? { cert: f.tlsCert, key: f.tlsKey, ca: f.tlsCa } : undefined;
  // One source or the other (see resolveSecretSources), never both merged: a token removed from
  // the file must not stay valid because the environment still lists it.
  const clientTokensText = readSecret({ value: f.clientTokens, file: f.clientTokensFile });
  const clientTokens = clientTokensText ? parseClientTokens(clientTokensText) : [];
  const limits: Partial<Limits> = {};
  for (const s of LIMIT_SPECS) if (f[s.key] !== undefined) limits[s.key] = f[s.key]!;
  return {
    tls,
    insecure: Boolean(f.insecure),
    auth: { workerToken: readSecret({ value: f.workerToken, file: f.workerTokenFile }), clientTokens, requireWorkerCert: Boolean(f.requireWorkerCert) },
    limits,
  };
}

/** Adds a worker's TLS and join-token flags. */
export function workerSecurityOptions(c: Command): Command {
  return c
    .option('--tls-ca <file>', 'CA to trust for the coordinator (default: system roots when --tls)')
    .option('--tls', 'connect with TLS (implied by --tls-ca or --tls-cert)')
    .option('--tls-cert <file>', 'client certificate for mutual TLS (PEM)')
    .option('--tls-key <file>', 'private key of --tls-cert (PEM)')
    .option('--worker-token <token>', 'join token (prefer the env var or a file)')
    .option('--worker-token-file <file>', 'file holding the join token')
    .option('--memory-limit-mb <mib>', 'memory ceiling of one subtask (its processor runs in a child process); 0 = in-process', (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--memory-limit-mb: "${v}" is not a whole number of MiB`);
      return n;
    });
}

/** Worker options from the parsed flags. */
export function workerSecurity(o: object): Pick<WorkerOptions, 'credentials' | 'token' | 'memoryLimitMb'> {
  const f = o as { tlsCa?: string; tls?: boolean; tlsCert?: string; tlsKey?: string; workerToken?: string; workerTokenFile?: string; memoryLimitMb?: number };
  const token = readSecret({ value: f.workerToken, file: f.workerTokenFile });
  return {
    credentials: channelCredentials({ ca: f.tlsCa, cert: f.tlsCert, key: f.tlsKey }, Boolean(f.tls)),
    ...(token ? { token } : {}),
    ...(f.memoryLimitMb !== undefined ? { memoryLimitMb: f.memoryLimitMb } : {}),
  };
}

/** Client flags and the environment variables the client library reads them from. */
const CLIENT_FLAGS: readonly [flag: string, attr: string, env: string, description: string][] = [
  ['--token <token>', 'token', 'TESSERA_TOKEN', 'API token (prefer the env var or --token-file)'],
  ['--token-file <file>', 'tokenFile', 'TESSERA_TOKEN_FILE', 'file holding the API token'],
  ['--tls-ca <file>', 'tlsCa', 'TESSERA_TLS_CA', 'CA to trust for the coordinator (TLS)'],
  ['--tls-cert <file>', 'tlsCert', 'TESSERA_TLS_CERT', 'client certificate (mutual TLS)'],
  ['--tls-key <file>', 'tlsKey', 'TESSERA_TLS_KEY', 'private key of --tls-cert'],
];

/**
 * Adds token and TLS flags to every client command (those with `--coordinator`, except `worker`),
 * and hands their values to the client library through its environment variables, so that every
 * command's client picks them up without each command passing them along.
 */
export function clientSecurityOptions(program: Command): Command {
  const visit = (c: Command): void => {
    const isClient = c.options.some((o) => o.long === '--coordinator') && c.name() !== 'worker';
    if (isClient) {
      for (const [flag, , env, description] of CLIENT_FLAGS) c.addOption(new Option(flag, description).env(env));
      c.option('--tls', 'connect with TLS using the system roots (implied by --tls-ca)');
      c.hook('preAction', (cmd) => {
        resolveSecretSources(cmd);
        const o = cmd.opts<Record<string, unknown>>();
        for (const [, attr, env] of CLIENT_FLAGS) {
          if (typeof o[attr] === 'string') process.env[env] = o[attr];
          // The client library reads the environment: a TESSERA_TOKEN that --token-file beat must go.
          else if (cmd.getOptionValueSource(attr) === OVERRIDDEN) delete process.env[env];
        }
        if (o['tls'] === true) process.env['TESSERA_TLS'] = '1';
      });
    }
    c.commands.forEach(visit);
  };
  visit(program);
  return program;
}

/** Secrets that may be given as a value or as a file holding it: attribute names of the two options. */
const SECRET_OPTIONS: readonly { value: string; file: string; list?: true }[] = [
  { value: 'workerToken', file: 'workerTokenFile' },
  { value: 'clientTokens', file: 'clientTokensFile', list: true },
  { value: 'token', file: 'tokenFile' },
];

/** Source of an option that lost to its twin of higher precedence (its value is then undefined). */
const OVERRIDDEN = 'overridden';

/** Precedence of option sources (flag > environment > config file > default). */
const SOURCE_RANK: Readonly<Record<string, number>> = { cli: 4, env: 3, config: 2, implied: 1, default: 1 };

/** How a user gave `option` at `source`, for error messages. */
function spelling(option: Option, source: string | undefined): string {
  if (source === 'env' && option.envVar) return option.envVar;
  if (source === 'config') return `config key "${option.long?.slice(2)}"`;
  return option.long ?? option.attributeName();
}

/**
 * A secret given as a value (`--worker-token`) and as a file (`--worker-token-file`) is one setting:
 * the source of higher precedence wins, whichever form it took, and the other is unset (source
 * `overridden`). Both at the same level is a usage error. Without this, TESSERA_WORKER_TOKEN would
 * beat `--worker-token-file`, the reverse of the documented precedence. Runs after the config file
 * has been applied (configurable() calls it for the commands it manages).
 */
export function resolveSecretSources(cmd: Command): void {
  const byName = new Map(cmd.options.map((o) => [o.attributeName(), o]));
  for (const pair of SECRET_OPTIONS) {
    const value = byName.get(pair.value);
    const file = byName.get(pair.file);
    if (!value || !file || cmd.getOptionValue(pair.value) === undefined || cmd.getOptionValue(pair.file) === undefined) continue;
    const [valueSource, fileSource] = [cmd.getOptionValueSource(pair.value), cmd.getOptionValueSource(pair.file)];
    const [valueRank, fileRank] = [SOURCE_RANK[valueSource ?? ''] ?? 0, SOURCE_RANK[fileSource ?? ''] ?? 0];
    if (valueRank === fileRank) throw new UsageError(`${spelling(value, valueSource)} and ${spelling(file, fileSource)} are both set: give the secret one way only`);
    cmd.setOptionValueWithSource(valueRank > fileRank ? pair.file : pair.value, undefined, OVERRIDDEN);
  }
}

/**
 * `options` with every secret value replaced by its fingerprint (the one the coordinator logs), so
 * that `--print-config` output can be pasted into a ticket: `<redacted 1a2b3c4d>`, and for client
 * token lists each `NAME:<redacted ...>[:admin]`. Files holding secrets are paths and stay.
 */
export function redactSecrets(options: Record<string, unknown>): Record<string, unknown> {
  const out = { ...options };
  const redact = (token: string): string => `<redacted ${tokenFingerprint(token)}>`;
  for (const { value, list } of SECRET_OPTIONS) {
    const v = out[value];
    if (v === undefined) continue;
    if (typeof v !== 'string') out[value] = '<redacted>';
    else if (!list) out[value] = redact(v.trim());
    else {
      try {
        out[value] = parseClientTokens(v).map((e) => `${e.id}:${redact(e.token)}${e.role === 'admin' ? ':admin' : ''}`).join(',');
      } catch {
        out[value] = '<redacted>';
      }
    }
  }
  return out;
}
