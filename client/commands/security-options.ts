/**
 * Security flags of the `tessera` commands (TLS, tokens, limits), kept out of cli.ts so that the
 * command definitions stay readable. Each adder returns the command, so it composes with the others;
 * the `*Security` functions turn parsed flags into Coordinator / Worker options.
 */
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { MIN_TOKEN_LENGTH, parseClientTokens, readSecret, tokenFingerprint, tokenProblem, type TokenEntry } from '../../shared/auth.js';
import { LIMIT_SPECS, limitRule, type LimitSpec, type Limits } from '../../shared/limits.js';
import { channelCredentials, type ServerTlsFiles } from '../../shared/tls.js';
import type { CoordinatorOptions } from '../../coordinator/coordinator.js';
import type { WorkerOptions } from '../../worker/worker.js';
import { UsageError } from './usage-error.js';

// InvalidArgumentError: commander reports it as a usage error (exit 2), as it does int()'s.
const limitValue = (s: LimitSpec) => (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < (s.min ?? 1)) throw new InvalidArgumentError(`${s.flag}: "${v}" ${limitRule(s)}`);
  return n;
};

/** How the user gave an option (by attribute name): `--ttl-ms`, `TESSERA_TTL_MS` or `config key "ttl-ms"`. */
export type OptionNamer = (attr: string) => string;

/** Names options by their flags, for callers that have no parsed command. */
export const byFlag: OptionNamer = (attr) => `--${attr.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Names the options of `cmd` as the user gave them: flag, environment variable or config key. */
export function optionNamer(cmd: Command): OptionNamer {
  return (attr) => {
    const option = cmd.options.find((o) => o.attributeName() === attr);
    return option ? spelling(option, cmd.getOptionValueSource(attr)) : byFlag(attr);
  };
}

/** A setting and its value as the user wrote it: `--tls-ca FILE`, `TESSERA_TLS_CA=FILE`, `config key "tls-ca" (FILE)`. */
export function setting(name: string, value: unknown): string {
  if (name.startsWith('-')) return `${name} ${String(value)}`;
  if (/^[A-Z][A-Z0-9_]*$/.test(name)) return `${name}=${String(value)}`;
  return `${name} (${String(value)})`;
}

/**
 * Refuses, as a usage error naming the option, a file that cannot be read: checked before
 * anything starts, so that it is not a bare ENOENT from deep inside (or, for the coordinator's
 * certificates, one that comes only once the data dir is open).
 */
export function checkReadableFile(file: string | undefined, name: string): void {
  if (file === undefined) return;
  let problem: string | undefined;
  try {
    if (!statSync(file).isFile()) problem = 'not a file';
    else accessSync(file, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problem = code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : code === 'EACCES' ? 'not readable by this process' : (err as Error).message;
  }
  if (problem) throw new UsageError(`${setting(name, file)}: ${problem}`);
}

/** Refuses a TLS certificate without its key, or a key without its certificate. */
function checkCertKeyPair(f: { tlsCert?: string | undefined; tlsKey?: string | undefined }, name: OptionNamer): void {
  if (Boolean(f.tlsCert) !== Boolean(f.tlsKey)) throw new UsageError(`${name(f.tlsCert ? 'tlsCert' : 'tlsKey')} needs ${f.tlsCert ? '--tls-key' : '--tls-cert'}: the certificate and its key go together`);
}

/**
 * Refuses, naming the options, TLS files that cannot work: a certificate or CA that is not PEM, a
 * certificate out of its validity dates, and a key that is not the certificate's. Checked before
 * anything starts: a coordinator with a mismatched key listened and answered /healthz while every
 * connection failed, and an expired one said nothing while every client was refused.
 */
function checkTlsFiles(f: { tlsCa?: string | undefined; tlsCert?: string | undefined; tlsKey?: string | undefined }, name: OptionNamer, what: string): void {
  const certificate = (file: string, attr: string): X509Certificate => {
    try {
      return new X509Certificate(readFileSync(file));
    } catch (err) {
      throw new UsageError(`${setting(name(attr), file)}: not a PEM certificate (${(err as Error).message})`);
    }
  };
  const now = Date.now();
  if (f.tlsCa) {
    certificate(f.tlsCa, 'tlsCa');
    // Every certificate of the bundle: it is unusable only when none is valid now. An expired CA
    // refused every peer's certificate, each told to check that it was signed by this CA (it was).
    const bundle = certificatesIn(f.tlsCa);
    if (bundle.length > 0 && bundle.every((c) => Date.parse(c.validTo) < now || Date.parse(c.validFrom) > now)) {
      const c = bundle[0]!;
      const when = Date.parse(c.validTo) < now ? `expired on ${c.validTo}` : `is valid only from ${c.validFrom} (is this machine's clock right?)`;
      throw new UsageError(`${setting(name('tlsCa'), f.tlsCa)}: the CA certificate ${when}${bundle.length > 1 ? ', as is every other one in the file' : ''}: no certificate it signed can be verified`);
    }
  }
  if (!f.tlsCert || !f.tlsKey) return;
  const cert = certificate(f.tlsCert, 'tlsCert');
  if (Date.parse(cert.validTo) < now) throw new UsageError(`${setting(name('tlsCert'), f.tlsCert)}: ${what} expired on ${cert.validTo}; make a new one`);
  if (Date.parse(cert.validFrom) > now) throw new UsageError(`${setting(name('tlsCert'), f.tlsCert)}: ${what} is valid only from ${cert.validFrom} (is this machine's clock right?)`);
  try {
    createSecureContext({ cert: readFileSync(f.tlsCert), key: readFileSync(f.tlsKey) });
  } catch (err) {
    throw new UsageError(`${setting(name('tlsKey'), f.tlsKey)}: not the private key of ${name('tlsCert')} ${f.tlsCert}, or not a PEM key (${(err as Error).message})`);
  }
}

