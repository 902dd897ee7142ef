/**
 * Validation and defaults of the `audio` kind's params (AudioParams in params.proto). Pure; used by the
 * coordinator's `validate` and the worker's `params`, so both sides agree on every default.
 */
import { invalidArgument } from '../errors.js';
import { checkFieldTypes, type FieldType } from './param-checks.js';
import type { AudioParams__Output } from '../proto/generated/tessera/v1/AudioParams.js';
import type { JobSpec__Output } from '../proto/generated/tessera/v1/JobSpec.js';

/** Output codecs of the audio kind. */
export type AudioCodec = 'aac' | 'mp3' | 'opus' | 'flac' | 'wav';

/** What the kind needs to know about each output codec. */
export interface AudioCodecInfo {
  /** ffmpeg encoder name (also the worker capability required). */
  encoder: string;
  /** File extension of the output, without the dot. */
  extension: string;
  contentType: string;
  lossy: boolean;
  /** Default bitrate in bits/s for lossy codecs. */
  defaultBitrate: number;
  /** Sample rates the encoder accepts (empty = any). */
  sampleRates: number[];
  /** Options of the output's muxer (`-movflags +faststart` is `{ movflags: '+faststart' }`). */
  muxerOptions: Readonly<Record<string, string>>;
}

export const AUDIO_CODECS: Readonly<Record<AudioCodec, AudioCodecInfo>> = {
  aac: { encoder: 'aac', extension: 'm4a', contentType: 'audio/mp4', lossy: true, defaultBitrate: 128_000, sampleRates: [7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000], muxerOptions: { movflags: '+faststart' } },
  mp3: { encoder: 'libmp3lame', extension: 'mp3', contentType: 'audio/mpeg', lossy: true, defaultBitrate: 128_000, sampleRates: [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000], muxerOptions: {} },
  opus: { encoder: 'libopus', extension: 'opus', contentType: 'audio/ogg', lossy: true, defaultBitrate: 96_000, sampleRates: [8000, 12000, 16000, 24000, 48000], muxerOptions: {} },
  flac: { encoder: 'flac', extension: 'flac', contentType: 'audio/flac', lossy: false, defaultBitrate: 0, sampleRates: [], muxerOptions: {} },
  // rf64 auto: room for a 64-bit size is kept, and used past 4 GiB (6 h of 24-bit stereo at 96 kHz), where a RIFF size would wrap.
  wav: { encoder: 'pcm_s16le', extension: 'wav', contentType: 'audio/wav', lossy: false, defaultBitrate: 0, sampleRates: [], muxerOptions: { rf64: 'auto' } },
};

/** Normalised params of an audio job. */
export interface AudioJobParams {
  codec: AudioCodec;
  /** Whether the job gave the bitrate (a default the encoder cannot keep at a file's rate is its own to lower). */
  bitrateGiven?: boolean;
  /** Bits per second for lossy codecs (0 for lossless). */
  bitrate: number;
  /** Output sample rate in Hz (0 = keep the source's, unless the codec cannot take it). */
  sampleRate: number;
  /** Output channel count (0 = keep). */
  channels: number;
  /** Keep only [start, end) seconds; `end` 0 = to the end. Null = no trim. */
  trim: { start: number; end: number } | null;
  /** Fade-in length in seconds (0 = none), from the start of the (trimmed) output. */
  fadeIn: number;
  /** Fade-out length in seconds (0 = none), ending at the end of the output. */
  fadeOut: number;
  normalize: boolean;
  /** Target integrated loudness, LUFS. */
  loudness: number;
  /** True-peak ceiling, dBTP. */
  truePeak: number;
  waveform: boolean;
  /** Files longer than this (seconds) are split into segments of about this length. */
  segmentSeconds: number;
  /** The audio track chosen (AudioTrackChoice); absent: the one ffmpeg takes. */
  track?: AudioTrackChoice | undefined;
}

/** A job's choice of each file's audio track: its `number`th (1 = first), or the one tagged `language`. */
export type AudioTrackChoice = { number: number } | { language: string };

