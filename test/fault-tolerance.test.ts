/**
 * Fault tolerance with real processes: hung workers, stragglers, partitions, coordinator crashes,
 * graceful drains. Each test checks the job completes with outputs identical to the inputs
 * (passthrough) and reports the detection time and the delay the fault added.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Job } from '../client/client.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { expectSameBytes, randomFiles } from './helpers/bytes.js';

let cluster: TestCluster | undefined;
let proxy: TcpProxy | undefined;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ft-'));
});

afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
  await cluster?.stop();
  cluster = undefined;
  await rm(dir, { recursive: true, force: true });
});

function blobs(n: number, size = 150_000): Promise<string[]> {
  return randomFiles(dir, 'blob', n, size);
}

async function expectIdenticalOutputs(c: TestCluster, job: Job, files: string[]): Promise<void> {
  expect(job.state, JSON.stringify(job.errors)).toBe('JOB_STATE_SUCCEEDED');
  const out = path.join(dir, `out-${job.id.slice(0, 8)}`);
  const paths = await c.client.download(job.id, out);
  expect(paths.size).toBe(files.length);
  for (const f of files) expectSameBytes(await readFile(paths.get(path.basename(f))!), await readFile(f));
}

function report(what: string, figures: Record<string, number>): void {
  process.stdout.write(`[fault] ${what}: ${Object.entries(figures).map(([k, v]) => `${k}=${Math.round(v)}ms`).join(' ')}\n`);
}

async function waitForWorkerState(c: TestCluster, name: string, state: string, timeoutMs = 20_000): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const w = (await c.client.listWorkers()).filter((x) => x.name === name);
    if (w.some((x) => x.state === state)) return Date.now() - t0;
    await sleep(50);
  }
  throw new Error(`${name} never became ${state}`);
}

describe('fault tolerance', () => {
  it('a hung worker (SIGSTOP) is lost after the TTL, its work reruns, and its late result is rejected after SIGCONT', async () => {
    cluster = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '2000'] });
    const files = await blobs(4);
    const job = await cluster.client.submit({ passthrough: { work_ms: 600 } }, files);
    const victim = cluster.workers[0]!;
    let stoppedAt = 0;
    const donePromise = cluster.client.wait(job.id, (e) => {
      if (!stoppedAt && e.type === 'subtask_state' && e.subtask?.worker === victim.name && e.subtask.state === 'SUBTASK_STATE_RUNNING') {
        stoppedAt = Date.now();
        victim.child.kill('SIGSTOP');
      }
    });
    donePromise.catch(() => undefined);
    const detection = await waitForWorkerState(cluster, victim.name, 'lost');
    const done = await donePromise;
    const finishedAt = Date.now();
    victim.child.kill('SIGCONT');
    await expectIdenticalOutputs(cluster, done, files);
    // The subtask the hung worker held was completed by the other worker on a later attempt.
    expect(done.subtasks.every((s) => s.worker === 'worker-2' || s.attempt === 1)).toBe(true);
    expect(done.subtasks.some((s) => s.attempt >= 2 && s.worker === 'worker-2')).toBe(true);
    // After SIGCONT the worker's stale session is refused and it registers again by itself.
    await waitForWorkerState(cluster, victim.name, 'active');
    const again = await cluster.client.getJob(job.id);
    expect(again.subtasks.map((s) => [s.id, s.attempt, s.worker])).toEqual(done.subtasks.map((s) => [s.id, s.attempt, s.worker]));
    report('SIGSTOP worker', { detection, jobAfterStop: finishedAt - stoppedAt });
  });

  it('a straggler gets a speculative copy on an idle worker and the first result wins', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    // Slower than any test may take: the slow worker never finishes a subtask, so the job ends
    // only if copies elsewhere win.
    const SLOW_MS = 3_600_000;
    const slow = cluster.startWorker('slow', [], { env: { TESSERA_DIAG_DELAY_MS: String(SLOW_MS) } });
    await cluster.waitForWorkers(2);
    const files = await blobs(10, 20_000);
    const t0 = Date.now();
    const job = await cluster.client.submit({ passthrough: { work_ms: 150 } }, files);
    const done = await cluster.client.wait(job.id);
    const elapsed = Date.now() - t0;
    await expectIdenticalOutputs(cluster, done, files);
    // What the slow worker held (the subtask it ran, and any queued behind it, which starts when
    // the first one's copy wins and it is cancelled) was finished by copies on worker-1.
    expect(done.subtasks.every((s) => s.worker === 'worker-1')).toBe(true);
    expect(done.subtasks.some((s) => s.attempt === 2)).toBe(true);
    expect(slow.child.exitCode).toBeNull();
    report('straggler', { jobTotal: elapsed, slowWorkerDelay: SLOW_MS });
  });

  it('a worker that took a whole job and reports nothing on it (hung, its heartbeats going on) has it copied, subtask by subtask, to a worker that comes', async () => {
    // Stalled after 1.5 s without a progress report (60 s by default).
    cluster = await startCluster({ workers: 0, slots: 4, coordinatorArgs: ['--stall-ms', '1500'] });
    const hung = cluster.startWorker('hung', [], { env: { TESSERA_DIAG_DELAY_MS: '3600000' } });
    await cluster.waitForWorkers(1);
    const files = await blobs(3, 20_000);
    const t0 = Date.now();
    const job = await cluster.client.submit({ passthrough: { work_ms: 20 } }, files);
    for (let i = 0; i < 100 && (await cluster.client.getJob(job.id)).subtasks.filter((s) => s.state === 'SUBTASK_STATE_RUNNING').length < 3; i++) await sleep(50);
    expect((await cluster.client.getJob(job.id)).subtasks.map((s) => s.worker)).toEqual(['hung', 'hung', 'hung']);
    // No subtask of it finishes: no straggler rule applies. Only the stall rule frees it.
    cluster.startWorker('healthy');
    const done = await cluster.client.wait(job.id);
    await expectIdenticalOutputs(cluster, done, files);
    expect(done.subtasks.map((s) => [s.worker, s.attempt])).toEqual([['healthy', 2], ['healthy', 2], ['healthy', 2]]);
    expect(await cluster.metric('tessera_speculative_copies_total')).toBe(3);
    expect(await cluster.metric('tessera_stalled_copies_total')).toBe(3);
    expect(hung.child.exitCode).toBeNull();
    report('stalled worker', { jobTotal: Date.now() - t0 });
  });

  it('a subtask waiting in a slow worker\'s queue moves to a worker that has run out of work', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const SLOW_MS = 3_600_000;
    const slow = cluster.startWorker('slow', [], { env: { TESSERA_DIAG_DELAY_MS: String(SLOW_MS) } });
    await cluster.waitForWorkers(2);
    const files = await blobs(12, 20_000);
    const movedBefore = await cluster.metric('tessera_queued_subtasks_moved_total');
    const t0 = Date.now();
    // Short subtasks: each worker runs one and queues one (`--prefetch 1`). The slow worker never
    // finishes its running one (a speculative copy on worker-1 does); the one queued behind it is
    // taken over by worker-1 once worker-1 has nothing left, rather than waiting for that copy.
    const job = await cluster.client.submit({ passthrough: { work_ms: 20 } }, files);
    const done = await cluster.client.wait(job.id);
    const elapsed = Date.now() - t0;
    await expectIdenticalOutputs(cluster, done, files);
    expect((await cluster.metric('tessera_queued_subtasks_moved_total')) - movedBefore).toBeGreaterThanOrEqual(1);
    expect(done.subtasks.every((s) => s.worker === 'worker-1')).toBe(true);
    expect(slow.child.exitCode).toBeNull();
    report('queued subtask moved', { jobTotal: elapsed });
  });

  it('a network partition between a worker and the coordinator, healed after the TTL, loses nothing', async () => {
    cluster = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '2000'] });
    const [host, port] = [cluster.address.split(':')[0]!, Number(cluster.address.split(':')[1])];
    proxy = new TcpProxy({ host, port });
    const via = await proxy.start();
    cluster.startWorker('remote', [], { via });
    await cluster.waitForWorkers(2);
    const files = await blobs(6);
    const job = await cluster.client.submit({ passthrough: { work_ms: 500 } }, files);
    let cutAt = 0;
    const donePromise = cluster.client.wait(job.id, (e) => {
      if (!cutAt && e.type === 'subtask_state' && e.subtask?.worker === 'remote' && e.subtask.state === 'SUBTASK_STATE_RUNNING') {
        cutAt = Date.now();
        proxy!.partition();
      }
    });
    donePromise.catch(() => undefined);
    const detection = await waitForWorkerState(cluster, 'remote', 'lost');
    const done = await donePromise;
    proxy.heal();
    await expectIdenticalOutputs(cluster, done, files);
    expect(done.subtasks.some((s) => s.attempt >= 2)).toBe(true);
    await waitForWorkerState(cluster, 'remote', 'active', 30_000);
    report('partition', { detection, jobAfterCut: Date.now() - cutAt });
  });

  it('the coordinator SIGKILLed mid-job and restarted on the same data dir resumes the job; workers, the watcher and its downloads reconnect', async () => {
    cluster = await startCluster({ workers: 2, slots: 1 });
    const files = await blobs(8);
    const job = await cluster.client.submit({ passthrough: { work_ms: 500 } }, files);
    let succeeded = 0;
    let killedAt = 0;
    const seen: number[] = [];
    // Each subtask's last state and attempt heard before the kill.
    const before = new Map<string, { state: string; attempt: number }>();
    const announced = new Set<string>();
    // Attempts started after the kill, as the watcher heard them.
    const startedAfter: { id: string; attempt: number }[] = [];
    const c = cluster;
    // collect downloads each output as it is announced: some are in flight when the coordinator dies.
    const collected = c.client.collect(job.id, path.join(dir, 'collected'), {
      onEvent: (e) => {
        seen.push(Number(e.seq));
        if (e.type === 'output' && e.output) announced.add(e.output.name);
        if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED') succeeded++;
        if (e.type === 'subtask_state' && e.subtask && !killedAt) before.set(e.subtask.id, { state: e.subtask.state, attempt: e.subtask.attempt });
        if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_RUNNING' && killedAt) startedAfter.push({ id: e.subtask.id, attempt: e.subtask.attempt });
        if (succeeded === 3 && !killedAt) {
          killedAt = Date.now();
          c.coordinator!.child.kill('SIGKILL');
          void c.coordinator!.exited.then(() => c.startCoordinator());
        }
      },
    });
    const { job: done, paths } = await collected;
    await expectIdenticalOutputs(cluster, done, files);
    for (const f of files) expectSameBytes(await readFile(paths.get(path.basename(f))!), await readFile(f));
    // Subtasks finished before the crash were not run again.
    expect(done.subtasks.filter((s) => s.attempt === 1).length).toBeGreaterThanOrEqual(3);
    // Those running when it died ran again under the next attempt number, not their first one again.
    // (One whose success was stored just before the kill, the watcher not told yet, is not run again.)
    const cut = [...before].filter(([, b]) => b.state === 'SUBTASK_STATE_RUNNING');
    expect(cut.length).toBeGreaterThan(0);
    for (const [id, b] of cut) {
      expect(done.subtasks.find((s) => s.id === id)?.attempt, id).toBeGreaterThanOrEqual(b.attempt);
      for (const again of startedAfter.filter((x) => x.id === id)) expect(again.attempt, id).toBeGreaterThan(b.attempt);
    }
    expect(startedAfter.length, 'an attempt cut by the crash ran again').toBeGreaterThan(0);
    // The watcher saw every event exactly once, in order, across the restart.
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(new Set(seen).size).toBe(seen.length);
    // Every output was announced, also those published just before the crash.
    expect([...announced].sort()).toEqual(files.map((f) => path.basename(f)).sort());
    await cluster.waitForWorkers(2);
    report('coordinator SIGKILL + restart', { jobAfterKill: Date.now() - killedAt });
  });

  it('SIGTERM stops the coordinator gracefully within its grace period; restarted, it finishes the job', async () => {
    // The coordinator's grace period for open calls (Coordinator's shutdownGraceMs default; the CLI
    // sets none): past it, it forces them closed rather than wait for them.
    const SHUTDOWN_GRACE_MS = 5000;
    cluster = await startCluster({ workers: 2, slots: 1 });
    const files = await blobs(6);
    const job = await cluster.client.submit({ passthrough: { work_ms: 400 } }, files);
    const c = cluster;
    let termAt = 0;
    let exitMs = 0;
    let exitCode: number | null | undefined;
    const done = await c.client.wait(job.id, (e) => {
      if (!termAt && e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED') {
        termAt = Date.now();
        c.coordinator!.child.kill('SIGTERM');
        void c.coordinator!.exited.then((code) => {
          exitMs = Date.now() - termAt;
          exitCode = code;
          return c.startCoordinator();
        });
      }
    });
    await expectIdenticalOutputs(cluster, done, files);
    // It exited by itself, cleanly, within the grace period (plus a generous margin for a slow
    // host's process exit): not held open by the watcher's stream and the workers' calls.
    expect(exitMs).toBeGreaterThan(0);
    expect(exitCode).toBe(0);
    expect(exitMs).toBeLessThan(SHUTDOWN_GRACE_MS + 10_000);
    // The restarted coordinator's counters add up: the job it took over from its store counts as
    // resumed, then finished.
    const { scrape, get } = await import('./helpers/metrics.js');
    const metrics = await scrape(cluster);
    expect(get(metrics, 'tessera_jobs_resumed_total{kind="passthrough"}')).toBe(1);
    expect(get(metrics, 'tessera_jobs_submitted_total{kind="passthrough"}')).toBe(0);
    expect(get(metrics, 'tessera_jobs_finished_total{kind="passthrough",state="succeeded"}')).toBe(1);
    report('coordinator SIGTERM + restart', { shutdown: exitMs, jobAfterTerm: Date.now() - termAt });
  });

  it('a worker that fails everything is quarantined after --quarantine-failures failures and its work reruns elsewhere', async () => {
    cluster = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--quarantine-failures', '3'] });
    cluster.startWorker('broken', [], { env: { TESSERA_DIAG_FAIL: '1' } });
    await cluster.waitForWorkers(2);
    const job = await cluster.client.submit({ max_attempts: 10, passthrough: { subtasks: 12, work_ms: 100 } }, []);
    const done = await cluster.client.wait(job.id);
    expect(done.state, done.message).toBe('JOB_STATE_SUCCEEDED');
    // Every subtask finished on the healthy worker, some after a failed attempt on the broken one.
    expect(done.subtasks.every((s) => s.worker === 'worker-1')).toBe(true);
    expect(done.subtasks.some((s) => s.attempt > 1)).toBe(true);
    const broken = (await cluster.client.listWorkers()).find((w) => w.name === 'broken')!;
    expect(broken.state).toBe('quarantined');
    // One slot and one queued place (prefetch): it was taken out at its third failure. The subtask
    // queued behind that one had started by then and was let run (and fail), but nothing after it.
    expect(Number(broken.subtasks_failed)).toBeGreaterThanOrEqual(3);
    expect(Number(broken.subtasks_failed)).toBeLessThanOrEqual(4);
    expect(Number(broken.subtasks_done)).toBe(0);
  });

  it('SIGTERM drains a worker: its running subtask finishes, it takes no new work, and it exits', async () => {
    // The signal goes when worker-1 says it has started a subtask (its debug log): a signal sent on
    // the coordinator's RUNNING event can reach a loaded worker before the assignment does, and a
    // worker with nothing running leaves at once, its assignment then run elsewhere as attempt 2.
    // The coordinator's log says when it hears the drain: polling the worker list for "draining"
    // raced the drain itself, the worker having finished and left before a poll saw it.
    let termAt = 0;
    const drainLogged: number[] = [];
    cluster = await startCluster({
      workers: 2,
      slots: 1,
      logLevel: 'debug',
      onLog: (who, line) => {
        if (who === 'worker-1' && !termAt && line.includes('"subtask started"')) {
          termAt = Date.now();
          cluster!.workers[0]!.child.kill('SIGTERM');
        }
        if (who === 'coordinator' && line.includes('"worker draining"') && line.includes('"worker-1"')) drainLogged.push(Date.now());
      },
    });
    const victim = cluster.workers[0]!;
    expect(victim.name).toBe('worker-1');
    const files = await blobs(3);
    // 3 s each: long enough that the subtask is still running when the signal arrives, and too long for lease-ahead.
    const done = await cluster.client.wait((await cluster.client.submit({ passthrough: { work_ms: 3000 } }, files)).id);
    expect(termAt).toBeGreaterThan(0);
    expect(await victim.exited).toBe(0);
    await expectIdenticalOutputs(cluster, done, files);
    expect(drainLogged.length).toBe(1);
    expect(drainLogged[0]).toBeGreaterThanOrEqual(termAt);
    // Nothing had to be retried: the drained worker finished what it had.
    expect(done.subtasks.every((s) => s.attempt === 1), JSON.stringify(done.subtasks.map((s) => [s.label, s.worker, s.attempt]))).toBe(true);
    // It ran one, and took no new work after the signal.
    expect(done.subtasks.filter((s) => s.worker === victim.name)).toHaveLength(1);
    // The coordinator no longer lists it as one that takes work.
    expect((await cluster.client.listWorkers()).filter((w) => w.name === victim.name && w.state === 'active')).toEqual([]);
    // Its temp folder is gone.
    expect((await readdir(os.tmpdir())).filter((n) => n.startsWith(`tessera-worker-${victim.name}-${victim.child.pid}`))).toEqual([]);
  });
});

describe('resumable download', () => {
  it('a half-finished download continues from where it stopped and is verified', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const files = await blobs(1, 3_000_000);
    const job = await cluster.client.wait((await cluster.client.submit({ passthrough: {} }, files)).id);
    const out = path.join(dir, 'resume');
    const original = await readFile(files[0]!);
    const name = path.basename(files[0]!);
    await import('node:fs/promises').then((fs) => fs.mkdir(out, { recursive: true }));
    await writeFile(path.join(out, `.${name}.tessera-part`), original.subarray(0, 1_234_567));
    const paths = await cluster.client.download(job.id, out);
    expectSameBytes(await readFile(paths.get(name)!), original);
  });

  it("a finished job's download cut by a coordinator restart says so once, and resumes when it is back", async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    // 64 MiB: the download takes a few hundred ms at least, and it is cut within ms of its first bytes.
    const files = await blobs(1, 64 * 2 ** 20);
    const job = await cluster.client.wait((await cluster.client.submit({ passthrough: {} }, files)).id);
    const out = path.join(dir, 'cut');
    const notes: string[] = [];
    const c = cluster;
    // collect: its watch replays the finished job and ends; the download is what loses the coordinator.
    const collecting = c.client.collect(job.id, out, { onReconnect: (why) => void notes.push(why) });
    // Cut once bytes are coming in (into the download's own file in the folder).
    const receiving = async (): Promise<boolean> => {
      for (const n of await readdir(out).catch(() => [])) if ((await stat(path.join(out, n)).catch(() => undefined))?.size) return true;
      return false;
    };
    while (!(await receiving())) await sleep(5);
    c.coordinator!.child.kill('SIGKILL');
    await c.coordinator!.exited;
    await sleep(1500);
    await c.startCoordinator();
    const { paths } = await collecting;
    expectSameBytes(await readFile(paths.get(path.basename(files[0]!))!), await readFile(files[0]!));
    // It was silent before: `tessera download` showed nothing while it waited.
    expect(notes).toHaveLength(1);
  }, 120_000);
});

describe('full disk', () => {
  it('an upload that fills the coordinator disk fails with RESOURCE_EXHAUSTED, leaves nothing behind, and the next job succeeds', async () => {
    const { execFileSync } = await import('node:child_process');
    const mnt = path.join(dir, 'small-disk');
    await import('node:fs/promises').then((fs) => fs.mkdir(mnt, { recursive: true }));
    // A 4 MiB tmpfs as the coordinator's data dir (the tests run as root, as CI does).
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    try {
      cluster = await startCluster({ workers: 1, slots: 1, dataDir: mnt });
      const big = path.join(dir, 'big.bin');
      await writeFile(big, randomBytes(6 * 1024 * 1024));
      const err = await cluster.client.submit({ passthrough: {} }, [big]).catch((e: unknown) => e as { code: number; details: string });
      expect(err).toMatchObject({ code: 8 }); // RESOURCE_EXHAUSTED
      expect((err as { details: string }).details).toMatch(/big\.bin.*disk is full/);
      // The partial upload was removed: the disk has room again for a normal job.
      const small = (await blobs(1, 100_000))[0]!;
      const job = await cluster.client.wait((await cluster.client.submit({ passthrough: {} }, [small])).id);
      await expectIdenticalOutputs(cluster, job, [small]);
    } finally {
      await cluster?.stop();
      cluster = undefined;
      execFileSync('umount', ['-l', mnt]);
    }
  });

  it("planning that fills the coordinator's disk fails the job as RESOURCE_EXHAUSTED naming the input, and gives the room back at once", async () => {
    const { execFileSync } = await import('node:child_process');
    const { default: sharp } = await import('sharp');
    const { runFfmpeg } = await import('../shared/ffmpeg.js');
    const { statfs } = await import('node:fs/promises');
    const mnt = path.join(dir, 'small-disk-plan');
    await import('node:fs/promises').then((fs) => fs.mkdir(mnt, { recursive: true }));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
    const free = async (): Promise<number> => {
      const st = await statfs(mnt);
      return st.bavail * st.bsize;
    };
    try {
      cluster = await startCluster({ workers: 1, slots: 1, dataDir: mnt });
      // A small PNG whose 6000 px wide decoded copy (81 MB, and as much again in the strips cut
      // from it) cannot fit: refused before a pixel is written.
      const png = path.join(dir, 'upscaled.png');
      await sharp({ create: { width: 800, height: 600, channels: 3, background: '#3366aa' } }).png().toFile(png);
      const tiled = await cluster.client.wait((await cluster.client.submit({ image: { width: 6000, tile_size: 512, format: 'png' } }, [png])).id);
      expect(tiled.state).toBe('JOB_STATE_FAILED');
      expect(tiled.errors).toEqual([
        expect.objectContaining({ input: 'upscaled.png', code: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/^upscaled\.png: tiling it needs about 0\.16 GB of the coordinator's disk \(6000x4500 decoded.*, and 0\.0\d GB is free \(0\.00 GB is kept for other jobs\)$/) }),
      ]);

      // A video whose chunks do not fit: ffmpeg says only "Invalid argument" for the trailer it could not write.
      const video = path.join(dir, 'cut.mp4');
      await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=8', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', video]);
      const size = (await stat(video)).size;
      // Room for the upload and a little more, not for its chunks as well.
      const filler = path.join(mnt, 'filler.bin');
      await writeFile(filler, Buffer.alloc(Math.max(0, (await free()) - size - 300_000)));
      const cut = await cluster.client.wait((await cluster.client.submit({ video: {} }, [video])).id);
      expect(cut.state).toBe('JOB_STATE_FAILED');
      expect(cut.errors).toEqual([expect.objectContaining({ input: 'cut.mp4', code: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/^cut\.mp4: .*disk is full/) })]);
      // The chunks cut so far go with the job at once, not once the store has room to write its end.
      const work = path.join(mnt, 'spool', 'jobs', cut.id, 'work');
      for (let i = 0; i < 50 && (await stat(work).catch(() => undefined)); i++) await sleep(100);
      await expect(stat(work)).rejects.toMatchObject({ code: 'ENOENT' });
      await rm(filler);
      const ok = await cluster.client.wait((await cluster.client.submit({ image: { width: 400, format: 'png' } }, [png])).id);
      expect(ok.state).toBe('JOB_STATE_SUCCEEDED');
    } finally {
      await cluster?.stop();
      cluster = undefined;
      execFileSync('umount', ['-l', mnt]);
    }
  }, 120_000);

  it("an image a worker cannot write (its temp disk full) is the worker's trouble: retried elsewhere, not failed as the image's", async () => {
    const { execFileSync } = await import('node:child_process');
    const { default: sharp } = await import('sharp');
    const mnt = path.join(dir, 'small-worker-tmp');
    await import('node:fs/promises').then((fs) => fs.mkdir(mnt, { recursive: true }));
    // The worker's temp folder on a 1 MiB tmpfs: libvips fails part-way through writing the PNG.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    try {
      cluster = await startCluster({ workers: 0, slots: 1 });
      cluster.startWorker('cramped', [], { env: { TMPDIR: mnt } });
      await cluster.waitForWorkers(1);
      const noisy = path.join(dir, 'noisy.png');
      await sharp({ create: { width: 1200, height: 1200, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).png().toFile(noisy);
      // Attempts to spare while the second worker starts: the first would run on this one again and again.
      const job = await cluster.client.submit({ max_attempts: 20, image: { format: 'png' } }, [noisy]);
      const error = await new Promise<string>((resolve) => {
        cluster!.client
          .wait(job.id, (e) => {
            if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_PENDING' && e.subtask.error) resolve(e.subtask.error);
          })
          .catch(() => undefined);
      });
      expect(error).toMatch(/^UNAVAILABLE: noisy\.png: this worker could not write the result \(.*No space left on device.*\): this worker's trouble, not the image's/);
      // Another worker with room takes it.
      cluster.startWorker('roomy');
      const done = await cluster.client.wait(job.id);
      expect(done.state).toBe('JOB_STATE_SUCCEEDED');
      expect(done.errors).toEqual([]);
      expect(done.subtasks[0]!.worker).toBe('roomy');
      const paths = await cluster.client.download(job.id, path.join(dir, 'roomy-out'));
      const out = await sharp(paths.get('noisy.png')!).raw().toBuffer();
      expect(out.equals(await sharp(noisy).raw().toBuffer())).toBe(true);
    } finally {
      await cluster?.stop();
      cluster = undefined;
      execFileSync('umount', ['-l', mnt]);
    }
  });

  it("outputs the coordinator's full disk cannot take fail as RESOURCE_EXHAUSTED without quarantining the workers", async () => {
    const { execFileSync } = await import('node:child_process');
    const mnt = path.join(dir, 'small-disk-2');
    await import('node:fs/promises').then((fs) => fs.mkdir(mnt, { recursive: true }));
    // Room for the 3.5 MB input, not for its copy coming back. Local reads off: a worker on this
    // machine would hand the spooled input back as a link, which takes no room.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mnt]);
    try {
      // A disk full for good: free attempts for 1.5 s (10 min by default), 0.4 s then 0.8 s apart
      // (2 s, 4 s, ... by default), then attempts that count.
      cluster = await startCluster({ workers: 2, slots: 1, dataDir: mnt, coordinatorArgs: ['--quarantine-failures', '2', '--no-local-reads'], env: { TESSERA_FULL_DISK_WAIT_MS: '1500', TESSERA_FULL_DISK_RETRY_MS: '400' } });
      const input = path.join(dir, 'fits-once.bin');
      await writeFile(input, randomBytes(3_500_000));
      const job = await cluster.client.wait((await cluster.client.submit({ max_attempts: 3, passthrough: {} }, [input])).id);
      expect(job.state).toBe('JOB_STATE_FAILED');
      // The coordinator's own full disk is not the subtask's failure: free attempts while it may
      // pass, then 3 that count.
      expect(job.subtasks[0]!.attempt).toBeGreaterThanOrEqual(4);
      expect(job.subtasks[0]!.attempt).toBeLessThanOrEqual(6);
      expect(job.errors.map((e) => e.code)).toEqual(['RESOURCE_EXHAUSTED']);
      expect(job.message).toMatch(/fits-once\.bin.*(disk is full|could not store the outputs)/);
      // Both workers were blamed for nothing.
      expect((await cluster.client.listWorkers()).map((w) => w.state)).toEqual(['active', 'active']);
    } finally {
      await cluster?.stop();
      cluster = undefined;
      execFileSync('umount', ['-l', mnt]);
    }
  });
});
