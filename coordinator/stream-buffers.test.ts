import { describe, expect, it } from 'vitest';
import { StreamBuffers } from './stream-buffers.js';

describe('StreamBuffers: one budget of bytes on their way to readers', () => {
  it("a stream holds its last two messages' bytes; asking for the next gives back the one before", () => {
    const budget = new StreamBuffers(10);
    const s = budget.stream();
    s.next();
    expect(s.take(3)).toBe(true);
    s.next();
    expect(s.take(4)).toBe(true);
    expect(budget.held).toBe(7);
    // Message 3 asked for: message 1 is written out, 2 may not be.
    s.next();
    expect(budget.held).toBe(4);
    expect(s.take(5)).toBe(true);
    expect(budget.held).toBe(9);
    s.release();
    expect(budget.held).toBe(0);
  });

  it('past the limit a take is refused and counted, and holds nothing; room given back is taken again', () => {
    const budget = new StreamBuffers(8);
    const a = budget.stream();
    const b = budget.stream();
    a.next();
    expect(a.take(6)).toBe(true);
    b.next();
    expect(b.take(3)).toBe(false);
    expect(b.take(2)).toBe(true);
    expect(budget).toMatchObject({ held: 8, refusals: 1 });
    // One message's count may grow by several takes (a run of outputs inside events).
    a.release();
    expect(b.take(3)).toBe(true);
    expect(budget.held).toBe(5);
    b.next();
    b.next();
    expect(budget.held).toBe(0);
  });

  it('a take before the first next() is a mistake of the caller', () => {
    expect(() => new StreamBuffers(1).stream().take(1)).toThrow(/before next/);
  });
});
