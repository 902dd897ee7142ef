/**
 * Who may call what on the coordinator. One server interceptor authenticates every Tessera call
 * before its handler runs (health and reflection stay open, for probes): the worker join token (and,
 * with `requireWorkerCert`, a client certificate signed by the CA) for WorkerService, a client token
 * for JobService. Failures are rate-limited per peer host (calls with a valid token never are) and
 * logged without the secret. Handlers then ask {@link CoordinatorAuth.identify} who the caller is, to
 * check job ownership.
 *
 * With no tokens configured the cluster runs open (the loopback demo): every caller is `local`, an admin.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { status } from '../shared/grpc-status.js';
import { TokenTable, bearerToken, tokenFingerprint, tokenProblem, tokenShared, type Principal, type TokenEntry } from '../shared/auth.js';
import { TesseraError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { steadyNow } from '../shared/clock.js';
import { FailureRateLimiter, peerHost, type RateLimitOptions } from './auth-rate-limit.js';

/** TLS facts of a call (grpc-js does not export the type by name). */
type AuthContext = ReturnType<grpc.ServerUnaryCall<unknown, unknown>['getAuthContext']>;

/** Token and certificate settings of the coordinator. */
export interface AuthConfig {
  /** The join token every worker presents. */
  workerToken?: string | undefined;
  /** Client API tokens (identity, token, role). */
  clientTokens?: readonly TokenEntry[] | undefined;
  /** Workers must present a client certificate signed by the coordinator's `--tls-ca`. */
  requireWorkerCert?: boolean | undefined;
  rateLimit?: RateLimitOptions | undefined;
}

/** The caller of a JobService method. */
export interface Caller {
  id: string;
  /** Admins may read and cancel every job. */
  admin: boolean;
}

const OPEN_CALLER: Caller = { id: 'local', admin: true };
const WORKER_PREFIX = '/tessera.v1.WorkerService/';
const JOB_PREFIX = '/tessera.v1.JobService/';

/** What a token may see on the dashboard: all (admin), nothing (a client token), or it is not known. */
export type DashboardAccess = 'admin' | 'forbidden' | 'unauthenticated';

/** How often the same refused authentication is logged at warn again (CoordinatorAuth.logFailure). */
const AUTH_FAILURE_LOG_EVERY_MS = 60_000;

export class CoordinatorAuth {
  private readonly tokens: TokenTable;
  private readonly limiter: FailureRateLimiter;
  /** True when client calls need no token. */
  readonly clientsOpen: boolean;
  /** True when worker calls need no token. */
  readonly workersOpen: boolean;

  constructor(
    private readonly config: AuthConfig,
    private readonly log: Logger,
  ) {
    const entries: TokenEntry[] = [...(config.clientTokens ?? [])];
    if (config.workerToken) entries.push({ id: 'worker', role: 'worker', token: config.workerToken });
    // The command line refuses these as usage errors; a program starting a coordinator is told too.
    const clash = tokenShared(entries);
    if (clash) throw new Error(`auth: "${clash[0]}" and "${clash[1]}" have the same token: each needs its own`);
    this.tokens = new TokenTable(entries);
    this.clientsOpen = (config.clientTokens ?? []).length === 0;
    this.workersOpen = !config.workerToken;
    this.limiter = new FailureRateLimiter(config.rateLimit);
  }

  /** The caller of a JobService call (the interceptor has already authenticated it). */
  identify(md: grpc.Metadata): Caller {
    if (this.clientsOpen) return OPEN_CALLER;
    const token = bearerToken(md);
    const p = token === undefined ? undefined : this.tokens.lookup(token);
    if (!p || p.role === 'worker') throw new TesseraError(status.UNAUTHENTICATED, 'missing or unknown client token', { retryable: false });
    return { id: p.id, admin: p.role === 'admin' };
  }

  /** Throws PERMISSION_DENIED unless `caller` may read, watch, cancel or download a job of `owner`. */
  assertOwner(caller: Caller, owner: string, jobId: string): void {
    if (caller.admin || caller.id === owner) return;
    throw new TesseraError(status.PERMISSION_DENIED, `job ${jobId} belongs to another client`, { retryable: false });
  }

