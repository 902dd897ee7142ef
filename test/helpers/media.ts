/**
 * Generators of small test media with ffmpeg lavfi sources (shared read-only with other test files).
 * Each returns the path it wrote; callers put it under a temp folder they remove afterwards.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import type { TesseraError } from '../../shared/errors.js';
import { ffmpegBinaries, ffmpegInfo, fpsModeFlag, runFfmpeg } from '../../shared/ffmpeg.js';
import { WORKER_FEATURES, isPlanErrors, type CoordinatorKind, type FinalOutput, type ItemFailure, type ItemWarning, type SpoolFile, type SubtaskOutcome, type WorkerProcessor } from '../../shared/job-kind.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { resolveLimits, type Limits } from '../../shared/limits.js';

export interface VideoFixture {
  /** Seconds of video (ignored when `vfr` is set: 1 s at 24 fps then 1 s at 60 fps, repeated). */
  duration: number;
  width?: number;
  height?: number;
  fps?: number;
  /** Audio channels (0 = no audio track). */
  audioChannels?: number;
  /** Output file extension: mp4 | mkv | webm | mov | ts. */
  container?: 'mp4' | 'mkv' | 'webm' | 'mov' | 'ts';
  /** B-frames with open GOPs (x264 `open-gop`), keyframe every `gop` frames. */
  openGop?: boolean;
  /** Keyframe interval in frames (default 2 s worth). */
  gop?: number;
  /** Variable frame rate: alternating 24 fps and 60 fps stretches. */
  vfr?: boolean;
  /** Display rotation metadata in degrees (90, 180, 270). */
  rotate?: number;
  /** Extra start offset in seconds (MPEG-TS keeps it; other containers shift the timestamps). */
  startOffset?: number;
  /** x264 CRF / preset of the source encode. */
  crf?: number;
  preset?: string;
}

