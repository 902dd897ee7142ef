/**
 * EBU R128 / ITU-R BS.1770 loudness, split so that it can be computed across segments.
 *
 * A segment measures K-weighted, channel-weighted energy per 100 ms sub-block ({@link KWeightedMeter});
 * the coordinator concatenates the sub-blocks of all segments in timeline order and calls
 * {@link integratedLoudness}, which forms the 400 ms blocks (75 % overlap = 100 ms hop) and applies the
 * absolute (-70 LUFS) and relative (-10 LU) gates over the whole file. Blocks that span a segment join
 * are therefore computed exactly; averaging per-segment LUFS would not be.
 *
 * Pure: no I/O. Coefficients follow libebur128 (valid for any sample rate); channel weights follow
 * ffmpeg's `ebur128` filter (surround channels 1.41, LFE excluded).
 */

/** Loudness of a mean-square energy, in LUFS (BS.1770: -0.691 + 10 log10). */
export function energyToLufs(energy: number): number {
  return energy > 0 ? -0.691 + 10 * Math.log10(energy) : -Infinity;
}

/** Mean-square energy that has the given loudness. */
export function lufsToEnergy(lufs: number): number {
  return 10 ** ((lufs + 0.691) / 10);
}

/** Absolute gate of BS.1770-4, LUFS. */
export const ABSOLUTE_GATE_LUFS = -70;
/** Relative gate below the absolute-gated loudness, LU. */
export const RELATIVE_GATE_LU = -10;

/** Sub-blocks of one measurement: per 100 ms, the channel-weighted sum of squared K-weighted samples. */
export interface SubBlocks {
  /** Sum over channels of weight x sum of squares, one per sub-block. */
  energy: number[];
  /** Samples (per channel) in each sub-block; equal except where the rate is not a multiple of 10. */
  samples: number[];
}

/** Result of the gated measurement. */
export interface IntegratedLoudness {
  /** Integrated loudness in LUFS (-Infinity when every block is gated out, e.g. silence). */
  lufs: number;
  /** 400 ms blocks formed. */
  blocks: number;
  /** Blocks that passed both gates. */
  gatedBlocks: number;
  /** Relative gate threshold used, LUFS. */
  relativeGate: number;
}

/**
 * Gated integrated loudness over consecutive sub-blocks (in timeline order, all segments concatenated).
 * Only complete 400 ms blocks count, as in ffmpeg's ebur128 and libebur128.
 */
export function integratedLoudness(sub: SubBlocks, subBlocksPerBlock = 4): IntegratedLoudness {
  const n = sub.energy.length - subBlocksPerBlock + 1;
  const blockEnergy: number[] = [];
  for (let i = 0; i < n; i++) {
    let e = 0;
    let s = 0;
    for (let j = 0; j < subBlocksPerBlock; j++) {
      e += sub.energy[i + j]!;
      s += sub.samples[i + j]!;
    }
    blockEnergy.push(s > 0 ? e / s : 0);
  }
  const absGate = lufsToEnergy(ABSOLUTE_GATE_LUFS);
  const aboveAbs = blockEnergy.filter((e) => e >= absGate);
  if (aboveAbs.length === 0) return { lufs: -Infinity, blocks: blockEnergy.length, gatedBlocks: 0, relativeGate: -Infinity };
  const relativeGate = energyToLufs(mean(aboveAbs)) + RELATIVE_GATE_LU;
  const relEnergy = lufsToEnergy(relativeGate);
  const gated = aboveAbs.filter((e) => e >= relEnergy);
  return { lufs: energyToLufs(mean(gated)), blocks: blockEnergy.length, gatedBlocks: gated.length, relativeGate };
}

/** `sub` with a gain of `gainDb` applied (energies scale by its square). */
export function withGain(sub: SubBlocks, gainDb: number): SubBlocks {
  const g2 = 10 ** (gainDb / 10);
  return { energy: sub.energy.map((e) => e * g2), samples: sub.samples };
}

/**
 * The loudness to take a signal of `lufs` for, so that the gain to `target` lands it there measured
 * again: the absolute gate (-70 LUFS) is not moved by a gain, so a gain down towards it drops blocks
 * the source's measurement kept, and the output measures louder (a FLAC asked at -70 LUFS came out
 * at -68.6; review AUD8). Where no block crosses the gate, `lufs` itself (the relative gate moves
 * with the gain).
 */
export function loudnessForTarget(sub: SubBlocks, lufs: number, target: number): number {
  let gain = target - lufs;
  for (let i = 0; i < 8; i++) {
    const got = integratedLoudness(withGain(sub, gain)).lufs;
    if (!Number.isFinite(got) || Math.abs(got - target) < 0.001) break;
    gain += target - got;
  }
  return target - gain;
}

function mean(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length ? s / xs.length : 0;
}

/** Biquad coefficients (a0 normalised to 1). */
export interface Biquad {
  b0: number;
  b1: number;
  b2: number;
  a1: number;
  a2: number;
}