/** The certificates of a PEM file (a bundle), those that parse. */
function certificatesIn(file: string): X509Certificate[] {
  return (readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).flatMap((pem) => {
    try {
      return [new X509Certificate(pem)];
    } catch {
      return [];
    }
  });
}

/**
 * The certificates a coordinator or worker was given (its own, and the CA's), with when each
 * expires: for a warning before it does (see watchCertificates in servers.ts). The last of a CA
 * bundle's certificates to expire counts.
 */
export function certificateExpiries(o: object, name: OptionNamer, whose: string): { what: string; validTo: number }[] {
  const f = o as { tlsCa?: string; tlsCert?: string };
  const out: { what: string; validTo: number }[] = [];
  if (f.tlsCert) {
    const [leaf] = certificatesIn(f.tlsCert);
    if (leaf) out.push({ what: `${whose} ${setting(name('tlsCert'), f.tlsCert)}`, validTo: Date.parse(leaf.validTo) });
  }
  if (f.tlsCa) {
    const last = Math.max(...certificatesIn(f.tlsCa).map((c) => Date.parse(c.validTo)));
    if (Number.isFinite(last)) out.push({ what: `the CA certificate ${setting(name('tlsCa'), f.tlsCa)}`, validTo: last });
  }
  return out;
}

/** Refuses a token no coordinator accepts (see MIN_TOKEN_LENGTH) or no call can carry (tokenProblem), without showing it. */
function checkToken(token: string | undefined, name: string, whose: string): void {
  if (token === undefined) return;
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new UsageError(`${name}: ${whose} is shorter than ${MIN_TOKEN_LENGTH} characters, the least a coordinator accepts (make one with \`openssl rand -hex 24\`)`);
  }
  const problem = tokenProblem(token);
  if (problem) throw new UsageError(`${name}: ${whose} ${problem}`);
}