/**
 * Least audio a trim may keep, seconds. Every output codec writes a readable file from one sample on,
 * but a trim shorter than a sample rounds to none (an empty WAV, an MP3 no player opens); 10 ms is
 * under one codec frame (AAC 21 ms, MP3 24 ms, Opus 20 ms at 48 kHz) and over a sample at any rate.
 */
export const MIN_TRIM_SECONDS = 0.01;

/**
 * Whether `seconds` of audio kept is under {@link MIN_TRIM_SECONDS}, as the decimal values given
 * mean it: 5.01 - 5 is 0.00999999999999979 in binary floating point, and `--trim 5,5.01` was refused
 * for keeping "0.01 s" (review AUD6).
 */
export function keepsTooLittle(seconds: number): boolean {
  return seconds < MIN_TRIM_SECONDS - 1e-9;
}

/** Default split length: files longer than three minutes are processed in parallel segments. */
export const DEFAULT_SEGMENT_SECONDS = 180;
/** Channel counts we can down-mix to (ffmpeg's default layouts for them). */
export const CHANNEL_LAYOUTS: Readonly<Record<number, string>> = { 1: 'mono', 2: 'stereo', 4: '4.0', 6: '5.1', 8: '7.1' };
/**
 * The only layout libopus takes for each channel count (the Vorbis channel order, RFC 7845 mapping
 * family 1). Others (5.1(side), which every AC3/E-AC3 5.1 track decodes to; 2.1; 4.0) are converted to
 * the one of their count first; more than 8 channels have none and are coded as discrete channels
 * (mapping family 255). Used by the video kind's Opus track too.
 */
export const OPUS_LAYOUTS: Readonly<Record<number, string>> = { 1: 'mono', 2: 'stereo', 3: '3.0', 4: 'quad', 5: '5.0', 6: '5.1', 7: '6.1', 8: '7.1' };

/**
 * Layouts the AAC encoder writes only as a program config element, which ffmpeg's decoder reads back
 * with no layout at all (5.1(side), every AC3/E-AC3 5.1 track's), and the standard one they are
 * written as instead: the surrounds moved from the sides to the back, exactly, as every AC3-to-AAC
 * converter does. Other layouts AAC has no configuration for (3.1, 6.0, 7.0, ...) keep their channels
 * and are read back without a layout.
 */
const AAC_SIDE_AS_BACK: Readonly<Record<string, string>> = { '5.1(side)': '5.1', '5.0(side)': '5.0', 'quad(side)': 'quad' };

const AUDIO_FIELD_TYPES: Record<string, FieldType> = {
  codec: 'string', bitrate: 'string', sample_rate: 'number', channels: 'number', trim: 'object', fade_in: 'number', fade_out: 'number',
  normalize: 'boolean', loudness: 'number', true_peak: 'number', waveform: 'boolean', segment_seconds: 'number', track: 'number', language: 'string',
};

/** Most audio tracks a file is asked about (a player's menu holds a few; Matroska allows 126 tracks in all). */
const MAX_TRACK = 128;