/** The two BS.1770 K-weighting stages (high-shelf "pre-filter", then RLB high-pass) for a sample rate. */
export function kWeightingFilters(sampleRate: number): [Biquad, Biquad] {
  const shelfCorner = 1681.974450955533;
  let f0 = shelfCorner;
  const G = 3.999843853973347;
  let Q = 0.7071752369554196;
  let K = Math.tan((Math.PI * f0) / sampleRate);
  const Vh = 10 ** (G / 20);
  const Vb = Vh ** 0.4996667741545416;
  let a0 = 1 + K / Q + K * K;
  const shelf: Biquad = {
    b0: (Vh + (Vb * K) / Q + K * K) / a0,
    b1: (2 * (K * K - Vh)) / a0,
    b2: (Vh - (Vb * K) / Q + K * K) / a0,
    a1: (2 * (K * K - 1)) / a0,
    a2: (1 - K / Q + K * K) / a0,
  };
  f0 = 38.13547087602444;
  Q = 0.5003270373238773;
  K = Math.tan((Math.PI * f0) / sampleRate);
  a0 = 1 + K / Q + K * K;
  const a = { a1: (2 * (K * K - 1)) / a0, a2: (1 - K / Q + K * K) / a0 };
  // BS.1770 tables the high-pass numerator 1, -2, 1 (at 48 kHz), which with this shelf reads within
  // 0.05 LU of ffmpeg's ebur128 (which measures at 48 kHz) from 4 kHz up. At a rate whose band ends
  // under the shelf's corner (under 3.4 kHz: a 1 kHz sensor log) that shelf is unstable and the
  // meter read NaN, which a segment's statistics lost (DATA_LOSS): there, no shelf, and the
  // high-pass's numerator scaled to the 48 kHz filter's pass band, which grows as the rate falls
  // (+2 dB at 1 kHz). A 200 Hz tone then reads within 0.1 LU of 48 kHz; a 1 kHz one about 0.7 low.
  if (sampleRate > 2 * shelfCorner) return [shelf, { b0: 1, b1: -2, b2: 1, ...a }];
  const K48 = Math.tan((Math.PI * f0) / 48000);
  const g = (1 + K48 / Q + K48 * K48) / a0;
  return [{ b0: 1, b1: 0, b2: 0, a1: 0, a2: 0 }, { b0: g, b1: -2 * g, b2: g, ...a }];
}

/**
 * BS.1770 channel weights for an ffmpeg channel layout name / channel count, matching ffmpeg's ebur128:
 * the LFEs are excluded (0), surround channels (side, back, top back, surround direct) weigh 1.41,
 * the rest 1.
 */
export function channelWeights(channels: number, layout?: string): number[] {
  const names = layoutChannelNames(channels, layout);
  return names.map((n) => (/^LFE2?$/.test(n) ? 0 : /^(SL|SR|BL|BR|BC|TBL|TBR|TBC|SDL|SDR)$/.test(n) ? 1.41 : 1));
}

/**
 * ffmpeg's named layouts (libavutil's channel_layout_map, ffmpeg 5.1), channels in ffmpeg's order.
 * A layout weighed by the wrong names misses its target: a 3.1 taken for quad weighs its centre
 * and LFE as back channels (2 LU too quiet once normalised).
 */
const NAMED_LAYOUTS: Readonly<Record<string, string>> = {
  mono: 'FC',
  stereo: 'FL+FR',
  '2.1': 'FL+FR+LFE',
  '3.0': 'FL+FR+FC',
  '3.0(back)': 'FL+FR+BC',
  '4.0': 'FL+FR+FC+BC',
  quad: 'FL+FR+BL+BR',
  'quad(side)': 'FL+FR+SL+SR',
  '3.1': 'FL+FR+FC+LFE',
  '5.0': 'FL+FR+FC+BL+BR',
  '5.0(side)': 'FL+FR+FC+SL+SR',
  '4.1': 'FL+FR+FC+LFE+BC',
  '5.1': 'FL+FR+FC+LFE+BL+BR',
  '5.1(side)': 'FL+FR+FC+LFE+SL+SR',
  '6.0': 'FL+FR+FC+BC+SL+SR',
  '6.0(front)': 'FL+FR+FLC+FRC+SL+SR',
  hexagonal: 'FL+FR+FC+BL+BR+BC',
  '6.1': 'FL+FR+FC+LFE+BC+SL+SR',
  '6.1(back)': 'FL+FR+FC+LFE+BL+BR+BC',
  '6.1(front)': 'FL+FR+LFE+FLC+FRC+SL+SR',
  '7.0': 'FL+FR+FC+BL+BR+SL+SR',
  '7.0(front)': 'FL+FR+FC+FLC+FRC+SL+SR',
  '7.1': 'FL+FR+FC+LFE+BL+BR+SL+SR',
  '7.1(wide)': 'FL+FR+FC+LFE+BL+BR+FLC+FRC',
  '7.1(wide-side)': 'FL+FR+FC+LFE+FLC+FRC+SL+SR',
  '7.1(top)': 'FL+FR+FC+LFE+BL+BR+TFL+TFR',
  octagonal: 'FL+FR+FC+BL+BR+BC+SL+SR',
  downmix: 'DL+DR',
};

