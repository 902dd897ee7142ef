/** A value handed on is taken once, and dropped when nothing takes it in time. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HandOff } from './hand-off.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('HandOff', () => {
  it('gives a value to the first taker only', () => {
    const h = new HandOff<object, string>(60_000);
    const key = {};
    expect(h.take(key)).toBeUndefined();
    h.give(key, 'probe');
    expect(h.take(key)).toBe('probe');
    expect(h.take(key)).toBeUndefined();
  });

  it('drops a value nothing took in time, and not one given again since', () => {
    vi.useFakeTimers();
    const h = new HandOff<object, string>(1000);
    const late = {};
    const again = {};
    h.give(late, 'old');
    h.give(again, 'first');
    vi.advanceTimersByTime(400);
    expect(h.take(again)).toBe('first');
    h.give(again, 'second');
    // The first two values' time is up; the second one has 400 ms to go.
    vi.advanceTimersByTime(600);
    expect(h.take(late)).toBeUndefined();
    expect(h.take(again)).toBe('second');
    h.give(again, 'third');
    vi.advanceTimersByTime(1000);
    expect(h.take(again)).toBeUndefined();
  });
});