  /** Checks one call; returns a status to refuse it with, or undefined to let it through. */
  check(path: string, md: grpc.Metadata, peer: string, authContext: AuthContext | undefined): { code: status; details: string } | undefined {
    const isWorker = path.startsWith(WORKER_PREFIX);
    const isJob = path.startsWith(JOB_PREFIX);
    if (!isWorker && !isJob) return undefined;
    // A side that checks nothing (clients without tokens, workers without token or certificate)
    // has nothing to guess: its calls neither wait nor vouch for their token on the other side.
    if (isWorker ? this.workersOpen && !this.config.requireWorkerCert : this.clientsOpen) return undefined;
    const host = peerHost(peer);
    const token = bearerToken(md);
    // What a token proved is kept per side: a worker token that worked says nothing of a client's.
    const key = `${isWorker ? 'worker' : 'client'}:${token === undefined ? '' : secretKey(token)}`;
    const wait = this.limiter.retryAfterMs(host);
    // While an address is held back, only tokens that have already worked from it are looked at:
    // a guesser learns nothing, and the clients and workers sharing its address (a NAT, Docker's
    // proxy) that were already at work go on. Everything else waits.
    if (wait > 0 && !this.knownGood.get(host)?.has(key)) {
      return { code: status.RESOURCE_EXHAUSTED, details: `too many failed authentications from ${host}: retry in ${Math.ceil(wait / 1000)} s` };
    }
    const refusal = isWorker ? this.checkWorker(md, authContext) : this.checkClient(md);
    if (!refusal) {
      this.rememberGood(host, key);
      return undefined;
    }
    this.limiter.fail(host);
    this.logFailure(host, { peer, method: path, code: grpc.status[refusal.code], reason: refusal.details, ...(token ? { tokenFingerprint: tokenFingerprint(token) } : {}) });
    return refusal;
  }

  /** When each refusal (by address, reason and token) was last logged at warn, and how often it came since. */
  private readonly failuresLogged = new Map<string, { at: number; since: number }>();

  /**
   * Logs a refusal at warn, and the same refusal again (one address, reason and token: a worker
   * set up wrongly, retrying every few seconds for ever) at most once a minute, with how many came
   * in between (at debug): one such worker wrote a warning per try (review OPS11).
   */
  private logFailure(host: string, fields: { peer: string; method: string; code: string | undefined; reason: string; tokenFingerprint?: string }): void {
    const key = `${host}\n${fields.reason}\n${fields.tokenFingerprint ?? ''}`;
    const now = steadyNow();
    const last = this.failuresLogged.get(key);
    if (last && now - last.at < AUTH_FAILURE_LOG_EVERY_MS) {
      last.since++;
      this.log.debug(fields, 'authentication failed');
      return;
    }
    this.failuresLogged.delete(key);
    this.failuresLogged.set(key, { at: now, since: 0 });
    // Bounded: the oldest forgotten first (a guesser from many addresses cannot grow it).
    if (this.failuresLogged.size > 1000) this.failuresLogged.delete(this.failuresLogged.keys().next().value!);
    // The fingerprint lets an operator tell "an old token" from "random guesses" without logging a secret.
    this.log.warn({ ...fields, ...(last?.since ? { sinceLastLogged: last.since } : {}) }, 'authentication failed');
  }

  /** Tokens (their SHA-256) that authenticated from each address: bounded, oldest forgotten first. */
  private readonly knownGood = new Map<string, Set<string>>();
  /** Where {@link knownGood} is kept across restarts (see {@link keepKnownGoodIn}). */
  private knownGoodFile: string | undefined;
  private saving: Promise<void> | undefined;
  private saveAgain = false;

  private rememberGood(host: string, key: string): void {
    if (this.addKnownGood(host, key)) this.saveKnownGood();
  }

  /** Adds `key` for `host` (bounded, oldest forgotten first); false when it was there. */
  private addKnownGood(host: string, key: string): boolean {
    let set = this.knownGood.get(host);
    if (set?.has(key)) return false;
    if (!set) {
      if (this.knownGood.size >= 10_000) this.knownGood.delete(this.knownGood.keys().next().value!);
      this.knownGood.set(host, (set = new Set()));
    }
    if (set.size >= 64) set.delete(set.values().next().value!);
    set.add(key);
    return true;
  }

