/**
 * Video and thumbnail jobs of several uploaded files start on the first file while the others are
 * still coming: real coordinator and worker processes, real ffmpeg on generated clips, and a raw
 * gRPC stub as the client, so that the test holds the upload open between two files.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegBinaries } from '../../shared/ffmpeg.js';
import type { Job__Output } from '../../shared/proto/generated/tessera/v1/Job.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import type { JobSpec } from '../../client/client.js';
import { sha256 } from '../../shared/streams.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { makeVideo } from '../helpers/media.js';
import { holdSubmission, rawJobService, sendInput, until } from '../helpers/raw-grpc.js';

const run = promisify(execFile);

let cluster: TestCluster;
let dir: string;
let raw: JobServiceClient;
const clips: { name: string; data: Buffer }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-early-media-'));
  cluster = await startCluster({ workers: 2, slots: 1 });
  raw = rawJobService(cluster.address);
  for (const name of ['first.mp4', 'second.mp4']) {
    const file = await makeVideo(dir, name, { duration: 4, width: 160, height: 120, fps: 25, audioChannels: 2, gop: 25 });
    clips.push({ name, data: await readFile(file) });
  }
}, 120_000);

afterAll(async () => {
  raw?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The job labelled `label` once one of its subtasks has succeeded (the upload still open). */
const withSucceededSubtask = (label: string): Promise<Job__Output> =>
  until(
    `a subtask of job ${label} to succeed`,
    async () => {
      const listed = (await cluster.client.listJobs({ limit: 100 })).find((j) => j.spec?.label === label);
      if (!listed) return undefined;
      const job = await cluster.client.getJob(listed.id);
      return job.subtasks.some((s) => s.state === 'SUBTASK_STATE_SUCCEEDED') ? job : undefined;
    },
    1200,
  );

/**
 * Submits both clips, the second only once a subtask of the first has succeeded: by then only
 * the first has been planned. The finished job.
 */
async function submitOneByOne(spec: JobSpec, inputs = clips, firstLabels = (job: Job__Output) => new Set(job.subtasks.map((s) => s.label.split(' ')[0]))): Promise<Job__Output> {
  const { call, answer } = holdSubmission(raw, { ...spec, input_count: inputs.length });
  sendInput(call, inputs[0]!);
  const early = await withSucceededSubtask(spec.label!);
  expect(early.state).toBe('JOB_STATE_RUNNING');
  expect(firstLabels(early)).toEqual(new Set([inputs[0]!.name]));
  for (const input of inputs.slice(1)) sendInput(call, input);
  call.end();
  const { err, job } = await answer;
  expect(err).toBeNull();
  expect(job!.id).toBe(early.id);
  const done = await cluster.client.wait(job!.id);
  expect(done.state).toBe('JOB_STATE_SUCCEEDED');
  expect(done.errors).toEqual([]);
  return done;
}

const frames = async (file: string): Promise<number> => {
  const { stdout } = await run(ffmpegBinaries().ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', file]);
  return Number(stdout.trim());
};

describe('a job of several uploaded videos starts on the first while the others upload', () => {
  it('thumbnails: the first clip\'s thumbnails are made before the second is sent; both clips get theirs', async () => {
    const job = await submitOneByOne({ label: 'early-thumbs', thumbnails: { every: 1, width: 80, format: 'jpeg' } });
    const out = path.join(dir, 'thumbs');
    await cluster.client.download(job.id, out);
    const names = (await readdir(out)).sort();
    expect(names).toEqual([1, 2, 3, 4].flatMap((n) => ['first', 'second'].map((c) => `${c}-thumb-0000${n}.jpg`)).sort());
    for (const n of names) expect(await sharp(path.join(out, n)).metadata()).toMatchObject({ format: 'jpeg', width: 80, height: 60 });
  });

  it('video: the first clip\'s segments are encoded before the second is sent; both come out whole', async () => {
    const job = await submitOneByOne({ label: 'early-video', video: { preset: 'ultrafast', segment_seconds: 1, container: 'mp4' } });
    const paths = await cluster.client.download(job.id, path.join(dir, 'video'));
    expect([...paths.keys()].sort()).toEqual(['first.mp4', 'second.mp4']);
    for (const p of paths.values()) expect(await frames(p)).toBe(100);
  });

  it('audio: the first file is rendered before the others are sent (after a pause, what waits is spread over the slots); all come out', async () => {
    const tones: { name: string; data: Buffer }[] = [];
    for (const [i, name] of ['one.wav', 'two.wav', 'three.wav'].entries()) {
      const file = path.join(dir, name);
      await run(ffmpegBinaries().ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', `sine=f=${300 + 100 * i}:d=3:r=48000`, '-ac', '2', file]);
      tones.push({ name, data: await readFile(file) });
    }
    // A group's label is "file NAME" (one file) or "files FIRST .. LAST (N)".
    const job = await submitOneByOne({ label: 'early-audio', audio: { codec: 'mp3', normalize: true } }, tones, (j) => new Set(j.subtasks.map((s) => s.label.replace(/^file /, ''))));
    expect(job.outputs.map((o) => o.name).sort()).toEqual(['audio-report.json', 'one.mp3', 'three.mp3', 'two.mp3']);
    const paths = await cluster.client.download(job.id, path.join(dir, 'audio'));
    const report = JSON.parse(await readFile(paths.get('audio-report.json')!, 'utf8')) as { files: { input: string }[] };
    expect(report.files.map((f) => f.input)).toEqual(['one.wav', 'two.wav', 'three.wav']);
  });

  it('video: a submission that fails at its second clip (damaged) is refused, and the job the first started is dropped with its chunks', async () => {
    const { call, answer } = holdSubmission(raw, { label: 'early-video-damaged', video: { preset: 'ultrafast', segment_seconds: 1, container: 'mp4' }, input_count: 2 });
    sendInput(call, clips[0]!);
    const started = await withSucceededSubtask('early-video-damaged');
    sendInput(call, clips[1]!, sha256(Buffer.from('not these bytes')));
    call.end();
    const { err } = await answer;
    expect(err?.code).toBe(grpc.status.DATA_LOSS);
    expect(err?.details).toContain('input second.mp4: checksum mismatch');
    await until(`job ${started.id} to be gone`, async () => ((await cluster.client.getJob(started.id).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError).code === grpc.status.NOT_FOUND || undefined);
    await until('its spool folder to go', async () => (!(await readdir(path.join(cluster.dataDir, 'spool', 'jobs')).catch(() => [] as string[])).includes(started.id) || undefined));
  });
});