/**
 * The channels of a layout as ffprobe names it, in ffmpeg's order and spelling ("FL+FR+FC+LFE"): one
 * of ffmpeg's named layouts, or a layout of its own ("FL+FR+LFE", "3 channels (FL+FR+LFE)");
 * undefined for none, "unknown", or a layout of another count.
 */
export function spelledLayout(channels: number, layout?: string): string | undefined {
  const spelled = layout ? (NAMED_LAYOUTS[layout] ?? /^(?:\d+ channels \()?([A-Z0-9]+(?:\+[A-Z0-9]+)*)\)?$/.exec(layout)?.[1]) : undefined;
  return spelled && spelled.split('+').length === channels ? spelled : undefined;
}

/**
 * Channel names (ffmpeg order) of a layout as ffprobe names it ({@link spelledLayout}). Without a
 * layout ffmpeg assumes the default one of the count; a count with none weighs every channel 1.
 */
export function layoutChannelNames(channels: number, layout?: string): string[] {
  const spelled = spelledLayout(channels, layout);
  if (spelled) return spelled.split('+');
  // No layout (e.g. a WAV without a channel mask): ffmpeg assumes the default layout for the count.
  const byCount: Record<number, string> = { 1: 'mono', 2: 'stereo', 3: '2.1', 4: '4.0', 5: '5.0', 6: '5.1', 7: '6.1', 8: '7.1' };
  const fallback = NAMED_LAYOUTS[byCount[channels] ?? ''];
  return fallback ? fallback.split('+') : Array.from({ length: channels }, (_, i) => `C${i}`);
}

/**
 * Streaming K-weighted meter for interleaved float samples. Feed it the samples of a segment in order
 * (optionally first a pre-roll with `counting = false`, which only warms the filters up), then read
 * {@link KWeightedMeter.subBlocks}. Sub-block boundaries are at floor(k * rate / 10) samples from the
 * first counted sample, so segments that start on whole seconds line up with the global grid.
 */
export class KWeightedMeter {
  private readonly stages: [Biquad, Biquad];
  private readonly weights: number[];
  /** Filter state per channel: [s1, s2] for each of the two stages. */
  private readonly state: Float64Array;
  private readonly energy: number[] = [];
  private readonly samples: number[] = [];
  private current = 0;
  private currentSamples = 0;
  /** Counted samples per channel so far. */
  private counted = 0;
  private nextBoundary: number;
  private subIndex = 0;

  constructor(
    private readonly sampleRate: number,
    private readonly channels: number,
    layout?: string,
  ) {
    this.stages = kWeightingFilters(sampleRate);
    this.weights = channelWeights(channels, layout);
    this.state = new Float64Array(channels * 4);
    this.nextBoundary = Math.floor(sampleRate / 10);
  }

  /** Filters `frames` interleaved frames of `data`; when `counting`, accumulates sub-block energies. */
  push(data: Float32Array, counting = true): void {
    const ch = this.channels;
    const frames = Math.floor(data.length / ch);
    const [s, h] = this.stages;
    const st = this.state;
    for (let f = 0; f < frames; f++) {
      let acc = 0;
      for (let c = 0; c < ch; c++) {
        const x = data[f * ch + c]!;
        const o = c * 4;
        // Transposed direct form II, two stages in cascade, in double precision.
        const y1 = s.b0 * x + st[o]!;
        st[o] = s.b1 * x - s.a1 * y1 + st[o + 1]!;
        st[o + 1] = s.b2 * x - s.a2 * y1;
        const y2 = h.b0 * y1 + st[o + 2]!;
        st[o + 2] = h.b1 * y1 - h.a1 * y2 + st[o + 3]!;
        st[o + 3] = h.b2 * y1 - h.a2 * y2;
        acc += this.weights[c]! * y2 * y2;
      }
      if (!counting) continue;
      this.current += acc;
      this.currentSamples++;
      this.counted++;
      if (this.counted === this.nextBoundary) this.closeSubBlock();
    }
  }

  private closeSubBlock(): void {
    this.energy.push(this.current);
    this.samples.push(this.currentSamples);
    this.current = 0;
    this.currentSamples = 0;
    this.subIndex++;
    this.nextBoundary = Math.floor(((this.subIndex + 1) * this.sampleRate) / 10);
  }

  /** Complete sub-blocks so far, plus the trailing partial one (only the file's last segment has one). */
  subBlocks(): SubBlocks & { partial: { energy: number; samples: number } } {
    return { energy: [...this.energy], samples: [...this.samples], partial: { energy: this.current, samples: this.currentSamples } };
  }
}

/** Integrated loudness of one whole interleaved signal (convenience for single-piece files and tests). */
export function measureIntegrated(data: Float32Array, sampleRate: number, channels: number, layout?: string): IntegratedLoudness {
  const meter = new KWeightedMeter(sampleRate, channels, layout);
  meter.push(data);
  return integratedLoudness(meter.subBlocks());
}