/** Writes a testsrc2 clip (plus a sine tone per channel when asked) to `dir/name`. */
export async function makeVideo(dir: string, name: string, f: VideoFixture): Promise<string> {
  const file = path.join(dir, name);
  const w = f.width ?? 160;
  const h = f.height ?? 120;
  const fps = f.fps ?? 25;
  const container = f.container ?? (path.extname(name).slice(1) as VideoFixture['container']) ?? 'mp4';
  const args: string[] = ['-y', '-v', 'error'];
  if (f.vfr) {
    // Two rates in alternation give a true VFR timeline that a CFR muxing would resample.
    const parts = Math.max(1, Math.round(f.duration / 2));
    const srcs: string[] = [];
    for (let i = 0; i < parts; i++) {
      srcs.push(`testsrc2=size=${w}x${h}:rate=24:duration=1[a${i}]`, `testsrc2=size=${w}x${h}:rate=60:duration=1[b${i}]`);
    }
    const inputs = Array.from({ length: parts }, (_, i) => `[a${i}][b${i}]`).join('');
    args.push('-f', 'lavfi', '-i', `${srcs.join(';')};${inputs}concat=n=${parts * 2}:v=1:a=0,settb=1/1000[out0]`);
  } else {
    args.push('-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=${fps}:duration=${f.duration}`);
  }
  const channels = f.audioChannels ?? 0;
  if (channels > 0) {
    const layout = channels === 6 ? '5.1' : channels === 2 ? 'stereo' : channels === 1 ? 'mono' : `${channels}c`;
    const dur = f.vfr ? Math.max(1, Math.round(f.duration / 2)) * 2 : f.duration;
    args.push('-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${dur}`);
    args.push('-filter_complex', `[1:a]aformat=channel_layouts=mono,pan=${layout}|${Array.from({ length: channels }, (_, i) => `c${i}=c0`).join('|')}[a]`);
  }
  args.push('-map', f.vfr ? '0:v' : '0:v');
  if (channels > 0) args.push('-map', '[a]');
  const gop = f.gop ?? Math.round(fps * 2);
  const vcodec = container === 'webm' ? ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k', '-g', String(gop)] : [
    '-c:v', 'libx264', '-preset', f.preset ?? 'ultrafast', '-crf', String(f.crf ?? 23), '-pix_fmt', 'yuv420p', '-g', String(gop),
    ...(f.openGop ? ['-bf', '3', '-x264-params', `open-gop=1:keyint=${gop}:min-keyint=${gop}:scenecut=0`] : ['-bf', f.preset && f.preset !== 'ultrafast' ? '3' : '0']),
  ];
  // ultrafast has no B-frames at all: open-GOP fixtures need a preset that has them.
  if (f.openGop && (f.preset ?? 'ultrafast') === 'ultrafast') vcodec.splice(vcodec.indexOf('ultrafast'), 1, 'veryfast');
  args.push(...vcodec);
  if (channels > 0) args.push('-c:a', container === 'webm' ? 'libopus' : 'aac', '-b:a', '96k');
  if (f.vfr) args.push(fpsModeFlag(), 'vfr');
  if (f.startOffset) args.push('-output_ts_offset', String(f.startOffset));
  if (container === 'ts') args.push('-f', 'mpegts');
  // ffmpeg 5.1 writes the legacy `rotate` tag as a display matrix only when stream copying.
  const encoded = f.rotate ? `${file}.norotate${path.extname(file)}` : file;
  args.push(encoded);
  await runFfmpeg(args);
  if (f.rotate) {
    await runFfmpeg(['-y', '-v', 'error', '-i', encoded, '-map', '0', '-c', 'copy', '-metadata:s:v:0', `rotate=${f.rotate}`, file]);
    await rm(encoded);
  }
  return file;
}

/** What {@link runKindInProcess} returns: the merge's final answer plus every subtask outcome. */
export interface InProcessRun {
  outputs: FinalOutput[];
  errors: ItemFailure[];
  /** The warnings the kind gave (`PlanContext.warn`). */
  warnings: ItemWarning[];
  outcomes: SubtaskOutcome[];
  /** Progress fractions each subtask reported, by subtask label. */
  progress: Map<string, number[]>;
}

/**
 * Runs a kind's real plan -> process -> merge functions in this process (no cluster): the same calls
 * the coordinator and worker runtimes make, on real files. Subtasks run `slots` at a time.
 */
export async function runKindInProcess<P>(
  kind: CoordinatorKind<P>,
  processor: WorkerProcessor<P>,
  spec: JobSpec__Output,
  files: string[],
  opts: { dir: string; slots?: number; threads?: number; encoders?: string[]; features?: readonly string[]; signal?: AbortSignal; limits?: Partial<Limits> },
): Promise<InProcessRun> {
  const signal = opts.signal ?? new AbortController().signal;
  const kindName = kind.name as 'video' | 'thumbnails';
  const params = kind.validate(spec[kindName], spec);
  const inputs = await Promise.all(files.map((f) => spoolOf(f, path.basename(f))));
  const workDir = await mkdtemp(path.join(opts.dir, 'job-'));
  const outputDir = await mkdtemp(path.join(opts.dir, 'out-'));
  const log = pino({ level: 'silent' });
  const encoders = new Set(opts.encoders ?? ffmpegInfo().encoders);
  const cluster = { workers: 1, slots: opts.slots ?? 2, encoders, encoderSets: [encoders], features: new Set(opts.features ?? WORKER_FEATURES) };
  const warnings: ItemWarning[] = [];
  const base = { jobId: 'job-1', params, spec, inputs, cluster, workDir, signal, log, warn: (input: string, message: string) => void warnings.push({ input, message }), limits: resolveLimits(opts.limits) };
  const planned = await kind.plan(base);
  let subtasks = planned.subtasks;
  const errors: ItemFailure[] = [...(planned.errors ?? [])];
  // Subtasks planned as the plan goes on (a tiled image's strips, cut as its decode runs).
  if (planned.later) {
    subtasks = [...subtasks];
    for await (const s of planned.later) {
      if (isPlanErrors(s)) errors.push(...s.errors);
      else subtasks.push(...(Array.isArray(s) ? s : [s]));
    }
  }
  const history: SubtaskOutcome[] = [];
  const progress = new Map<string, number[]>();
  for (let phase = 0; ; phase++) {
    const results: SubtaskOutcome[] = new Array(subtasks.length);
    // Heaviest first, `slots` at a time, as the scheduler would.
    const order = subtasks.map((s, i) => i).sort((a, b) => subtasks[b]!.weight - subtasks[a]!.weight);
    const runOne = async (i: number): Promise<void> => {
      const st = subtasks[i]!;
      const taskDir = await mkdtemp(path.join(opts.dir, 'task-'));
      const fractions: number[] = [];
      progress.set(st.label, fractions);
      const common = { index: i, phase, label: st.label, plan: st.plan, items: st.items, itemErrors: [], worker: `worker-${i % 2}` };
      try {
        const res = await processor.process({
          jobId: 'job-1', subtaskId: `st-${phase}-${i}`, attempt: 1, phase, params: processor.params(spec), spec, plan: JSON.parse(JSON.stringify(st.plan)),
          inputs: st.inputs.map((f) => ({ name: f.name, path: f.path, size: f.size })), workDir: taskDir, signal,
          progress: (f) => fractions.push(f), threads: opts.threads ?? 1, log,
        });
        const outs = await Promise.all(res.outputs.map((o) => spoolOf(o.path, o.name)));
        // An item the processor refused (one bad photo of a batch) is the job's error, as the job manager reports it.
        errors.push(...(res.itemErrors ?? []));
        results[i] = { ...common, ok: true, outputs: outs, itemErrors: res.itemErrors ?? [], result: JSON.parse(JSON.stringify(res.result ?? null)) };
      } catch (err) {
        const e = err as TesseraError;
        results[i] = { ...common, ok: false, outputs: [], result: null, error: { input: st.items[0] ?? '', code: e.codeName ?? 'INTERNAL', message: e.message } };
      }
    };
    const queue = [...order];
    await Promise.all(Array.from({ length: opts.slots ?? 2 }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) await runOne(i);
    }));
    const merged = await kind.merge({ ...base, phase, results, history: [...history], outputDir });
    history.push(...results);
    errors.push(...(merged.errors ?? []));
    if (!merged.next) return { outputs: merged.outputs, errors, warnings, outcomes: history, progress };
    subtasks = merged.next;
  }
}

