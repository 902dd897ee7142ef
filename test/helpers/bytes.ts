import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';

/**
 * Asserts two buffers hold the same bytes. `toEqual` compares a Buffer element by element through
 * vitest's deep equality: about 16 s for 3 MB. On a mismatch this names the sizes and the first
 * byte that differs.
 */
export function expectSameBytes(actual: Buffer, expected: Buffer, what = 'bytes'): void {
  if (actual.equals(expected)) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  expect.fail(`${what}: ${actual.length} bytes, expected ${expected.length}; they first differ at offset ${i}`);
}

/** Writes `n` files of random bytes, `dir/PREFIX-i.bin`, of `size + i` bytes each (no two alike in size). */
export async function randomFiles(dir: string, prefix: string, n: number, size: number): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `${prefix}-${i}.bin`);
    await writeFile(f, randomBytes(size + i));
    files.push(f);
  }
  return files;
}