/** Reads a secret given as a value or a file (one of the two; see resolveSecretSources), naming the one given. */
function secretOf(f: Record<string, unknown>, value: string, file: string, name: OptionNamer): { secret: string | undefined; name: string } {
  const path = f[file] as string | undefined;
  checkReadableFile(path, name(file));
  return { secret: readSecret({ value: f[value] as string | undefined, file: path }), name: path !== undefined ? setting(name(file), path) : name(value) };
}

/** The coordinator's TLS settings' environment variables, apart from the clients' and workers' TESSERA_TLS_*. */
export const SERVER_TLS_ENV = { tlsCert: 'TESSERA_SERVER_TLS_CERT', tlsKey: 'TESSERA_SERVER_TLS_KEY', tlsCa: 'TESSERA_SERVER_TLS_CA' } as const;

/**
 * The clients' TLS variables set where a coordinator starts without its own setting of the same
 * name: it does not read them. Each as a line for its log, naming what it reads instead.
 */
export function clientTlsVariablesIgnored(cmd: Command | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const [attr, server] of Object.entries(SERVER_TLS_ENV)) {
    const client = server.replace('SERVER_', '');
    if (!env[client] || (cmd && cmd.getOptionValueSource(attr) !== undefined)) continue;
    const flag = byFlag(attr);
    out.push(`${client} is set but not read: it is what clients and workers use; the coordinator's own setting is ${flag} (${server}, config key "${flag.slice(2)}")`);
  }
  return out;
}

