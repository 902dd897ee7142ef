/** A worker written by hand (what a compromised worker, or another program given the worker token, may send), and a coordinator in a temp dir. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TesseraClient } from '../../client/client.js';
import { Coordinator, type CoordinatorOptions } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { loadTesseraProto } from '../../shared/proto.js';
import { WORKER_FEATURES } from '../../shared/job-kind.js';
import type { Assignment__Output } from '../../shared/proto/generated/tessera/v1/Assignment.js';
import type { CoordinatorMessage__Output } from '../../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { WorkerMessage } from '../../shared/proto/generated/tessera/v1/WorkerMessage.js';

export const log = createLogger('test', 'silent', 'json');

export type WorkerCall = grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output>;

/** A worker written by hand: registers for `kinds`, hands each assignment to `onAssign`. */
export function handWorker(address: string, kinds: string[], onAssign: (a: Assignment__Output, call: WorkerCall) => void, o: { name?: string; instanceId?: string; token?: string } = {}): { stop(): void; call: WorkerCall; registered: Promise<string> } {
  const { proto } = loadTesseraProto();
  const stub = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * 1024 * 1024, 'grpc.max_receive_message_length': 64 * 1024 * 1024 }) as unknown as grpc.Client & {
    Connect(md: grpc.Metadata): WorkerCall;
  };
  const md = new grpc.Metadata();
  if (o.token) md.set('authorization', `Bearer ${o.token}`);
  const call = stub.Connect(md);
  call.on('error', () => undefined);
  const heartbeat = setInterval(() => call.write({ heartbeat: { slots_used: 0, load: 0, rss_bytes: '0', running: [] } }), 300);
  let resolveId: (id: string) => void = () => undefined;
  const registered = new Promise<string>((r) => (resolveId = r));
  call.on('data', (m: CoordinatorMessage__Output) => {
    if (m.registered) resolveId(m.registered.worker_id);
    for (const a of m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])) onAssign(a, call);
  });
  call.write({ register: { name: o.name ?? 'hand', slots: 1, instance_id: o.instanceId ?? 'hand-1', capabilities: { kinds, encoders: [], features: [...WORKER_FEATURES], labels: {}, cpu_count: 1, memory_bytes: '0', ffmpeg_version: '', sharp_version: '', libvips_version: '' } } });
  return {
    call,
    registered,
    stop: () => {
      clearInterval(heartbeat);
      call.cancel();
      stub.close();
    },
  };
}

export async function coordinator(cleanups: (() => Promise<void>)[], extra: Partial<CoordinatorOptions> = {}): Promise<{ address: string; dir: string; client: TesseraClient; c: Coordinator }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-rev-s-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const c = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', ...extra } as CoordinatorOptions);
  const address = await c.start();
  cleanups.push(() => c.close());
  const client = new TesseraClient({ address, deadlineMs: 10_000 });
  cleanups.push(async () => client.close());
  return { address, dir, client, c };
}
