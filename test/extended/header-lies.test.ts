/**
 * A header that states less than its file holds passes the submission check, which reads headers
 * only: the limits (`--max-media-seconds`, `--max-video-frames`) then hold for what is counted of
 * the file (a video's packets, an audio file's decoded samples), so a 40 s file whose header says
 * 2 s is refused on a cluster that allows 20 s, with the work done bounded by the limit.
 * Real coordinator and worker processes; real ffmpeg on generated files, their headers edited.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-header-lies-'));
  cluster = await startCluster({ workers: 1, slots: 2, coordinatorArgs: ['--max-media-seconds', '20', '--max-video-frames', '150'] });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The header's stated duration, as the submission check reads it. */
async function statedSeconds(file: string): Promise<number> {
  const r = await runFfprobe<{ format?: { duration?: string } }>(['-show_entries', 'format=duration', '-i', file]);
  return Number(r.format?.duration);
}

/** A Matroska clip of `seconds` at 5 fps whose Segment Duration says 2 s. */
async function lyingMatroska(name: string, seconds: number): Promise<string> {
  const file = path.join(dir, name);
  await runFfmpeg(['-f', 'lavfi', '-i', `testsrc=s=64x48:r=5:d=${seconds}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-y', file]);
  const bytes = await readFile(file);
  // EBML Duration (0x4489), an 8-byte float in the segment's timescale (ms).
  const at = bytes.indexOf(Buffer.from([0x44, 0x89, 0x88]));
  expect(at).toBeGreaterThan(0);
  bytes.writeDoubleBE(2000, at + 3);
  await writeFile(file, bytes);
  return file;
}

/** An MP3 of `seconds` whose Xing header counts 120 frames (3.1 s at 44.1 kHz). */
async function lyingMp3(name: string, seconds: number): Promise<string> {
  const file = path.join(dir, name);
  await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=440:d=${seconds}`, '-c:a', 'libmp3lame', '-b:a', '32k', '-write_xing', '1', '-y', file]);
  const bytes = await readFile(file);
  let at = bytes.indexOf('Xing');
  if (at < 0) at = bytes.indexOf('Info');
  expect(at).toBeGreaterThan(0);
  bytes.writeUInt32BE(120, at + 8);
  await writeFile(file, bytes);
  return file;
}

describe('limits hold for what is counted, not what a header states', () => {
  it('video and thumbnails: a 40 s clip stating 2 s is refused at planning, naming it and the limit', async () => {
    const clip = await lyingMatroska('long.mkv', 40);
    expect(await statedSeconds(clip)).toBeLessThan(3);
    for (const spec of [{ video: { preset: 'ultrafast' } }, { thumbnails: { count: 3 } }]) {
      const done = await cluster.client.wait((await cluster.client.submit(spec, [clip])).id);
      expect(done.state, JSON.stringify(spec)).toBe('JOB_STATE_FAILED');
      expect(done.errors).toEqual([
        { input: 'long.mkv', code: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/^long\.mkv: duration 40\.0 s \(counted, whatever its header states\) is over the limit --max-media-seconds=20 \(seconds\)$/) },
      ]);
      // Nothing was encoded: the refusal came before any subtask.
      expect(done.subtasks).toEqual([]);
    }
    // Within the time but over the frames: 18 s at 10 fps is 180 frames, stating 2 s.
    const dense = path.join(dir, 'dense.mkv');
    await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=18', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-y', dense]);
    const bytes = await readFile(dense);
    bytes.writeDoubleBE(2000, bytes.indexOf(Buffer.from([0x44, 0x89, 0x88])) + 3);
    await writeFile(dense, bytes);
    const done = await cluster.client.wait((await cluster.client.submit({ video: { preset: 'ultrafast' } }, [dense])).id);
    expect(done.errors).toEqual([{ input: 'dense.mkv', code: 'RESOURCE_EXHAUSTED', message: 'dense.mkv: 180 frames (counted, whatever its header states) is over the limit --max-video-frames=150' }]);
  });

  it('audio: a 40 s MP3 stating 3 s is decoded only as far as the limit and refused, whole or segmented', async () => {
    const mp3 = await lyingMp3('long.mp3', 40);
    expect(await statedSeconds(mp3)).toBeLessThan(4);
    // Whole (its stated 3 s is under a segment) on the worker; segmented (2 s segments) on the coordinator.
    for (const audio of [{ codec: 'wav' }, { codec: 'wav', segment_seconds: 2 }]) {
      const done = await cluster.client.wait((await cluster.client.submit({ audio }, [mp3])).id);
      expect(done.state, JSON.stringify(audio)).toBe('JOB_STATE_FAILED');
      expect(done.errors).toEqual([
        { input: 'long.mp3', code: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/^long\.mp3: duration 21\.0 s \(counted, whatever its header states\) is over the limit --max-media-seconds=20 \(seconds\)$/) },
      ]);
    }
    // A file within the limit, stating the truth, still goes through.
    const fine = path.join(dir, 'fine.mp3');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:d=5', '-c:a', 'libmp3lame', '-b:a', '32k', '-y', fine]);
    const ok = await cluster.client.wait((await cluster.client.submit({ audio: { codec: 'wav' } }, [fine])).id);
    expect(ok.state, JSON.stringify(ok.errors)).toBe('JOB_STATE_SUCCEEDED');
  });
});
