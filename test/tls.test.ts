/**
 * TLS on a real cluster: a coordinator serving TLS and holding workers to mutual TLS, workers with
 * client certificates, a client with the CA only; plaintext, strangers and certificate-less workers
 * are turned away; and the coordinator refuses plaintext on a non-loopback address.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { loadTesseraProto } from '../shared/proto.js';
import { channelCredentials } from '../shared/tls.js';
import type { WorkerServiceClient } from '../shared/proto/generated/tessera/v1/WorkerService.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { runCli, startCluster, type TestCluster } from './helpers/cluster.js';

let certs: TestCerts;
let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  certs = await makeTestCerts();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-tls-'));
  cluster = await startCluster({
    coordinatorArgs: ['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca, '--require-worker-cert'],
    workerArgs: ['--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey],
    clientOptions: { credentials: channelCredentials({ ca: certs.ca }) },
  });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  await certs?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** A call that fails, as {code, details}. */
async function failure(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: number; details: string };
  }
  throw new Error('the call succeeded');
}

function workerStreamError(creds: grpc.ChannelCredentials): Promise<{ code: number; details: string }> {
  const { proto } = loadTesseraProto();
  const client = new proto.tessera.v1.WorkerService(cluster.address, creds) as WorkerServiceClient;
  return new Promise((resolve) => {
    const call = client.FetchTaskInput({ subtask_id: 'x', attempt: 1, name: 'in', offset: 0 }, { deadline: Date.now() + 10_000 });
    call.on('data', () => undefined);
    call.on('error', (err: grpc.ServiceError) => {
      client.close();
      resolve({ code: err.code, details: err.details });
    });
  });
}

describe('TLS', () => {
  it('runs a job end to end over TLS, with workers on mutual TLS', async () => {
    const file = path.join(dir, 'tls.png');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#36c' } }).png().toFile(file);
    const job = await cluster.client.submit({ image: { width: 32, format: 'webp' } }, [file]);
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const out = await cluster.client.download(job.id, path.join(dir, 'out'));
    const meta = await sharp(out.get('tls.webp')!).metadata();
    expect([meta.width, meta.height]).toEqual([32, 24]);
    // The CLI reaches the same coordinator with --tls-ca.
    const r = await cluster.runCli(['workers', '--json', '--tls-ca', certs.ca]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { state: string }[]).filter((w) => w.state === 'active')).toHaveLength(2);
  });

  it('turns away plaintext clients and clients that do not trust the server', async () => {
    const plain = new TesseraClient({ address: cluster.address, credentials: grpc.credentials.createInsecure(), deadlineMs: 3000 });
    expect((await failure(plain.listWorkers())).code).toBe(grpc.status.UNAVAILABLE);
    plain.close();
    const stranger = new TesseraClient({ address: cluster.address, credentials: channelCredentials({ ca: path.join(certs.dir, 'stranger-ca.crt') }), deadlineMs: 3000 });
    expect((await failure(stranger.listWorkers())).code).toBe(grpc.status.UNAVAILABLE);
    stranger.close();
  });

  it('refuses worker calls without a client certificate from the CA', async () => {
    const none = await workerStreamError(channelCredentials({ ca: certs.ca }));
    expect(none).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    expect(none.details).toMatch(/client certificate signed by the coordinator CA/);
    const stranger = await workerStreamError(channelCredentials({ ca: certs.ca, cert: certs.strangerCert, key: certs.strangerKey }));
    expect(stranger.code).toBe(grpc.status.UNAUTHENTICATED);
    // With the CA's client certificate the call gets past authentication (and fails on the made-up session).
    const good = await workerStreamError(channelCredentials({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }));
    expect(good.details).toMatch(/unknown or expired worker session/);
  });
});

describe('listening', () => {
  it('refuses plaintext on a non-loopback address and says how to fix it; starts with --insecure or TLS', async () => {
    const data = path.join(dir, 'data');
    const refused = await runCli(['coordinator', '--listen', '0.0.0.0:0', '--data-dir', data], { timeoutMs: 20_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:0 without TLS/);
    expect(refused.stderr).toMatch(/--tls-cert and --tls-key.*--insecure/s);
    for (const extra of [['--insecure'], ['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]]) {
      const started = await startsListening(['coordinator', '--listen', '0.0.0.0:0', '--data-dir', data, ...extra]);
      expect(started).toMatch(/listening on 0\.0\.0\.0:\d+/);
    }
  });
});

/** Runs the CLI until it prints its listening line, then stops it; returns that line. */
async function startsListening(args: string[]): Promise<string> {
  const { spawn } = await import('node:child_process');
  const { CLI_PATH } = await import('./helpers/cluster.js');
  const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' } });
  try {
    return await new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^.*listening on \S+/m.exec(out);
        if (m) resolve(m[0]);
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${err}`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
}
