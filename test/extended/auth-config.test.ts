/**
 * Where secrets come from, on real processes: a token's flag beats its environment variable (and
 * the environment beats the config file) whichever form, value or file, each takes; a value and a
 * file at one level are refused; client token lists are never merged; `--print-config` shows
 * secrets only as fingerprints. Also: the CLI's "is a coordinator running" hint names the address
 * that the command dialled.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { tokenFingerprint } from '../../shared/auth.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { WorkerServiceClient } from '../../shared/proto/generated/tessera/v1/WorkerService.js';
import { runCli, startCluster, type CliResult, type TestCluster } from '../helpers/cluster.js';

/** In the environment only: must lose to the flags. */
const ENV_WORKER = 'env-worker-token-0123456789ab';
const ENV_CLIENT = 'env-client-token-0123456789ab';
/** In the files the flags name: must win. */
const FILE_WORKER = 'file-worker-token-0123456789a';
const ALICE = 'alice-token-0123456789abcdef';
/** Known to no one: what a stale environment hands a worker or a client. */
const STALE = 'stale-token-0123456789abcdef';

let dir: string;
/** The test runner's environment without TESSERA_*, so that only each test's settings count. */
const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { env: { ...clean, ...env } });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-auth-config-'));
  await writeFile(path.join(dir, 'worker.token'), `${FILE_WORKER}\n`);
  await writeFile(path.join(dir, 'clients.txt'), `alice:${ALICE}\n`);
  await writeFile(path.join(dir, 'alice.token'), ALICE);
  await writeFile(path.join(dir, 'stale.token'), STALE);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('token sources on a running cluster', () => {
  let cluster: TestCluster;
  const clients: TesseraClient[] = [];
  const as = (token: string): TesseraClient => {
    const c = new TesseraClient({ address: cluster.address, token, deadlineMs: 5000 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await startCluster({
      workers: 0,
      coordinatorArgs: ['--worker-token-file', path.join(dir, 'worker.token'), '--client-tokens-file', path.join(dir, 'clients.txt')],
      // Reaches the coordinator and every worker: the flags must beat it on both sides.
      env: { TESSERA_WORKER_TOKEN: ENV_WORKER, TESSERA_CLIENT_TOKENS: `stale:${ENV_CLIENT}` },
      clientOptions: { token: ALICE },
    });
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it('the coordinator takes the worker token from --worker-token-file, not TESSERA_WORKER_TOKEN', async () => {
    const { proto } = loadTesseraProto();
    const w = new proto.tessera.v1.WorkerService(cluster.address, grpc.credentials.createInsecure()) as WorkerServiceClient;
    const fetch = (token: string): Promise<{ code: number; details: string }> =>
      new Promise((resolve) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${token}`);
        const call = w.FetchTaskInput({ subtask_id: 's', attempt: 1, name: 'n', offset: 0 }, md, { deadline: Date.now() + 5000 });
        call.on('data', () => undefined);
        call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
      });
    // The file's token gets past authentication (and fails on the made-up session).
    expect((await fetch(FILE_WORKER)).details).toMatch(/unknown or expired worker session/);
    expect(await fetch(ENV_WORKER)).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'unknown worker token' });
    w.close();
  });

  it('a worker presents its --worker-token-file, not TESSERA_WORKER_TOKEN, and is accepted', async () => {
    // A token that no coordinator would take, so that only the file can get this worker in.
    const worker = cluster.startWorker('file-token', ['--worker-token-file', path.join(dir, 'worker.token')], { env: { TESSERA_WORKER_TOKEN: STALE } });
    await Promise.race([
      cluster.waitForWorkers(1, 15_000),
      worker.exited.then((code) => {
        throw new Error(`the worker exited with ${code}`);
      }),
    ]);
    // The one worker registered is this one, active, and still running.
    expect((await cluster.client.listWorkers()).map((w) => [w.name, w.state])).toEqual([['file-token', 'active']]);
    expect(worker.child.exitCode).toBeNull();
  });

  it('client tokens from --client-tokens-file are not merged with TESSERA_CLIENT_TOKENS', async () => {
    expect(Array.isArray(await as(ALICE).listJobs())).toBe(true);
    await expect(as(ENV_CLIENT).listJobs()).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'unknown client token' });
  });

  it('the CLI presents --token-file over TESSERA_TOKEN, and --token over TESSERA_TOKEN_FILE', async () => {
    const viaFile = await cli(['jobs', '--json', '--coordinator', cluster.address, '--token-file', path.join(dir, 'alice.token')], { TESSERA_TOKEN: STALE });
    expect(viaFile.code, viaFile.stderr).toBe(0);
    const viaValue = await cli(['jobs', '--json', '--coordinator', cluster.address, '--token', ALICE], { TESSERA_TOKEN_FILE: path.join(dir, 'stale.token') });
    expect(viaValue.code, viaValue.stderr).toBe(0);
    // None, or one the coordinator does not know: the error, and where a token is given.
    const none = await cli(['jobs', '--coordinator', cluster.address], {});
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^tessera: UNAUTHENTICATED: missing client token.*\ntessera: the coordinator wants a client token: give it with --token-file FILE \(or TESSERA_TOKEN_FILE, or --token \/ TESSERA_TOKEN\)\n$/);
    const stale = await cli(['jobs', '--coordinator', cluster.address], { TESSERA_TOKEN: STALE });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^tessera: UNAUTHENTICATED: unknown client token\ntessera: the coordinator does not know the client token given: check --token-file FILE \(or TESSERA_TOKEN_FILE, or --token \/ TESSERA_TOKEN\)\n$/);
  });
});

describe('secret options without a cluster', () => {
  /** `--print-config` of `tessera ARGS`, which must succeed. */
  async function printConfig(args: string[], env: Record<string, string> = {}): Promise<{ raw: string; options: Record<string, unknown>; sources: Record<string, string> }> {
    const r = await cli([...args, '--print-config'], env);
    expect(r.code, r.stderr).toBe(0);
    return { raw: r.stdout, ...JSON.parse(r.stdout) };
  }

  it('a value and a file of one secret at the same level are refused (exit 2)', async () => {
    const file = path.join(dir, 'worker.token');
    const both = path.join(dir, 'both.yaml');
    await writeFile(both, `worker-token: ${ENV_WORKER}\nworker-token-file: ${file}\n`);
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['coordinator', '--worker-token', ENV_WORKER, '--worker-token-file', file, '--print-config'], {}, /--worker-token and --worker-token-file are both set/],
      [['worker', '--print-config'], { TESSERA_WORKER_TOKEN: ENV_WORKER, TESSERA_WORKER_TOKEN_FILE: file }, /TESSERA_WORKER_TOKEN and TESSERA_WORKER_TOKEN_FILE are both set/],
      [['coordinator', '--config', both, '--print-config'], {}, /config key "worker-token" and config key "worker-token-file" are both set/],
      [['coordinator', '--client-tokens', `alice:${ALICE}`, '--client-tokens-file', path.join(dir, 'clients.txt'), '--print-config'], {}, /--client-tokens and --client-tokens-file are both set/],
      [['jobs', '--coordinator', '127.0.0.1:1'], { TESSERA_TOKEN: ALICE, TESSERA_TOKEN_FILE: path.join(dir, 'alice.token') }, /TESSERA_TOKEN and TESSERA_TOKEN_FILE are both set/],
    ];
    for (const [args, env, message] of cases) {
      const r = await cli(args, env);
      expect(r.code, `tessera ${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('the environment beats the config file whichever form each takes', async () => {
    const config = path.join(dir, 'coordinator.yaml');
    await writeFile(config, `worker-token-file: ${path.join(dir, 'worker.token')}\n`);
    const { options, sources } = await printConfig(['coordinator', '--config', config], { TESSERA_WORKER_TOKEN: ENV_WORKER });
    expect(options['workerToken']).toBe(`<redacted ${tokenFingerprint(ENV_WORKER)}>`);
    expect(options['workerTokenFile']).toBeUndefined();
    expect(sources).toMatchObject({ workerToken: 'env', workerTokenFile: 'overridden' });
  });

  it('--print-config shows secrets as fingerprints only', async () => {
    const root = 'root-token-0123456789abcdef';
    const coordinator = await printConfig(['coordinator', '--client-tokens', `alice:${ALICE},root:${root}:admin`], { TESSERA_WORKER_TOKEN: ENV_WORKER });
    for (const secret of [ALICE, root, ENV_WORKER]) expect(coordinator.raw).not.toContain(secret);
    expect(coordinator.options).toMatchObject({
      workerToken: `<redacted ${tokenFingerprint(ENV_WORKER)}>`,
      clientTokens: `alice:<redacted ${tokenFingerprint(ALICE)}>,root:<redacted ${tokenFingerprint(root)}>:admin`,
    });
    const worker = await printConfig(['worker', '--worker-token', FILE_WORKER]);
    expect(worker.raw).not.toContain(FILE_WORKER);
    expect(worker.options['workerToken']).toBe(`<redacted ${tokenFingerprint(FILE_WORKER)}>`);
  });

  it('--print-config shows relative paths as they will be opened, from the working directory', async () => {
    // (Shared roots must exist: --print-config checks them as a start does.)
    const cwd = path.join(dir, 'cwd');
    const other = path.join(dir, 'srv-media');
    await mkdir(path.join(cwd, 'media'), { recursive: true });
    await mkdir(other, { recursive: true });
    const r = await runCli(['coordinator', '--data-dir', 'state', '--shared-root', 'media', other, '--print-config'], { env: clean, cwd });
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { options: object }).options).toMatchObject({ dataDir: path.join(cwd, 'state'), sharedRoot: [path.join(cwd, 'media'), other] });
  });
});

describe('CLI errors', () => {
  it('the "is a coordinator running" hint names the address the command dialled', async () => {
    // A port that nothing listens on: bound, then released.
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const r = await cli(['jobs', '--coordinator', `127.0.0.1:${port}`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`is a coordinator running at 127.0.0.1:${port}?`);
  });
});
