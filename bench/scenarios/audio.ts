/**
 * `npm run bench -- audio`: loudness-normalise a generated 60-minute speech-like recording (FLAC,
 * 44.1 kHz stereo) to -16 LUFS / -1.5 dBTP as MP3 128k, on a real cluster (coordinator + 2 workers x 1
 * slot; the time includes upload and download) and with one ffmpeg two-pass `loudnorm` run (measure,
 * then apply, linear mode) on the same input, side by side. Ratio = cluster / ffmpeg wall time.
 */
import path from 'node:path';
import { LocalCluster } from '../../client/local-cluster.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { probeAudio } from '../../shared/media/audio-probe.js';
import { measureEncodedLoudness } from '../../shared/media/audio-render.js';
import { cachedInput } from '../input-cache.js';
import type { BenchContext, BenchResult, BenchScenario } from '../types.js';

const TARGET = -16;
const TRUE_PEAK = -1.5;
const RATE = 44100;

/** Speech-like: a voiced 160 Hz tone with pink noise, 0.7 s on / 0.5 s pause, over quiet room noise. */
async function makeSource(file: string, seconds: number): Promise<void> {
  const graph =
    `sine=f=160:r=${RATE}:d=${seconds}[t];anoisesrc=r=${RATE}:d=${seconds}:c=pink:a=0.05:s=11[n];` +
    `[t][n]amix=2,volume='if(lt(mod(t,1.2),0.7),0.6,0.004)':eval=frame,pan=stereo|c0=c0|c1=0.9*c0`;
  await runFfmpeg(['-filter_complex', graph, '-c:a', 'flac', '-sample_fmt', 's16', '-y', file]);
}

async function loudnormTwoPass(src: string, out: string): Promise<void> {
  const base = `loudnorm=I=${TARGET}:TP=${TRUE_PEAK}:LRA=11`;
  const { stderr } = await runFfmpeg(['-i', src, '-map', '0:a:0', '-af', `${base}:print_format=json`, '-f', 'null', '-']);
  const m = JSON.parse(stderr.slice(stderr.lastIndexOf('{'), stderr.lastIndexOf('}') + 1)) as Record<string, string>;
  const measured = `measured_I=${m['input_i']}:measured_TP=${m['input_tp']}:measured_LRA=${m['input_lra']}:measured_thresh=${m['input_thresh']}:offset=${m['target_offset']}:linear=true`;
  // loudnorm works at 192 kHz: resample back to the source rate for the encode.
  await runFfmpeg(['-i', src, '-map', '0:a:0', '-af', `${base}:${measured}`, '-ar', String(RATE), '-c:a', 'libmp3lame', '-b:a', '128k', '-y', out]);
}

export const audioScenario: BenchScenario = {
  name: 'audio',
  description: '60 min speech-like FLAC -> -16 LUFS MP3: segmented analysis + one encode on coordinator + 2 workers vs ffmpeg two-pass loudnorm',
  command: 'npm run bench -- audio',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const seconds = ctx.smoke ? 12 : 3600;
    const src = await cachedInput(ctx, `talk-${seconds}s-v1.flac`, `${seconds} s speech-like stereo FLAC at ${RATE} Hz`, (file) => makeSource(file, seconds));

    ctx.log('ffmpeg two-pass loudnorm (linear) -> mp3 128k');
    const baseOut = path.join(ctx.workDir, 'single.mp3');
    const b0 = performance.now();
    await loudnormTwoPass(src, baseOut);
    const baseSeconds = (performance.now() - b0) / 1000;

    ctx.log('cluster: coordinator + 2 workers x 1 slot');
    const cluster = await new LocalCluster({ workers: 2, slots: 1 }).start();
    try {
      // The smoke run uses 3 s segments so that the segmented path is exercised (4 segments) on a 12 s file.
      const raw = { codec: 'mp3', bitrate: '128k', normalize: true, loudness: TARGET, true_peak: TRUE_PEAK, segment_seconds: ctx.smoke ? 3 : 0 };
      const t0 = performance.now();
      const job = await cluster.client.submit({ label: 'bench audio', audio: raw }, [src]);
      const done = await cluster.client.wait(job.id);
      const files = await cluster.client.download(job.id, path.join(ctx.workDir, 'cluster'));
      const clusterSeconds = (performance.now() - t0) / 1000;
      const out = files.get(path.basename(src).replace(/\.flac$/, '.mp3'));
      if (done.state !== 'JOB_STATE_SUCCEEDED' || !out) throw new Error(`cluster job ended ${done.state}: ${JSON.stringify(done.errors)}`);
      const [loudBase, loudOut, probeBase, probeOut] = await Promise.all([
        measureEncodedLoudness(baseOut, 'baseline'),
        measureEncodedLoudness(out, 'cluster'),
        probeAudio(baseOut, 'baseline'),
        probeAudio(out, 'cluster'),
      ]);
      const segments = done.subtasks.filter((s) => s.label.includes('segment'));
      const workers = new Set(segments.map((s) => s.worker));
      const ratio = clusterSeconds / baseSeconds;
      ctx.log(`ffmpeg ${baseSeconds.toFixed(2)} s (${loudBase} LUFS), cluster ${clusterSeconds.toFixed(2)} s (${loudOut} LUFS), ratio ${ratio.toFixed(3)}`);
      return {
        scenario: 'audio',
        inputs: `${seconds} s speech-like stereo FLAC 44.1 kHz; normalise to ${TARGET} LUFS, ${TRUE_PEAK} dBTP; MP3 128k; cluster time includes upload and download`,
        baseline: { label: 'ffmpeg loudnorm two-pass (linear), one process each pass', seconds: baseSeconds, figures: { lufs: loudBase, duration: probeBase.duration } },
        tessera: {
          label: 'cluster (coordinator + 2 workers x 1 slot): parallel segment analysis, global gating, one encode',
          seconds: clusterSeconds,
          figures: { lufs: loudOut, duration: probeOut.duration, segments: segments.length, workersUsed: workers.size },
        },
        ratio,
        ratioMeaning: 'cluster seconds / ffmpeg two-pass loudnorm seconds (lower is better)',
        target: { value: 0.8, better: 'lower' },
        checks: {
          loudnessWithinHalfLu: Math.abs(loudOut - TARGET) <= 0.5,
          durationMatches: Math.abs(probeOut.duration - seconds) < 0.1,
          segmentsOnBothWorkers: workers.size === 2,
        },
      };
    } finally {
      await cluster.stop();
    }
  },
};

export default audioScenario;
