/**
 * Generated audio for the audio kind's tests (ffmpeg lavfi sources), decoders for assertions, ffmpeg's
 * own ebur128 measurement as the reference, and an in-process driver that runs the real planner,
 * processor and merge of the kind one after the other (the cluster runtime, minus the network).
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { WORKER_FEATURES, type FinalOutput, type ItemFailure, type ItemWarning, type SpoolFile, type SubtaskOutcome } from '../../shared/job-kind.js';
import { createLogger } from '../../shared/logger.js';
import type { FileReport } from '../../shared/media/audio-finish.js';
import { probeAudio } from '../../shared/media/audio-probe.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { audioKind } from '../../coordinator/kinds/audio.js';
import { audioProcessor } from '../../worker/processors/audio.js';
import { resolveLimits } from '../../shared/limits.js';

/** Source kinds: a steady sine, pink-ish noise, or speech-like bursts (tone + noise) with silences. */
export type AudioSource = 'sine' | 'noise' | 'speech';

export interface GenOptions {
  source: AudioSource;
  seconds: number;
  rate: number;
  /** ffmpeg layout name: mono, stereo, 5.1 ... */
  layout: string;
  /** Container/codec by extension: wav (s16), flac, mp3, m4a, wav24 (s24 wav). */
  ext: 'wav' | 'flac' | 'mp3' | 'm4a' | 'opus' | 'wav24';
  /** Peak level scaling (linear). */
  amplitude?: number;
}

/** Writes a generated test file and returns its path. */
export async function generateAudio(file: string, o: GenOptions): Promise<string> {
  const a = o.amplitude ?? 0.3;
  const d = o.seconds;
  let src: string;
  if (o.source === 'sine') src = `sine=f=997:r=${o.rate}:d=${d},volume=${a * 1.25}`;
  else if (o.source === 'noise') src = `anoisesrc=r=${o.rate}:d=${d}:c=pink:a=${a}:s=7`;
  // Speech-like: a 180 Hz tone with noise, gated on for 0.7 s / off for 0.5 s, plus quiet room noise.
  else src = `sine=f=180:r=${o.rate}:d=${d}[t];anoisesrc=r=${o.rate}:d=${d}:c=pink:a=${a}:s=3[n];[t][n]amix=2,volume='if(lt(mod(t,1.2),0.7),${a * 4},0.003)':eval=frame`;
  const graph = `${src},aformat=channel_layouts=mono[m];[m]pan=${o.layout}|${panSpec(o.layout)}`;
  const codec: Record<GenOptions['ext'], string[]> = {
    wav: ['-c:a', 'pcm_s16le'],
    wav24: ['-c:a', 'pcm_s24le'],
    flac: ['-c:a', 'flac'],
    mp3: ['-c:a', 'libmp3lame', '-b:a', '128k'],
    m4a: ['-c:a', 'aac', '-b:a', '128k'],
    opus: ['-c:a', 'libopus', '-b:a', '96k'],
  };
  await runFfmpeg(['-filter_complex', graph, ...codec[o.ext], '-y', file]);
  return file;
}

/** Every output channel gets the mono source with a distinct gain (so channels differ, LFE is quiet). */
function panSpec(layout: string): string {
  const n = { mono: 1, stereo: 2, '5.1': 6, quad: 4 }[layout] ?? 2;
  return Array.from({ length: n }, (_, i) => `c${i}=${(1 - i * 0.12).toFixed(2)}*c0`).join('|');
}

/** Decodes any file to interleaved float samples. */
export async function decodeFloat(file: string, dir: string, extra: string[] = []): Promise<{ samples: Float32Array; channels: number }> {
  const raw = path.join(dir, `${path.basename(file)}-${createHash('sha1').update(file + extra.join()).digest('hex').slice(0, 8)}.f32`);
  await runFfmpeg(['-i', file, ...extra, '-f', 'f32le', '-c:a', 'pcm_f32le', '-y', raw]);
  const buf = await readFile(raw);
  const samples = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const channels = extra.includes('-ac') ? Number(extra[extra.indexOf('-ac') + 1]) : (await probeAudio(file, file)).channels;
  return { samples, channels };
}

/** MD5 of the decoded samples (ffmpeg's md5 muxer), i.e. what "bit-identical audio" means. */
export async function decodedMd5(file: string): Promise<string> {
  const { stdout } = await runFfmpeg(['-i', file, '-map', '0:a:0', '-f', 'md5', '-'], { captureStdout: true });
  return stdout.trim();
}

