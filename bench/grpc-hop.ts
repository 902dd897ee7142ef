/**
 * The floor grpc-js sets on bulk bytes on this machine: one `FetchTaskInput` server stream of
 * in-memory chunks between two processes, no disk and no hashing, with Tessera's chunk size and
 * flow-control windows. Its CPU per MiB, times the four hops of a job, bounds what any
 * client -> coordinator -> worker -> coordinator -> client path built on grpc-js can reach here.
 *
 * Run as a child (`node grpc-hop.js serve BYTES`) it serves; `measureGrpcHop` drives it.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { CHUNK_SIZE, CLIENT_CHANNEL_OPTIONS, SERVER_CHANNEL_OPTIONS } from '../shared/config.js';
import { workerServiceDefinition } from '../coordinator/worker-service.js';
import { EncodedMessage } from '../shared/encoded-chunks.js';
import { loadTesseraProto, loadTesseraRoot } from '../shared/proto.js';
import type { DataChunk__Output } from '../shared/proto/generated/tessera/v1/DataChunk.js';

const DataChunk = loadTesseraRoot().lookupType('tessera.v1.DataChunk');

const SELF = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../dist/bench/grpc-hop.js' : './grpc-hop.js', import.meta.url));

export interface GrpcHop {
  mibPerS: number;
  /** CPU of the sending and the receiving process per MiB moved. */
  senderCpuMsPerMiB: number;
  receiverCpuMsPerMiB: number;
}

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

/** Streams `bytes` from a child process to this one over loopback gRPC and reports the cost. */
export async function measureGrpcHop(bytes: number): Promise<GrpcHop> {
  const child = fork(SELF, ['serve', String(bytes)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m: { port: number }) => resolve(m.port));
      child.once('exit', (code) => reject(new Error(`grpc-hop server exited with ${code}`)));
    });
    const { proto } = loadTesseraProto();
    const client = new proto.tessera.v1.WorkerService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), CLIENT_CHANNEL_OPTIONS);
    const senderCpu = (): Promise<number> =>
      new Promise((resolve) => {
        child.once('message', (m: { cpuMs: number }) => resolve(m.cpuMs));
        child.send('cpu');
      });
    const s0 = await senderCpu();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let received = 0;
    for await (const chunk of client.FetchTaskInput({ subtask_id: '', attempt: 0, name: '', offset: 0 }) as AsyncIterable<DataChunk__Output>) received += chunk.data.length;
    const seconds = (performance.now() - t0) / 1000;
    const receiverMs = cpuMs(process.cpuUsage(c0));
    const senderMs = (await senderCpu()) - s0;
    client.close();
    if (received !== bytes) throw new Error(`grpc-hop: received ${received} of ${bytes} bytes`);
    const mib = bytes / 2 ** 20;
    return { mibPerS: mib / seconds, senderCpuMsPerMiB: senderMs / mib, receiverCpuMsPerMiB: receiverMs / mib };
  } finally {
    child.kill();
  }
}

function serve(bytes: number): void {
  const server = new grpc.Server(SERVER_CHANNEL_OPTIONS);
  // Sent as the coordinator sends files: already encoded (shared/encoded-chunks.ts), so that what
  // is measured is grpc-js's own cost.
  const chunk = Buffer.alloc(CHUNK_SIZE, 0x5a);
  const encode = (data: Buffer): EncodedMessage => new EncodedMessage(Buffer.from(DataChunk.encode({ data }).finish()));
  const whole = encode(chunk);
  server.addService(workerServiceDefinition(), {
    FetchTaskInput: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      void (async () => {
        for (let sent = 0; sent < bytes; sent += chunk.length) {
          const message = sent + chunk.length <= bytes ? whole : encode(chunk.subarray(0, bytes - sent));
          if (!call.write(message)) await new Promise((resolve) => call.once('drain', resolve));
        }
        call.end();
      })();
    },
  });
  process.on('message', (m) => {
    if (m === 'cpu') process.send!({ cpuMs: cpuMs(process.cpuUsage()) });
  });
  process.on('disconnect', () => process.exit(0));
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.send!({ port });
  });
}

if (process.argv[2] === 'serve' && process.send) serve(Number(process.argv[3]));