/** Validates raw AudioParams (defaults from the proto loader applied) and returns the normalised params. */
export function validateAudioParams(raw: unknown): AudioJobParams {
  const p = checkFieldTypes('audio', raw, AUDIO_FIELD_TYPES) as Partial<AudioParams__Output>;
  if (p.trim) checkFieldTypes('audio.trim', p.trim, { start: 'number', end: 'number' });
  const codec = (p.codec || 'aac').toLowerCase();
  if (!(codec in AUDIO_CODECS)) throw invalidArgument(`codec: "${codec}" is not one of aac, mp3, opus, flac, wav`);
  const info = AUDIO_CODECS[codec as AudioCodec];
  let bitrate = 0;
  if (p.bitrate) {
    if (!info.lossy) throw invalidArgument(`bitrate: ${codec} is lossless and takes no bitrate`);
    bitrate = parseBitrate(p.bitrate);
  } else if (info.lossy) {
    bitrate = info.defaultBitrate;
  }
  const sampleRate = num(p.sample_rate);
  // 7350 Hz: the least of MPEG-4's rates, which ffmpeg's AAC encoder writes (review K27).
  if (sampleRate !== 0 && (!Number.isInteger(sampleRate) || sampleRate < 7350 || sampleRate > 192_000)) {
    throw invalidArgument(`sample_rate: ${sampleRate} Hz is outside 7350..192000`);
  }
  // FLAC's header codes rates past 65535 Hz in tens of hertz.
  if (codec === 'flac' && sampleRate > 65_535 && sampleRate % 10 !== 0) {
    throw invalidArgument(`sample_rate: flac cannot encode ${sampleRate} Hz (over 65535 Hz it takes multiples of 10 only)`);
  }
  if (sampleRate !== 0 && info.sampleRates.length > 0 && !info.sampleRates.includes(sampleRate)) {
    throw invalidArgument(`sample_rate: ${codec} cannot encode ${sampleRate} Hz (use one of ${info.sampleRates.join(', ')})`);
  }
  const channels = num(p.channels);
  if (channels !== 0 && !(channels in CHANNEL_LAYOUTS)) throw invalidArgument(`channels: ${channels} is not one of 1, 2, 4, 6, 8`);
  if (codec === 'mp3' && channels > 2) throw invalidArgument(`channels: mp3 holds at most 2 channels`);
  let trim: AudioJobParams['trim'] = null;
  if (p.trim) {
    const start = num(p.trim.start);
    const end = num(p.trim.end);
    if (!Number.isFinite(start) || start < 0) throw invalidArgument(`trim.start: ${start} must be >= 0`);
    if (!Number.isFinite(end) || end < 0) throw invalidArgument(`trim.end: ${end} must be >= 0 (0 = to the end)`);
    if (end !== 0 && end <= start) throw invalidArgument(`trim.end: ${end} must be after trim.start ${start}`);
    if (start > 0 || end > 0) trim = { start, end };
  }
  const fadeIn = seconds('fade_in', p.fade_in);
  const fadeOut = seconds('fade_out', p.fade_out);
  const normalize = Boolean(p.normalize);
  const loudness = num(p.loudness) || -16;
  if (loudness < -70 || loudness > -5) throw invalidArgument(`loudness: ${loudness} LUFS is outside -70..-5`);
  const truePeak = num(p.true_peak) || -1.5;
  if (truePeak < -9 || truePeak > 0) throw invalidArgument(`true_peak: ${truePeak} dBTP is outside -9..0`);
  if (!normalize && (num(p.loudness) !== 0 || num(p.true_peak) !== 0)) {
    // Name the fields that were set, and the one to add: both only apply when normalisation is on.
    const set = [num(p.loudness) !== 0 ? `loudness ${loudness} LUFS` : '', num(p.true_peak) !== 0 ? `true_peak ${truePeak} dBTP` : ''].filter(Boolean);
    const fields = num(p.loudness) !== 0 && num(p.true_peak) !== 0 ? 'loudness/true_peak' : num(p.loudness) !== 0 ? 'loudness' : 'true_peak';
    throw invalidArgument(`${fields}: ${set.join(' and ')} ${set.length > 1 ? 'apply' : 'applies'} only to loudness normalisation, which is off: also set normalize: true (CLI: --normalize)`);
  }
  const segmentSeconds = num(p.segment_seconds) || DEFAULT_SEGMENT_SECONDS;
  if (!Number.isInteger(segmentSeconds) || segmentSeconds < 2 || segmentSeconds > 3600) {
    throw invalidArgument(`segment_seconds: ${segmentSeconds} must be a whole number of seconds in 2..3600`);
  }
  const track = trackChoice(p.track, p.language);
  return { codec: codec as AudioCodec, bitrate, bitrateGiven: Boolean(p.bitrate), sampleRate, channels, trim, fadeIn, fadeOut, normalize, loudness, truePeak, waveform: Boolean(p.waveform), segmentSeconds, ...(track && { track }) };
}

