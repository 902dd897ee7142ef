/**
 * A photo of an image batch that fails (undecodable): its watchers are told, as they are of a
 * failed subtask of any other kind, not shown its subtasks "done" twice (first attempt, then the
 * second opinion) with no error anywhere until the job's end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let cluster: TestCluster;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-item-errors-'));
  cluster = await startCluster({ workers: 2, slots: 1 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('an undecodable photo shows up in the events before the final one, and its subtask is not "succeeded" with no error', async () => {
  const png = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 30 } } }).png().toBuffer();
  const ok = path.join(dir, 'ok.png');
  const trunc = path.join(dir, 'trunc.png');
  await writeFile(ok, png);
  await writeFile(trunc, png.subarray(0, Math.floor(png.length / 2)));
  const job = await cluster.client.submit({ image: { width: 100, format: 'jpeg' } }, [ok, trunc]);
  const events: JobEvent__Output[] = [];
  for await (const e of cluster.client.watch(job.id)) events.push(e);
  const ended = await cluster.client.getJob(job.id);
  expect(ended.state).toBe('JOB_STATE_PARTIALLY_SUCCEEDED');
  expect(ended.errors.map((e) => e.input)).toEqual(['trunc.png']);
  const reason = ended.errors[0]!.message;
  // Before the final event, something says trunc.png failed (a failed subtask, its error, a log line).
  const told = events.filter((e) => !e.final).filter((e) => (e.message ?? '').includes(reason) || (e.subtask?.label === 'trunc.png' && (e.subtask.state === 'SUBTASK_STATE_FAILED' || e.subtask.error !== '')));
  const trail = events.map((e) => `${e.seq} ${e.type} ${e.subtask ? `${e.subtask.label}:${e.subtask.state}:${e.subtask.error}` : ''} ${e.message}`).join('\n');
  expect(told, trail).not.toEqual([]);
  // GetJob's subtasks of trunc.png: not every one "succeeded" without an error.
  const its = ended.subtasks.filter((s) => s.label === 'trunc.png');
  expect(its.some((s) => s.state === 'SUBTASK_STATE_FAILED' || s.error !== ''), JSON.stringify(its)).toBe(true);
}, 60_000);
