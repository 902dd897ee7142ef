import { describe, expect, test } from 'vitest';
import { ROLL_SECONDS, segmentCuts } from './audio-pieces.js';

/** Body lengths in seconds at the output rate (the last one: what is left of `totalOut`). */
function bodies(cuts: ReturnType<typeof segmentCuts>, outRate: number, totalOut: number): number[] {
  return cuts.map((c) => (c.body ?? totalOut - c.offset) / outRate);
}

describe('segmentCuts', () => {
  test('9.5 s in segments of about 2 s: 2, 2, 2, 2, 1.5 (not 1, 1, 1, 1, 5.5)', () => {
    const cuts = segmentCuts(0, 9.5 * 48000, 48000, 44100, 2);
    expect(bodies(cuts, 44100, 9.5 * 44100)).toEqual([2, 2, 2, 2, 1.5]);
    expect(cuts.map((c) => c.offset / 44100)).toEqual([0, 2, 4, 6, 8]);
    // Source cuts: 1 s of pre-roll before every body but the first, 1 s of post-roll after every one but the last.
    expect(cuts.map((c) => [c.from / 48000, c.frames / 48000])).toEqual([[0, 3], [1, 4], [3, 4], [5, 4], [7, 2.5]]);
    expect(cuts.map((c) => c.preRoll)).toEqual([0, 44100, 44100, 44100, 44100]);
  });

  test('any length: contiguous whole-second boundaries, bodies within a second of each other, all frames covered', () => {
    for (const rate of [11025, 44100, 48000]) {
      for (let tenths = 25; tenths <= 400; tenths += 7) {
        for (const seg of [2, 3, 7]) {
          const start = 3 * rate;
          const frames = Math.round((tenths / 10) * rate);
          const cuts = segmentCuts(start, frames, rate, rate, seg);
          const lens = bodies(cuts, rate, frames);
          const what = `${tenths / 10} s at ${rate} Hz in ${seg} s`;
          expect(lens.reduce((a, b) => a + b, 0) * rate, what).toBeCloseTo(frames, 6);
          const whole = lens.slice(0, -1);
          if (whole.length > 0) {
            expect(whole.every((l) => Number.isInteger(l) && l >= 1), what).toBe(true);
            expect(Math.max(...whole) - Math.min(...whole), what).toBeLessThanOrEqual(1);
            expect(Math.abs(lens.at(-1)! - whole[0]!), what).toBeLessThanOrEqual(1.5);
          }
          for (const [k, c] of cuts.entries()) {
            expect(c.offset, what).toBe(k === 0 ? 0 : cuts[k - 1]!.offset + cuts[k - 1]!.body!);
            expect(c.from, what).toBe(start + c.offset - (k === 0 ? 0 : ROLL_SECONDS * rate));
          }
        }
      }
    }
  });
});