/** The `track` and `language` fields as one choice (neither: undefined). */
function trackChoice(track: unknown, language: unknown): AudioTrackChoice | undefined {
  const n = num(track);
  const lang = typeof language === 'string' ? language.trim() : '';
  if (n !== 0 && lang) throw invalidArgument(`track/language: give one of track ${n} and language "${lang}", not both`);
  if (n !== 0) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_TRACK) throw invalidArgument(`track: ${n} must be a whole number in 1..${MAX_TRACK} (1 = a file's first audio track; unset = its default one)`);
    return { number: n };
  }
  if (!lang) return undefined;
  // ISO 639 codes as containers tag them (eng, fr), with a BCP 47 region or script where Matroska's newer tags carry one (pt-BR).
  if (!/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$/.test(lang)) throw invalidArgument(`language: "${lang.slice(0, 40)}" is not a language code such as eng, fra, de or pt-BR`);
  return { language: lang.toLowerCase() };
}

/** Params of an audio job spec (worker side: already validated by the coordinator, validated again cheaply). */
export function audioParamsFromSpec(spec: JobSpec__Output): AudioJobParams {
  return validateAudioParams(spec.audio);
}

/**
 * What an encoder cannot do with `bps` for `channels` (undefined: it takes it), as the end of a
 * message (`bitrate: 300k is ...`). libopus takes 500 b/s to 256 kb/s per channel and fails on
 * more; MP3 has no rate over 320 kb/s (for rates LAME lowers at a low sample rate, see
 * mp3RateWritten). Where the channels are not known yet (0), what is known is checked.
 */
export function bitrateProblem(codec: string, bps: number, channels = 0): string | undefined {
  const k = (b: number): string => `${b / 1000}k`;
  if (codec === 'opus' && channels > 0 && bps > 256_000 * channels) return `over the ${k(256_000 * channels)} libopus takes for ${channels} channel${channels === 1 ? '' : 's'} (256k each)`;
  if (codec === 'mp3' && bps > 320_000) return 'over the 320k MP3 allows';
  return undefined;
}

/** ffmpeg's AAC encoder's own bitrate for 1..8 channels when given none: 128k a channel pair, 69k a single channel, 16k the LFE. */
const FFMPEG_AAC_BITRATE = [0, 69_000, 128_000, 197_000, 266_000, 325_000, 341_000, 410_000, 469_000];
/** libopus's (ffmpeg's wrapper's) for 1..8 channels: 64k a stream and 32k more a coupled one; discrete channels past 8. */
const FFMPEG_OPUS_BITRATE = [0, 64_000, 96_000, 160_000, 192_000, 256_000, 320_000, 384_000, 416_000];

/**
 * The bitrate an output of `channels` is encoded at: `bps` where it was given, else the default
 * (128k for AAC and MP3, 96k for Opus) or, for more than two channels, what ffmpeg gives that many
 * when none is given, whichever is more (5.1: AAC 341k, Opus 320k). The stereo default spread over
 * six channels came out far worse than a single ffmpeg run (5.1 to Opus at 96k: 1.5 dB SNR, its true
 * peak +11.5 dBTP, where ffmpeg's had 22 dB; review aud).
 */
export function bitrateFor(codec: string, bps: number, given: boolean, channels: number): number {
  if (given || channels <= 2) return bps;
  const ffmpegs = codec === 'aac' || codec === 'libfdk_aac' ? FFMPEG_AAC_BITRATE[channels] : codec === 'opus' || codec === 'libopus' ? (FFMPEG_OPUS_BITRATE[channels] ?? 64_000 * channels) : undefined;
  return Math.max(bps, ffmpegs ?? 0);
}

/**
 * The bitrate LAME writes at `sampleRate` when asked for `bps` (it keeps to what MP3 allows there:
 * 8..64k under 16 kHz, 8..160k under 32 kHz, 32..320k from 32 kHz), or undefined when it keeps `bps`.
 * It changes it without a word: the job says so.
 */
export function mp3RateWritten(bps: number, sampleRate: number): number | undefined {
  if (sampleRate <= 0) return undefined;
  const [lo, hi] = sampleRate < 16_000 ? [8_000, 64_000] : sampleRate < 32_000 ? [8_000, 160_000] : [32_000, 320_000];
  return bps > hi ? hi : bps < lo ? lo : undefined;
}

