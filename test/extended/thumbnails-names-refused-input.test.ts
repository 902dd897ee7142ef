/**
 * The names of a job's thumbnails depend on what was submitted, not on which inputs were refused:
 * a job of several videos prefixes each one's files with its name (README, "Video"). With one of
 * two inputs refused at its upload check (an audio file), the other's came out as the plain
 * `thumb-00001.jpg` of a job of one video; refused later, at planning, they kept the prefix. A
 * script mapping `NAME-thumb-*` back to its source found nothing for the good video.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { generateAudio } from '../helpers/audio-media.js';
import { makeVideo } from '../helpers/media.js';

let dir: string;
let cluster: TestCluster;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumb-names-'));
  cluster = await startCluster({ workers: 1 });
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('thumbnail names beside a refused input', () => {
  it('keep their video\'s prefix when the other input is refused at its upload', async () => {
    const video = await makeVideo(dir, 'clip.mp4', { duration: 2 });
    const tone = await generateAudio(path.join(dir, 'tone.wav'), { source: 'sine', seconds: 1, rate: 48000, layout: 'mono', ext: 'wav' });
    const out = path.join(dir, 'out');
    const r = await cluster.runCli(['submit', 'thumbnails', '--count', '2', video, tone, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(3);
    const job = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { errors: { input: string }[]; outputs: { name: string; source: string }[] };
    expect(job.errors.map((e) => e.input)).toEqual(['tone.wav']);
    // Was: thumb-00001.jpg, thumb-00002.jpg.
    expect(job.outputs.map((o) => [o.name, o.source])).toEqual([['clip-thumb-00001.jpg', 'clip.mp4'], ['clip-thumb-00002.jpg', 'clip.mp4']]);
    expect((await readdir(out)).sort()).toEqual(['clip-thumb-00001.jpg', 'clip-thumb-00002.jpg']);
    // A job of that one video alone keeps the plain names.
    const alone = await cluster.runCli(['submit', 'thumbnails', '--count', '2', video, '-o', path.join(dir, 'alone'), '--json']);
    expect(alone.code, alone.stderr).toBe(0);
    expect((await readdir(path.join(dir, 'alone'))).sort()).toEqual(['thumb-00001.jpg', 'thumb-00002.jpg']);
  });
});
