/**
 * Calls written by hand on a plain generated stub, as a client (or a worker) in any language would
 * make them: for tests of what the coordinator answers to exactly these messages.
 */
import * as grpc from '@grpc/grpc-js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { Assignment__Output } from '../../shared/proto/generated/tessera/v1/Assignment.js';
import type { CoordinatorMessage__Output } from '../../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import type { SubmitJobRequest } from '../../shared/proto/generated/tessera/v1/SubmitJobRequest.js';
import type { SubtaskResult } from '../../shared/proto/generated/tessera/v1/SubtaskResult.js';

function jobService(address: string): JobServiceClient {
  const { proto } = loadTesseraProto();
  return new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
}

/** A SubmitJob of these messages: the error it ends with, if any. */
export function rawSubmit(address: string, messages: SubmitJobRequest[]): Promise<grpc.ServiceError | undefined> {
  const client = jobService(address);
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
  const client = jobService(address);
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
  stop(): void;
}

export function byHandWorker(address: string, answer: (a: Assignment__Output) => Promise<SubtaskResult>): ByHandWorker {
  const { proto } = loadTesseraProto();
  const stub = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure());
  const call = stub.Connect(new grpc.Metadata());
  const seen: Assignment__Output[] = [];
  const heartbeat = setInterval(() => call.write({ heartbeat: { slots_used: 0, load: 0, rss_bytes: '0', running: [] } }), 500);
  call.on('error', () => undefined);
  call.on('data', (msg: CoordinatorMessage__Output) => {
    for (const a of msg.assign ? [msg.assign] : (msg.assign_batch?.assignments ?? [])) {
      seen.push(a);
      void answer(a).then((result) => call.write({ result }));
    }
  });
  call.write({ register: { name: 'by-hand', slots: 1, instance_id: 'by-hand-1', capabilities: { kinds: ['passthrough'] } } });
  return {
    seen,
    stop: () => {
      clearInterval(heartbeat);
      call.cancel();
      stub.close();
    },
  };
}