/**
 * The bitrate ffmpeg's AAC encoder writes where `bps` is more than it holds at `sampleRate` with
 * `channels`: 6144 bits per channel per frame of 1024 samples, 6 x the rate per channel (132.3k for
 * mono at 22.05 kHz); undefined where it takes `bps`. Above it the encoder clamps, saying so only in
 * its log.
 */
export function aacRateWritten(bps: number, sampleRate: number, channels: number): number | undefined {
  const most = 6 * sampleRate * Math.max(1, channels);
  return sampleRate > 0 && bps > most ? most : undefined;
}

/** Parses "128k", "1.5M" or "96000" into bits per second (8k..512k). */
export function parseBitrate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(text.trim());
  if (!m) throw invalidArgument(`bitrate: "${text}" is not a bitrate such as 128k`);
  const unit = m[2]!.toLowerCase();
  const bps = Math.round(Number(m[1]) * (unit === 'k' ? 1000 : unit === 'm' ? 1_000_000 : 1));
  if (bps < 8000 || bps > 512_000) throw invalidArgument(`bitrate: ${text} is outside 8k..512k`);
  return bps;
}

function num(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : 0;
  return Number.isNaN(n) ? NaN : n;
}

/** A short length for a message, without float noise (0.00001 rather than 0.000010000000000331966). */
function trimSeconds(s: number): string {
  return String(Number(s.toPrecision(6)));
}

function seconds(field: string, v: unknown): number {
  const s = num(v);
  if (!Number.isFinite(s) || s < 0 || s > 3600) throw invalidArgument(`${field}: ${String(v)} must be 0..3600 seconds`);
  return s;
}

/** The sample rate the output will have for a source rate (the codec may force a supported one). */
export function outputSampleRate(params: Pick<AudioJobParams, 'sampleRate' | 'codec'>, sourceRate: number): number {
  const want = params.sampleRate || sourceRate;
  const allowed = AUDIO_CODECS[params.codec].sampleRates;
  if (allowed.length === 0 || allowed.includes(want)) return want;
  if (!(want > 0)) return 48_000;
  // The codec cannot take the source's rate (opus at 44.1 kHz, an old Mac's 22254 Hz as MP3): the
  // nearest it takes, as ffmpeg's format negotiation picks it (the first of equals in the encoder's
  // own order). 48 kHz for all of them made 22254 Hz an MP3 at 48 kHz where ffmpeg writes 22050,
  // and 192 kHz an AAC at 48 kHz where ffmpeg writes 96 kHz (review AWILD2).
  const order = ENCODER_RATE_ORDER[params.codec] ?? allowed;
  let best = order[0]!;
  for (const r of order) if (Math.abs(r - want) < Math.abs(best - want)) best = r;
  return best;
}

/** The rates each lossy encoder lists, in its own order (ffmpeg 5.1): the first of two equally near is taken. */
const ENCODER_RATE_ORDER: Partial<Record<AudioCodec, readonly number[]>> = {
  aac: [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350],
  mp3: [44100, 48000, 32000, 22050, 24000, 16000, 11025, 12000, 8000],
  opus: [48000, 24000, 16000, 12000, 8000],
};

/**
 * The channel count of the output for a source count (mp3 cannot hold more than two; an Opus output
 * of a source with an LFE its own count's layout has no place for takes 5.1, see opusLayoutFor).
 */
export function outputChannels(params: Pick<AudioJobParams, 'channels' | 'codec'>, sourceChannels: number, sourceLayout = ''): number {
  if (params.channels) return params.channels;
  if (params.codec === 'mp3' && sourceChannels > 2) return 2;
  if (params.codec === 'opus') {
    const layout = opusLayoutFor(sourceChannels, sourceLayout);
    if (layout) return LAYOUT_CHANNELS[layout]!.length;
  }
  return sourceChannels;
}

