/**
 * Prometheus /metrics of a real coordinator: scraped before and after real jobs on real workers,
 * the counters move by what the jobs did (subtasks, retries, bytes, a lease taken back from a
 * SIGKILLed worker), the gauges reflect the workers, and Node's process metrics are there.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { delta, get, scrape } from './helpers/metrics.js';


let cluster: TestCluster;
let dir: string;
const logs: { who: string; line: string }[] = [];

beforeAll(async () => {
  // A SIGKILLed worker is lost as soon as its stream breaks; frequent heartbeats and a roomy TTL
  // keep a worker starved on a loaded machine from being declared lost as well (a CI run on a slow
  // host with a 5 s TTL counted two attempts more than the job made, most likely a worker's running
  // and queued subtasks re-run after it was taken for lost).
  cluster = await startCluster({
    workers: 2,
    slots: 1,
    coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '20000'],
    logLevel: 'debug',
    onLog: (who, line) => logs.push({ who, line }),
  });
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-metrics-'));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('/metrics', () => {
  it('exposes Node process metrics and the workers by state', async () => {
    const m = await scrape(cluster);
    expect(get(m, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(get(m, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(get(m, 'tessera_workers{state="active"}')).toBe(2);
    expect(get(m, 'tessera_worker_slots{use="total"}')).toBe(2);
    expect(m.has('tessera_queue_depth')).toBe(true);
  });

  it('counts jobs, subtasks, retries, durations and bytes of a job', async () => {
    const files: string[] = [];
    for (let i = 0; i < 3; i++) {
      const f = path.join(dir, `in-${i}.bin`);
      await writeFile(f, randomBytes(10_000 + i));
      files.push(f);
    }
    const before = await scrape(cluster);
    // Each of the 3 subtasks fails once (retryable), then succeeds: 3 retries, 6 attempts.
    const job = await cluster.client.submit({ passthrough: { subtasks: 3, fail_first_attempts: 1 } }, files);
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const after = await scrape(cluster);
    const k = 'kind="passthrough"';
    expect(delta(before, after, `tessera_jobs_submitted_total{${k}}`)).toBe(1);
    expect(delta(before, after, `tessera_jobs_finished_total{${k},state="succeeded"}`)).toBe(1);
    // 6 attempts, plus any speculative copy the straggler rule chose to start and any queued
    // assignment moved to an idle worker (each a new attempt, and not a retry).
    const copies = delta(before, after, 'tessera_speculative_copies_total') + delta(before, after, 'tessera_queued_subtasks_moved_total');
    expect(delta(before, after, `tessera_subtask_transitions_total{${k},state="running"}`)).toBe(6 + copies);
    expect(delta(before, after, `tessera_subtask_transitions_total{${k},state="succeeded"}`)).toBe(3);
    expect(delta(before, after, `tessera_subtask_retries_total{${k}}`)).toBe(3);
    expect(delta(before, after, `tessera_subtask_duration_seconds_count{${k},outcome="succeeded"}`)).toBe(3);
    expect(delta(before, after, `tessera_subtask_duration_seconds_sum{${k},outcome="succeeded"}`)).toBeGreaterThan(0);
    expect(delta(before, after, 'tessera_lease_expiries_total')).toBe(0);
    // Passthrough returns its inputs unchanged: bytes in = bytes out = the files' sizes. The job is
    // accepted with its first file while the others upload: theirs count as they arrive.
    const size = 10_000 + 10_001 + 10_002;
    expect(delta(before, after, `tessera_input_bytes_total{${k}}`)).toBe(size);
    expect(delta(before, after, `tessera_output_bytes_total{${k}}`)).toBe(size);
    expect(get(after, 'tessera_jobs{state="succeeded"}')).toBeGreaterThanOrEqual(1);

    // The coordinator's log (JSON, not a terminal) tells the same story with every id on each line.
    // Log lines arrive asynchronously over the coordinator's stderr: wait until the last one is in.
    const parse = () => logs.filter((l) => l.who === 'coordinator').map((l) => JSON.parse(l.line) as Record<string, unknown>);
    for (let i = 0; i < 100 && parse().filter((l) => l['job'] === job.id && l['state'] === 'succeeded' && l['subtask']).length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    const lines = parse();
    const ofJob = lines.filter((l) => l['job'] === job.id && l['subtask']);
    expect(ofJob.filter((l) => l['state'] === 'running')).toHaveLength(6 + copies);
    for (const l of ofJob) {
      expect(l).toMatchObject({ job: job.id, subtask: expect.any(String), attempt: expect.any(Number) });
      if (l['state'] === 'running' || l['state'] === 'succeeded') expect(cluster.workers.map((w) => w.name)).toContain(l['worker']);
    }
    expect(ofJob.filter((l) => l['state'] === 'pending' && l['level'] === 40)).toHaveLength(3);
    // Worker lines carry the worker's name.
    const workerLines = logs.filter((l) => l.who === 'worker-2').map((l) => JSON.parse(l.line) as Record<string, unknown>);
    expect(workerLines.length).toBeGreaterThan(0);
    for (const l of workerLines) expect(l['worker']).toBe('worker-2');
  });

  it('counts a job of no inputs, accepted whole while the store was idle, as submitted and finished', async () => {
    // Its submission settled before the metrics had heard of the job (the commit was asked for
    // before the job was saved): counted by neither, and kept in the metrics' table for ever.
    await new Promise((r) => setTimeout(r, 300));
    const before = await scrape(cluster);
    const job = await cluster.client.submit({ passthrough: { subtasks: 1, work_ms: 10 } }, []);
    expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    const after = await scrape(cluster);
    const k = 'kind="passthrough"';
    expect(delta(before, after, `tessera_jobs_submitted_total{${k}}`)).toBe(1);
    expect(delta(before, after, `tessera_jobs_finished_total{${k},state="succeeded"}`)).toBe(1);
  });

  it('counts a lease taken back from a worker killed mid-subtask, and shows the worker lost', async () => {
    const before = await scrape(cluster);
    const victim = cluster.workers[0]!;
    const job = await cluster.client.submit({ passthrough: { subtasks: 4, work_ms: 600 } }, []);
    let killed = false;
    const done = await cluster.client.wait(job.id, (e) => {
      if (!killed && e.type === 'subtask_state' && e.subtask?.worker === victim.name && e.subtask.state === 'SUBTASK_STATE_RUNNING') {
        killed = true;
        victim.child.kill('SIGKILL');
      }
    });
    expect(killed).toBe(true);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const after = await scrape(cluster);
    expect(delta(before, after, 'tessera_lease_expiries_total')).toBeGreaterThanOrEqual(1);
    expect(delta(before, after, 'tessera_subtask_retries_total{kind="passthrough"}')).toBeGreaterThanOrEqual(1);
    expect(get(after, 'tessera_workers{state="lost"}')).toBe(1);
    expect(get(after, 'tessera_workers{state="active"}')).toBe(1);
    expect(get(after, 'tessera_queue_depth')).toBe(0);
  });
});
