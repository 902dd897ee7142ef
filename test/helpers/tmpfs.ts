import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/**
 * A temporary folder for the test file (`dir`) with a 1 MiB tmpfs mounted at `dir/small`, to fill
 * up (the tests run as root, as CI does); both go after the file's tests.
 */
export function withSmallDisk(prefix: string): { dir: string; small: string } {
  const where = { dir: '', small: '' };
  beforeAll(async () => {
    where.dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    const small = path.join(where.dir, 'small');
    await mkdir(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    where.small = small;
  });
  afterAll(async () => {
    if (where.small) execFileSync('umount', ['-l', where.small]);
    if (where.dir) await rm(where.dir, { recursive: true, force: true });
  });
  return where;
}
