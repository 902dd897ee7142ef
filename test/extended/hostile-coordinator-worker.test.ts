/**
 * A worker connected to a hostile (compromised, impersonated) or buggy coordinator: a fake
 * WorkerService on 127.0.0.1 sends crafted assignments to a real `tessera worker` process. Whatever
 * it sends, the worker must not write outside its own temp folder (TMPDIR here).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTesseraProto } from '../../shared/proto.js';
import { CLI_PATH } from '../helpers/cluster.js';

const { proto } = loadTesseraProto();
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const JOB = '00000000-0000-4000-8000-000000000001';

interface Fake {
  results: unknown[];
  /** Whether the worker has asked for an input's bytes yet. */
  fetched: boolean;
  stop(): Promise<void>;
}
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A fake coordinator that registers the worker and sends it `assignment`; a real worker (TMPDIR = `tmp`) connected to it. */
async function fakeCoordinator(assignment: Record<string, unknown>, tmp: string, fetch?: (call: grpc.ServerWritableStream<{ offset: string }, unknown>) => void): Promise<Fake> {
  const results: unknown[] = [];
  let fetched = false;
  const server = new grpc.Server();
  server.addService(proto.tessera.v1.WorkerService.service, {
    Connect(call: grpc.ServerDuplexStream<{ register?: unknown; result?: unknown; results?: { results: unknown[] } }, unknown>) {
      call.on('error', () => undefined);
      call.on('data', (m) => {
        if (m.register) {
          call.write({ registered: { worker_id: 'w1', heartbeat_ms: 1000, ttl_ms: 10_000 } });
          call.write({ assign: assignment });
        }
        if (m.result) results.push(m.result);
        if (m.results) results.push(...m.results.results);
      });
    },
    FetchTaskInput(call: grpc.ServerWritableStream<{ offset: string }, unknown>) {
      fetched = true;
      if (fetch) fetch(call);
      else call.emit('error', { code: grpc.status.NOT_FOUND, details: 'no' });
    },
    UploadTaskOutput(call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
      call.on('data', () => undefined);
      call.on('end', () => cb(null, { size: '0', sha256: '' }));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const worker: ChildProcess = spawn(process.execPath, [CLI_PATH, 'worker', '--coordinator', `127.0.0.1:${port}`, '--name', 'w', '--slots', '1'], {
    stdio: 'ignore',
    env: { ...process.env, TESSERA_LOG_LEVEL: 'fatal', TMPDIR: tmp },
  });
  const stop = async (): Promise<void> => {
    worker.kill('SIGKILL');
    server.forceShutdown();
  };
  cleanups.push(stop);
  return {
    results,
    get fetched() {
      return fetched;
    },
    stop,
  };
}

async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && !(await cond())) await new Promise((r) => setTimeout(r, 50));
}

async function folders(): Promise<{ victim: string; tmp: string }> {
  const victim = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-victim-')));
  const tmp = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-wtmp-')));
  cleanups.push(() => rm(victim, { recursive: true, force: true }));
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  return { victim, tmp };
}

describe('a worker given crafted assignments by its coordinator', () => {
  it("a video plan's `input` never puts ffmpeg's output outside the worker's temp folder (nor replaces a file there)", async () => {
    const { victim, tmp } = await folders();
    const src = path.join(tmp, 'src.wav');
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=d=0.3', '-ac', '1', '-ar', '8000', src]);
    const data = await readFile(src);
    await rm(src);
    // A file of the user's, which the worker has no business touching.
    const precious = path.join(victim, 'holiday.m4a');
    await writeFile(precious, 'the only copy of my recording');
    const fake = await fakeCoordinator(
      {
        subtask_id: 's1', job_id: JOB, attempt: 1, kind: 'video', spec: { video: {} }, timeout_ms: 30_000,
        plan_json: JSON.stringify({ type: 'audio', input: `/${'../'.repeat(20)}${victim.slice(1)}/holiday`, source: 'src.wav', file: 'src.wav', encoder: 'aac', channels: 0, sourceChannels: 1, duration: 0.3 }),
        inputs: [{ name: 'src.wav', size: String(data.length), sha256: sha(data), inline: true, inline_data: data }],
      },
      tmp,
    );
    await until(() => fake.results.length > 0, 20_000);
    expect(fake.results.length).toBe(1);
    // Observed: ffmpeg -y wrote the AAC track over VICTIM/holiday.m4a.
    expect(await readFile(precious, 'utf8')).toBe('the only copy of my recording');
    expect(await readdir(victim)).toEqual(['holiday.m4a']);
  });

  it('two inputs of one name never write the second through the first: a shared input is not overwritten', async () => {
    const { victim, tmp } = await folders();
    // A client's file on shared storage, submitted as a shared input (read in place by workers).
    const shared = path.join(victim, 'master.mov');
    await writeFile(shared, 'the client original');
    const st = await stat(shared);
    const evil = Buffer.from('REPLACED');
    const fake = await fakeCoordinator(
      {
        subtask_id: 's1', job_id: JOB, attempt: 1, kind: 'video', spec: { video: {} }, timeout_ms: 30_000, plan_json: '{}',
        inputs: [
          { name: 'a.mov', size: String(st.size), sha256: sha(await readFile(shared)), shared_path: shared, mtime_ms: st.mtimeMs, ino: String(st.ino) },
          { name: 'a.mov', size: String(evil.length), sha256: sha(evil), inline: true, inline_data: evil },
        ],
      },
      tmp,
    );
    await until(() => fake.results.length > 0, 20_000);
    expect(fake.results.length).toBe(1);
    // Observed: the inline input was written through in/a.mov, the link to the shared file.
    expect(await readFile(shared, 'utf8')).toBe('the client original');
  });

  it('an input streamed past its announced size is refused at once, not written to disk without bound', async () => {
    const { tmp } = await folders();
    const fake = await fakeCoordinator(
      { subtask_id: 's1', job_id: JOB, attempt: 1, kind: 'video', spec: { video: {} }, timeout_ms: 600_000, plan_json: '{}', inputs: [{ name: 'a.mov', size: '10', sha256: '' }] },
      tmp,
      (call) => {
        let off = 0;
        const chunk = Buffer.alloc(256 * 1024, 7);
        const pump = (): void => {
          while (!call.cancelled) {
            const ok = call.write({ data: chunk, offset: String(off) });
            off += chunk.length;
            if (!ok) return void call.once('drain', pump);
          }
        };
        pump();
      },
    );
    // The 3 s run from the worker's first read of the input, not from its spawn: a loaded
    // machine's Node start-up and registration are not what is measured.
    await until(() => fake.fetched, 60_000);
    await until(() => fake.results.length > 0, 3000);
    const du = Number(execFileSync('du', ['-sb', tmp]).toString().split('\t')[0]);
    expect(du).toBeLessThan(16 * 1024 * 1024);
    // Observed: no result after 3 s, hundreds of MB in the worker's temp folder for a 10-byte input.
    expect(fake.results.length).toBe(1);
    expect(du).toBeLessThan(16 * 1024 * 1024);
  });
});
