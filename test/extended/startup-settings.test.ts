/**
 * `tessera coordinator` and `tessera worker` refuse settings that cannot work before they start
 * anything: each is a usage error (exit 2) naming the option as it was given (flag, environment
 * variable or config-file key) and what it must be. Failures of the machine rather than of the
 * settings (a port in use) stay exit 1. The real CLI from dist/.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cluster.js';
import { cleanEnv } from '../helpers/process-logs.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';

let dir: string;
let certs: TestCerts;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-startup-'));
  certs = await makeTestCerts();
  await writeFile(path.join(dir, 'short.token'), 'too-short\n');
  await writeFile(path.join(dir, 'heartbeat.yaml'), 'heartbeat-ms: 0\n');
  await writeFile(path.join(dir, 'ttl.yaml'), 'ttl-ms: -5\n');
  await writeFile(path.join(dir, 'limit.yaml'), 'max-jobs-per-client: -1\n');
  await writeFile(path.join(dir, 'slots.json'), '{"slots": 0}\n');
  await writeFile(path.join(dir, 'not-a-cert.pem'), 'hello\n');
  // A certificate that expired yesterday (openssl takes -days -1 for it).
  const { execFileSync } = await import('node:child_process');
  execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'expired.key', '-out', 'expired.csr'], { cwd: dir, stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', 'expired.csr', '-signkey', 'expired.key', '-days', '-1', '-out', 'expired.crt'], { cwd: dir, stdio: 'ignore' });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await certs?.cleanup();
});

const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { env: { ...cleanEnv(), ...env }, timeoutMs: 30_000 });

/** A coordinator on a free port and its own data dir, with `extra`. */
const coordinator = (...extra: string[]): string[] => ['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data'), ...extra];
/** A worker dialling nothing that matters: it must not get that far. */
const worker = (...extra: string[]): string[] => ['worker', '--coordinator', '127.0.0.1:1', ...extra];

const WORKER_TOKEN = 'worker-token-0123456789abcdef';

/** Runs `cases` a few at a time (each is a node process). */
async function each<T>(cases: T[], run: (c: T) => Promise<void>): Promise<void> {
  const queue = [...cases];
  await Promise.all(Array.from({ length: 3 }, async () => {
    for (let c = queue.shift(); c !== undefined; c = queue.shift()) await run(c);
  }));
}

