/** The core's failure handling with real processes: a worker SIGKILLed mid-job, retries. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { expectSameBytes } from '../helpers/bytes.js';

let cluster: TestCluster | undefined;
let dir: string | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('worker failure', () => {
  it('a worker SIGKILLed mid-job does not stop the job: its subtasks run again elsewhere', async () => {
    cluster = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '3000'] });
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-fault-'));
    const files: string[] = [];
    for (let i = 0; i < 6; i++) {
      const f = path.join(dir, `blob-${i}.bin`);
      await writeFile(f, randomBytes(100_000 + i));
      files.push(f);
    }
    const job = await cluster.client.submit({ passthrough: { work_ms: 700 } }, files);
    const victim = cluster.workers[0]!;
    let killedAt = 0;
    const done = await cluster.client.wait(job.id, (e) => {
      // Kill worker-1 as soon as it is running something.
      if (!killedAt && e.type === 'subtask_state' && e.subtask?.worker === victim.name && e.subtask.state === 'SUBTASK_STATE_RUNNING') {
        killedAt = Date.now();
        victim.child.kill('SIGKILL');
      }
    });
    expect(killedAt).toBeGreaterThan(0);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // The subtask that was on the killed worker got a second attempt on the survivor.
    expect(done.subtasks.some((s) => s.attempt === 2 && s.worker === 'worker-2')).toBe(true);
    const out = path.join(dir, 'out');
    const paths = await cluster.client.download(done.id, out);
    for (const f of files) expectSameBytes(await readFile(paths.get(path.basename(f))!), await readFile(f));
    const workers = await cluster.client.listWorkers();
    expect(workers.find((w) => w.name === victim.name)?.state).toBe('lost');
  });

  it('retries a subtask whose first attempts fail with a retryable error, up to max attempts', async () => {
    cluster = await startCluster({ workers: 2, slots: 1 });
    const ok = await cluster.client.submit({ passthrough: { subtasks: 4, fail_first_attempts: 2 } }, []);
    const retries = new Map<string, number>();
    const done = await cluster.client.wait(ok.id, (e) => {
      if (e.type === 'subtask_state' && e.subtask && /^attempt \d+ failed .*; retrying$/.test(e.message)) retries.set(e.subtask.id, (retries.get(e.subtask.id) ?? 0) + 1);
    });
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // Each failed twice and then succeeded on its third attempt (a later one only if the straggler
    // rule started a copy on a loaded machine).
    expect(done.subtasks.map((s) => retries.get(s.id))).toEqual([2, 2, 2, 2]);
    expect(done.subtasks.every((s) => s.attempt >= 3)).toBe(true);
    const bad = await cluster.client.submit({ max_attempts: 2, passthrough: { subtasks: 2, fail_first_attempts: 2 } }, []);
    const failed = await cluster.client.wait(bad.id);
    expect(failed.state).toBe('JOB_STATE_FAILED');
    expect(failed.errors[0]?.message).toMatch(/diagnostic failure of attempt 2/);
  });
});
