/**
 * Regression review K14 of 19ffcd3 (audio: a Matroska track's length is its DURATION tag).
 * ffmpeg's Matroska muxer writes a track's DURATION tag as the track's END time (last timestamp
 * plus duration), not its length. A recording whose sound starts after its picture (a camera or
 * screen capture whose audio device came up late, or audio laid under a video at an offset) holds
 * all of its audio, intact, yet its tag states more than decodes: such a complete file is now
 * refused as "truncated file" by the audio kind. Before 19ffcd3 it was converted.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-late-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('audio job of an intact Matroska whose sound starts after its picture', () => {
  it('converts its 6 s of sound, not refused as truncated (the DURATION tag is the track end, 8 s)', async () => {
    const file = path.join(dir, 'interview.mkv');
    // 8 s of picture; 6 s of sound starting 2 s in. Nothing is cut.
    execFileSync('ffmpeg', ['-v', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10:duration=8',
      '-itsoffset', '2', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=6',
      '-map', '0', '-map', '1', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-c:a', 'aac', file]);
    const job = await cluster.client.wait((await cluster.client.submit({ audio: { codec: 'flac' } }, [file])).id);
    const what = `state ${job.state}; errors ${JSON.stringify(job.errors)}; warnings ${JSON.stringify(job.warnings)}`;
    // Observed: JOB_STATE_FAILED, "interview.mkv: truncated file: decoded 6.0x s of the 8.0x s it announces".
    expect(job.errors.map((e) => e.message).join('\n'), what).not.toMatch(/truncated file/);
    expect(job.state, what).toBe('JOB_STATE_SUCCEEDED');
  }, 60_000);

  it('a FLAC track starting 0.1 s after the picture is not refused as corrupt (its tag is 4.1 s, its sound 4.0 s)', async () => {
    const file = path.join(dir, 'concert.mkv');
    // A remux from MPEG-TS or a capture: the sound 100 ms behind the picture, all of it there.
    execFileSync('ffmpeg', ['-v', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10:duration=4',
      '-itsoffset', '0.1', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=4',
      '-map', '0', '-map', '1', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-c:a', 'flac', file]);
    const job = await cluster.client.wait((await cluster.client.submit({ audio: { codec: 'mp3' } }, [file])).id);
    const what = `state ${job.state}; errors ${JSON.stringify(job.errors)}; warnings ${JSON.stringify(job.warnings)}`;
    // Observed: JOB_STATE_FAILED, "concert.mkv: corrupt file: decoded 4.00 s of the 4.10 s it states: 0.10 s could not be decoded".
    expect(job.errors.map((e) => e.message).join('\n'), what).not.toMatch(/corrupt file|truncated file/);
    expect(job.state, what).toBe('JOB_STATE_SUCCEEDED');
  }, 60_000);
});
