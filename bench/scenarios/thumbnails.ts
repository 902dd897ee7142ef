/**
 * `npm run bench -- thumbnails`: scrubbing previews of a generated 3-minute 720p30 H.264 clip (a
 * keyframe every 2 s, as streaming encodes have it): 600 evenly spaced 320 px JPEG thumbnails (one
 * every 0.3 s) and 10x10 sprite sheets with their WebVTT index, on a real cluster (coordinator + 2
 * workers x 1 slot, separate processes; the time includes upload and download) and with one
 * `ffmpeg -threads 2` making the same thumbnails and sprites in one decode (`fps`, `scale`,
 * `tile`), side by side. Ratio = cluster / ffmpeg wall time.
 */
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { LocalCluster } from '../../client/local-cluster.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { cachedInput } from '../input-cache.js';
import type { BenchContext, BenchResult, BenchScenario } from '../types.js';

const WIDTH = 320;
const HEIGHT = 180;
const SPRITE = { columns: 10, rows: 10 };

async function makeSource(file: string, seconds: number, size: string): Promise<void> {
  await runFfmpeg([
    '-y', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-g', '60', '-pix_fmt', 'yuv420p', file,
  ]);
}

export const thumbnailsScenario: BenchScenario = {
  name: 'thumbnails',
  description: '600 thumbnails + 10x10 sprites of a 3 min 720p clip on coordinator + 2 workers vs one ffmpeg -threads 2',
  command: 'npm run bench -- thumbnails',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const seconds = ctx.smoke ? 6 : 180;
    const count = ctx.smoke ? 20 : 600;
    const [width, height] = ctx.smoke ? [320, 180] : [1280, 720];
    const size = `${width}x${height}`;
    const src = await cachedInput(ctx, `scrub-${seconds}s-${height}p30-g60-v1.mp4`, `${seconds} s ${size} 30 fps clip, a keyframe every 2 s`, (file) => makeSource(file, seconds, size));
    const sheet = SPRITE.columns * SPRITE.rows;

    ctx.log(`ffmpeg -threads 2: ${count} thumbnails and ${SPRITE.columns}x${SPRITE.rows} sprites in one decode`);
    const baseDir = path.join(ctx.workDir, 'single');
    await mkdir(baseDir, { recursive: true });
    const b0 = performance.now();
    // The same frames' worth of work: one every seconds/count, scaled, JPEG at the same quality,
    // and the same thumbnails tiled into sheets.
    const graph = `[0:v]fps=${count}/${seconds},scale=${WIDTH}:${HEIGHT},setsar=1,format=yuvj420p,split[t][s];[s]tile=${SPRITE.columns}x${SPRITE.rows}[sheet]`;
    await runFfmpeg([
      '-y', '-threads', '2', '-i', src, '-filter_complex', graph,
      '-map', '[t]', '-c:v', 'mjpeg', '-q:v', '3', path.join(baseDir, 'thumb-%05d.jpg'),
      '-map', '[sheet]', '-c:v', 'mjpeg', '-q:v', '3', path.join(baseDir, 'sprite-%03d.jpg'),
    ]);
    const baseSeconds = (performance.now() - b0) / 1000;
    const baseFiles = await readdir(baseDir);
    const baseThumbs = baseFiles.filter((f) => f.startsWith('thumb-')).length;

    ctx.log('cluster: coordinator + 2 workers x 1 slot');
    const cluster = await new LocalCluster({ workers: 2, slots: 1 }).start();
    try {
      const raw = { count, width: WIDTH, format: 'jpeg', sprite: `${SPRITE.columns}x${SPRITE.rows}` };
      const t0 = performance.now();
      const job = await cluster.client.submit({ label: 'bench thumbnails', thumbnails: raw }, [src]);
      const t1 = performance.now();
      const done = await cluster.client.wait(job.id);
      const t2 = performance.now();
      const files = await cluster.client.download(job.id, path.join(ctx.workDir, 'cluster'));
      const clusterSeconds = (performance.now() - t0) / 1000;
      if (done.state !== 'JOB_STATE_SUCCEEDED') throw new Error(`cluster job ended ${done.state}: ${JSON.stringify(done.errors)}`);
      const names = [...files.keys()];
      const thumbs = names.filter((n) => /^thumb-\d+\.jpg$/.test(n)).length;
      const sprites = names.filter((n) => /sprite/.test(n) && n.endsWith('.jpg')).length;
      const busy = new Map<string, number>();
      for (const s of done.subtasks) busy.set(s.worker, (busy.get(s.worker) ?? 0) + Number(s.duration_ms) / 1000);
      const phases = { uploadSeconds: (t1 - t0) / 1000, jobSeconds: (t2 - t1) / 1000, downloadSeconds: (performance.now() - t2) / 1000, busiestWorkerSeconds: Math.max(...busy.values()) };
      const rounded = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v * 100) / 100]));
      const ratio = clusterSeconds / baseSeconds;
      ctx.log(`ffmpeg ${baseSeconds.toFixed(2)} s (${baseThumbs} thumbnails), cluster ${clusterSeconds.toFixed(2)} s ${JSON.stringify(rounded)} (${thumbs} thumbnails, ${sprites} sprites, ${done.subtasks.length} subtasks), ratio ${ratio.toFixed(3)}`);
      return {
        scenario: 'thumbnails',
        inputs: `${seconds} s ${size} 30 fps testsrc2, H.264 veryfast, keyframe every 2 s; ${count} thumbnails ${WIDTH} px JPEG q3 (one every ${(seconds / count).toFixed(2)} s), ${SPRITE.columns}x${SPRITE.rows} sprites; cluster time includes upload and download`,
        baseline: { label: 'ffmpeg -threads 2 (fps, scale, tile in one decode)', seconds: baseSeconds, figures: { thumbnails: baseThumbs } },
        tessera: { label: 'cluster (coordinator + 2 workers x 1 slot)', seconds: clusterSeconds, figures: { thumbnails: thumbs, sprites, subtasks: done.subtasks.length, ...rounded } },
        ratio,
        ratioMeaning: 'cluster seconds / ffmpeg seconds (lower is better)',
        target: { value: 1, better: 'lower' },
        checks: {
          // ffmpeg's fps filter may round one more frame in at the end.
          thumbnailsMade: thumbs === count && Math.abs(baseThumbs - count) <= 1,
          spritesMade: sprites === Math.ceil(count / sheet),
          vttMade: names.includes('thumbnails.vtt'),
        },
      };
    } finally {
      await cluster.stop();
    }
  },
};

export default thumbnailsScenario;
