/**
 * A segment's encoder that will not open because *this worker* is short of memory (SVT-AV1 says
 * "insufficient resources", and ffmpeg "Error while opening encoder for output stream") is the
 * worker's trouble, not the plan's: another worker with room encodes the same segment. The
 * ENCODER_OPEN_FAILURE match in worker/processors/video.ts takes every such failure for a fault of
 * the plan and fails the segment for good (INTERNAL, not retryable), so one busy or small worker
 * fails the whole job, where it was a retryable failure before.
 *
 * The worker's memory shortage is made with an ffmpeg wrapper that runs the SVT-AV1 encodes under
 * `ulimit -v` (as a container's or a cgroup's limit would, or several slots' encodes at once).
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { ffmpegBinaries, ffmpegInfo } from '../shared/ffmpeg.js';
import { WORKER_FEATURES, type SpoolFile } from '../shared/job-kind.js';
import { resolveLimits } from '../shared/limits.js';
import type { VideoSegmentPlan } from '../shared/media/video-plan.js';
import { videoProcessor } from '../worker/processors/video.js';
import { makeVideo, specOf } from './helpers/media.js';

let dir: string;
let realFfmpeg: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-encoder-oom-'));
  realFfmpeg = ffmpegBinaries().ffmpeg;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video worker: an encoder that cannot open for want of memory', () => {
  it('is a retryable failure of this worker, not INTERNAL "a fault in Tessera\'s plan"', async () => {
    const src = await makeVideo(dir, 'clip.mp4', { duration: 0.4, width: 320, height: 240, fps: 25, gop: 25 });
    const spec = specOf('video', { preset: 'ultrafast', audio_codec: 'none', codec: 'av1', crf: 50 });
    const params = videoKind.validate(spec.video!, spec);
    const input: SpoolFile = { name: 'clip.mp4', path: src, size: (await stat(src)).size, sha256: createHash('sha256').update(await readFile(src)).digest('hex') };
    const encoders = new Set(ffmpegInfo().encoders);
    const planned = await videoKind.plan({
      jobId: 'job-1', params, spec, inputs: [input], workDir: await mkdtemp(path.join(dir, 'job-')), signal: new AbortController().signal, log: pino({ level: 'silent' }),
      cluster: { workers: 1, slots: 1, encoders, encoderSets: [encoders], features: new Set(WORKER_FEATURES) }, warn: () => undefined, limits: resolveLimits({}),
    } as never);
    const segment = planned.subtasks.find((s) => (s.plan as VideoSegmentPlan).type === 'segment')!;
    expect((segment.plan as VideoSegmentPlan).encoder).toBe('libsvtav1');

    // This worker's ffmpeg: SVT-AV1 encodes get too little address space to allocate their buffers.
    const wrapper = path.join(dir, 'ffmpeg-low-memory');
    await writeFile(wrapper, `#!/bin/sh\ncase " $* " in *" libsvtav1 "*) ulimit -v 300000 ;; esac\nexec '${realFfmpeg}' "$@"\n`);
    await chmod(wrapper, 0o755);
    const binaries = ffmpegBinaries() as { ffmpeg: string };
    binaries.ffmpeg = wrapper;
    try {
      const err = await videoProcessor
        .process({
          jobId: 'job-1', subtaskId: 'st-0', attempt: 1, phase: 0, params: videoProcessor.params(spec), spec, plan: JSON.parse(JSON.stringify(segment.plan)),
          inputs: segment.inputs.map((f) => ({ name: f.name, path: f.path, size: f.size })), workDir: await mkdtemp(path.join(dir, 'task-')), signal: new AbortController().signal,
          progress: () => undefined, threads: 1, log: pino({ level: 'silent' }),
        } as never)
        .then(() => undefined, (e: unknown) => e as { codeName?: string; retryable?: boolean; message: string });
      expect(err).toBeDefined();
      // Observed: INTERNAL, retryable false, "libsvtav1 would not encode 320x240 at 25 fps (... insufficient
      // resources ...); a fault in Tessera's plan, not in the input" - the job fails on its first attempt.
      expect({ code: err?.codeName, retryable: err?.retryable }).not.toEqual({ code: 'INTERNAL', retryable: false });
      expect(err?.retryable).toBe(true);
    } finally {
      binaries.ffmpeg = realFfmpeg;
    }
  }, 60_000);
});