/** The channels of a layout an output is converted to (one of the tables here), or undefined. */
export function layoutChannelCount(layout: string): number | undefined {
  if (LAYOUT_CHANNELS[layout]) return LAYOUT_CHANNELS[layout]!.length;
  for (const table of [OPUS_LAYOUTS, CHANNEL_LAYOUTS]) {
    for (const [n, name] of Object.entries(table)) if (name === layout) return Number(n);
  }
  return undefined;
}

/** The channels of ffmpeg's named layouts (5.1 and earlier), for what a conversion keeps. */
const LAYOUT_CHANNELS: Readonly<Record<string, readonly string[]>> = {
  mono: ['FC'], stereo: ['FL', 'FR'], '2.1': ['FL', 'FR', 'LFE'], '3.0': ['FL', 'FR', 'FC'], '3.0(back)': ['FL', 'FR', 'BC'],
  '4.0': ['FL', 'FR', 'FC', 'BC'], quad: ['FL', 'FR', 'BL', 'BR'], 'quad(side)': ['FL', 'FR', 'SL', 'SR'], '3.1': ['FL', 'FR', 'FC', 'LFE'],
  '5.0': ['FL', 'FR', 'FC', 'BL', 'BR'], '5.0(side)': ['FL', 'FR', 'FC', 'SL', 'SR'], '4.1': ['FL', 'FR', 'FC', 'LFE', 'BC'],
  '5.1': ['FL', 'FR', 'FC', 'LFE', 'BL', 'BR'], '5.1(side)': ['FL', 'FR', 'FC', 'LFE', 'SL', 'SR'], '6.0': ['FL', 'FR', 'FC', 'BC', 'SL', 'SR'],
  '6.0(front)': ['FL', 'FR', 'FLC', 'FRC', 'SL', 'SR'], hexagonal: ['FL', 'FR', 'FC', 'BL', 'BR', 'BC'], '6.1': ['FL', 'FR', 'FC', 'LFE', 'BC', 'SL', 'SR'],
  '6.1(back)': ['FL', 'FR', 'FC', 'LFE', 'BL', 'BR', 'BC'], '6.1(front)': ['FL', 'FR', 'LFE', 'FLC', 'FRC', 'SL', 'SR'], '7.0': ['FL', 'FR', 'FC', 'BL', 'BR', 'SL', 'SR'],
  '7.0(front)': ['FL', 'FR', 'FC', 'FLC', 'FRC', 'SL', 'SR'], '7.1': ['FL', 'FR', 'FC', 'LFE', 'BL', 'BR', 'SL', 'SR'],
  '7.1(wide)': ['FL', 'FR', 'FC', 'LFE', 'BL', 'BR', 'FLC', 'FRC'], '7.1(wide-side)': ['FL', 'FR', 'FC', 'LFE', 'FLC', 'FRC', 'SL', 'SR'],
  octagonal: ['FL', 'FR', 'FC', 'BL', 'BR', 'BC', 'SL', 'SR'],
};

/**
 * The layout (RFC 7845 mapping family 1) an Opus output of `channels` in `layout` is written in: its
 * count's, except that a source's LFE, for which Opus's 3-, 4- and 5-channel layouts have no place
 * and which a down-mix drops (ffmpeg mixes no LFE into other channels), takes 5.1: a 2.1 file lost its
 * sub-bass and kept an empty centre (review AUD3). Undefined past 8 channels (discrete, family 255).
 */
export function opusLayoutFor(channels: number, layout: string): string | undefined {
  const same = OPUS_LAYOUTS[channels];
  if (same && channels < 6 && LAYOUT_CHANNELS[layout]?.includes('LFE')) return '5.1';
  return same;
}

/**
 * What becomes of a source in `from` written in Opus's `to` (opusLayoutFor), for the job to say:
 * the channels `to` has no place for, mixed into those beside them, and those it adds, silent.
 * Undefined where nothing changes but sides for backs (swresample maps them exactly) or where a
 * layout is not one of ffmpeg's named ones.
 */