/** Adds the coordinator's TLS, token and limit flags. */
export function coordinatorSecurityOptions(c: Command): Command {
  // Their variables are the server's own (SERVER_TLS_ENV): TESSERA_TLS_* are what clients and
  // workers trust and present, and a coordinator started from a shell set up for clients took a
  // client's CA as the one to check its peers' certificates against.
  c.addOption(new Option('--tls-cert <file>', 'serve TLS with this certificate (PEM)').env(SERVER_TLS_ENV.tlsCert))
    .addOption(new Option('--tls-key <file>', 'private key of --tls-cert (PEM)').env(SERVER_TLS_ENV.tlsKey))
    .addOption(new Option('--tls-ca <file>', 'CA that client certificates must chain to (asks every peer for one)').env(SERVER_TLS_ENV.tlsCa))
    .option('--require-worker-cert', 'workers must present a certificate signed by --tls-ca (mutual TLS)')
    .option('--insecure', 'allow plaintext on a non-loopback address (trusted networks only)')
    .option('--worker-token <token>', 'join token every worker must present (prefer the env var or a file)')
    .option('--worker-token-file <file>', 'file holding the worker join token')
    .option('--client-tokens <list>', 'client API tokens, NAME:TOKEN[:admin],... (prefer a file)')
    .option('--client-tokens-file <file>', 'file of client API tokens, one NAME:TOKEN[:admin] per line');
  for (const s of LIMIT_SPECS) c.addOption(new Option(`${s.flag} <n>`, `limit: ${s.description} (default ${readableDefault(s)})`).argParser(limitValue(s)));
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

/**
 * Coordinator options from the parsed flags (the rest of `o` is ignored). Settings that cannot
 * work (a missing file, a short token, one TLS file without the other) are usage errors naming the
 * option as `name` spells it.
 */
export function coordinatorSecurity(o: object, name: OptionNamer = byFlag): Pick<CoordinatorOptions, 'tls' | 'insecure' | 'auth' | 'limits'> {
  const f = o as CoordinatorSecurityFlags & Partial<Record<keyof Limits, number>>;
  checkCertKeyPair(f, name);
  if (f.requireWorkerCert && !f.tlsCa) throw new UsageError(`${name('requireWorkerCert')} needs --tls-ca (the CA that signs worker certificates)`);
  // Without a certificate the coordinator serves plaintext: every worker would be refused for want
  // of a certificate it cannot present.
  if (f.requireWorkerCert && !f.tlsCert) throw new UsageError(`${name('requireWorkerCert')} needs --tls-cert and --tls-key: client certificates are checked only over TLS`);
  // A CA alone would be dropped: the coordinator would serve plaintext and check no certificate.
  if (f.tlsCa && !f.tlsCert) throw new UsageError(`${name('tlsCa')} needs --tls-cert and --tls-key: the coordinator asks its peers for certificates only over TLS`);
  for (const attr of ['tlsCert', 'tlsKey', ...(f.tlsCert ? (['tlsCa'] as const) : [])] as const) checkReadableFile(f[attr], name(attr));
  if (f.tlsCert) checkTlsFiles(f, name, 'the coordinator certificate');
  const tls: ServerTlsFiles | undefined = f.tlsCert && f.tlsKey ? { cert: f.tlsCert, key: f.tlsKey, ca: f.tlsCa } : undefined;
  // One source or the other (see resolveSecretSources), never both merged: a token removed from
  // the file must not stay valid because the environment still lists it.
  const clientTokensSecret = secretOf(f as Record<string, unknown>, 'clientTokens', 'clientTokensFile', name);
  let clientTokens: TokenEntry[] = [];
  try {
    clientTokens = clientTokensSecret.secret !== undefined ? parseClientTokens(clientTokensSecret.secret) : [];
    // Given but empty (an unset variable in a unit file, a file of comments): not "no client tokens".
    if (clientTokensSecret.secret !== undefined && clientTokens.length === 0) throw new Error('holds no NAME:TOKEN entry: a coordinator given none would take every client');
  } catch (err) {
    throw new UsageError(`${clientTokensSecret.name}: ${(err as Error).message}`);
  }
  for (const e of clientTokens) checkToken(e.token, clientTokensSecret.name, `the token of "${e.id}"`);
  const workerToken = secretOf(f as Record<string, unknown>, 'workerToken', 'workerTokenFile', name);
  checkToken(workerToken.secret, workerToken.name, 'the worker token');
  const asWorker = workerToken.secret ? clientTokens.find((e) => e.token === workerToken.secret) : undefined;
  if (asWorker) throw new UsageError(`${clientTokensSecret.name}: the token of "${asWorker.id}" is the worker token (${workerToken.name}): give clients tokens of their own, or that client would be taken for a worker and every worker for that client`);
  // Also refused by the coordinator itself; here it is a usage error, before anything starts.
  if (clientTokens.length > 0 && !workerToken.secret) {
    throw new UsageError(`${clientTokensSecret.name} needs a worker token: set --worker-token-file (or --worker-token, TESSERA_WORKER_TOKEN) too, or anyone could join as a worker and read every job`);
  }
  const limits: Partial<Limits> = {};
  for (const s of LIMIT_SPECS) if (f[s.key] !== undefined) limits[s.key] = f[s.key]!;
  return {
    tls,
    insecure: Boolean(f.insecure),
    auth: { workerToken: workerToken.secret, clientTokens, requireWorkerCert: Boolean(f.requireWorkerCert) },
    limits,
  };
}

/**
 * What a coordinator's security settings amount to, in a few words for its startup line:
 * `TLS, worker certificates required, worker token, 3 client tokens`, `plaintext, no tokens`.
 * Counts and kinds only, never a secret.
 */
export function securitySummary(s: Pick<CoordinatorOptions, 'tls' | 'auth'>): string {
  const parts = [s.tls ? 'TLS' : 'plaintext'];
  if (s.tls?.ca) parts.push(s.auth?.requireWorkerCert ? 'worker certificates required' : 'client certificates asked for, not required (--require-worker-cert holds workers to them)');
  const clients = s.auth?.clientTokens?.length ?? 0;
  if (!s.auth?.workerToken && clients === 0) parts.push('no tokens');
  else parts.push(s.auth?.workerToken ? 'worker token' : 'no worker token', clients > 0 ? `${clients} client token${clients === 1 ? '' : 's'}` : 'no client tokens');
  return parts.join(', ');
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
    .option('--memory-limit-mb <mib>', "memory ceiling of one subtask (its processor runs in a child process); 0 = in-process (default: 80% of this machine's available memory over the slots, at least 1024 unless that 80% is less)", (v) => {
      // Digits only: Number("") is 0, which runs processors in-process with no ceiling (and 0x10 is 16).
      const n = /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`--memory-limit-mb: "${v}" is not a whole number of MiB (0 runs processors in-process)`);
      return n;
    });
}

