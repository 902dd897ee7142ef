/** Stand-in JobServices for the submit tests: a coordinator of the test's that makes a job when a whole submission is in (told by spec.input_count, as the coordinator is), answers when the test says, and records look-ups and cancellations. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll } from 'vitest';
import { loadTesseraProto } from '../../shared/proto.js';

export interface StandIn {
  address: string;
  port: number;
  /** Jobs made, by the request_id of the submission that made them. */
  made: Map<string, string>;
  cancelled: string[];
  lookups: { request_id: string; token: string }[];
  /** Called when a submission's last message is in (the client has sent everything). */
  uploaded: () => void;
  /** Called once a job is made. */
  onMade: () => void;
  server: grpc.Server;
}

/**
 * A coordinator of the test's: makes job `job-N` `makeMs` after a submission ends (0: at once),
 * answers `holdMs` after it is made (never, for Infinity). ListJobs: 'new' finds by request_id
 * (waiting for a submission still being received, as the coordinator does); 'old' ignores
 * request_id and lists every job made so far, at once (a coordinator from before the field).
 */
export async function standIn(opts: { holdMs: number; makeMs?: number; lookups?: 'new' | 'old' | false }): Promise<StandIn> {
  const s: StandIn = { address: '', port: 0, made: new Map(), cancelled: [], lookups: [], uploaded: () => undefined, onMade: () => undefined, server: new grpc.Server() };
  const { proto } = loadTesseraProto();
  const receiving = new Map<string, Promise<void>>();
  const handlers: Record<string, unknown> = {
    SubmitJob: (call: grpc.ServerReadableStream<{ spec?: { request_id: string; input_count?: number }; input_end?: unknown; input?: { shared_path?: string } }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      let requestId = '';
      let expected = 0;
      let inputsIn = 0;
      let settle = (): void => undefined;
      call.on('data', (m) => {
        if (m.input_end || m.input?.shared_path) inputsIn++;
        if (m.spec) {
          expected = m.spec.input_count ?? 0;
          requestId = m.spec.request_id;
          receiving.set(requestId, new Promise<void>((r) => (settle = r)));
        }
      });
      // Cut before its end: nothing made (the coordinator drops a submission cut short).
      let ended = false;
      call.on('cancelled', () => {
        if (!ended) settle();
      });
      call.on('error', () => {
        if (!ended) settle();
      });
      call.on('end', () => {
        ended = true;
        // A cancelled grpc-js call ends its side before its reset: told by the count, as the coordinator does.
        if (inputsIn < expected) {
          settle();
          cb({ code: grpc.status.CANCELLED, details: 'cut short' });
          return;
        }
        s.uploaded();
        const make = (): void => {
          const id = s.made.get(requestId) ?? `job-${s.made.size + 1}`;
          s.made.set(requestId, id);
          settle();
          s.onMade();
          if (opts.holdMs === Infinity) return;
          const timer = setTimeout(() => cb(null, { id, state: 'JOB_STATE_RUNNING', spec: { request_id: requestId } }), opts.holdMs);
          call.on('cancelled', () => clearTimeout(timer));
        };
        if (opts.makeMs) setTimeout(make, opts.makeMs);
        else make();
      });
    },
    CancelJob: (call: grpc.ServerUnaryCall<{ job_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      s.cancelled.push(call.request.job_id);
      cb(null, { id: call.request.job_id, state: 'JOB_STATE_CANCELLED' });
    },
  };
  if (opts.lookups !== false) {
    handlers['ListJobs'] = async (call: grpc.ServerUnaryCall<{ request_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      s.lookups.push({ request_id: call.request.request_id, token: String(call.metadata.get('authorization')[0] ?? '') });
      if (opts.lookups === 'old') {
        cb(null, { jobs: [...s.made].reverse().map(([rid, id]) => ({ id, state: 'JOB_STATE_RUNNING', spec: { request_id: rid } })), next_page_token: '' });
        return;
      }
      await receiving.get(call.request.request_id);
      const id = s.made.get(call.request.request_id);
      cb(null, { jobs: id ? [{ id, state: 'JOB_STATE_RUNNING', spec: { request_id: call.request.request_id } }] : [], next_page_token: '' });
    };
  }
  s.server.addService(proto.tessera.v1.JobService.service, handlers as never);
  s.port = await new Promise<number>((resolve, reject) => s.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  s.address = `127.0.0.1:${s.port}`;
  return s;
}

export async function tempDir(): Promise<{ dir: string; file: (name: string, body?: string) => Promise<string>; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-review-n-'));
  return {
    dir,
    file: async (name, body = 'hello') => {
      const f = path.join(dir, name);
      await writeFile(f, body);
      return f;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * For one test file, called at its top level: a temp folder (`dir()`, made before its tests) and
 * `standIn`s that are shut down after them, the folder removed.
 */
export function standInsOfThisFile(prefix: string): { dir: () => string; standIn: typeof standIn; servers: grpc.Server[] } {
  let folder = '';
  const servers: grpc.Server[] = [];
  beforeAll(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), prefix));
  });
  afterAll(async () => {
    for (const s of servers) s.forceShutdown();
    if (folder) await rm(folder, { recursive: true, force: true });
  });
  return {
    dir: () => folder,
    servers,
    standIn: async (opts) => {
      const s = await standIn(opts);
      servers.push(s.server);
      return s;
    },
  };
}

/**
 * A coordinator of the test's that answers every submission with job `job-big` and a next page of
 * subtasks it never gives (GetJob unanswered: a loaded coordinator slow to give the next 10,000),
 * lists that job by its request_id, and records the cancels; shut down with the file's stand-ins.
 */
export async function pagesNeverAnswered(servers: grpc.Server[]): Promise<{ address: string; cancelled: string[] }> {
  const { proto } = loadTesseraProto();
  const server = new grpc.Server();
  servers.push(server);
  const cancelled: string[] = [];
  let rid = '';
  server.addService(proto.tessera.v1.JobService.service, {
    SubmitJob: (call: grpc.ServerReadableStream<{ spec?: { request_id: string } }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      call.on('data', (m) => {
        if (m.spec) rid = m.spec.request_id;
      });
      call.on('end', () => cb(null, { id: 'job-big', state: 'JOB_STATE_RUNNING', spec: { request_id: rid }, next_subtask_page_token: 'page-2' }));
    },
    GetJob: () => undefined,
    ListJobs: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { jobs: [{ id: 'job-big', state: 'JOB_STATE_RUNNING', spec: { request_id: rid } }] }),
    CancelJob: (call: grpc.ServerUnaryCall<{ job_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      cancelled.push(call.request.job_id);
      cb(null, { id: call.request.job_id, state: 'JOB_STATE_CANCELLED' });
    },
  } as never);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { address: `127.0.0.1:${port}`, cancelled };
}