export function opusLayoutChange(from: string, to: string): string | undefined {
  const src = LAYOUT_CHANNELS[from];
  const dst = LAYOUT_CHANNELS[to];
  if (!src || !dst || from === to) return undefined;
  // Sides stand for backs where the target has only backs, and the other way round.
  const swap: Record<string, string> = dst.includes('BL') && !dst.includes('SL') ? { SL: 'BL', SR: 'BR' } : dst.includes('SL') && !dst.includes('BL') ? { BL: 'SL', BR: 'SR' } : {};
  const mapped = src.map((c) => swap[c] ?? c);
  const mixed = src.filter((_, k) => !dst.includes(mapped[k]!));
  // A channel mixed in goes to those beside it (a back centre to the backs, or the sides): they are not silent (review S56).
  const beside: Record<string, readonly string[]> = { BC: ['BL', 'BR', 'SL', 'SR'], FC: ['FL', 'FR'], FLC: ['FL', 'FC'], FRC: ['FR', 'FC'], BL: ['SL'], BR: ['SR'], SL: ['BL'], SR: ['BR'] };
  const fed = new Set(mixed.flatMap((c) => beside[c] ?? []));
  const silent = dst.filter((c) => !mapped.includes(c) && !fed.has(c));
  if (mixed.length === 0 && silent.length === 0) return undefined;
  const parts = [
    ...(mixed.length > 0 ? [`its ${mixed.join(', ')} mixed into the channels beside ${mixed.length > 1 ? 'them' : 'it'}`] : []),
    ...(silent.length > 0 ? [`${silent.join(', ')} silent`] : []),
  ];
  return `Opus has no ${from} layout: written as ${to}, ${parts.join(', and ')}`;
}

/**
 * The layout to convert the source to ("" = keep the source's): the down/up-mix layout when the count
 * changes; for Opus, the Vorbis layout of the count whenever the source has another one (swresample
 * maps side to back exactly; channels that have no place in the target, a centre or a back centre,
 * are mixed into those beside them, as in any ffmpeg down-mix; see opusLayoutChange).
 */
export function outputLayout(params: AudioJobParams, channels: number, sourceChannels: number, sourceLayout: string): string {
  const required = params.codec === 'opus' ? OPUS_LAYOUTS[channels] : undefined;
  if (required) return channels === sourceChannels && sourceLayout === required ? '' : required;
  const asBack = params.codec === 'aac' && channels === sourceChannels ? AAC_SIDE_AS_BACK[sourceLayout] : undefined;
  if (asBack) return asBack;
  return channels !== sourceChannels ? CHANNEL_LAYOUTS[channels] ?? '' : '';
}

/**
 * Refusals of a new submission that is no repeat of an accepted one (not of a stored job resumed,
 * nor of a worker's subtask, nor of a client's retry: an earlier version took these, and its jobs
 * must still run and be found).
 */
export function refuseNewAudioParams(p: AudioJobParams): void {
  // What the params alone tell; the rest once each input's channels and rate are known (planning).
  const rateProblem = p.bitrateGiven ? bitrateProblem(p.codec, p.bitrate, p.channels) : undefined;
  if (rateProblem) throw invalidArgument(`bitrate: ${p.bitrate / 1000}k is ${rateProblem}`);
  // Integrated loudness cannot be over the peaks (a full-scale square wave, the loudest there is, is
  // about as loud as its peak): such a target could only be missed, every time.
  if (p.normalize && p.loudness > p.truePeak) throw invalidArgument(`loudness/true_peak: a target of ${p.loudness} LUFS over a ceiling of ${p.truePeak} dBTP cannot be reached (nothing is louder than its peaks): lower loudness or raise true_peak`);
}

/**
 * Refusals of new submissions only (`CoordinatorKind.checkNew`): jobs accepted before them still
 * resume and run on workers of any version, as they did then.
 */
export function checkNewAudioParams(p: AudioJobParams): void {
  const t = p.trim;
  if (t && t.end !== 0 && keepsTooLittle(t.end - t.start)) {
    throw invalidArgument(`trim: ${t.start}..${t.end} s keeps ${trimSeconds(t.end - t.start)} s of audio; a trim must keep at least ${MIN_TRIM_SECONDS} s`);
  }
}
