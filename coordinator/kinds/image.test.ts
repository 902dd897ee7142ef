import { describe, expect, it } from 'vitest';
import type { SpoolFile } from '../../shared/job-kind.js';
import { groupBatches, outputNames } from './image.js';

const file = (name: string, size: number): SpoolFile => ({ name, size, path: `/x/${name}`, sha256: '' });

describe('image batch planning', () => {
  it('spreads a small batch so every slot gets work', () => {
    const groups = groupBatches(Array.from({ length: 10 }, (_, i) => file(`f${i}`, 1000)), 4);
    expect(groups).toHaveLength(8);
    expect(groups.flat()).toHaveLength(10);
  });

  it('bounds a large batch by count and balances bytes', () => {
    const files = Array.from({ length: 400 }, (_, i) => file(`f${i}`, 1_000_000 + (i % 7) * 300_000));
    const groups = groupBatches(files, 2);
    expect(groups.length).toBeGreaterThanOrEqual(25);
    expect(Math.max(...groups.map((g) => g.length))).toBeLessThanOrEqual(16);
    const sizes = groups.map((g) => g.reduce((n, f) => n + f.size, 0));
    expect(Math.max(...sizes) / Math.min(...sizes)).toBeLessThan(1.2);
  });

  it('gives colliding output names distinct names', () => {
    const names = outputNames(['a.png', 'a.jpg', 'b.tif'], () => 'webp');
    expect([...names.values()]).toEqual(['a.png.webp', 'a.jpg.webp', 'b.webp']);
    // Still distinct when an input is named like another's fallback.
    const tricky = outputNames(['a.png', 'a.jpg', 'a.png.jpg'], () => 'jpg');
    expect(new Set(tricky.values()).size).toBe(3);
    expect([...tricky.values()]).toEqual(['a.png.jpg', 'a.jpg.jpg', 'a.png-2.jpg']);
  });
});
