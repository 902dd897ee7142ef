/**
 * Probing of audio inputs with ffprobe: the first audio stream's rate, channels, layout and duration.
 * Non-media files and files without an audio stream fail with INVALID_ARGUMENT naming the input.
 */
import { invalidArgument, TesseraError } from '../errors.js';
import { runFfprobe } from '../ffmpeg.js';

/** What the audio kind needs to know about an input. */
export interface AudioProbe {
  /** Container format name(s), e.g. "wav" or "mov,mp4,m4a,3gp,3g2,mj2". */
  container: string;
  codec: string;
  sampleRate: number;
  channels: number;
  /** ffmpeg channel layout name ("" when unknown). */
  layout: string;
  /** Decoder sample format, e.g. "s16", "fltp". */
  sampleFormat: string;
  /** Duration in seconds (container or stream), 0 when unknown. */
  duration: number;
}

interface FfprobeOutput {
  streams?: Array<{ codec_type?: string; codec_name?: string; sample_rate?: string; channels?: number; channel_layout?: string; sample_fmt?: string; duration?: string }>;
  format?: { format_name?: string; duration?: string };
}

/** Probes `path` (logical name `input` for messages). */
export async function probeAudio(path: string, input: string, signal?: AbortSignal): Promise<AudioProbe> {
  let out: FfprobeOutput;
  try {
    out = await runFfprobe<FfprobeOutput>(['-show_streams', '-show_format', '-i', path], { signal, input });
  } catch (err) {
    if (err instanceof TesseraError && err.retryable) throw err;
    if (signal?.aborted) throw err;
    throw invalidArgument(`${input}: not a readable media file`, input);
  }
  const a = out.streams?.find((s) => s.codec_type === 'audio');
  if (!a) throw invalidArgument(`${input}: no audio stream`, input);
  const sampleRate = Number(a.sample_rate ?? 0);
  const channels = a.channels ?? 0;
  if (!sampleRate || !channels) throw invalidArgument(`${input}: audio stream has no sample rate or channels`, input);
  const duration = Number(a.duration ?? out.format?.duration ?? 0) || Number(out.format?.duration ?? 0) || 0;
  return {
    container: out.format?.format_name ?? '',
    codec: a.codec_name ?? '',
    sampleRate,
    channels,
    layout: a.channel_layout ?? '',
    sampleFormat: a.sample_fmt ?? '',
    duration,
  };
}

/** True when the input is a PCM WAV whose bytes can be cut directly into sample-exact segments. */
export function isCuttableWav(p: AudioProbe): boolean {
  return p.container === 'wav' && /^pcm_(s16le|s24le|s32le|f32le|u8)$/.test(p.codec);
}
