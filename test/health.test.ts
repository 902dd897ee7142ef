/**
 * Standard probes against a real coordinator process: grpc.health.v1 through a client generated
 * from the grpc-health-check package's own health.proto (per service and overall, NOT_SERVING when
 * the coordinator drains), server reflection listing both Tessera services (what grpcurl uses),
 * `tessera health`, and /healthz.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { FileDescriptorProto } from 'protobufjs/ext/descriptor/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_CHANNEL_OPTIONS } from '../shared/config.js';
import { loadTesseraProto } from '../shared/proto.js';
import { runCli, startCluster, type TestCluster } from './helpers/cluster.js';

const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

interface HealthClient extends grpc.Client {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}
type Ctor<T> = new (address: string, creds: grpc.ChannelCredentials) => T;

function healthClient(address: string): HealthClient {
  const pkg = grpc.loadPackageDefinition(loadSync(healthProtoPath, LOADER)) as unknown as { grpc: { health: { v1: { Health: Ctor<HealthClient> } } } };
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
}

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, { deadline: Date.now() + 5000 }, (err, res) => (err ? (err.code === grpc.status.NOT_FOUND ? resolve('NOT_FOUND') : reject(err)) : resolve(res!.status))),
  );
}

interface ReflectionAnswer {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_message: string };
}

/** One question to the server's reflection service (grpc.reflection.v1, as grpcurl asks; v1alpha, as older tools do). */
function reflect(address: string, version: 'v1' | 'v1alpha', question: Record<string, string>): Promise<ReflectionAnswer> {
  const require = createRequire(import.meta.url);
  const proto = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), `build/proto/grpc/reflection/${version}/reflection.proto`);
  type Stream = grpc.ClientDuplexStream<Record<string, string>, ReflectionAnswer>;
  const pkg = grpc.loadPackageDefinition(loadSync(proto, LOADER)) as unknown as { grpc: { reflection: Record<string, { ServerReflection: Ctor<grpc.Client & { ServerReflectionInfo(): Stream }> }> } };
  const client = new pkg.grpc.reflection[version]!.ServerReflection(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.on('data', (msg: ReflectionAnswer) => {
      call.end();
      client.close();
      resolve(msg);
    });
    call.on('error', reject);
    call.write(question);
  });
}

async function listServices(address: string, version: 'v1' | 'v1alpha' = 'v1'): Promise<string[]> {
  const msg = await reflect(address, version, { list_services: '' });
  if (!msg.list_services_response) throw new Error(msg.error_response?.error_message ?? 'no list_services_response');
  return msg.list_services_response.service.map((s) => s.name);
}

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ workers: 1, workerArgs: ['--label', 'zone=eu-west', '--label', 'gpu=none'] });
});

afterAll(async () => {
  await cluster?.stop();
});

