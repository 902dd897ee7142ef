/**
 * Calls written by hand on a plain generated stub, as a client in any language would make them:
 * for tests of what the coordinator answers to exactly these messages.
 */
import * as grpc from '@grpc/grpc-js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import type { SubmitJobRequest } from '../../shared/proto/generated/tessera/v1/SubmitJobRequest.js';

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
