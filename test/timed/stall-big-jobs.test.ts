/**
 * Big jobs must not freeze the coordinator: every other client's calls and every worker's
 * heartbeats wait behind its event loop. A probe (a ListWorkers call every 20 ms from this process,
 * which stays idle meanwhile) takes the longest wait while a job of 100,000 subtasks (the most a
 * passthrough job may have) is submitted and cancelled, and while 50 watchers attach to a busy
 * job. What it catches are the stalls of seconds each of these made, measured on this machine run
 * alone before the fixes and after them. The bound is on a call's wait less the time the
 * coordinator's event loop waited for a CPU meanwhile (see stallProbe): on a loaded machine (the
 * suite runs two files at a time on 2 cores) the wait itself of the 0.15-0.35 s turns left was
 * 1.3-2.5 s, past a bound of 1.5 s of waiting.
 *
 * Timed, so kept out of the default suite (`npm run test:timed`, alone on a quiet machine): with
 * three files at a time on a busy 2-core host the measure less its CPU waits still read 0.9-1.1 s
 * of the 1.5 s allowed (the test process's own waits and the writer thread's are not taken out).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as grpc from '@grpc/grpc-js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { rawJobService } from '../helpers/raw-grpc.js';
import { stallProbe } from '../helpers/stall-probe.js';

const BOUND_MS = 1500;
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ workers: 1, slots: 8 });
});

afterAll(async () => {
  await cluster?.stop();
});

describe('the coordinator stays responsive', () => {
  it('while a job of 100,000 subtasks is submitted, started and cancelled', async () => {
    let probe = stallProbe(cluster.client, cluster.coordinator!.child.pid);
    await sleep(300);
    const job = await cluster.client.submit({ label: 'big', passthrough: { subtasks: 100_000, work_ms: 50 } }, []);
    await sleep(4000);
    const started = await probe.stop();
    probe = stallProbe(cluster.client, cluster.coordinator!.child.pid);
    await sleep(300);
    // From another process (the CLI), so that decoding its answer does not hold this one's probe up.
    const cancelled = await cluster.runCli(['cancel', job.id]);
    await sleep(1500);
    const cancelling = await probe.stop();
    console.log(`longest ListWorkers: ${started.longestMs} ms (${started.longestStallMs} ms less its waits for a CPU) while the job started, ${cancelling.longestMs} ms (${cancelling.longestStallMs} ms less) while it was cancelled`);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect((await cluster.client.getJob(job.id, { includeSubtasks: false })).state).toBe('JOB_STATE_CANCELLED');
    // Before: 1-2.6 s starting (the batch recording the 100,000 new subtasks serialised and written
    // on the event loop in one go: now in slices, a turn each, on the writer thread), 3 s cancelling
    // (the same for their new states, and all 100,000 read back and encoded into the answer: now
    // its first page); after: 146 and 351 ms.
    expect({ started: started.longestStallMs < BOUND_MS, cancelling: cancelling.longestStallMs < BOUND_MS }).toEqual({ started: true, cancelling: true });
  });

  it('while 50 WatchJob calls attach at once to a busy job, asking only for its state', async () => {
    const job = await cluster.client.submit({ label: 'busy', passthrough: { subtasks: 20_000, work_ms: 0 } }, []);
    // Let it make a log of some tens of thousands of events (two or more per subtask).
    for (let i = 0; i < 100; i++) {
      if (Number((await cluster.client.getJob(job.id, { includeSubtasks: false })).last_event_seq) > 20_000) break;
      await sleep(100);
    }
    const seq = (await cluster.client.getJob(job.id, { includeSubtasks: false })).last_event_seq;
    const probe = stallProbe(cluster.client, cluster.coordinator!.child.pid);
    await sleep(300);
    const stub = rawJobService(cluster.address);
    const calls: grpc.ClientReadableStream<unknown>[] = [];
    const states: unknown[] = [];
    for (let i = 0; i < 50; i++) {
      // As `wait()` asks: the watchers cost this process next to nothing; the coordinator replays the log.
      const call = stub.WatchJob({ job_id: job.id, after_seq: '0', batch: true, types: ['job_state'] });
      call.on('data', (e) => states.push(e));
      call.on('error', () => undefined);
      calls.push(call);
    }
    await sleep(3000);
    const { longestMs, longestStallMs } = await probe.stop();
    for (const c of calls) c.cancel();
    stub.close();
    await cluster.client.cancel(job.id, { deadlineMs: 60_000 }).catch(() => undefined);
    console.log(`job at event ${seq} when 50 watchers attached; longest ListWorkers meanwhile ${longestMs} ms (${longestStallMs} ms less its waits for a CPU)`);
    // Every watcher was told the job's state.
    expect(states.length).toBeGreaterThanOrEqual(50);
    // Before: 2.4-3.5 s (18 s with 100): each replay read page after page of 10,000 events without
    // giving the event loop back while none passed its filter, and with a turn each, all 50 pages
    // were read in the same turn. After: 34 ms (one page of 2,000 a turn, whoever asks).
    expect(longestStallMs).toBeLessThan(BOUND_MS);
  });
});

/** The repository's root (the stand-in below imports the compiled proto loader). */
const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

describe('stallProbe(client, pid)', () => {
  let child: ChildProcess | undefined;
  let client: TesseraClient | undefined;
  afterAll(() => {
    client?.close();
    child?.kill('SIGKILL');
  });

  it('reports a 2 s stall of the coordinator\'s event loop that is spent off the CPU', async () => {
    const code = `
import * as grpc from '@grpc/grpc-js';
import { loadTesseraProto } from ${JSON.stringify(path.join(root, 'dist/shared/proto.js'))};
const { proto } = loadTesseraProto();
const server = new grpc.Server();
server.addService(proto.tessera.v1.JobService.service, { ListWorkers: (_call, cb) => cb(null, { workers: [] }) });
const port = await new Promise((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
process.stdout.write('port ' + port + '\\n');
// Blocks the event loop for 2 s without using the CPU (as a synchronous fsync or a wait on another thread would).
process.stdin.on('data', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000));
setTimeout(() => process.exit(0), 20_000);
`;
    child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
    const port = await new Promise<string>((resolve) => {
      let out = '';
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /port (\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
    });
    client = new TesseraClient({ address: `127.0.0.1:${port}` });
    await client.listWorkers();
    const probe = stallProbe(client, child.pid);
    await sleep(300);
    child.stdin!.write('x');
    await sleep(2500);
    const r = await probe.stop();
    console.log(`stall probe: ${JSON.stringify(r)}`);
    // The wait shows it (about 2000 ms)...
    expect(r.longestMs).toBeGreaterThanOrEqual(1500);
    // ...and so does the measure bounded above (review K: counting only the coordinator's CPU time
    // while a call waited gave a few ms).
    expect(r.longestStallMs).toBeGreaterThanOrEqual(1500);
  }, 20_000);
});