/** ffmpeg's ebur128 measurement: integrated loudness (LUFS) and true peak (dBTP). */
export async function ebur128(file: string, filtersBefore = ''): Promise<{ integrated: number; truePeak: number }> {
  const chain = `${filtersBefore ? `${filtersBefore},` : ''}ebur128=peak=true:framelog=verbose`;
  const { stderr } = await runFfmpeg(['-i', file, '-map', '0:a:0', '-af', chain, '-f', 'null', '-']);
  const summary = stderr.slice(stderr.lastIndexOf('Summary:'));
  const integrated = Number(/I:\s+(-?[\d.]+|-inf) LUFS/.exec(summary)?.[1]);
  const truePeak = Number(/Peak:\s+(-?[\d.]+|-inf) dBFS/.exec(summary.slice(summary.indexOf('True peak')))?.[1]);
  return { integrated, truePeak };
}

/** What the in-process run produced. */
export interface InProcessResult {
  outputs: FinalOutput[];
  errors: ItemFailure[];
  subtasks: SubtaskOutcome[];
  warnings: ItemWarning[];
}

/**
 * Runs an audio job through the real plan, process and merge functions in this process, with the
 * coordinator and worker folders kept apart the way the cluster keeps them (files are copied across).
 */
export async function runAudioInProcess(raw: Record<string, unknown>, files: string[], dir: string): Promise<InProcessResult> {
  const log = createLogger('audio-test', 'silent');
  const spec = { label: '', priority: 0, max_attempts: 1, audio: raw, params: 'audio' } as unknown as JobSpec__Output;
  const params = audioKind.validate(raw, spec);
  const coord = path.join(dir, 'coordinator');
  const outputDir = path.join(dir, 'out');
  await mkdir(coord, { recursive: true });
  await mkdir(outputDir, { recursive: true });
  const inputs: SpoolFile[] = [];
  for (const f of files) inputs.push({ name: path.basename(f), path: f, size: (await stat(f)).size, sha256: '' });
  const signal = new AbortController().signal;
  const warnings: ItemWarning[] = [];
  const base = { jobId: 'job', params, spec, inputs, cluster: { workers: 2, slots: 2, encoders: new Set<string>(), encoderSets: [], features: new Set(WORKER_FEATURES) }, workDir: coord, signal, log, warn: (input: string, message: string) => void warnings.push({ input, message }), limits: resolveLimits() };
  const planned = await audioKind.plan(base);
  const results: SubtaskOutcome[] = [];
  for (const [index, st] of planned.subtasks.entries()) {
    const wdir = path.join(dir, `worker-${index}`);
    await mkdir(wdir, { recursive: true });
    const local = [];
    for (const i of st.inputs) {
      const p = path.join(wdir, `in-${i.name}`);
      await copyFile(i.path, p);
      local.push({ name: i.name, path: p, size: i.size });
    }
    const outcome: SubtaskOutcome = { index, phase: 0, label: st.label, plan: st.plan, items: st.items, ok: true, outputs: [], itemErrors: [], result: undefined, worker: 'w' };
    try {
      const r = await audioProcessor.process({
        jobId: 'job', subtaskId: String(index), attempt: 1, phase: 0, params: audioProcessor.params(spec), spec,
        plan: JSON.parse(JSON.stringify(st.plan)), inputs: local, workDir: wdir, signal, progress: () => undefined, threads: 1, log,
      });
      const spool = path.join(coord, `spool-${index}`);
      await mkdir(spool, { recursive: true });
      for (const o of r.outputs) {
        const p = path.join(spool, o.name);
        await copyFile(o.path, p);
        outcome.outputs.push({ name: o.name, path: p, size: (await stat(p)).size, sha256: '' });
      }
      outcome.itemErrors = r.itemErrors ?? [];
      outcome.result = JSON.parse(JSON.stringify(r.result ?? null));
    } catch (err) {
      const e = err as { codeName?: string; message: string; input?: string };
      outcome.ok = false;
      outcome.error = { input: e.input ?? st.items[0] ?? '', code: e.codeName ?? 'INTERNAL', message: e.message };
    }
    results.push(outcome);
  }
  const merged = await audioKind.merge({ ...base, phase: 0, results, history: [], outputDir });
  return { outputs: merged.outputs ?? [], errors: [...planned.errors ?? [], ...(merged.errors ?? [])], subtasks: results, warnings };
}

/** The per-file reports an audio job writes (`audio-report.json`). */
export async function audioReport(r: InProcessResult): Promise<FileReport[]> {
  const out = r.outputs.find((o) => o.name === 'audio-report.json');
  if (!out) throw new Error('the job wrote no audio-report.json');
  return (JSON.parse(await readFile(out.path, 'utf8')) as { files: FileReport[] }).files;
}

/** Sign changes a second in channel 0 of interleaved `samples`: twice a steady tone's frequency. */
export function crossingsPerSecond(samples: Float32Array, channels: number, rate: number): number {
  let n = 0;
  for (let i = channels; i < samples.length; i += channels) if (samples[i - channels]! < 0 !== samples[i]! < 0) n++;
  return n / (samples.length / channels / rate);
}

/** Largest absolute sample. */
export function peak(samples: Float32Array): number {
  let m = 0;
  for (const s of samples) m = Math.max(m, Math.abs(s));
  return m;
}