async function spoolOf(file: string, name: string): Promise<SpoolFile> {
  const hash = createHash('sha256').update(await readFile(file)).digest('hex');
  return { name, path: file, size: (await stat(file)).size, sha256: hash };
}

/** A JobSpec for one kind with the given params. */
export function specOf(kind: 'video' | 'thumbnails' | 'audio', params: Record<string, unknown>): JobSpec__Output {
  return { label: 'test', priority: 0, max_attempts: 3, params: kind, [kind]: params } as unknown as JobSpec__Output;
}

/** MD5 of every decoded picture of a file's first video stream, in order (ffmpeg's framemd5). */
export async function decodedPictureHashes(file: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-i', file, '-map', '0:v:0', '-f', 'framemd5', '-'], { maxBuffer: 16 * 2 ** 20 });
  return stdout.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(',').at(-1)!.trim());
}

/**
 * `processor` with the file of its result for video segment `segment` (0-based; of `source` only,
 * when given) cut to `keep` bytes after it was checked, as a bad disk or copy would: the first such
 * result only, or every one with `always`. `seen()` counts the results of that segment made.
 */
export function damagingSegment<P>(processor: WorkerProcessor<P>, o: { segment: number; keep: number; source?: string; always?: boolean }): { processor: WorkerProcessor<P>; seen: () => number } {
  let seen = 0;
  return {
    processor: {
      ...processor,
      async process(ctx) {
        const res = await processor.process(ctx);
        const plan = ctx.plan as { type?: string; segment?: number; source?: string };
        if (plan.type === 'segment' && plan.segment === o.segment && (o.source === undefined || plan.source === o.source) && (seen++ === 0 || o.always)) {
          const file = res.outputs[0]!.path;
          await writeFile(file, (await readFile(file)).subarray(0, o.keep));
        }
        return res;
      },
    },
    seen: () => seen,
  };
}
