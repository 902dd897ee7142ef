/**
 * Retargeting a video's segments to another encoder of its codec (the one planned for is no longer
 * on any worker) must respect the same size/rate limits as the first choice (ENCODER_LIMITS): a
 * 300 fps source kept at its own rate is planned for libaom-av1 (SVT-AV1 takes at most 240 fps);
 * when only SVT-AV1 workers are left, the segments must not be pointed at SVT-AV1, where every one
 * fails on the worker with ffmpeg's "bad parameter" (the retarget reads the rate from plan.fps,
 * which is null unless --fps resamples, and so sees 0 fps).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { ffmpegInfo } from '../shared/ffmpeg.js';
import { WORKER_FEATURES, type RetargetableSubtask, type SpoolFile, type SubtaskPlan } from '../shared/job-kind.js';
import { resolveLimits } from '../shared/limits.js';
import type { VideoSegmentPlan } from '../shared/media/video-plan.js';
import { videoProcessor } from '../worker/processors/video.js';
import { makeVideo, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-retarget-rate-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The AV1 plan of `src` (an ultrafast low-quality encode, no audio) on a cluster of `encoders`, one worker of `slots`. */
async function planAv1(src: string, encoders: Set<string>, slots: number) {
  const spec = specOf('video', { preset: 'ultrafast', audio_codec: 'none', codec: 'av1', crf: 50 });
  const params = videoKind.validate(spec.video!, spec);
  const input: SpoolFile = { name: path.basename(src), path: src, size: (await stat(src)).size, sha256: createHash('sha256').update(await readFile(src)).digest('hex') };
  const workDir = await mkdtemp(path.join(dir, 'job-'));
  const ctx = {
    jobId: 'job-1', params, spec, inputs: [input], workDir, signal: new AbortController().signal, log: pino({ level: 'silent' }),
    cluster: { workers: 1, slots, encoders, encoderSets: [encoders], features: new Set(WORKER_FEATURES) },
    warn: () => undefined, limits: resolveLimits({}),
  };
  return { spec, params, planned: await videoKind.plan(ctx as never) };
}

describe('video kind: retarget to another encoder of the codec', () => {
  it('does not point a 300 fps source at SVT-AV1 (at most 240 fps); a retargeted segment encodes', async () => {
    const src = await makeVideo(dir, 'fast.mp4', { duration: 0.5, width: 160, height: 120, fps: 300, gop: 75 });
    // Planned while the only AV1 encoder the workers had was libaom-av1.
    const { spec, params, planned } = await planAv1(src, new Set(ffmpegInfo().encoders.filter((e) => e !== 'libsvtav1')), 2);
    expect(planned.errors ?? []).toEqual([]);
    const subtasks = planned.subtasks.map((s) => ({ ...s, state: 'pending' })) as unknown as RetargetableSubtask[];
    const segments = subtasks.filter((s) => (s.plan as VideoSegmentPlan).type === 'segment');
    expect((segments[0]!.plan as VideoSegmentPlan).encoder).toBe('libaom-av1');

    // The libaom-av1 worker left; the only AV1 encoder now is SVT-AV1.
    const changed = videoKind.retarget!(params, subtasks, new Set(['libsvtav1', 'libx264', 'aac', 'libopus']));
    // Any segment pointed elsewhere must be one that encoder can make.
    for (const s of changed) {
      const taskDir = await mkdtemp(path.join(dir, 'task-'));
      const run = videoProcessor.process({
        jobId: 'job-1', subtaskId: 'st-0', attempt: 1, phase: 0, params: videoProcessor.params(spec), spec, plan: JSON.parse(JSON.stringify(s.plan)),
        inputs: (s as unknown as SubtaskPlan).inputs.map((f) => ({ name: f.name, path: f.path, size: f.size })), workDir: taskDir, signal: new AbortController().signal,
        progress: () => undefined, threads: 1, log: pino({ level: 'silent' }),
      } as never);
      // It was: libsvtav1 chosen, DATA_LOSS "... bad parameter" on every segment.
      await expect(run.then(() => 'encoded', (err: Error) => `${(err as { codeName?: string }).codeName}: ${err.message.slice(0, 160)}`)).resolves.toBe('encoded');
    }
  }, 60_000);

  it('a segment whose encoder will not open for its picture and rate fails for good, naming them, not as retryable DATA_LOSS', async () => {
    const src = await makeVideo(dir, 'small.mp4', { duration: 0.4, width: 80, height: 60, fps: 25, gop: 25 });
    const { spec, planned } = await planAv1(src, new Set(ffmpegInfo().encoders), 1);
    const segment = planned.subtasks.find((s) => (s.plan as VideoSegmentPlan).type === 'segment')!;
    // Planned for libaom-av1 (SVT-AV1 makes no edge under 64 px); a plan that named SVT-AV1 anyway
    // stands for any encoder limit the planner does not know.
    expect((segment.plan as VideoSegmentPlan).encoder).toBe('libaom-av1');
    const plan = { ...(JSON.parse(JSON.stringify(segment.plan)) as VideoSegmentPlan), encoder: 'libsvtav1' };
    const taskDir = await mkdtemp(path.join(dir, 'task-'));
    const err = await videoProcessor
      .process({
        jobId: 'job-2', subtaskId: 'st-0', attempt: 1, phase: 0, params: videoProcessor.params(spec), spec, plan,
        inputs: segment.inputs.map((f) => ({ name: f.name, path: f.path, size: f.size })), workDir: taskDir, signal: new AbortController().signal,
        progress: () => undefined, threads: 1, log: pino({ level: 'silent' }),
      } as never)
      .then(() => undefined, (e: unknown) => e as { codeName?: string; retryable?: boolean; message: string });
    // It was: DATA_LOSS "segment 1: encode failed: ffmpeg failed: [libsvtav1] ... bad parameter", retried on every worker.
    expect([err?.codeName, err?.retryable]).toEqual(['INTERNAL', false]);
    expect(err?.message).toMatch(/libsvtav1 would not encode 80x60 at 25 fps/);
  }, 60_000);
});