  /**
   * Keeps the tokens known to have worked from each address in `file` (the data dir), read back
   * now: a coordinator that restarts while a client behind a shared address (a NAT, Docker's proxy,
   * a CI runner) retries with a rotated token has its workers and the other clients there get back
   * in, as they went on before it (review C). Only SHA-256s of tokens, as in memory; a file that
   * cannot be read starts empty.
   */
  keepKnownGoodIn(file: string): void {
    this.knownGoodFile = file;
    // Only the keys of tokens configured now: a token rotated away (or a key no token of this
    // configuration has) is not known-good, and waits like any other after a restart.
    const current = new Set<string>();
    for (const e of this.config.clientTokens ?? []) current.add(`client:${secretKey(e.token)}`);
    if (this.config.workerToken) current.add(`worker:${secretKey(this.config.workerToken)}`);
    try {
      const kept = JSON.parse(readFileSync(file, 'utf8')) as { hosts?: Record<string, unknown> };
      for (const [host, keys] of Object.entries(kept.hosts ?? {})) {
        if (!Array.isArray(keys)) continue;
        for (const key of keys) if (typeof key === 'string' && current.has(key)) this.addKnownGood(host, key);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: (err as Error).message, file }, 'the tokens known to have worked could not be read back; starting without them');
    }
  }

  /** Writes {@link knownGood} (whole, atomically; one write at a time, the last state last). */
  private saveKnownGood(): void {
    const file = this.knownGoodFile;
    if (!file) return;
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    const hosts = Object.fromEntries([...this.knownGood].map(([host, keys]) => [host, [...keys]]));
    // A name of its own each time: a file left by a process of the same pid (1, in a container)
    // keeps its mode and owner when written over.
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    this.saving = writeFile(tmp, JSON.stringify({ hosts }), { mode: 0o600 })
      .then(() => rename(tmp, file))
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message, file }, 'the tokens known to have worked could not be kept; a restart forgets them'))
      .finally(() => {
        this.saving = undefined;
        if (!this.saveAgain) return;
        this.saveAgain = false;
        this.saveKnownGood();
      });
  }

  /** Resolves once the last change of the tokens known to have worked is on disk. */
  async flushKnownGood(): Promise<void> {
    while (this.saving) await this.saving;
  }

  /**
   * What `token`, presented over HTTP from `peer` (the dashboard), may see: an admin client token
   * everything, another client token nothing; under the same limit on failures as gRPC calls.
   */
  dashboardAccess(token: string, peer: string): DashboardAccess {
    // No token of a gRPC header (grpc-js's Metadata would throw on it): a wrong one, counted as one.
    if (tokenProblem(token)) {
      this.limiter.fail(peerHost(peer));
      return 'unauthenticated';
    }
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    if (this.check(`${JOB_PREFIX}Dashboard`, md, peer, undefined)) return 'unauthenticated';
    try {
      return this.identify(md).admin ? 'admin' : 'forbidden';
    } catch {
      return 'unauthenticated';
    }
  }

  private checkWorker(md: grpc.Metadata, authContext: AuthContext | undefined): { code: status; details: string } | undefined {
    if (this.config.requireWorkerCert && !authContext?.sslPeerCertificate) {
      // TLS does not say why a certificate did not verify: every cause is named.
      return { code: status.UNAUTHENTICATED, details: 'workers must present a valid client certificate signed by the coordinator CA (none was presented, or it is from another CA, expired or not yet valid)' };
    }
    if (this.workersOpen) return undefined;
    const p = this.principal(md);
    if (!p) return { code: status.UNAUTHENTICATED, details: bearerToken(md) ? 'unknown worker token' : missingToken('worker', md) };
    if (p.role !== 'worker') return { code: status.PERMISSION_DENIED, details: 'a client token cannot be used by a worker' };
    return undefined;
  }

  private checkClient(md: grpc.Metadata): { code: status; details: string } | undefined {
    if (this.clientsOpen) return undefined;
    const p = this.principal(md);
    if (!p) return { code: status.UNAUTHENTICATED, details: bearerToken(md) ? 'unknown client token' : missingToken('client', md) };
    if (p.role === 'worker') return { code: status.PERMISSION_DENIED, details: 'the worker join token cannot be used by a client' };
    return undefined;
  }

  private principal(md: grpc.Metadata): Principal | undefined {
    const token = bearerToken(md);
    return token === undefined ? undefined : this.tokens.lookup(token);
  }

  /** A grpc-js server interceptor that runs {@link check} on each call's metadata. */
  interceptor(): grpc.ServerInterceptor {
    return (method, call) => {
      const listener = new grpc.ServerListenerBuilder()
        .withOnReceiveMetadata((md, next) => {
          const refusal = this.check(method.path, md, call.getPeer(), call.getAuthContext());
          if (refusal) call.sendStatus({ ...refusal, metadata: new grpc.Metadata() });
          else next(md);
        })
        .build();
      const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
      return new grpc.ServerInterceptingCall(call, responder);
    };
  }
}

/** A token's SHA-256 (hex): what is kept of the tokens that worked. */
function secretKey(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Why no token was read: none sent, or an `authorization` header not of the form `Bearer TOKEN`. */
function missingToken(role: 'client' | 'worker', md: grpc.Metadata): string {
  const given = md.get('authorization')[0];
  if (given === undefined) return `missing ${role} token (authorization: Bearer <token>)`;
  return `the authorization metadata is not "Bearer <token>": no ${role} token read from it`;
}
