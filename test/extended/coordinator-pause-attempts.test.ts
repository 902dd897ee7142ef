/**
 * A coordinator paused (SIGSTOP, a VM or container freeze, a swap storm) for longer than the
 * workers' keepalive: the README says a stall of the coordinator itself is not held against the
 * workers. Their subtasks must not use up attempts for it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { expectSameBytes, randomFiles } from '../helpers/bytes.js';

let cluster: TestCluster | undefined;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cpause-'));
});

afterEach(async () => {
  cluster?.coordinator?.child.kill('SIGCONT');
  await cluster?.stop();
  cluster = undefined;
  await rm(dir, { recursive: true, force: true });
});

it('a paused coordinator costs no subtask an attempt: a max_attempts 1 job still succeeds', async () => {
  cluster = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '2000'], workerArgs: ['--keepalive-ms', '5000', '--keepalive-timeout-ms', '1000'] });
  const files = await randomFiles(dir, 'blob', 2, 20_000);
  const job = await cluster.client.submit({ passthrough: { work_ms: 1500 }, max_attempts: 1 }, files);
  for (let i = 0; i < 100 && (await cluster.client.getJob(job.id)).subtasks.some((s) => s.state !== 'SUBTASK_STATE_RUNNING'); i++) await sleep(50);
  const coordinator = cluster.coordinator!.child;
  coordinator.kill('SIGSTOP');
  await sleep(8000);
  coordinator.kill('SIGCONT');
  const retries: string[] = [];
  const done = await cluster.client.wait(job.id, (e) => {
    if (/retrying/.test(e.message)) retries.push(e.message);
  });
  expect(done.errors).toEqual([]);
  expect(done.state).toBe('JOB_STATE_SUCCEEDED');
  // The workers gave the stalled coordinator's connection up and came back: their subtasks ran
  // again, said as the coordinator's stall (was: "its worker was stopped as planned", counted as a
  // drain and taken from the drain budget).
  expect(retries.length).toBeGreaterThan(0);
  for (const m of retries) expect(m).toMatch(/\(after the coordinator stalled: not counted\)\); retrying \(not counted against max_attempts: the coordinator stalled, not its worker\)$/);
  const paths = await cluster.client.download(job.id, path.join(dir, 'out'));
  for (const f of files) expectSameBytes(await readFile(paths.get(path.basename(f))!), await readFile(f));
}, 40_000);