describe('invalid startup settings exit 2 with a message naming the option', () => {
  it('coordinator and worker, as flags, environment variables and config-file keys', async () => {
    const f = (n: string): string => path.join(dir, n);
    const cases: [args: string[], env: Record<string, string>, message: string | RegExp][] = [
      // ranges (#5)
      [coordinator('--heartbeat-ms', '0'), {}, 'tessera: --heartbeat-ms 0: must be at least 100'],
      [coordinator('--subtask-timeout-ms', '0'), {}, 'tessera: --subtask-timeout-ms 0: must be at least 1000'],
      [coordinator(), { TESSERA_HEARTBEAT_MS: '50' }, 'tessera: TESSERA_HEARTBEAT_MS=50: must be at least 100'],
      [coordinator('--config', f('heartbeat.yaml')), {}, 'tessera: config key "heartbeat-ms" (0): must be at least 100'],
      [coordinator('--ttl-ms', '1000'), {}, 'tessera: --ttl-ms 1000: must be at least twice the heartbeat interval (--heartbeat-ms 1000), or workers are declared lost between heartbeats'],
      [coordinator('--heartbeat-ms', '400', '--ttl-ms', '700'), {}, 'tessera: --ttl-ms 700: must be at least twice the heartbeat interval (--heartbeat-ms 400), or workers are declared lost between heartbeats'],
      // Below 0, options with a minimum of their own say it, not the parser's "between 0 and 2147483647".
      [coordinator('--ttl-ms', '-5'), {}, 'tessera: --ttl-ms -5: must be at least twice the heartbeat interval (--heartbeat-ms 1000), or workers are declared lost between heartbeats'],
      [coordinator('--config', f('ttl.yaml')), {}, 'tessera: config key "ttl-ms" (-5): must be at least twice the heartbeat interval (--heartbeat-ms 1000), or workers are declared lost between heartbeats'],
      [coordinator('--heartbeat-ms', '-1'), {}, 'tessera: --heartbeat-ms -1: must be at least 100'],
      // Past the top, no negative range offered (each has a minimum of its own; review RDOC2).
      [coordinator('--heartbeat-ms', '3000000000'), {}, /^error: option '--heartbeat-ms <ms>' argument '3000000000' is invalid\. --heartbeat-ms must be at most 2147483647, got 3000000000$/m],
      [worker('--keepalive-timeout-ms', '3000000000'), {}, /^error: option '--keepalive-timeout-ms <ms>' argument '3000000000' is invalid\. --keepalive-timeout-ms must be at most 2147483647, got 3000000000$/m],
      [coordinator('--subtask-timeout-ms', '-3'), {}, 'tessera: --subtask-timeout-ms -3: must be at least 1000'],
      [worker('--keepalive-timeout-ms', '-1'), {}, 'tessera: --keepalive-timeout-ms -1: must be a whole number of ms, at least 1000'],
      [coordinator('--max-attempts', '0'), {}, 'tessera: --max-attempts 0: must be at least 1'],
      [coordinator('--retention-hours', '-1'), {}, 'tessera: --retention-hours -1: must be at least 0 (0 = keep for ever)'],
      [worker('--slots', '0'), {}, 'tessera: --slots 0: must be at least 1'],
      // Below 0 too: the parser said "between 0 and 2147483647", then refused 0 (review K22).
      [worker('--slots', '-1'), {}, 'tessera: --slots -1: must be at least 1'],
      [worker(), { TESSERA_SLOTS: '-1' }, 'tessera: TESSERA_SLOTS=-1: must be at least 1'],
      [worker('--threads', '-1'), {}, 'tessera: --threads -1: must be at least 1'],
      [worker(), { TESSERA_THREADS: '-1' }, 'tessera: TESSERA_THREADS=-1: must be at least 1'],
      [coordinator('--max-attempts', '-1'), {}, 'tessera: --max-attempts -1: must be at least 1'],
      [worker(), { TESSERA_SLOTS: '0' }, 'tessera: TESSERA_SLOTS=0: must be at least 1'],
      [worker('--config', f('slots.json')), {}, 'tessera: config key "slots" (0): must be at least 1'],
      [worker('--threads', '0'), {}, 'tessera: --threads 0: must be at least 1'],
      [worker('--prefetch', '-1'), {}, /^error: option '--prefetch <n>' argument '-1' is invalid\. --prefetch must be between 0 and 2147483647, got -1$/m],
      // settings that used to exit 1 (#4)
      [coordinator('--max-jobs-per-client', '-1'), {}, /^error: option '--max-jobs-per-client <n>' argument '-1' is invalid\. --max-jobs-per-client: "-1" is not a positive integer$/m],
      [coordinator('--config', f('limit.yaml')), {}, `tessera: config file ${f('limit.yaml')}, key "max-jobs-per-client": --max-jobs-per-client: "-1" is not a positive integer`],
      [coordinator('--worker-token', 'short'), {}, 'tessera: --worker-token: the worker token is shorter than 16 characters, the least a coordinator accepts (make one with `openssl rand -hex 24`)'],
      [coordinator(), { TESSERA_WORKER_TOKEN_FILE: f('short.token') }, `tessera: TESSERA_WORKER_TOKEN_FILE=${f('short.token')}: the worker token is shorter than 16 characters, the least a coordinator accepts (make one with \`openssl rand -hex 24\`)`],
      [coordinator('--worker-token', WORKER_TOKEN, '--client-tokens', 'alice:short'), {}, 'tessera: --client-tokens: the token of "alice" is shorter than 16 characters, the least a coordinator accepts (make one with `openssl rand -hex 24`)'],
      [coordinator('--worker-token', WORKER_TOKEN, '--client-tokens', 'alice'), {}, 'tessera: --client-tokens: client tokens, entry 1: expected NAME:TOKEN or NAME:TOKEN:admin'],
      [coordinator('--client-tokens', 'alice:alice-token-0123456789abc'), {}, 'tessera: --client-tokens needs a worker token: set --worker-token-file (or --worker-token, TESSERA_WORKER_TOKEN) too, or anyone could join as a worker and read every job'],
      [coordinator('--worker-token-file', '/nonexistent/worker.token'), {}, 'tessera: --worker-token-file /nonexistent/worker.token: no such file'],
      [coordinator('--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', '/nonexistent.crt'), {}, 'tessera: --tls-ca /nonexistent.crt: no such file'],
      [coordinator('--tls-cert', certs.serverCert), {}, 'tessera: --tls-cert needs --tls-key: the certificate and its key go together'],
      [coordinator('--tls-ca', certs.ca, '--require-worker-cert'), {}, 'tessera: --require-worker-cert needs --tls-cert and --tls-key: client certificates are checked only over TLS'],
      [coordinator('--listen', '0.0.0.0:0'), {}, /^tessera: refusing to listen on 0\.0\.0\.0:0 without TLS/m],
      [coordinator('--http', '0.0.0.0:0'), {}, /^tessera: refusing to serve the dashboard on 0\.0\.0\.0:0: it is plain HTTP/m],
      [worker('--tls-ca', '/nonexistent.crt'), {}, 'tessera: --tls-ca /nonexistent.crt: no such file'],
      [worker(), { TESSERA_TLS_CA: '/nonexistent.crt' }, 'tessera: TESSERA_TLS_CA=/nonexistent.crt: no such file'],
      [worker('--tls-ca', dir), {}, `tessera: --tls-ca ${dir}: not a file`],
      [worker('--worker-token-file', '/nonexistent/worker.token'), {}, 'tessera: --worker-token-file /nonexistent/worker.token: no such file'],
      [worker('--worker-token', 'short'), {}, 'tessera: --worker-token: the worker token is shorter than 16 characters, the least a coordinator accepts (make one with `openssl rand -hex 24`)'],
      [worker('--tls-key', certs.clientKey), {}, 'tessera: --tls-key needs --tls-cert: the certificate and its key go together'],
      // TLS files that cannot work: a key not the certificate's (the coordinator listened and answered
      // /healthz, refusing every connection), an expired certificate, a CA that is not one
      [coordinator('--tls-cert', certs.serverCert, '--tls-key', certs.clientKey), {}, new RegExp(`^tessera: --tls-key ${certs.clientKey}: not the private key of --tls-cert ${certs.serverCert}, or not a PEM key \\(.*\\)$`, 'm')],
      [coordinator('--tls-cert', certs.serverKey, '--tls-key', certs.serverCert), {}, new RegExp(`^tessera: --tls-cert ${certs.serverKey}: not a PEM certificate \\(.*\\)$`, 'm')],
      [coordinator('--tls-cert', f('expired.crt'), '--tls-key', f('expired.key')), {}, new RegExp(`^tessera: --tls-cert ${f('expired.crt')}: the coordinator certificate expired on .*GMT; make a new one$`, 'm')],
      [coordinator('--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', f('not-a-cert.pem')), {}, new RegExp(`^tessera: --tls-ca ${f('not-a-cert.pem')}: not a PEM certificate`, 'm')],
      [coordinator('--tls-cert', certs.serverCert, '--tls-key', certs.clientKey, '--print-config'), {}, /^tessera: --tls-key .*: not the private key of --tls-cert/m],
      [worker('--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.serverKey), {}, /^tessera: --tls-key .*: not the private key of --tls-cert/m],
      [worker('--tls-ca', certs.ca, '--tls-cert', f('expired.crt'), '--tls-key', f('expired.key')), {}, /^tessera: --tls-cert .*: the worker certificate expired on /m],
      // An expired CA: it started, then refused every worker, each told to check its certificate was signed by it (it was).
      [coordinator('--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', f('expired.crt'), '--print-config'), {}, new RegExp(`^tessera: --tls-ca ${f('expired.crt')}: the CA certificate expired on .*GMT: no certificate it signed can be verified$`, 'm')],
      [worker('--tls-ca', f('expired.crt')), {}, /^tessera: --tls-ca .*: the CA certificate expired on .*: no certificate it signed can be verified$/m],
      [['jobs', '--coordinator', '127.0.0.1:1', '--tls-ca', f('not-a-cert.pem')], {}, /^tessera: --tls-ca .*: not a PEM certificate/m],
      [['jobs', '--coordinator', '127.0.0.1:1', '--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.serverKey], {}, /^tessera: --tls-key .*: not the private key of --tls-cert/m],
      // --print-config prints only a configuration that would start
      [coordinator('--ttl-ms', '1000', '--print-config'), {}, 'tessera: --ttl-ms 1000: must be at least twice the heartbeat interval (--heartbeat-ms 1000), or workers are declared lost between heartbeats'],
      [worker('--print-config'), { TESSERA_SLOTS: '0' }, 'tessera: TESSERA_SLOTS=0: must be at least 1'],
      [coordinator('--tls-cert', certs.serverCert, '--print-config'), {}, 'tessera: --tls-cert needs --tls-key: the certificate and its key go together'],
      // a client command's files too
      [['jobs', '--coordinator', '127.0.0.1:1', '--token-file', '/nonexistent/alice.token'], {}, 'tessera: --token-file /nonexistent/alice.token: no such file'],
      // It exited 1 ("a client certificate needs both --tls-cert and --tls-key"): a usage error, as the worker's.
      [['jobs', '--coordinator', '127.0.0.1:1', '--tls-cert', certs.clientCert], {}, 'tessera: --tls-cert needs --tls-key: the certificate and its key go together'],
      // addresses: grpc-js took a missing port for 443, and Node failed on one out of range only when it listened
      [coordinator('--listen', '127.0.0.1'), {}, 'tessera: --listen 127.0.0.1: the port is missing (HOST:PORT, e.g. 127.0.0.1:7700)'],
      [coordinator('--listen', '127.0.0.1:99999', '--print-config'), {}, 'tessera: --listen 127.0.0.1:99999: port 99999 is outside 0..65535'],
      [coordinator('--http', '127.0.0.1', '--print-config'), {}, 'tessera: --http 127.0.0.1: the port is missing (HOST:PORT, e.g. 127.0.0.1:7700)'],
      [coordinator('--http', 'localhost:http'), {}, 'tessera: --http localhost:http: port "http" is not a number'],
      [coordinator('--listen', '[::1]:7700x'), {}, 'tessera: --listen [::1]:7700x: port "7700x" is not a number'],
      [worker('--label', 'zone=a,nolabel'), {}, 'tessera: --label nolabel: expected KEY=VALUE (e.g. --label gpu=nvidia,zone=a)'],
      // What a coordinator refuses at registration, on every try.
      [worker('--name', 'n'.repeat(300)), {}, 'tessera: --name: longer than 256 bytes'],
      [worker('--threads', '2147483647'), {}, 'tessera: --threads 2147483647: must be at most 128 (no encoder uses more threads than that)'],
      // Past 2^53 (or a typo), every image job failed, blamed on its input.
      [worker(), { TESSERA_MAX_INPUT_PIXELS: '1e16' }, 'tessera: TESSERA_MAX_INPUT_PIXELS=1e16: must be a whole number of pixels from 1 to 9007199254740991'],
      [coordinator('--print-config'), { TESSERA_MAX_INPUT_PIXELS: 'abc' }, 'tessera: TESSERA_MAX_INPUT_PIXELS=abc: must be a whole number of pixels from 1 to 9007199254740991'],
      [worker(), { TESSERA_MAX_INPUT_PIXELS: '1.5' }, 'tessera: TESSERA_MAX_INPUT_PIXELS=1.5: must be a whole number of pixels from 1 to 9007199254740991'],
      [worker('--label', 'note=rack\t7'), {}, 'tessera: --label "note=rack\\t7": contains control characters'],
      // Shown escaped: a raw control character went to the terminal (DEL showed as nothing).
      [worker('--label', 'gpu\x01'), {}, 'tessera: --label "gpu\\u0001": expected KEY=VALUE (e.g. --label gpu=nvidia,zone=a)'],
      [worker(), { TESSERA_LABEL: 'gpu=x\x7f' }, 'tessera: TESSERA_LABEL="gpu=x\\u007f": contains control characters'],
      // Named as given (it was always "--label"), and refused by --print-config too (it printed them, exit 0).
      [worker(), { TESSERA_LABEL: 'gpu' }, 'tessera: TESSERA_LABEL=gpu: expected KEY=VALUE (e.g. --label gpu=nvidia,zone=a)'],
      [worker('--label', 'gpu', '--print-config'), {}, 'tessera: --label gpu: expected KEY=VALUE (e.g. --label gpu=nvidia,zone=a)'],
      [['worker', '--coordinator', 'nope', '--print-config'], {}, 'tessera: --coordinator nope: the port is missing (HOST:PORT, e.g. 127.0.0.1:7700)'],
      [['worker', '--coordinator', '127.0.0.1:99999'], {}, 'tessera: --coordinator 127.0.0.1:99999: port 99999 is outside 1..65535'],
      // One port for gRPC and the dashboard failed at the dashboard's listen, "in use by another coordinator, or another program" (exit 1).
      [['coordinator', '--listen', '127.0.0.1:17791', '--http', 'localhost:17791', '--data-dir', path.join(dir, 'data')], {}, 'tessera: --http localhost:17791: the gRPC server listens there (--listen 127.0.0.1:17791); give the dashboard a port of its own, or --http off'],
      [['jobs', '--coordinator', 'coordinator.example'], {}, 'tessera: INVALID_ARGUMENT: coordinator address "coordinator.example" (--coordinator, TESSERA_COORDINATOR): the port is missing (HOST:PORT, e.g. 127.0.0.1:7700)'],
      [['jobs'], { TESSERA_COORDINATOR: '127.0.0.1:0' }, 'tessera: INVALID_ARGUMENT: coordinator address "127.0.0.1:0" (--coordinator, TESSERA_COORDINATOR): port 0 is outside 1..65535'],
    ];
    await each(cases, async ([args, env, message]) => {
      const r = await cli(args, env);
      const what = `${Object.entries(env).map(([k, v]) => `${k}=${v} `).join('')}tessera ${args.join(' ')}: ${r.stderr}`;
      expect(r.code, what).toBe(2);
      expect(r.stdout, what).toBe('');
      if (typeof message === 'string') expect(r.stderr.trimEnd(), what).toBe(message);
      else expect(r.stderr, what).toMatch(message);
    });
  });
});

describe('a CA bundle', () => {
  it('holding an expired CA next to a valid one is taken (a rotation in progress)', async () => {
    const bundle = path.join(dir, 'bundle.pem');
    await writeFile(bundle, (await readFile(path.join(dir, 'expired.crt'), 'utf8')) + (await readFile(certs.ca, 'utf8')));
    const r = await cli(coordinator('--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', bundle, '--print-config'));
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('startup failures that are not the settings', () => {
  it('a port in use stays exit 1, and says so in words, naming the option', async () => {
    const server = net.createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    try {
      for (const [flag, args] of [
        ['--listen', ['--listen', `127.0.0.1:${port}`, '--http', 'off']],
        ['--http', ['--listen', '127.0.0.1:0', '--http', `127.0.0.1:${port}`]],
      ] as const) {
        const r = await cli(['coordinator', ...args, '--data-dir', path.join(dir, `busy${flag}`)], { TESSERA_LOG_LEVEL: 'silent' });
        expect(r.code, r.stderr).toBe(1);
        // Only the message: grpc-js's own error line goes into the (here silent) log.
        expect(r.stderr.trimEnd()).toBe(`tessera: cannot listen on 127.0.0.1:${port} (${flag}): the address is in use (another coordinator, or another program, listens there)`);
      }
    } finally {
      server.close();
    }
  });

  it('a data dir that is a file is called one', async () => {
    const file = path.join(dir, 'not-a-folder');
    await writeFile(file, 'x');
    for (const dataDir of [file, path.join(file, 'below')]) {
      const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', dataDir], { TESSERA_LOG_LEVEL: 'silent' });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trimEnd()).toBe(`tessera: data dir ${dataDir} is not a folder (a file is there, or on its path): choose another --data-dir`);
    }
  });
});
