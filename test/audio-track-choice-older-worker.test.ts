/**
 * Regression review K15 of c384cb0 (audio: of several audio tracks the one ffmpeg takes is encoded,
 * carried to the worker as FileRender.stream, -map 0:N).
 *
 * A whole-file subtask names its track in a new plan field, `stream`, but requires no worker
 * feature for it, as the kind does for the other plan fields an older worker would pass over
 * (`audio-tags`, `audio-chapters`). A worker from before c384cb0 (same WORKER_FEATURES) is given
 * the subtask, ignores `stream` and decodes `-map 0:a:0`: in a cluster being upgraded, a film whose
 * commentary track comes first has its commentary encoded (mono, 300 Hz here), the job succeeds, and
 * it warns "stream 2 is encoded". (Seen: this coordinator's plan run by bf85171's audioProcessor.)
 *
 * The plan must either keep such a file off older workers (a feature they do not advertise) or not
 * leave the choice to them (no whole-file plan that depends on `stream`).
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { audioKind } from '../coordinator/kinds/audio.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { WORKER_FEATURES, type SpoolFile } from '../shared/job-kind.js';
import { resolveLimits } from '../shared/limits.js';
import { createLogger } from '../shared/logger.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';

/** The features a worker advertised before c384cb0 (bf85171's WORKER_FEATURES). */
const BEFORE_TRACK_CHOICE = ['video-nut-chunks', 'video-audio-beside-segment', 'video-lossless', 'video-10bit', 'video-mov-chunks', 'video-chunk-inpoint', 'thumbnails-seek-from', 'audio-tags', 'video-colour', 'audio-chapters', 'thumbnails-frame-numbers'];

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-track-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('audio plan of a file whose taken track is not its first, for a cluster with older workers', () => {
  test('its whole-file subtask is kept off workers that would encode the first track', async () => {
    // The set-up assumes today's workers advertise what bf85171's did (no feature was added for `stream`).
    expect([...WORKER_FEATURES].sort()).toEqual(expect.arrayContaining([...BEFORE_TRACK_CHOICE].sort()));
    const src = path.join(dir, 'film.mkv');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=2', '-f', 'lavfi', '-i', 'sine=f=300:r=48000:d=2', '-f', 'lavfi', '-i', 'sine=f=1000:r=48000:d=2',
      '-filter_complex', '[2]aformat=channel_layouts=stereo[main]', '-map', '0', '-map', '1', '-map', '[main]', '-c:v', 'libx264', '-c:a', 'flac',
      '-disposition:a:0', 'comment', '-disposition:a:1', 'default', '-y', src,
    ]);
    const raw = { codec: 'flac' };
    const spec = { label: '', priority: 0, max_attempts: 1, audio: raw, params: 'audio' } as unknown as JobSpec__Output;
    const inputs: SpoolFile[] = [{ name: 'film.mkv', path: src, size: (await stat(src)).size, sha256: '' }];
    const workDir = path.join(dir, 'coordinator');
    await mkdir(workDir);
    const planned = await audioKind.plan({
      jobId: 'job', params: audioKind.validate(raw, spec), spec, inputs, workDir, signal: new AbortController().signal,
      log: createLogger('audio-test', 'silent'), warn: () => undefined, limits: resolveLimits(),
      cluster: { workers: 2, slots: 2, encoders: new Set<string>(), encoderSets: [], features: new Set(BEFORE_TRACK_CHOICE) },
    });
    expect(planned.errors ?? []).toEqual([]);
    for (const st of planned.subtasks) {
      const plan = st.plan as { type: string; files?: Array<{ stream?: number }> };
      if (plan.type !== 'whole' || !plan.files!.some((f) => f.stream !== undefined)) continue;
      // Observed: requires { encoders: ['flac'] } only: any worker, an older one included, takes it.
      expect((st.requires?.features ?? []).filter((f) => !BEFORE_TRACK_CHOICE.includes(f)), JSON.stringify(st)).not.toEqual([]);
    }
  }, 30_000);
});
