/**
 * The 2026-12-05 video plan fields through faults: a segment re-run after the merge found it damaged,
 * and a job planned while no worker is connected.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { LocalCluster } from '../../client/local-cluster.js';
import type { CoordinatorKind, SubtaskPlan } from '../../shared/job-kind.js';
import type { VideoJobParams } from '../../shared/kinds/video-params.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import type { VideoSubtaskPlan } from '../../shared/media/video-plan.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { damagingSegment, runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-plan-faults-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video segments re-run or planned around faults keep what they require of workers', () => {
  it('an MPEG-2 segment re-run after it arrived damaged still requires video-chunk-inpoint', async () => {
    // 3 s of MPEG-2 in MPEG-PS (a DVD's .mpg): NUT chunks that read no start time of their own.
    const src = path.join(dir, 'dvd.mpg');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=3', '-c:v', 'mpeg2video', '-g', '12', '-f', 'mpeg', src]);
    // The requirements of the plan's segments, and of the merge's re-runs.
    const planned: SubtaskPlan[] = [];
    const rerun: SubtaskPlan[] = [];
    const kind: CoordinatorKind<VideoJobParams> = {
      ...videoKind,
      async plan(ctx) {
        const p = await videoKind.plan(ctx);
        planned.push(...p.subtasks);
        return p;
      },
      async merge(ctx) {
        const r = await videoKind.merge(ctx);
        rerun.push(...(r.next ?? []));
        return r;
      },
    };
    // Segment 2's first file is damaged after the worker counted it (a bad disk or copy).
    const flaky = damagingSegment(videoProcessor, { segment: 1, keep: 1500 });
    const run = await runKindInProcess(kind, flaky.processor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(rerun).toHaveLength(1);
    const original = planned.find((s) => (s.plan as VideoSubtaskPlan).type === 'segment' && (s.plan as { segment: number }).segment === 1)!;
    expect(original.requires?.features).toContain('video-chunk-inpoint');
    // Observed: ['video-nut-chunks'] only: an older worker, which places these chunks a whole chunk
    // late (frames lost, DATA_LOSS), may be sent the re-run.
    expect(rerun[0]!.requires?.features).toEqual(original.requires?.features);
  });

  it('a QuickTime Animation MOV submitted before any worker has connected is encoded once workers join', async () => {
    const src = path.join(dir, 'anim.mov');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=3', '-c:v', 'qtrle', '-g', '25', src]);
    const cluster = await new LocalCluster({ workers: 0, slots: 1 }).start();
    try {
      const job = await cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1 } }, [src]);
      // Planned while no worker is connected (the job says it waits for one), then two join.
      for (let i = 0; i < 50 && !(await cluster.client.getJob(job.id)).message.includes('no worker is connected'); i++) await new Promise((r) => setTimeout(r, 100));
      cluster.startWorker('w1');
      cluster.startWorker('w2');
      const done = await cluster.client.wait(job.id);
      // Observed: FAILED, every segment "[qtrle] Unsupported colorspace: 0 bits/sample?" (cut into
      // Matroska chunks, as for a cluster of the oldest workers, though every worker reads MOV).
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      const out = [...(await cluster.client.download(job.id, path.join(dir, 'out'))).values()][0]!;
      const p = await runFfprobe<{ streams: Array<{ nb_read_frames: string }> }>(['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-i', out]);
      expect(Number(p.streams[0]!.nb_read_frames)).toBe(75);
    } finally {
      await cluster.stop();
    }
  }, 60_000);
});
