/**
 * The coordinator's disk on a long compressed audio file. The planner decodes the whole file to a WAV
 * in the job's work folder, cuts that WAV into segment WAVs, and dispatches the segments; the whole
 * decoded WAV is never read again, yet it stays until the job ends, beside the segment copies and
 * the segment bodies the workers send back. A 2.5 h FLAC of 420 MB peaked at 2.8 GB in the data dir
 * (input + decoded 757 MB + segments 766 MB + bodies 760 MB + output), the README's sizing says "a long
 * compressed audio file its decoded WAV"; the huge-image path removes its intermediate once cut.
 */
import { readdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateAudio } from '../helpers/audio-media.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-decoded-scratch-'));
  cluster = await startCluster({ workers: 2, slots: 1 });
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function filesIn(folder: string): Promise<Array<{ name: string; size: number }>> {
  const names = await readdir(folder).catch(() => [] as string[]);
  const out: Array<{ name: string; size: number }> = [];
  for (const name of names) {
    const s = await stat(path.join(folder, name)).catch(() => undefined);
    if (s?.isFile()) out.push({ name, size: s.size });
  }
  return out;
}

describe('audio: the coordinator scratch of a long compressed file', () => {
  test('once its segments are cut and running, the whole decoded WAV is no longer kept in the job folder', async () => {
    const src = await generateAudio(path.join(dir, 'talk.flac'), { source: 'noise', seconds: 150, rate: 48000, layout: 'stereo', ext: 'flac' });
    const job = await cluster.client.submit({ audio: { codec: 'flac', segment_seconds: 10 } }, [src]);
    const work = path.join(cluster.dataDir, 'spool', 'jobs', job.id, 'work');
    let segmentDone = false;
    let finished = false;
    const seen: string[] = [];
    const waiting = cluster.client
      .wait(job.id, (e) => {
        if (e.type === 'subtask_state' && String(e.subtask?.state) === 'SUBTASK_STATE_SUCCEEDED') segmentDone = true;
      })
      .finally(() => (finished = true));
    // Looks at the job's work folder while segments run (after the first has come back) until the job ends.
    while (!finished) {
      if (segmentDone) {
        const files = await filesIn(work);
        const decoded = files.filter((f) => /^decoded-[0-9a-f]+\.wav$/.test(f.name));
        const segs = files.filter((f) => /-seg\d+\.wav$/.test(f.name));
        if (decoded.length > 0 && segs.length > 0) seen.push(`${decoded[0]!.name} (${(decoded[0]!.size / 2 ** 20).toFixed(1)} MiB) beside ${segs.length} segment WAVs`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const done = await waiting;
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks.filter((s) => /segment/.test(s.label)).length).toBe(15);
    // The whole decoded copy (55 MiB here; 8 GiB for a 6 h 48 kHz 24-bit stereo FLAC) sat there for the job's whole run.
    expect(seen.slice(0, 1)).toEqual([]);
  });
});
