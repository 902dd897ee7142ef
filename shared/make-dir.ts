import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * `mkdir -p dir`, failing with the real cause. Node's recursive mkdir reports a parent it could not
 * make (a read-only file system, no permission) as ENOENT of `dir`, which reads as a bug: the
 * first missing folder is then made on its own to get the system's own reason.
 */
export async function makeDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    let missing = path.resolve(dir);
    for (let up = path.dirname(missing); up !== missing && !(await stat(up).then(() => true, () => false)); up = path.dirname(up)) missing = up;
    // Made meanwhile (by another call) is no trouble; any other answer is the cause.
    await mkdir(missing).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== 'EEXIST') throw cause;
    });
    await mkdir(dir, { recursive: true });
  }
}
