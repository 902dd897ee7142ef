/**
 * `npm run bench -- video`: a generated 60 s 720p clip transcoded with x264 (same preset and CRF) by
 * split-and-stitch on a real cluster (coordinator + 2 workers x 1 slot, separate processes; the time
 * includes upload and download) and by one `ffmpeg -threads 2` on the same input, side by side.
 * The ratio is cluster / ffmpeg wall time; both outputs must hold the same number of frames.
 */
import path from 'node:path';
import { LocalCluster } from '../../client/local-cluster.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { parseVideoParams } from '../../shared/kinds/video-params.js';
import { countVideoPackets, probeMedia } from '../../shared/media/probe.js';
import { audioEncoderArgs, videoEncoderArgs } from '../../shared/media/video-encode.js';
import { cachedInput } from '../input-cache.js';
import type { BenchContext, BenchResult, BenchScenario } from '../types.js';

const PRESET = 'medium';
const CRF = 23;

/** A testsrc2 clip with a stereo tone, encoded fast at high quality so the transcode has detail to work on. */
async function makeSource(file: string, seconds: number, size: string): Promise<void> {
  await runFfmpeg([
    '-y', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
    '-map', '0:v', '-map', '1:a', '-ac', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '18', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '128k', file,
  ]);
}

function round(figures: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Math.round(v * 100) / 100]));
}

export const videoScenario: BenchScenario = {
  name: 'video',
  description: '60 s 720p x264 transcode: split-and-stitch on coordinator + 2 workers vs one ffmpeg -threads 2',
  command: 'npm run bench -- video',
  async run(ctx: BenchContext): Promise<BenchResult> {
    // The smoke clip is 3 s (two automatic segments, one per worker) at 640x360: a quarter of the
    // pixels of 720p, the same path through the cluster, for the test suite's sake.
    const seconds = ctx.smoke ? 3 : 60;
    const [width, height] = ctx.smoke ? [640, 360] : [1280, 720];
    const size = `${width}x${height}`;
    const src = await cachedInput(ctx, `clip-${seconds}s-${height}p30-v1.mp4`, `${seconds} s ${size} 30 fps clip`, (file) => makeSource(file, seconds, size));
    const raw = { preset: PRESET, crf: CRF, codec: 'h264', audio_codec: 'aac', container: 'mp4' };
    const params = parseVideoParams(raw);

    ctx.log(`ffmpeg -threads 2 (x264 ${PRESET} crf ${CRF})`);
    const baseOut = path.join(ctx.workDir, 'single.mp4');
    const b0 = performance.now();
    await runFfmpeg(['-y', '-threads', '2', '-i', src, '-map', '0:v:0', '-map', '0:a:0', ...videoEncoderArgs(params, 'libx264', 2), ...audioEncoderArgs('aac', params.audioBitrate, 2), '-movflags', '+faststart', baseOut]);
    const baseSeconds = (performance.now() - b0) / 1000;

    ctx.log('cluster: coordinator + 2 workers x 1 slot');
    const cluster = await new LocalCluster({ workers: 2, slots: 1, workerArgs: ['--threads', '1'] }).start();
    try {
      const t0 = performance.now();
      const job = await cluster.client.submit({ label: 'bench video', video: raw }, [src]);
      const t1 = performance.now();
      const done = await cluster.client.wait(job.id);
      const t2 = performance.now();
      const files = await cluster.client.download(job.id, path.join(ctx.workDir, 'cluster'));
      const clusterSeconds = (performance.now() - t0) / 1000;
      // Where the time went: upload, plan+encode+merge on the cluster, download; busiest worker's subtask time.
      const busy = new Map<string, number>();
      for (const s of done.subtasks) busy.set(s.worker, (busy.get(s.worker) ?? 0) + Number(s.duration_ms) / 1000);
      const phases = { uploadSeconds: (t1 - t0) / 1000, jobSeconds: (t2 - t1) / 1000, downloadSeconds: (performance.now() - t2) / 1000, busiestWorkerSeconds: Math.max(...busy.values()) };
      const out = [...files.values()][0];
      if (done.state !== 'JOB_STATE_SUCCEEDED' || !out) throw new Error(`cluster job ended ${done.state}: ${JSON.stringify(done.errors)}`);
      const [srcFrames, baseFrames, outFrames, outInfo] = await Promise.all([countVideoPackets(src), countVideoPackets(baseOut), countVideoPackets(out), probeMedia(out)]);
      const segments = done.subtasks.filter((s) => s.label.includes('segment'));
      const workers = new Set(segments.map((s) => s.worker));
      const ratio = clusterSeconds / baseSeconds;
      ctx.log(`ffmpeg ${baseSeconds.toFixed(2)} s, cluster ${clusterSeconds.toFixed(2)} s ${JSON.stringify(round(phases))}, ratio ${ratio.toFixed(3)}; frames ${srcFrames}/${baseFrames}/${outFrames}`);
      return {
        scenario: 'video',
        inputs: `${seconds} s ${size} 30 fps testsrc2 + stereo AAC; x264 ${PRESET} crf ${CRF}, AAC 128k, mp4; cluster time includes upload and download`,
        baseline: { label: 'ffmpeg -threads 2', seconds: baseSeconds, figures: { frames: baseFrames } },
        tessera: {
          label: 'cluster (coordinator + 2 workers x 1 slot), split-and-stitch',
          seconds: clusterSeconds,
          figures: { frames: outFrames, segments: segments.length, workersUsed: workers.size, audioTracks: outInfo.audio.length, ...round(phases) },
        },
        ratio,
        ratioMeaning: 'cluster seconds / ffmpeg seconds (lower is better)',
        target: { value: 0.95, better: 'lower' },
        checks: {
          framesEqual: outFrames === baseFrames && outFrames === srcFrames,
          segmentsOnBothWorkers: workers.size === 2,
          audioKept: outInfo.audio.length === 1,
        },
      };
    } finally {
      await cluster.stop();
    }
  },
};

export default videoScenario;