/** Worker options from the parsed flags; settings that cannot work are usage errors, as for the coordinator. */
export function workerSecurity(o: object, name: OptionNamer = byFlag): Pick<WorkerOptions, 'credentials' | 'token' | 'memoryLimitMb'> {
  const f = o as { tlsCa?: string; tls?: boolean; tlsCert?: string; tlsKey?: string; workerToken?: string; workerTokenFile?: string; memoryLimitMb?: number };
  checkCertKeyPair(f, name);
  for (const attr of ['tlsCa', 'tlsCert', 'tlsKey'] as const) checkReadableFile(f[attr], name(attr));
  checkTlsFiles(f, name, 'the worker certificate');
  const { secret: token, name: tokenName } = secretOf(f as Record<string, unknown>, 'workerToken', 'workerTokenFile', name);
  // No coordinator accepts it: better said now than as a refusal on every try.
  checkToken(token, tokenName, 'the worker token');
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
        const name = optionNamer(cmd);
        checkCertKeyPair(o, name);
        for (const attr of ['tokenFile', 'tlsCa', 'tlsCert', 'tlsKey']) checkReadableFile(o[attr] as string | undefined, name(attr));
        checkTlsFiles(o, name, 'the client certificate');
        // A token no call can carry: grpc-js would refuse it at the first call, quoting it.
        const tokenFile = o['tokenFile'] as string | undefined;
        const token = readSecret({ value: o['token'] as string | undefined, file: tokenFile });
        const problem = token === undefined ? undefined : tokenProblem(token);
        if (problem) throw new UsageError(`${tokenFile !== undefined ? setting(name('tokenFile'), tokenFile) : name('token')}: the token ${problem}`);
        for (const [, attr, env] of CLIENT_FLAGS) {
          if (typeof o[attr] === 'string') process.env[env] = o[attr];
          // The client library reads the environment: a TESSERA_TOKEN that --token-file beat must go.
          else if (cmd.getOptionValueSource(attr) === OVERRIDDEN) delete process.env[env];
        }
        if (o['tls'] === true) process.env['TESSERA_TLS'] = '1';
        // What a command printed to paste must carry to reach the coordinator the same way (not a
        // token given as a value: a secret; one from the environment is still there when pasted).
        givenConnectionFlags = [];
        for (const [flag, attr] of CLIENT_FLAGS) {
          if (attr !== 'token' && typeof o[attr] === 'string' && cmd.getOptionValueSource(attr) === 'cli') givenConnectionFlags.push(flag.split(' ')[0]!, path.resolve(o[attr]));
        }
        if (o['tls'] === true && cmd.getOptionValueSource('tls') === 'cli') givenConnectionFlags.push('--tls');
      });
    }
    c.commands.forEach(visit);
  };
  visit(program);
  return program;
}

/** `word` as a shell reads it back: as it is when plain, else in single quotes. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

let givenConnectionFlags: string[] = [];

/**
 * The connection flags (token file, TLS files, --tls) given on this command's line, files made
 * absolute: for the commands a command prints to be pasted (`tessera download ID ...`).
 */
export function connectionFlagsGiven(): readonly string[] {
  return givenConnectionFlags;
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

/** A limit's default as people read it: bytes in GiB and seconds in hours, beside the number to type. */
function readableDefault(s: LimitSpec): string {
  if (s.fallbackText) return s.fallbackText;
  const exact = String(s.fallback);
  if (s.key.endsWith('Bytes') && s.fallback % 1024 ** 3 === 0) return `${s.fallback / 1024 ** 3} GiB = ${exact}`;
  if (s.key.endsWith('Seconds') && s.fallback % 3600 === 0) return `${s.fallback / 3600} h = ${exact}`;
  return exact;
}
