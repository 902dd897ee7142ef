/**
 * TLS on a real cluster: a coordinator serving TLS and holding workers to mutual TLS, workers with
 * client certificates, a client with the CA only; plaintext, strangers and certificate-less workers
 * are turned away; and the coordinator refuses plaintext on a non-loopback address.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { loadTesseraProto } from '../shared/proto.js';
import { channelCredentials } from '../shared/tls.js';
import type { WorkerServiceClient } from '../shared/proto/generated/tessera/v1/WorkerService.js';
import { makeLeaf, makeTestCerts, type TestCerts } from './helpers/certs.js';
import { CLI_PATH, runCli, startCluster, type TestCluster } from './helpers/cluster.js';
import { LEVEL, cleanEnv, logLinesUntil } from './helpers/process-logs.js';

/** dist/client, where the built CLI lives (its modules are imported by path in one test). */
const CLI_DIST = path.dirname(CLI_PATH);

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
    expect(none.details).toMatch(/valid client certificate signed by the coordinator CA \(none was presented, or it is from another CA, expired or not yet valid\)/);
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
    // A usage error: the settings, not the machine, are at fault.
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:0 without TLS/);
    expect(refused.stderr).toMatch(/--tls-cert and --tls-key.*--insecure/s);
    for (const extra of [['--insecure'], ['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]]) {
      const started = await startsListening(['coordinator', '--listen', '0.0.0.0:0', '--data-dir', data, ...extra]);
      expect(started).toMatch(/listening on 0\.0\.0\.0:\d+/);
    }
  });
});

/** The messages of the warnings among JSON log lines. */
const warningsIn = (stderr: string): string[] =>
  stderr.split('\n').flatMap((l) => {
    try {
      const line = JSON.parse(l) as { level: number; msg: string };
      return line.level === LEVEL.warn ? [line.msg] : [];
    } catch {
      return [];
    }
  });

/** Runs the CLI until it prints its listening line, then stops it; returns that line. */
async function startsListening(args: string[]): Promise<string> {
  const started = await listening(args);
  await started.stop();
  return started.line;
}

