/**
 * The client library and the CLI against a hostile (compromised, impersonated) or buggy coordinator:
 * a fake JobService on 127.0.0.1 announces an output of 10 bytes and then streams bytes for ever,
 * each chunk at the right offset. What was announced is all a download may take: the first byte
 * past it is DATA_LOSS at once, and the user's folder never fills with what no output holds.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { loadTesseraProto } from '../shared/proto.js';
import { CLI_PATH } from './helpers/cluster.js';

const { proto } = loadTesseraProto();
const JOB = '00000000-0000-4000-8000-000000000001';
const job = { id: JOB, last_event_seq: '1', kind: 'passthrough', state: 'JOB_STATE_SUCCEEDED', outputs: [{ name: 'o.bin', size: '10', sha256: '' }], spec: { passthrough: {} } };
let server: grpc.Server;
let address: string;
/** Called by the stand-in each time a download of the output begins (the test sets it). */
let downloadAsked = (): void => undefined;
const dirs: string[] = [];

beforeAll(async () => {
  server = new grpc.Server();
  server.addService(proto.tessera.v1.JobService.service, {
    GetJob: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, job),
    // The job has ended: one final event (what `tessera download` waits for first).
    WatchJob(call: grpc.ServerWritableStream<unknown, unknown>) {
      call.write({ seq: '1', job_id: JOB, type: 'job_state', job_state: 'JOB_STATE_SUCCEEDED', progress: 1, final: true });
      call.end();
    },
    // Endless, every chunk at the offset expected.
    DownloadOutput(call: grpc.ServerWritableStream<{ offset: string }, unknown>) {
      downloadAsked();
      let off = Number(call.request.offset);
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
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  server?.forceShutdown();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const folder = async (): Promise<string> => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'tessera-hostile-dl-'));
  dirs.push(d);
  return d;
};
const bytesIn = (dir: string): number => Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);

describe('an output streamed past its announced size', () => {
  it('download(): DATA_LOSS at once, and nothing of the excess is left in the folder', async () => {
    const dir = await folder();
    const client = new TesseraClient({ address });
    const ac = new AbortController();
    let most = 0;
    const outcome = client.download(JOB, dir, { signal: ac.signal, onProgress: (p) => (most = Math.max(most, p.bytes)) }).then(
      () => 'downloaded',
      (err: grpc.ServiceError) => `code ${err.code}`,
    );
    const first = await Promise.race([outcome, new Promise<string>((r) => setTimeout(() => r('still downloading after 3 s'), 3000))]);
    ac.abort();
    await outcome;
    client.close();
    // Observed: still downloading after 3 s, onProgress past 500 MB for a 10-byte output, and
    // the excess (hundreds of MB) kept as .o.bin.tessera-part after the abort.
    expect(first).toBe(`code ${grpc.status.DATA_LOSS}`);
    expect(most).toBeLessThanOrEqual(10);
    expect(bytesIn(dir)).toBeLessThan(1024 * 1024);
  });

  it('readOutput(): never yields more bytes than the output has', async () => {
    const client = new TesseraClient({ address });
    let got = 0;
    const err = await (async () => {
      for await (const chunk of client.readOutput(JOB, 'o.bin')) {
        got += chunk.length;
        if (got > 64 * 1024 * 1024) return 'went on past 64 MiB';
      }
      return 'ended';
    })().catch((e: grpc.ServiceError) => `code ${e.code}`);
    client.close();
    // Observed: 'went on past 64 MiB' (every chunk past the 10 bytes was handed to the caller).
    expect(err).toBe(`code ${grpc.status.DATA_LOSS}`);
    expect(got).toBeLessThanOrEqual(10);
  });

  it('tessera download -o DIR: fails (DATA_LOSS) within seconds and does not fill the folder', async () => {
    const dir = await folder();
    // The 3 s run from the moment the CLI asks for the bytes, not from its spawn: a loaded
    // machine's Node start-up and the command's first calls are not what is measured.
    const asked = new Promise<void>((resolve) => (downloadAsked = resolve));
    const cli = spawn(process.execPath, [CLI_PATH, 'download', JOB, '-o', dir, '--coordinator', address], { stdio: 'ignore', env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' } });
    const exit = await new Promise<number | string>((resolve) => {
      let t = setTimeout(() => resolve('never asked for the output within 60 s'), 60_000);
      void asked.then(() => {
        clearTimeout(t);
        t = setTimeout(() => resolve('still running 3 s after it asked for the output'), 3000);
      });
      cli.once('exit', (code) => (clearTimeout(t), resolve(code ?? -1)));
    });
    const size = bytesIn(dir);
    cli.kill('SIGKILL');
    // Observed: still running after 3 s with hundreds of MB in DIR.
    expect(size).toBeLessThan(1024 * 1024);
    expect(typeof exit, String(exit)).toBe('number');
  });
});
