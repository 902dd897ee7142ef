/**
 * Who the coordinator takes a caller for: peers as grpc-js names them (for the limit on failed
 * authentications), and token settings that would make one holder pass for another.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { coordinatorSecurity } from '../client/commands/security-options.js';
import { createLogger } from '../shared/logger.js';
import { CoordinatorAuth } from './auth.js';
import { peerHost } from './auth-rate-limit.js';

const log = createLogger('test', 'silent', 'json');
const bearer = (t: string): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${t}`);
  return m;
};
const token = (c: string): string => c.repeat(20);

describe('peers', () => {
  it('drop the port of an IPv6 peer as a grpc-js server gives it (no brackets), as of an IPv4 one', () => {
    expect(peerHost('::1:54321')).toBe('::1');
    expect(peerHost('::ffff:10.0.0.7:40000')).toBe('::ffff:10.0.0.7');
    expect(peerHost('[::1]:5000')).toBe('::1');
    expect(peerHost('ipv4:127.0.0.1:5000')).toBe('127.0.0.1');
    expect(peerHost('unix:/run/tessera.sock')).toBe('/run/tessera.sock');
  });

  it('hold back an IPv6 address that guesses tokens, whatever port each new connection comes from', () => {
    const auth = new CoordinatorAuth({ workerToken: token('w'), clientTokens: [{ id: 'alice', role: 'client', token: token('a') }] }, log);
    let held = 0;
    for (let port = 40000; port < 40050; port++) {
      const r = auth.check('/tessera.v1.JobService/GetJob', bearer(`guess-${port}-${'g'.repeat(12)}`), `::ffff:10.0.0.7:${port}`, undefined);
      if (r?.code === grpc.status.RESOURCE_EXHAUSTED) held++;
    }
    expect(held).toBeGreaterThan(30);
  });
});

describe('an address held back for failed authentications (review C)', () => {
  const config = { workerToken: token('w'), clientTokens: [{ id: 'alice', role: 'client' as const, token: token('a') }] };
  const peer = 'ipv4:10.0.0.9:5000';
  const listJobs = (auth: CoordinatorAuth, t: string) => auth.check('/tessera.v1.JobService/ListJobs', bearer(t), peer, undefined)?.code;
  const heartbeat = (auth: CoordinatorAuth, t: string) => auth.check('/tessera.v1.WorkerService/Heartbeat', bearer(t), peer, undefined)?.code;
  const floodOfRotatedToken = (auth: CoordinatorAuth): void => {
    for (let i = 0; i < 20; i++) listJobs(auth, token('r'));
  };
  /** Runs `use` with the path of a known-good file in a folder of its own, removed after. */
  const withKeptFile = async (use: (file: string) => Promise<void>): Promise<void> => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-auth-kept-'));
    try {
      await use(path.join(dir, 'auth-known-good.json'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  /** A coordinator's auth of `cfg` that worked with `t` from the peer, its file written. */
  const workedWith = async (file: string, t: string, cfg = config): Promise<CoordinatorAuth> => {
    const auth = new CoordinatorAuth(cfg, log);
    auth.keepKnownGoodIn(file);
    expect(listJobs(auth, t)).toBeUndefined();
    await auth.flushKnownGood();
    return auth;
  };

  it('lets the tokens that had worked from it in after a restart: they are kept in the data dir', () =>
    withKeptFile(async (file) => {
      const before = await workedWith(file, token('a'));
      expect(heartbeat(before, token('w'))).toBeUndefined();
      await before.flushKnownGood();
      // Only digests on disk, never a token.
      const kept = await readFile(file, 'utf8');
      expect(kept).not.toContain(token('a'));
      // Restarted on the same data dir while a client there retries with a rotated token.
      const after = new CoordinatorAuth(config, log);
      after.keepKnownGoodIn(file);
      floodOfRotatedToken(after);
      expect(listJobs(after, token('r'))).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // Before: both refused ("too many failed authentications") for as long as the loop ran.
      expect(listJobs(after, token('a'))).toBeUndefined();
      expect(heartbeat(after, token('w'))).toBeUndefined();
      // Without the file, as before: a token not yet seen from the address waits.
      const forgetful = new CoordinatorAuth(config, log);
      floodOfRotatedToken(forgetful);
      expect(listJobs(forgetful, token('a'))).toBe(grpc.status.RESOURCE_EXHAUSTED);
    }));

  it('a token rotated away is no longer known after the restart: its loop is held back again (review N)', () =>
    withKeptFile(async (file) => {
      await workedWith(file, token('a'));
      // Alice's token replaced (a rotation needs a restart); her old script retries with the old one.
      const rotated = new CoordinatorAuth({ ...config, clientTokens: [{ id: 'alice', role: 'client' as const, token: token('n') }] }, log);
      rotated.keepKnownGoodIn(file);
      const codes = Array.from({ length: 30 }, () => listJobs(rotated, token('a')));
      // Before: every call judged on its token (UNAUTHENTICATED), never held back, each one logged.
      expect(codes.filter((c) => c === grpc.status.RESOURCE_EXHAUSTED).length).toBeGreaterThan(15);
      expect(codes).not.toContain(undefined);
    }));

  it('a file that is not what it should be starts empty', () =>
    withKeptFile(async (file) => {
      await writeFile(file, '{"hosts": {"10.0.0.9": ["client:not-a-digest", 7]}');
      const auth = new CoordinatorAuth(config, log);
      auth.keepKnownGoodIn(file);
      floodOfRotatedToken(auth);
      expect(listJobs(auth, token('a'))).toBe(grpc.status.RESOURCE_EXHAUSTED);
    }));
});

describe('token settings refused at start', () => {
  it('one token under two names, or a client token that is the worker token', () => {
    expect(() => coordinatorSecurity({ workerToken: token('w'), clientTokens: `alice:${token('t')},bob:${token('t')}` })).toThrow(/"alice" and "bob" have the same token/);
    expect(() => coordinatorSecurity({ workerToken: token('w'), clientTokens: `alice:${token('w')}` })).toThrow(/the token of "alice" is the worker token/);
    // A program starting a coordinator is told too.
    expect(() => new CoordinatorAuth({ workerToken: token('w'), clientTokens: [{ id: 'alice', role: 'client', token: token('w') }] }, log)).toThrow(/"alice" and "worker" have the same token/);
  });

  it('a token with white space in it (no client can send one), and spaces around the colon are no part of it', () => {
    expect(() => coordinatorSecurity({ workerToken: token('w'), clientTokens: `alice:${token('t')} ${token('u')}` })).toThrow(/contains white space/);
    const { auth } = coordinatorSecurity({ workerToken: token('w'), clientTokens: `alice : ${token('t')}` });
    expect(auth?.clientTokens).toEqual([{ id: 'alice', token: token('t'), role: 'client' }]);
  });

  it('--tls-ca without a certificate (the coordinator would serve plaintext and check nothing)', () => {
    expect(() => coordinatorSecurity({ tlsCa: '/nonexistent/ca.pem' })).toThrow(/--tls-ca needs --tls-cert and --tls-key/);
  });
});

describe('the log of refused authentications', () => {
  it('says a refusal that repeats (one address, reason and token) once a minute, with how many came between', () => {
    const lines: { level: number; reason: string; sinceLastLogged?: number }[] = [];
    const capture = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]) });
    const auth = new CoordinatorAuth({ workerToken: token('w'), clientTokens: [{ id: 'alice', role: 'client', token: token('a') }] }, capture);
    const now = vi.spyOn(performance, 'now');
    let t = 1_000_000;
    now.mockImplementation(() => t);
    try {
      // A worker set up with an old token, retrying every 5 s (within the failure limit's refill).
      for (let i = 0; i < 8; i++, t += 5_000) auth.check('/tessera.v1.WorkerService/Connect', bearer(token('o')), `10.0.0.9:${40000 + i}`, undefined);
      // Another reason from the same address is said at once.
      auth.check('/tessera.v1.JobService/GetJob', bearer(token('x')), '10.0.0.9:41000', undefined);
      t += 30_000;
      auth.check('/tessera.v1.WorkerService/Connect', bearer(token('o')), '10.0.0.9:42000', undefined);
    } finally {
      now.mockRestore();
    }
    const warned = lines.filter((l) => l.level === 40);
    expect(warned.map((l) => [l.reason, l.sinceLastLogged])).toEqual([
      ['unknown worker token', undefined],
      ['unknown client token', undefined],
      // 75 s after the first: the seven tries between, at debug.
      ['unknown worker token', 7],
    ]);
    expect(lines.filter((l) => l.level === 20)).toHaveLength(7);
  });
});