/** Runs the CLI until it prints its (whole) listening line; the caller stops it. */
async function listening(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ line: string; address: string; stderr: () => string; stop: () => Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const { CLI_PATH } = await import('./helpers/cluster.js');
  const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...cleanEnv(), TESSERA_LOG_LEVEL: 'warn', ...env } });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const stop = async (): Promise<void> => {
    child.kill('SIGKILL');
    await exited;
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^(.*listening on .*)\n/m.exec(out);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`exited with ${code}: ${err}`)));
    });
    return { line, address: /listening on (\S+)/.exec(line)![1]!, stderr: () => err, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

describe('what the operator is told', () => {
  it("a coordinator started from a shell set up for clients does not take their TESSERA_TLS_* for its own: it reads TESSERA_SERVER_TLS_*, and warns", async () => {
    const data = path.join(dir, 'data-env');
    const client = { TESSERA_TLS_CA: certs.ca, TESSERA_TLS_CERT: certs.clientCert, TESSERA_TLS_KEY: certs.clientKey };
    // Only the clients' variables: plaintext (no certificate of its own), and it says why for each.
    const plain = await listening(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', data], client);
    await plain.stop();
    expect(plain.line).toMatch(/\(plaintext, no tokens\)$/);
    const warnings = warningsIn(plain.stderr());
    expect(warnings).toEqual([
      `TESSERA_TLS_CERT is set but not read: it is what clients and workers use; the coordinator's own setting is --tls-cert (TESSERA_SERVER_TLS_CERT, config key "tls-cert")`,
      `TESSERA_TLS_KEY is set but not read: it is what clients and workers use; the coordinator's own setting is --tls-key (TESSERA_SERVER_TLS_KEY, config key "tls-key")`,
      `TESSERA_TLS_CA is set but not read: it is what clients and workers use; the coordinator's own setting is --tls-ca (TESSERA_SERVER_TLS_CA, config key "tls-ca")`,
    ]);
    // Off loopback it refuses to serve plaintext, and says where its own certificate goes.
    const refused = await runCli(['coordinator', '--listen', '0.0.0.0:0', '--http', 'off', '--data-dir', data], { env: client, timeoutMs: 20_000 });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:0 without TLS.*\(TESSERA_TLS_CERT is set, but it is what clients and workers present: the coordinator reads TESSERA_SERVER_TLS_CERT and TESSERA_SERVER_TLS_KEY\)/s);
    // Its own certificate from TESSERA_SERVER_TLS_*: TLS, and the clients' CA does not turn on client-certificate checks.
    const served = await listening(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', data], { ...client, TESSERA_SERVER_TLS_CERT: certs.serverCert, TESSERA_SERVER_TLS_KEY: certs.serverKey });
    try {
      expect(served.line).toMatch(/\(TLS, no tokens\)$/);
      const job = await runCli(['health', '--coordinator', served.address], { env: { TESSERA_TLS_CA: certs.ca }, timeoutMs: 20_000 });
      expect(job.code, job.stderr).toBe(0);
    } finally {
      await served.stop();
    }
    expect(warningsIn(served.stderr())).toEqual([expect.stringMatching(/^TESSERA_TLS_CA is set but not read/)]);
    // With TESSERA_SERVER_TLS_CA too, it asks peers for certificates, and says that it requires none:
    // one from another CA is admitted like none (review OPS1: "checked when presented" was read as
    // "a foreign one is refused").
    const checked = await listening(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', data], { TESSERA_SERVER_TLS_CERT: certs.serverCert, TESSERA_SERVER_TLS_KEY: certs.serverKey, TESSERA_SERVER_TLS_CA: certs.ca });
    await checked.stop();
    expect(checked.line).toMatch(/\(TLS, client certificates asked for, not required \(--require-worker-cert holds workers to them\), no tokens\)$/);
    // A year to go: nothing said of it.
    expect(warningsIn(checked.stderr())).toEqual([]);
  });

  it('a coordinator and a worker whose certificate expires within 30 days say so when they start (it was checked only for having expired)', async () => {
    makeLeaf(certs.dir, 'soon', 'ca', path.join(certs.dir, 'server.ext'), 2);
    const soon = path.join(certs.dir, 'soon.crt');
    const served = await listening(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data-soon')], { TESSERA_SERVER_TLS_CERT: soon, TESSERA_SERVER_TLS_KEY: path.join(certs.dir, 'soon.key') });
    await served.stop();
    expect(warningsIn(served.stderr())).toEqual([expect.stringMatching(new RegExp(`^the coordinator certificate TESSERA_SERVER_TLS_CERT=${soon.replace(/[.]/g, '\\.')} expires in 1 day\\(s\\) \\(\\d{4}-[^)]+\\): make a new one and restart with it before then$`))]);
  });

  const tlsHint = (address: string): RegExp => new RegExp(`^tessera: TLS: the certificate of the coordinator at ${address.replace(/\./g, '\\.')} was not accepted: check --tls-ca / TESSERA_TLS_CA \\(or --tls / TESSERA_TLS\\) against the coordinator's certificate`);

  it('the CLI names TLS, not a missing coordinator, for each TLS mistake; and no DEP0123 warning', async () => {
    const env = cleanEnv();
    // (a) a CA that did not sign the coordinator's certificate
    const wrongCa = await cluster.runCli(['workers', '--tls-ca', path.join(certs.dir, 'stranger-ca.crt')], { env });
    expect(wrongCa.code).toBe(1);
    const wrongCaLines = wrongCa.stderr.trimEnd().split('\n');
    expect(wrongCaLines).toHaveLength(2);
    expect(wrongCaLines[0]).toMatch(/^tessera: UNAVAILABLE: .*(unable to verify|self-signed|certificate)/);
    expect(wrongCaLines[1]).toMatch(tlsHint(cluster.address));
    // (b) plaintext to a TLS coordinator
    const plain = await cluster.runCli(['workers'], { env });
    expect(plain.code).toBe(1);
    expect(plain.stderr.trimEnd().split('\n').at(-1)).toBe(`tessera: TLS: the coordinator at ${cluster.address} closed the connection before gRPC started, as a TLS coordinator does to a plaintext client: pass --tls-ca / TESSERA_TLS_CA (or --tls / TESSERA_TLS)`);
    // (c) TLS to a plaintext coordinator
    const plaintext = await listening(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'plain-data')]);
    try {
      const r = await runCli(['workers', '--coordinator', plaintext.address], { env: { ...env, TESSERA_TLS_CA: certs.ca } });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/wrong version number/);
      expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(`tessera: TLS: the coordinator at ${plaintext.address} does not serve TLS: drop --tls-ca / TESSERA_TLS_CA and --tls / TESSERA_TLS, or start the coordinator with --tls-cert and --tls-key`);
    } finally {
      await plaintext.stop();
    }
    for (const r of [wrongCa, plain]) expect(r.stderr).not.toMatch(/is a coordinator running|DEP0123|DeprecationWarning/);
    // A TLS call to an IP address that succeeds prints nothing on stderr.
    const ok = await cluster.runCli(['workers', '--tls-ca', certs.ca], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
  });

  it('only DEP0123 is dropped: other warnings still print', async () => {
    const { execFile } = await import('node:child_process');
    const script = [
      `import { dropIpServerNameWarning } from ${JSON.stringify(pathToFileURL(path.join(CLI_DIST, '..', 'shared', 'tls.js')).href)};`,
      'dropIpServerNameWarning();',
      "process.emitWarning('ip servername', 'DeprecationWarning', 'DEP0123');",
      "process.emitWarning('ip servername, options form', { type: 'DeprecationWarning', code: 'DEP0123' });",
      "process.emitWarning('something else', 'DeprecationWarning', 'DEP0005');",
      "process.emitWarning('a plain warning');",
    ].join('\n');
    const stderr = await new Promise<string>((resolve, reject) => execFile(process.execPath, ['--input-type=module', '-e', script], (err, _out, e) => (err ? reject(err) : resolve(e))));
    expect(stderr).not.toMatch(/DEP0123|ip servername/);
    expect(stderr).toMatch(/\[DEP0005\] DeprecationWarning: something else/);
    expect(stderr).toMatch(/Warning: a plain warning/);
  });

  it('a worker logs the real TLS reason of a failed connection, with a hint', async () => {
    const lines = await logLinesUntil(['worker', '--coordinator', cluster.address, '--slots', '1', '--tls-ca', path.join(certs.dir, 'stranger-ca.crt')], (l) => l.some((x) => x.msg.startsWith('disconnected')));
    const line = lines.find((x) => x.msg.startsWith('disconnected'))!;
    expect(line.level).toBe(LEVEL.warn);
    expect(line['reason']).toMatch(/^coordinator unavailable: No connection established\. Last error: .*(unable to verify|self-signed|certificate)/);
    expect(line['hint']).toMatch(/^the certificate of the coordinator at .* was not accepted: check --tls-ca/);
    const plain = await logLinesUntil(['worker', '--coordinator', cluster.address, '--slots', '1'], (l) => l.some((x) => x.msg.startsWith('disconnected')));
    const plainLine = plain.find((x) => x.msg.startsWith('disconnected'))!;
    expect(plainLine['reason']).toMatch(/^coordinator unavailable: No connection established\. Last error: Failed to connect/);
    expect(plainLine['hint']).toMatch(/closed the connection before gRPC started, as a TLS coordinator does to a plaintext client: pass --tls-ca/);
  });

  it('a worker without a client certificate, under --require-worker-cert, is refused at error level naming the certificate', async () => {
    const lines = await logLinesUntil(['worker', '--coordinator', cluster.address, '--slots', '1', '--tls-ca', certs.ca], (l) => l.some((x) => /refused this worker/.test(x.msg)));
    expect(lines.find((x) => /refused this worker/.test(x.msg))).toMatchObject({
      level: LEVEL.error,
      reason: 'UNAUTHENTICATED: workers must present a valid client certificate signed by the coordinator CA (none was presented, or it is from another CA, expired or not yet valid)',
      check: "the client certificate (--tls-cert and --tls-key) must be signed by the coordinator's --tls-ca",
    });
  });

  it("the coordinator's listening line says what protects it, and no secret", async () => {
    const workerToken = 'listening-worker-token-0123456789';
    const alice = 'listening-alice-token-0123456789';
    const data = path.join(dir, 'data-summary');
    const cases: [string[], string][] = [
      [[], 'plaintext, no tokens'],
      [['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey], 'TLS, no tokens'],
      [['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca, '--require-worker-cert', '--worker-token', workerToken, '--client-tokens', `alice:${alice},root:${alice}x:admin`], 'TLS, worker certificates required, worker token, 2 client tokens'],
      [['--worker-token', workerToken], 'plaintext, worker token, no client tokens'],
    ];
    for (const [extra, summary] of cases) {
      const started = await listening(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', data, ...extra]);
      await started.stop();
      expect(started.line).toMatch(new RegExp(`^tessera coordinator listening on 127\\.0\\.0\\.1:\\d+ \\(${summary.replace(/[()]/g, '\\$&')}\\)$`));
      expect(started.line).not.toMatch(/listening-/);
    }
  });
});
