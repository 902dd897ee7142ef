/**
 * README "CLI": exit status 1 for a TLS mistake (trying again will not mend it), 4 only when the
 * coordinator could not be reached. A coordinator serving TLS on a unix socket (`--listen
 * unix:/path`, which grpc-js serves TLS on as on TCP) closes a plaintext client's connection before
 * gRPC starts, exactly as it does on 127.0.0.1: the CLI says "pass --tls-ca" and exits 1. The TLS
 * handshake that tells a TLS coordinator from a port forwarder with nothing behind it (tlsAnswers)
 * must reach a socket too: when it knew HOST:PORT only, the plaintext user of a TLS coordinator on
 * a socket was told to look for a broken port forwarder and got exit 4, which a script retries on
 * for ever.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { CLI_PATH, runCli } from '../helpers/cluster.js';
import { cleanEnv } from '../helpers/process-logs.js';
import { tlsAnswers } from '../../shared/tls.js';

let certs: TestCerts;
let dir: string;
let socket: string;
let stop: () => Promise<void>;

beforeAll(async () => {
  certs = await makeTestCerts();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tls-unix-'));
  socket = path.join(dir, 'coordinator.sock');
  const child = spawn(process.execPath, [CLI_PATH, 'coordinator', '--listen', `unix:${socket}`, '--http', 'off', '--data-dir', path.join(dir, 'data'), '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...cleanEnv(), TESSERA_LOG_LEVEL: 'warn' },
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  stop = async () => {
    child.kill('SIGKILL');
    await exited;
  };
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/listening on/.test(out)) resolve();
    });
    void exited.then((code) => reject(new Error(`coordinator exited with ${code}`)));
  });
}, 30_000);

afterAll(async () => {
  await stop?.();
  await certs?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('the TLS coordinator on the socket is one a client with --tls-ca reaches (the set-up is sound)', async () => {
  const r = await runCli(['jobs', '--coordinator', `unix:${socket}`, '--tls-ca', certs.ca], { env: cleanEnv(), timeoutMs: 20_000 });
  expect(r.code, r.stderr).toBe(0);
});

it('a plaintext client of a TLS coordinator on a unix socket is told to pass --tls-ca and exits 1, as on TCP', async () => {
  const r = await runCli(['jobs', '--coordinator', `unix:${socket}`], { env: cleanEnv(), timeoutMs: 20_000 });
  expect(r.stderr).toMatch(/TLS: the coordinator at unix:.* closed the connection before gRPC started, as a TLS coordinator does to a plaintext client: pass --tls-ca/);
  expect(r.stderr).not.toMatch(/port forwarder/);
  expect(r.code, r.stderr).toBe(1);
}, 30_000);

it('tlsAnswers finds the TLS server on the unix socket', async () => {
  expect(await tlsAnswers(`unix:${socket}`)).toBe(true);
});
