/**
 * Worker side of the `thumbnails` kind: grabs the frames shown at a list of times from the input and
 * writes them scaled as JPEG/WebP. Each time is an input-side seek (decoding from the keyframe before
 * it), and several seeks share one ffmpeg process, so sparse thumbnails of a long video stay cheap.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { dataLoss, invalidArgument } from '../../shared/errors.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import type { ProcessContext, ProcessOutput, ProcessResult, WorkerProcessor } from '../../shared/job-kind.js';
import { parseThumbnailParams, type ThumbnailJobParams } from '../../shared/kinds/thumbnails-params.js';
import { thumbnailName, type ThumbnailRangePlan } from '../../shared/media/video-thumbnails.js';

/** Thumbnails sharing one ffmpeg process (each is one more demuxer/decoder in it). */
const PER_PROCESS = 12;

/** The `thumbnails` kind as the worker registry sees it. */
export const thumbnailsProcessor: WorkerProcessor<ThumbnailJobParams> = {
  name: 'thumbnails',
  params: (spec) => parseThumbnailParams(spec.thumbnails),
  process: grabThumbnails,
};

async function grabThumbnails(ctx: ProcessContext<ThumbnailJobParams>): Promise<ProcessResult> {
  const plan = ctx.plan as ThumbnailRangePlan;
  const input = ctx.inputs[0];
  if (!input) throw invalidArgument('thumbnails subtask has no input');
  const outputs: ProcessOutput[] = [];
  const jpeg = ctx.params.format === 'jpeg';
  const codec = jpeg ? ['-c:v', 'mjpeg', '-q:v', '3'] : ['-c:v', 'libwebp', '-quality', '80'];
  // The planner sized the box to the displayed aspect: square pixels in it, or viewers would stretch
  // an anamorphic source's picture again. Full-range YUV is what JPEG decoders expect; libwebp takes
  // plain yuv420p.
  const scale = `scale=${plan.width}:${plan.height},setsar=1${jpeg ? ',format=yuvj420p' : ''}`;
  for (let i = 0; i < plan.times.length; i += PER_PROCESS) {
    const times = plan.times.slice(i, i + PER_PROCESS);
    const numbers = plan.numbers.slice(i, i + PER_PROCESS);
    const args: string[] = ['-y', '-threads', String(ctx.threads)];
    // `-t` bounds each input: ffmpeg 5 would otherwise decode every seeked input to the end of the
    // file after its one-frame output is done.
    for (const t of times) args.push('-ss', t.toFixed(6), '-t', '2', '-i', input.path);
    times.forEach((_, k) => {
      const out = path.join(ctx.workDir, thumbnailName(numbers[k]!, ctx.params.format));
      // Rotation metadata is applied by ffmpeg's autorotate; the planner sized the box after it.
      args.push('-map', `${k}:v:0`, '-frames:v', '1', '-vf', scale, ...codec, '-f', 'image2', '-update', '1', out);
      outputs.push({ name: path.basename(out), path: out, source: plan.source });
    });
    await runFfmpeg(args, { signal: ctx.signal, input: plan.source });
    ctx.progress(Math.min(1, (i + times.length) / plan.times.length), `${i + times.length}/${plan.times.length} thumbnails`);
  }
  for (const o of outputs) {
    // An empty or missing file means ffmpeg found no frame at that time: worth another attempt.
    const size = await stat(o.path).then((s) => s.size, () => 0);
    if (size === 0) throw dataLoss(`${plan.source}: no frame came out for ${o.name}`);
  }
  return { outputs, result: { count: outputs.length } };
}
