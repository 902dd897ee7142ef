/**
 * Bearer tokens: where they come from (flag, environment, file), how they travel (`authorization:
 * Bearer <token>` metadata) and how they are compared (SHA-256 of both sides, `timingSafeEqual`
 * over every known token, so neither the length nor the position of a match leaks through timing).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Metadata } from '@grpc/grpc-js';

/** What a token lets its holder do. */
export type Role = 'client' | 'admin' | 'worker';

/** Who a request comes from, once its token is known. */
export interface Principal {
  /** Identity that owns the jobs it submits ("alice", "admin", "worker"). */
  id: string;
  role: Role;
}

/** A configured token (the secret itself never leaves this module's table in clear). */
export interface TokenEntry extends Principal {
  token: string;
}

/** Shortest token accepted: anything shorter is guessable. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Why no client or worker could send `token`, or undefined. A token travels as one word of a
 * gRPC header (`authorization: Bearer TOKEN`): printable ASCII without spaces. grpc-js refuses
 * anything else as the call is made, with an error that quotes the header (the secret). The
 * reason never holds the token.
 */
export function tokenProblem(token: string): string | undefined {
  if (/[\r\n]/.test(token)) return 'holds a line break (a token file holds the token on one line, and nothing else)';
  if (/\s/.test(token)) return 'contains white space, which no client can send';
  // eslint-disable-next-line no-control-regex
  if (/[^\x21-\x7e]/.test(token)) return 'holds a character other than printable ASCII (letters, digits, punctuation), which a gRPC header cannot carry';
  return undefined;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** A set of tokens, looked up in constant time. */
export class TokenTable {
  private readonly entries: { hash: Buffer; principal: Principal }[];

  constructor(entries: readonly TokenEntry[]) {
    for (const e of entries) {
      if (e.token.length < MIN_TOKEN_LENGTH) throw new Error(`the token of "${e.id}" is shorter than ${MIN_TOKEN_LENGTH} characters`);
      const problem = tokenProblem(e.token);
      if (problem) throw new Error(`the token of "${e.id}" ${problem}`);
    }
    this.entries = entries.map((e) => ({ hash: digest(e.token), principal: { id: e.id, role: e.role } }));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The principal holding `presented`, or undefined. Compares against every entry, without early exit. */
  lookup(presented: string): Principal | undefined {
    const h = digest(presented);
    let found: Principal | undefined;
    for (const e of this.entries) {
      // Hashing first makes both buffers 32 bytes, which timingSafeEqual requires.
      if (timingSafeEqual(h, e.hash) && !found) found = e.principal;
    }
    return found;
  }
}

/** The bearer token of a call, or undefined when there is none. */
export function bearerToken(md: Metadata): string | undefined {
  const raw = md.get('authorization')[0];
  return typeof raw === 'string' ? bearerOf(raw) : undefined;
}

/** The token of an `Authorization` value, its scheme `Bearer` in any case (RFC 9110: schemes are case-blind). */
export function bearerOf(authorization: string | undefined): string | undefined {
  return authorization === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
}

/** A fingerprint of a token that is safe to log (it cannot be turned back into the token). */
export function tokenFingerprint(token: string): string {
  return digest(token).toString('hex').slice(0, 8);
}

/** Sources of one secret: a value or a file given as flags, else a value or a file named in the environment. */
export interface SecretSources {
  /** Given directly (a flag). */
  value?: string | undefined;
  /** A file holding it (a flag). */
  file?: string | undefined;
  /** Environment variable holding it. */
  env?: string;
  /** Environment variable naming a file holding it. */
  fileEnv?: string;
}

/**
 * Reads a secret; trims surrounding whitespace. The flags beat the environment whichever form each
 * takes; a value and a file at the same level are refused rather than one silently preferred.
 */
export function readSecret(s: SecretSources, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromFile = (f: string): string => readFileSync(f, 'utf8').trim();
  // Given (a flag, a config key) even if empty: an empty token is refused as too short, never taken
  // for none (`--worker-token "$UNSET"` started a coordinator any worker could join).
  if (s.value !== undefined && s.file !== undefined) throw new Error('a secret was given both as a value and as a file: give one');
  if (s.value !== undefined) return s.value.trim();
  if (s.file !== undefined) return fromFile(s.file);
  const value = s.env ? env[s.env] : undefined;
  const file = s.fileEnv ? env[s.fileEnv] : undefined;
  if (value && file) throw new Error(`${s.env} and ${s.fileEnv} are both set: set one`);
  if (value) return value.trim();
  if (file) return fromFile(file);
  return undefined;
}

/**
 * Parses client tokens: one per line (or comma-separated) as `NAME:TOKEN` or `NAME:TOKEN:admin`;
 * blank lines and `#` comments are ignored. NAME is the identity that owns the jobs submitted with it.
 */
export function parseClientTokens(text: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  for (const [i, raw] of text.split(/[\n,]/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(':').map((x) => x.trim());
    const [id, token, role] = parts;
    if (parts.length < 2 || parts.length > 3 || !id || !token || (role !== undefined && role !== 'admin')) {
      throw new Error(`client tokens, entry ${i + 1}: expected NAME:TOKEN or NAME:TOKEN:admin`);
    }
    if (!/^[\w.@-]{1,64}$/.test(id)) throw new Error(`client tokens, entry ${i + 1}: name "${id.slice(0, 64)}" may only use letters, digits and . @ _ -`);
    // A token is sent as one word (Authorization: Bearer TOKEN): one with a space could never match.
    const problem = tokenProblem(token);
    if (problem) throw new Error(`client tokens, entry ${i + 1} ("${id}"): the token ${problem}`);
    out.push({ id, token, role: role === 'admin' ? 'admin' : 'client' });
  }
  const clash = tokenShared(out);
  if (clash) throw new Error(`client tokens: "${clash[0]}" and "${clash[1]}" have the same token: each name needs its own (the first would be taken for both)`);
  return out;
}

/**
 * Two names with one token, if any (the worker's among them): a token identifies its holder, so the
 * second name would be taken for the first, or a client for a worker.
 */
export function tokenShared(entries: readonly { id: string; token: string }[]): [string, string] | undefined {
  const seen = new Map<string, string>();
  for (const e of entries) {
    const other = seen.get(e.token);
    if (other !== undefined) return [other, e.id];
    seen.set(e.token, e.id);
  }
  return undefined;
}

/** The client's API token from TESSERA_TOKEN or the file named by TESSERA_TOKEN_FILE. */
export function clientTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return readSecret({ env: 'TESSERA_TOKEN', fileEnv: 'TESSERA_TOKEN_FILE' }, env);
}
