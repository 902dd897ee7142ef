/**
 * A job cancelled while the coordinator publishes its merged outputs: each output is moved into
 * the job's output folder, then measured and hashed, then listed. A cancel that lands between the
 * move and the listing leaves that file in the spool, listed nowhere (GetJob, the output events,
 * DownloadOutput all ignore it): it stays on the coordinator's disk until the job's retention ends
 * (for ever with --retention-hours 0). publish() removes such a file only in a shared output folder.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateAudio } from '../helpers/audio-media.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cancel-publishing-'));
  cluster = await startCluster({ workers: 2, slots: 1 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('a job cancelled while its merged outputs are published keeps no file in its output folder that it does not list', async () => {
  const c = cluster;
  // A file of two segments: the merge joins them into one WAV of 92 MiB, which is moved into the
  // output folder and then hashed (a few hundred ms) before it is listed.
  const src = await generateAudio(path.join(dir, 'long.wav'), { source: 'noise', seconds: 120, rate: 48000, layout: '7.1', ext: 'wav', amplitude: 0.08 });
  // The window is the hash of the moved file (about 0.3 s); seeing the file and cancelling took
  // 0.1 s on a loaded machine. A cancel that came after the listing (the job had succeeded) proves
  // nothing either way: the race is run again, three times at most.
  let job: { id: string };
  let outDir: string;
  let cancelled: unknown;
  for (let tries = 1; ; tries++) {
    job = await c.client.submit({ audio: { codec: 'wav', segment_seconds: 60 } }, [src]);
    // The output moved into the job's output folder: it is being hashed, not listed yet.
    outDir = path.join(c.dataDir, 'spool', 'jobs', job.id, 'out');
    while ((await readdir(outDir).catch(() => [] as string[])).length === 0) await new Promise((r) => setTimeout(r, 2));
    cancelled = await c.client.cancel(job.id).catch((err: unknown) => err);
    if ((cancelled as { state?: string }).state === 'JOB_STATE_CANCELLED' || tries === 3) break;
    expect((await c.client.wait(job.id)).state, `try ${tries}: ${String(cancelled)}`).toBe('JOB_STATE_SUCCEEDED');
  }
  const events: string[] = [];
  for await (const e of c.client.watch(job.id)) if (e.type === 'output') events.push(e.output!.name);
  expect(cancelled).toMatchObject({ state: 'JOB_STATE_CANCELLED' });
  const got = await c.client.getJob(job.id);
  expect(got.state).toBe('JOB_STATE_CANCELLED');
  const listed = got.outputs.map((o) => o.name).sort();
  expect(listed).toEqual([...events].sort());
  // The coordinator hashes the moved file to its end and then removes it (the job ended meanwhile):
  // waited for, not given a fixed second (92 MiB hashed on a loaded machine may take longer).
  // Before the fix the file stayed for good.
  const onDisk = async (): Promise<string[]> => (await readdir(outDir).catch(() => [] as string[])).sort();
  await expect.poll(onDisk, { timeout: 20_000, interval: 100, message: `the cancelled job lists ${listed.length} output(s)` }).toEqual(listed);
}, 120_000);
