import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { availableCores, availableMemoryBytes } from './machine.js';

describe('what this process may use of the machine', () => {
  it('is at least one core and some memory, never more than the machine has', () => {
    expect(availableCores()).toBeGreaterThanOrEqual(1);
    expect(availableCores()).toBeLessThanOrEqual(os.availableParallelism());
    expect(availableMemoryBytes()).toBeGreaterThan(0);
    expect(availableMemoryBytes()).toBeLessThanOrEqual(os.totalmem());
  });
});
