/**
 * The coordinator SIGKILLed (or stopped) at particular moments of a job and restarted on the same
 * data dir, with the workers staying up: what its clients were told before the crash still holds
 * after it, a restart's settings reach the jobs it resumes, and a job that had ended leaves only
 * its outputs in the spool.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let cluster: TestCluster | undefined;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-restart-announced-'));
});
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function blobs(n: number, size: number): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `b${i}.bin`);
    await writeFile(f, Buffer.alloc(size, i + 1));
    files.push(f);
  }
  return files;
}

describe('a coordinator SIGKILLed just after it announced something', () => {
  it('does not take back a final event: the job a watcher was told had succeeded is still succeeded after the restart', async () => {
    cluster = await startCluster({ workers: 2, slots: 1 });
    const c = cluster;
    const files = await blobs(3, 1_000_000);
    // The moment is short (the store commits every 20 ms): a few jobs, each killed as its watcher
    // hears that it ended, as a crash at that moment would.
    for (let round = 0; round < 3; round++) {
      const job = await c.client.submit({ label: `round ${round}`, passthrough: {} }, files);
      let told: { message: string; outputs: string[] } | undefined;
      const announced: string[] = [];
      const done = await c.client.wait(job.id, (e) => {
        if (e.type === 'output' && e.output) announced.push(e.output.name);
        if (e.type === 'job_state' && e.final && !told) {
          told = { message: e.message, outputs: [...announced].sort() };
          c.coordinator!.child.kill('SIGKILL');
          void c.coordinator!.exited.then(() => c.startCoordinator());
        }
      });
      expect(told, `round ${round}`).toEqual({ message: '3 output(s)', outputs: ['b0.bin', 'b1.bin', 'b2.bin'] });
      // `wait` resolves with the job it was told had ended: finished, with every output it announced.
      expect(done.state, `round ${round}: ${done.message}`).toBe('JOB_STATE_SUCCEEDED');
      expect(done.outputs.map((o) => o.name).sort(), `round ${round}`).toEqual(['b0.bin', 'b1.bin', 'b2.bin']);
      const again = await c.client.getJob(job.id);
      expect(again.state, `round ${round}`).toBe('JOB_STATE_SUCCEEDED');
    }
  }, 180_000);
});

describe('a coordinator SIGKILLed just after it answered a submission', () => {
  // JobManager.accept asked the store for its commit before the job was saved: with nothing else
  // waiting to be written that was already done, so the client was answered and the job reached
  // the disk only with the next timed flush (20 ms). A crash in between lost it: NOT_FOUND.
  it('keeps a job of no inputs that SubmitJob answered while the store was idle', async () => {
    cluster = await startCluster({ workers: 0 });
    const c = cluster;
    const found: string[] = [];
    for (let i = 0; i < 3; i++) {
      // An idle store: nothing else waits to be written when the submission comes.
      await sleep(300);
      const job = await c.client.submit({ passthrough: { subtasks: 1, work_ms: 10 } }, []);
      c.coordinator!.child.kill('SIGKILL');
      await c.coordinator!.exited;
      await c.startCoordinator();
      found.push(await c.client.getJob(job.id).then((j) => `${job.id}: ${j.state}`, (err: Error) => `${job.id}: ${err.message}`));
    }
    for (const line of found) expect(line).toMatch(/: JOB_STATE_QUEUED$/);
  });
});

describe('a coordinator restarted with other settings', () => {
  it('applies a longer --subtask-timeout-ms to the jobs it resumes, not only to new ones', async () => {
    // Subtasks time out at 1.5 s: the operator sees them fail so, raises the limit and restarts.
    const coordinatorArgs = ['--subtask-timeout-ms', '1500'];
    cluster = await startCluster({ workers: 1, slots: 1, coordinatorArgs });
    const c = cluster;
    const [file] = await blobs(1, 100_000);
    const job = await c.client.submit({ max_attempts: 2, passthrough: { work_ms: 3000 } }, [file!]);
    let stopped = false;
    const events: string[] = [];
    const done = await c.client.wait(job.id, (e) => {
      events.push(`${e.type} ${e.message}`);
      if (!stopped && e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_RUNNING') {
        stopped = true;
        c.coordinator!.child.kill('SIGTERM');
        void c.coordinator!.exited.then(() => {
          // The same data dir and address, started again with the new limit (what the helper passes on).
          coordinatorArgs.splice(0, coordinatorArgs.length, '--subtask-timeout-ms', '60000');
          return c.startCoordinator();
        });
      }
    });
    expect(stopped).toBe(true);
    expect(done.state, `${done.message}\n${events.join('\n')}`).toBe('JOB_STATE_SUCCEEDED');
  }, 90_000);
});

/** The folders left in a job's spool folder (`in`, `st`, `work`, `out`), once `settle` has passed. */
async function spoolOf(c: TestCluster, jobId: string, settleMs = 3000): Promise<string[]> {
  const folder = path.join(c.dataDir, 'spool', 'jobs', jobId);
  const until = Date.now() + settleMs;
  for (;;) {
    const left = (await readdir(folder).catch(() => [] as string[])).sort();
    if (left.every((d) => d === 'out') || Date.now() > until) return left;
    await sleep(100);
  }
}

describe('a coordinator SIGKILLed just after a job ended', () => {
  it("removes its inputs and intermediates after the restart when the crash left them (its end on disk, their removal not yet done)", async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const c = cluster;
    const [file] = await blobs(1, 1_000_000);
    const job = await c.client.wait((await c.client.submit({ passthrough: {} }, [file!])).id);
    expect(job.state).toBe('JOB_STATE_SUCCEEDED');
    expect(await spoolOf(c, job.id)).toEqual(['out']);
    c.coordinator!.child.kill('SIGKILL');
    await c.coordinator!.exited;
    // What the removal that follows the commit of the job's end had not got to when the process died.
    const folder = path.join(c.dataDir, 'spool', 'jobs', job.id);
    await mkdir(path.join(folder, 'in'), { recursive: true });
    await writeFile(path.join(folder, 'in', 'b0.bin'), Buffer.alloc(1_000_000, 1));
    await mkdir(path.join(folder, 'st', 'some-subtask', 'a1'), { recursive: true });
    await mkdir(path.join(folder, 'work'), { recursive: true });
    await c.startCoordinator();
    expect((await c.client.getJob(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    expect(await spoolOf(c, job.id, 5000)).toEqual(['out']);
  }, 60_000);
});