describe('probes', () => {
  it('grpc.health.v1 reports SERVING overall and per service, NOT_FOUND for an unknown one', async () => {
    const client = healthClient(cluster.address);
    try {
      expect(await check(client, '')).toBe('SERVING');
      expect(await check(client, 'tessera.v1.JobService')).toBe('SERVING');
      expect(await check(client, 'tessera.v1.WorkerService')).toBe('SERVING');
      expect(await check(client, 'tessera.v1.NoSuchService')).toBe('NOT_FOUND');
    } finally {
      client.close();
    }
  });

  it('server reflection lists both Tessera services, health and itself, and describes them (v1 and v1alpha)', async () => {
    for (const version of ['v1', 'v1alpha'] as const) {
      // Health and reflection too, as grpcurl lists a grpc-go server's: `grpcurl HOST
      // grpc.health.v1.Health/Check` finds the method through reflection (review py: "Symbol not found").
      expect((await listServices(cluster.address, version)).sort()).toEqual([
        'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection', 'tessera.v1.JobService', 'tessera.v1.WorkerService',
      ]);
      const health = await reflect(cluster.address, version, { file_containing_symbol: 'grpc.health.v1.Health' });
      const healthFiles = (health.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => FileDescriptorProto.decode(b) as unknown as { service: { name: string; method: { name: string }[] }[] });
      expect(healthFiles.flatMap((f) => f.service).find((s) => s.name === 'Health')?.method.map((m) => m.name).sort()).toEqual(['Check', 'List', 'Watch']);
      // What `grpcurl describe tessera.v1.JobService` asks: the file that defines it, with its methods.
      const answer = await reflect(cluster.address, version, { file_containing_symbol: 'tessera.v1.JobService' });
      const files = (answer.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => FileDescriptorProto.decode(b) as unknown as { service: { name: string; method: { name: string }[] }[] });
      const service = files.flatMap((f) => f.service).find((s) => s.name === 'JobService');
      expect(service?.method.map((m) => m.name)).toEqual(expect.arrayContaining(['SubmitJob', 'WatchJob']));
      const unknown = await reflect(cluster.address, version, { file_containing_symbol: 'tessera.v1.NoSuchThing' });
      expect(unknown.error_response?.error_message).toBeTruthy();
    }
  });

  for (const version of ['v1', 'v1alpha'] as const) {
    it(`a client built from reflection alone (as grpcurl is) submits, watches, downloads and lists labels over ${version} (reviews G, M)`, async () => {
      // Python's protobuf, which, like protoc and Go's protodesc (grpcurl), refuses an invalid file:
      // protobufjs named the entry type of map field Capabilities.labels `Labels`, where protobuf
      // requires `LabelsEntry`, and the whole tessera.v1 file was refused ("map_entry should not be
      // set explicitly"): no method could be called. Debian's python3 with python3-grpcio and
      // python3-grpc-tools (installed by .ci/run). Client and server streams, and the map field.
      const probe = fileURLToPath(new URL('./python/reflection_stream_probe.py', import.meta.url));
      const proto = path.join(path.dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')), `build/proto/grpc/reflection/${version}/reflection.proto`);
      const { stdout } = await promisify(execFile)('/usr/bin/python3', [probe, cluster.address, proto, version], { timeout: 90_000 });
      const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
      expect(r['pool_error'], JSON.stringify(r)).toBeUndefined();
      expect(r['labels_is_map'], JSON.stringify(r)).toBe(true);
      expect(r['labels_entry']).toBe('tessera.v1.Capabilities.LabelsEntry');
      expect(r['SubmitJob'], JSON.stringify(r)).toBe(true);
      expect(r['final_state'], JSON.stringify(r)).toBe('JOB_STATE_SUCCEEDED');
      expect(r['WatchJob'], JSON.stringify(r)).toEqual(expect.arrayContaining(['job_state', 'output']));
      expect(r['DownloadOutput'], JSON.stringify(r)).toBe(true);
      expect(r['labels'], JSON.stringify(r)).toEqual([{ zone: 'eu-west', gpu: 'none' }]);
    }, 120_000);
  }

  it('`tessera health` exits 0 and prints SERVING; /healthz answers ok', async () => {
    const r = await cluster.runCli(['health', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'SERVING', service: '' });
    const one = await cluster.runCli(['health', '--service', 'tessera.v1.WorkerService']);
    expect(one.stdout.trim()).toBe('SERVING');
    // An answer other than SERVING is 1; 4 is kept for no answer at all (below).
    const unknown = await cluster.runCli(['health', '--service', 'tessera.v1.NoSuchService']);
    expect(unknown.code, unknown.stderr).toBe(1);
    expect(unknown.stdout.trim()).toBe('SERVICE_UNKNOWN');
    const res = await fetch(`http://${cluster.httpAddress}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok\n');
  });

  it('`tessera health --http` refuses what only the gRPC check takes, rather than ignoring it', async () => {
    for (const [args, message] of [
      [['health', '--http', cluster.httpAddress, '--service', 'tessera.v1.Bogus'], 'tessera: --service applies to the gRPC check: give it without --http'],
      [['health', '--http', cluster.httpAddress, '--coordinator', cluster.address], 'tessera: --coordinator and --http: give one (--http checks the dashboard address instead of the gRPC one)'],
    ] as const) {
      const r = await runCli([...args]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd()).toBe(message);
    }
    const ok = await runCli(['health', '--http', cluster.httpAddress]);
    expect(ok.stdout.trim()).toBe('SERVING');
  });

  it('`tessera health` exits 4 when nothing answers, over gRPC and over HTTP', async () => {
    // Port 9 (discard) on loopback: nothing listens there.
    const r = await runCli(['health', '--timeout-ms', '500', '--coordinator', '127.0.0.1:9']);
    expect(r.code, r.stderr).toBe(4);
    const http = await runCli(['health', '--timeout-ms', '500', '--http', '127.0.0.1:9']);
    expect(http.code, http.stderr).toBe(4);
    expect(http.stdout.trim()).toBe('UNREACHABLE');
    expect(http.stderr).toContain('tessera: no answer from http://127.0.0.1:9/healthz: bad port');
    // With --json, one shape in both modes: the error every command prints (the HTTP check printed
    // {"status":"UNREACHABLE"} where the gRPC one printed {"error":...}).
    for (const mode of [['--coordinator', '127.0.0.1:9'], ['--http', '127.0.0.1:9']]) {
      const j = await runCli(['health', '--timeout-ms', '500', ...mode, '--json']);
      expect(j.code, j.stderr).toBe(4);
      expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'UNAVAILABLE', message: expect.any(String) } });
    }
    const hint = await runCli(['health', '--timeout-ms', '500', '--http', '127.0.0.1:9', '--json']);
    expect(hint.stderr).toContain('is a coordinator serving its dashboard (--http) at 127.0.0.1:9?');
  });

  // Last: it stops the coordinator.
  it('Watch turns NOT_SERVING as soon as the coordinator starts draining (SIGTERM)', async () => {
    const client = healthClient(cluster.address);
    const seen: string[] = [];
    const call = client.Watch({ service: 'tessera.v1.JobService' });
    const notServing = new Promise<void>((resolve, reject) => {
      call.on('data', (m: { status: string }) => {
        seen.push(m.status);
        if (m.status === 'SERVING') cluster.coordinator!.child.kill('SIGTERM');
        if (m.status === 'NOT_SERVING') resolve();
      });
      call.on('error', (err: grpc.ServiceError) => (seen.includes('NOT_SERVING') ? resolve() : reject(err)));
    });
    await notServing;
    call.cancel();
    client.close();
    expect(seen.slice(0, 2)).toEqual(['SERVING', 'NOT_SERVING']);
    expect(await cluster.coordinator!.exited).toBe(0);
  });
});

describe('/healthz while the coordinator stops', () => {
  it('answers 503 while calls in flight finish, until the gRPC port has closed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-health-stop-'));
    const own = await startCluster({ workers: 1 });
    try {
      // A finished job with a 48 MiB output, and a download of it that stops reading: the
      // coordinator's shutdown waits for that call (up to its 5 s grace).
      const file = path.join(dir, 'big.bin');
      await writeFile(file, randomBytes(48 * 2 ** 20));
      const job = await own.client.submit({ passthrough: { subtasks: 1 } }, [file]);
      expect((await own.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
      const { proto } = loadTesseraProto();
      const raw = new proto.tessera.v1.JobService(own.address, grpc.credentials.createInsecure(), CLIENT_CHANNEL_OPTIONS);
      const call = raw.DownloadOutput({ job_id: job.id, name: 'big.bin', offset: '0' });
      call.on('error', () => undefined);
      await new Promise<void>((resolve) => call.once('data', () => resolve()));
      call.pause();

      const healthz = (): Promise<number> => fetch(`http://${own.httpAddress}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
      expect(await healthz()).toBe(200);
      own.coordinator!.child.kill('SIGTERM');
      const seen: number[] = [];
      let refusedWhile503 = false;
      for (const until = Date.now() + 20_000; Date.now() < until; ) {
        const code = await healthz();
        if (seen[seen.length - 1] !== code) seen.push(code);
        if (code === 0) break;
        if (code === 503 && !refusedWhile503) {
          // The gRPC server takes no new calls now, and /healthz still says why.
          const probe = healthClient(own.address);
          refusedWhile503 = await check(probe, '').then(() => false, () => true);
          probe.close();
        }
        await sleep(20);
      }
      // Serving, then not serving (503) for as long as the download holds the server, then gone.
      expect(seen.slice(-2)).toEqual([503, 0]);
      expect(refusedWhile503).toBe(true);
      call.cancel();
      raw.close();
      expect(await own.coordinator!.exited).toBe(0);
    } finally {
      await own.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
