/**
 * Watching: a coordinator never reached fails at once (as getJob and submit do), not after two
 * minutes of "reconnecting"; and aborting `wait`, `collect`, `submit` or a `watch` in its
 * reconnect pause rejects with the signal's reason, whatever it was doing; a loop that stops
 * reading a watch leaves no call open.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/index.js';
import { runCli, startCluster, type TestCluster } from '../helpers/cluster.js';
import { deadAddress } from '../helpers/addresses.js';
import { settledCalls } from '../helpers/calls.js';

let dir: string;
let cluster: TestCluster | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-client-watch-'));
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const caught = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

describe('a coordinator never reached', () => {
  it('watch, wait and collect fail at once with UNAVAILABLE, without reconnecting', async () => {
    const client = new TesseraClient({ address: await deadAddress() });
    try {
      const reconnects: string[] = [];
      const onReconnect = (why: string): void => void reconnects.push(why);
      const started = Date.now();
      const watching = (async () => {
        for await (const _ of client.watch('some-job', { onReconnect })) void _;
      })();
      for (const [what, p] of [
        ['watch', watching],
        ['wait', client.wait('some-job', undefined, undefined, { onReconnect })],
        ['collect', client.collect('some-job', path.join(dir, 'never'), { onReconnect })],
      ] as const) {
        const err = await caught(p);
        expect((err as grpc.ServiceError).code, `${what}: ${String(err)}`).toBe(grpc.status.UNAVAILABLE);
      }
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(reconnects).toEqual([]);
    } finally {
      client.close();
    }
  }, 30_000);

  it('tessera watch and tessera download exit 4 (coordinator unreachable) at once, without "lost the coordinator"', async () => {
    const dead = await deadAddress();
    for (const args of [['watch', 'some-job'], ['download', 'some-job', '-o', path.join(dir, 'never-cli')]]) {
      const r = await runCli([...args, '--coordinator', dead], { timeoutMs: 20_000 });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain('UNAVAILABLE');
      expect(r.stderr).toContain(`is a coordinator running at ${dead}?`);
      expect(r.stderr).not.toContain('lost the coordinator');
    }
  }, 60_000);
});

describe('aborting', () => {
  it('wait, collect and submit reject with the signal\'s reason', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const file = path.join(dir, 'slow.bin');
    await writeFile(file, 'slow');
    const job = await cluster.client.submit({ passthrough: { work_ms: 20_000 } }, [file]);
    // wait's options where every other call takes them (second), after an onEvent, or a bare signal.
    for (const what of ['wait', 'wait-options', 'wait-options-then-signal', 'wait-after-onEvent', 'collect'] as const) {
      const ac = new AbortController();
      const reason = new Error(`stop ${what}`);
      const p =
        what === 'wait' ? cluster.client.wait(job.id, undefined, ac.signal)
        : what === 'wait-options' ? cluster.client.wait(job.id, { signal: ac.signal })
        // Options, then a signal: both taken (the signal was dropped, and the wait could not be stopped).
        : what === 'wait-options-then-signal' ? cluster.client.wait(job.id, { reconnectForMs: 5000 }, ac.signal)
        : what === 'wait-after-onEvent' ? cluster.client.wait(job.id, () => undefined, { signal: ac.signal })
        : cluster.client.collect(job.id, path.join(dir, 'aborted'), { signal: ac.signal });
      setTimeout(() => ac.abort(reason), 300);
      expect(await caught(p)).toBe(reason);
    }
    // Without a reason: the signal's own, an AbortError.
    const ac = new AbortController();
    const p = cluster.client.wait(job.id, undefined, ac.signal);
    setTimeout(() => ac.abort(), 300);
    const err = await caught(p);
    expect((err as Error).name).toBe('AbortError');
    expect(err).toBe(ac.signal.reason);

    // Mid-upload.
    const big = path.join(dir, 'big.bin');
    await writeFile(big, randomBytes(32 * 2 ** 20));
    const upload = new AbortController();
    const reason = new Error('stop the upload');
    const sent = await caught(cluster.client.submit({ passthrough: {} }, [big], { signal: upload.signal, onUpload: (u) => u.sentBytes > 2 ** 20 && upload.abort(reason) }));
    expect(sent).toBe(reason);
    await cluster.client.cancel(job.id);
  }, 90_000);

  it('a watch waiting to re-attach rejects with the signal\'s reason too', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const file = path.join(dir, 'slow2.bin');
    await writeFile(file, 'slow');
    const job = await cluster.client.submit({ passthrough: { work_ms: 20_000 } }, [file]);
    const ac = new AbortController();
    const reason = new Error('stop re-attaching');
    let lost!: () => void;
    const reconnecting = new Promise<void>((resolve) => (lost = resolve));
    const p = cluster.client.wait(job.id, undefined, ac.signal, { onReconnect: () => lost() });
    // The first events are in: the coordinator was reached; now it goes away.
    await new Promise((r) => setTimeout(r, 500));
    cluster.coordinator!.child.kill('SIGKILL');
    await reconnecting;
    // In one of its 500 ms pauses, or a try to re-attach: the same either way.
    await new Promise((r) => setTimeout(r, 250));
    ac.abort(reason);
    expect(await caught(p)).toBe(reason);
  }, 60_000);

  it('a loop that breaks out of a watch ends its call; the job goes on', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const file = path.join(dir, 'slow3.bin');
    await writeFile(file, 'slow');
    const job = await cluster.client.submit({ passthrough: { work_ms: 20_000 } }, [file]);
    const seen: string[] = [];
    for await (const e of cluster.client.watch(job.id)) {
      seen.push(e.type);
      break;
    }
    expect(seen).toHaveLength(1);
    // Open until the job ended (20 s on) before: the coordinator kept sending to a loop long gone.
    expect(await settledCalls(cluster.client)).toBe(0);
    expect((await cluster.client.getJob(job.id)).state).toBe('JOB_STATE_RUNNING');
    await cluster.client.cancel(job.id);
  }, 60_000);
});

describe('watching some event types only', () => {
  it('a cancelled job ends its running subtasks with an event each, before its final event', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const job = await cluster.client.submit({ passthrough: { subtasks: 3, work_ms: 20_000 } }, []);
    const seen: { type: string; state: string; id: string; final: boolean }[] = [];
    const watching = (async () => {
      for await (const e of cluster!.client.watch(job.id)) {
        seen.push({ type: e.type, state: e.subtask?.state ?? '', id: e.subtask?.id ?? '', final: e.final });
        if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_RUNNING' && !seen.some((x) => x.state === 'SUBTASK_STATE_CANCELLED')) await cluster!.client.cancel(job.id);
      }
    })();
    await watching;
    const started = seen.find((e) => e.state === 'SUBTASK_STATE_RUNNING')!;
    const ended = seen.findIndex((e) => e.type === 'subtask_state' && e.state === 'SUBTASK_STATE_CANCELLED' && e.id === started.id);
    expect(ended, JSON.stringify(seen)).toBeGreaterThan(0);
    expect(seen.at(-1)!.final).toBe(true);
    expect(ended).toBeLessThan(seen.length - 1);
    // The metrics count it.
    const { scrape, get } = await import('../helpers/metrics.js');
    expect(get(await scrape(cluster), 'tessera_subtask_transitions_total{kind="passthrough",state="cancelled"}')).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('sends only the types asked for, and the final event, live and replayed; an unknown type is INVALID_ARGUMENT', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const files: string[] = [];
    for (let i = 0; i < 3; i++) {
      files.push(path.join(dir, `typed-${i}.bin`));
      await writeFile(files[i]!, randomBytes(1000 + i));
    }
    const job = await cluster.client.submit({ passthrough: { work_ms: 100 } }, files);
    const live: { type: string; final: boolean; seq: number }[] = [];
    for await (const e of cluster.client.watch(job.id, { types: ['output'] })) live.push({ type: e.type, final: e.final, seq: Number(e.seq) });
    // One output event per file, then the final job_state event; none of the subtasks' events.
    expect(live.map((e) => e.type)).toEqual(['output', 'output', 'output', 'job_state']);
    expect(live.at(-1)!.final).toBe(true);
    const all: { type: string; seq: number; progress: number; message: string }[] = [];
    for await (const e of cluster.client.watch(job.id)) all.push({ type: e.type, seq: Number(e.seq), progress: e.progress, message: e.message });
    expect(all.filter((e) => e.type === 'subtask_state').length).toBeGreaterThanOrEqual(6);
    // Every event carries the job's progress, whatever its type: it never falls back, and once a
    // subtask is done no event says 0.
    const progress = all.map((e) => e.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const firstDone = all.findIndex((e) => e.type === 'subtask_state' && e.message === 'done');
    expect(firstDone).toBeGreaterThan(0);
    expect(all.slice(firstDone).filter((e) => e.progress === 0)).toEqual([]);
    expect(all.slice(firstDone).map((e) => e.type)).toContain('output');
    expect(live.map((e) => e.seq)).toEqual(all.filter((e) => e.type === 'output' || e.seq === all.at(-1)!.seq).map((e) => e.seq));
    // Replayed from the log after the end: the same filter.
    const replayed: string[] = [];
    for await (const e of cluster.client.watch(job.id, { types: ['job_state'] })) replayed.push(e.type);
    expect(replayed.length).toBeGreaterThanOrEqual(2);
    expect(new Set(replayed)).toEqual(new Set(['job_state']));
    // `wait` without a callback asks only for job_state events, and still returns the finished job.
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // Its options as an object, as every other call takes them.
    const types: string[] = [];
    expect((await cluster.client.wait(job.id, (e) => types.push(e.type), { types: ['output'], signal: new AbortController().signal })).state).toBe('JOB_STATE_SUCCEEDED');
    expect(new Set(types)).toEqual(new Set(['output', 'job_state']));
    expect(done.outputs).toHaveLength(3);
    const err = await caught((async () => {
      for await (const _ of cluster!.client.watch(job.id, { types: ['job_state', 'subtasks'] })) void _;
    })());
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toBe('types: unknown event type "subtasks" (one of job_state, subtask_state, progress, log, output)');
  }, 60_000);
});
