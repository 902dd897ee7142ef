/**
 * Failure detection must blame workers for their silence, not for the coordinator's: after a
 * stall of the coordinator's event loop (a long GC, a big SQLite transaction), the sweep's timer
 * runs before the heartbeats that arrived meanwhile are read.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { CLI_PATH } from '../client/local-cluster.js';
import { WORKER_FEATURES } from '../shared/job-kind.js';
import { Coordinator } from './coordinator.js';
import { WorkerRegistry, newWorkerSession } from './worker-registry.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

const caps = { kinds: ['passthrough'], encoders: [], cpu_count: 1, ffmpeg_version: '', sharp_version: '', libvips_version: '', labels: {}, memory_bytes: '0', features: [] };

describe('WorkerRegistry', () => {
  it('reports the features every active worker of a kind has (none while there is no worker)', () => {
    const registry = new WorkerRegistry();
    const video = (id: string, features: string[], kinds = ['video']) =>
      newWorkerSession({ id, name: id, instanceId: id, address: '', slots: 2, capabilities: { ...caps, kinds, features }, call: undefined });
    expect(registry.activeCount('video').features).toEqual(new Set());
    registry.add(video('new', [...WORKER_FEATURES, 'from-the-future']));
    expect([...registry.activeCount('video').features]).toEqual([...WORKER_FEATURES]);
    // A worker that cannot take the kind does not count; an older one that can, does.
    registry.add(video('images', [], ['image']));
    expect([...registry.activeCount('video').features]).toEqual([...WORKER_FEATURES]);
    const older = video('older', []);
    registry.add(older);
    expect(registry.activeCount('video')).toMatchObject({ workers: 2, slots: 4, features: new Set() });
    older.state = 'lost';
    expect([...registry.activeCount('video').features]).toEqual([...WORKER_FEATURES]);
  });

  it('credits its workers a stall of the coordinator, and only the live ones, never past now', () => {
    const registry = new WorkerRegistry();
    const a = newWorkerSession({ id: 'a', name: 'a', instanceId: 'a', address: '', slots: 1, capabilities: caps, call: undefined });
    const b = newWorkerSession({ id: 'b', name: 'b', instanceId: 'b', address: '', slots: 1, capabilities: caps, call: undefined });
    const lost = newWorkerSession({ id: 'l', name: 'l', instanceId: 'l', address: '', slots: 1, capabilities: caps, call: undefined });
    registry.add(a);
    registry.add(b);
    registry.add(lost);
    const now = 100_000;
    a.lastHeartbeat = now - 6_000;
    b.lastHeartbeat = now - 500;
    lost.state = 'lost';
    lost.lastHeartbeat = now - 6_000;
    expect(registry.expired(5_000, now).map((w) => w.id)).toEqual(['a']);
    registry.credit(5_500, now);
    expect(a.lastHeartbeat).toBe(now - 500);
    expect(b.lastHeartbeat).toBe(now);
    expect(lost.lastHeartbeat).toBe(now - 6_000);
    expect(registry.expired(5_000, now)).toEqual([]);
  });
});

describe('WorkerRegistry listings', () => {
  it('lists a worker back under its name once, replacing its lost session, and keeps other lost ones', () => {
    const registry = new WorkerRegistry();
    const session = (id: string, name: string) => newWorkerSession({ id, name, instanceId: id, address: '', slots: 1, capabilities: caps, call: undefined });
    const first = session('s1', 'w1');
    const other = session('s2', 'w2');
    registry.add(first);
    registry.add(other);
    first.state = 'lost';
    other.state = 'lost';
    registry.add(session('s3', 'w1'));
    expect(registry.all().map((w) => [w.id, w.name, w.state])).toEqual([
      ['s2', 'w2', 'lost'],
      ['s3', 'w1', 'active'],
    ]);
  });

  it('keeps at most so many lost workers, the most recently lost, whatever their age: a peer registering again and again does not grow it', () => {
    const registry = new WorkerRegistry();
    const now = 1_000_000;
    const session = (id: string) => newWorkerSession({ id, name: id, instanceId: id, address: '', slots: 1, capabilities: caps, call: undefined });
    const live = session('live');
    registry.add(live);
    for (let i = 0; i < 5; i++) {
      const w = session(`gone-${i}`);
      registry.add(w);
      w.state = 'lost';
      w.lostAt = now + i;
    }
    registry.prune(10 * 60_000, now + 10, 2);
    expect(registry.all().map((w) => w.id).sort()).toEqual(['gone-3', 'gone-4', 'live']);
  });

  it('hands a worker back under its name its quarantine and its count of quarantines in a row, unless it is the only worker', () => {
    const registry = new WorkerRegistry();
    const session = (id: string, name: string) => newWorkerSession({ id, name, instanceId: id, address: '', slots: 1, capabilities: caps, call: undefined });
    const now = 1_000_000;
    const flaky = session('s1', 'flaky');
    registry.add(flaky);
    registry.add(session('s2', 'steady'));
    Object.assign(flaky, { state: 'lost', quarantines: 3, quarantinedUntil: now + 60_000, recentFailures: [{ at: now - 90_000, jobId: 'j' }, { at: now - 1_000, jobId: 'j' }] });
    // It crashed while quarantined and came back at once (a container restarted under the same name).
    const back = session('s3', 'flaky');
    registry.add(back, now);
    expect([back.state, back.quarantines, back.quarantinedUntil, back.recentFailures]).toEqual(['quarantined', 3, now + 60_000, [{ at: now - 1_000, jobId: 'j' }]]);
    // Alone, it keeps the count (its next quarantine is longer) but takes work.
    const alone = new WorkerRegistry();
    const lone = session('s4', 'lone');
    alone.add(lone);
    Object.assign(lone, { state: 'lost', quarantines: 2, quarantinedUntil: now + 60_000 });
    const again = session('s5', 'lone');
    alone.add(again, now);
    expect([again.state, again.quarantines, again.quarantinedUntil]).toEqual(['active', 2, now + 60_000]);
  });

  it('hands its quarantine to a worker back under its name after a stop as planned, or before its old session was found lost', () => {
    const registry = new WorkerRegistry();
    const session = (id: string, name: string) => newWorkerSession({ id, name, instanceId: id, address: '', slots: 1, capabilities: caps, call: undefined });
    const now = 1_000_000;
    registry.add(session('s0', 'steady'));
    // Stopped by its supervisor while quarantined (it drained and left) and started again.
    const drained = session('s1', 'flaky');
    registry.add(drained);
    Object.assign(drained, { state: 'quarantined', quarantines: 2, quarantinedUntil: now + 60_000 });
    registry.remove(drained.id, now);
    expect(registry.all().map((w) => w.name)).toEqual(['steady']);
    const started = session('s2', 'flaky');
    registry.add(started, now + 1_000);
    expect([started.state, started.quarantines, started.quarantinedUntil]).toEqual(['quarantined', 2, now + 60_000]);
    // Killed and back within the heartbeat TTL: its old session is not lost yet.
    const quick = session('s3', 'flaky');
    registry.add(quick, now + 2_000);
    expect([quick.state, quick.quarantines]).toEqual(['quarantined', 2]);
    // A record of one that left is kept as long as a lost worker is listed, then forgotten.
    registry.remove(started.id, now);
    registry.remove(quick.id, now);
    registry.prune(10 * 60_000, now + 11 * 60_000);
    const later = session('s4', 'flaky');
    registry.add(later, now + 11 * 60_000);
    expect([later.state, later.quarantines]).toEqual(['active', 0]);
  });

  it('keeps a worker out of quarantine while it is the only active one of a kind it runs, and ends one that became so', () => {
    const registry = new WorkerRegistry();
    const session = (id: string, name: string, kinds: string[]) => newWorkerSession({ id, name, instanceId: id, address: '', slots: 1, capabilities: { ...caps, kinds }, call: undefined });
    const now = 1_000_000;
    const images = session('s1', 'images', ['image']);
    registry.add(images);
    const video = session('s2', 'video', ['video']);
    registry.add(video);
    Object.assign(video, { state: 'lost', quarantines: 4, quarantinedUntil: now + 8 * 60_000 });
    // The only video worker restarts while an image worker runs: it comes back taking work (and
    // keeps its count), or no video would run for eight minutes.
    const back = session('s3', 'video', ['video']);
    registry.add(back, now);
    expect([back.state, back.quarantines]).toEqual(['active', 4]);
    // Quarantined beside another worker of its kind, it sits out its time; once that one is lost,
    // its quarantine ends at the next sweep.
    const other = session('s4', 'video-2', ['video']);
    registry.add(other);
    Object.assign(back, { state: 'quarantined', quarantinedUntil: now + 60_000 });
    expect(registry.endQuarantines(now)).toBe(false);
    other.state = 'lost';
    expect(registry.endQuarantines(now)).toBe(true);
    expect(back.state).toBe('active');
  });
});

describe('a stalled coordinator', () => {
  it('does not declare a worker lost that kept heartbeating while it could not read', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-stall-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // What the coordinator warns of (a worker lost is one).
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', heartbeatMs: 250, ttlMs: 1500, shutdownGraceMs: 1000 });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    // The worker is another process (the built CLI): a worker in this process would stall too.
    const worker = spawn(process.execPath, [CLI_PATH, 'worker', '--coordinator', address, '--slots', '1', '--name', 'w1'], { stdio: 'ignore', env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' } });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    cleanups.push(() => {
      worker.kill('SIGKILL');
      return exited;
    });
    const client = new TesseraClient({ address });
    cleanups.push(() => client.close());
    await expect.poll(async () => (await client.listWorkers()).map((w) => `${w.name}:${w.state}`), { timeout: 60_000 }).toEqual(['w1:active']);
    const [registered] = await client.listWorkers();
    // A subtask running on it, whose lease a false loss would throw away.
    const job = await client.submit({ passthrough: { subtasks: 1, work_ms: 6000 } }, []);
    await expect.poll(async () => (await client.getJob(job.id)).subtasks.map((s) => s.state), { timeout: 30_000 }).toEqual(['SUBTASK_STATE_RUNNING']);

    // The coordinator's event loop is held for over two TTLs, while the worker keeps heartbeating
    // (less than the clients' keepalive timeout, 5 s, after which gRPC itself drops the connection).
    const end = Date.now() + 3500;
    while (Date.now() < end) {
      // busy: nothing else in this process runs
    }
    // Several sweeps and heartbeats later:
    await sleep(1500);
    const workers = await client.listWorkers();
    expect(workers.map((w) => [w.id, w.state])).toEqual([[registered!.id, 'active']]);
    const running = await client.getJob(job.id);
    expect(running.subtasks.map((s) => [s.state, s.attempt])).toEqual([['SUBTASK_STATE_RUNNING', 1]]);
    expect(warnings.filter((l) => /lost|no heartbeat/.test(l))).toEqual([]);
    // And the work it kept counts: the job finishes at its first attempt.
    const done = await client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks.map((s) => s.attempt)).toEqual([1]);
  });
});
