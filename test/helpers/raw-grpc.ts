/**
 * Calls written by hand on a plain generated stub, as a client (or a worker) in any language would
 * make them: for tests of what the coordinator answers to exactly these messages.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { Assignment__Output } from '../../shared/proto/generated/tessera/v1/Assignment.js';
import type { CoordinatorMessage__Output } from '../../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { Job__Output } from '../../shared/proto/generated/tessera/v1/Job.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import type { JobSpec } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import type { SubmitJobRequest } from '../../shared/proto/generated/tessera/v1/SubmitJobRequest.js';
import type { SubtaskResult } from '../../shared/proto/generated/tessera/v1/SubtaskResult.js';
import { sha256 } from '../../shared/streams.js';

/** A plain generated JobService stub on `address`, without TLS. */
export function rawJobService(address: string): JobServiceClient {
  const { proto } = loadTesseraProto();
  return new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
}

/** A SubmitJob of these messages: the error it ends with, if any. */
export function rawSubmit(address: string, messages: SubmitJobRequest[]): Promise<grpc.ServiceError | undefined> {
  const client = rawJobService(address);
  return new Promise((resolve) => {
    const call = client.SubmitJob((err) => {
      client.close();
      resolve(err ?? undefined);
    });
    for (const m of messages) call.write(m);
    call.end();
  });
}

/** A DownloadOutput from the start: the bytes, or the error it ends with. */
export function rawDownload(address: string, jobId: string, name: string): Promise<{ data?: Buffer; err?: grpc.ServiceError }> {
  const client = rawJobService(address);
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const call = client.DownloadOutput({ job_id: jobId, name, offset: 0 });
    call.on('data', (c: { data: Buffer }) => parts.push(c.data));
    call.on('error', (err: grpc.ServiceError) => {
      client.close();
      resolve({ err });
    });
    call.on('end', () => {
      client.close();
      resolve({ data: Buffer.concat(parts) });
    });
  });
}

/** A worker written by hand on the generated stub: it registers, heartbeats, and answers each assignment with `answer`'s result. */
export interface ByHandWorker {
  /** The assignments it was given, in order. */
  seen: Assignment__Output[];
  /** Resolves when the coordinator ends its stream (or the stream fails). */
  ended: Promise<void>;
  stop(): void;
}

/** `answer` undefined: the assignments are kept, never answered. `as`: its registration (defaults: one slot, name `by-hand`). */
export function byHandWorker(
  address: string,
  answer: ((a: Assignment__Output) => Promise<SubtaskResult>) | undefined,
  as: { name?: string; instanceId?: string; slots?: number } = {},
): ByHandWorker {
  const { proto } = loadTesseraProto();
  const stub = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure());
  const call = stub.Connect(new grpc.Metadata());
  const seen: Assignment__Output[] = [];
  const heartbeat = setInterval(() => call.write({ heartbeat: { slots_used: 0, load: 0, rss_bytes: '0', running: [] } }), 500);
  const ended = new Promise<void>((resolve) => {
    call.on('end', resolve);
    call.on('error', () => resolve());
  });
  call.on('data', (msg: CoordinatorMessage__Output) => {
    for (const a of msg.assign ? [msg.assign] : (msg.assign_batch?.assignments ?? [])) {
      seen.push(a);
      if (answer) void answer(a).then((result) => call.write({ result }));
    }
  });
  call.write({ register: { name: as.name ?? 'by-hand', slots: as.slots ?? 1, instance_id: as.instanceId ?? 'by-hand-1', capabilities: { kinds: ['passthrough'] } } });
  return {
    seen,
    ended,
    stop: () => {
      clearInterval(heartbeat);
      call.cancel();
      stub.close();
    },
  };
}

/** A SubmitJob call held open by the test: inputs are sent with {@link sendInput}, `call.end()` ends it. */
export interface HeldSubmission {
  call: grpc.ClientWritableStream<SubmitJobRequest>;
  /** The coordinator's answer, once the upload has ended (or been refused). */
  answer: Promise<{ err: grpc.ServiceError | null; job?: Job__Output }>;
}

/** Opens a SubmitJob call on `client` and sends `spec`; nothing more until the test sends it. */
export function holdSubmission(client: JobServiceClient, spec: JobSpec): HeldSubmission {
  let call!: grpc.ClientWritableStream<SubmitJobRequest>;
  const answer = new Promise<{ err: grpc.ServiceError | null; job?: Job__Output }>((resolve) => {
    call = client.SubmitJob((err, job) => resolve({ err, job })) as unknown as grpc.ClientWritableStream<SubmitJobRequest>;
  });
  call.write({ spec });
  return { call, answer };
}

/** Uploads one input whole: its header, its bytes in one chunk, its end with `trailer` (its SHA-256 unless given). */
export function sendInput(call: grpc.ClientWritableStream<SubmitJobRequest>, input: { name: string; data: Buffer }, trailer = sha256(input.data)): void {
  call.write({ input: { name: input.name, size: String(input.data.length) } });
  call.write({ data: input.data });
  call.write({ input_end: { sha256: trailer } });
}

/** Polls `probe` every 25 ms until it gives a value (at most `tries` times). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, tries = 400): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}
