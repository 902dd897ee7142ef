/**
 * A download that stopped leaves what it got as `.NAME.tessera-part` (Ctrl-C) or under its own
 * name `.tessera-HOST-PID-DIGEST-RANDOM.tessera-part` (killed outright), and README says the next
 * download of that output into that folder takes it over. For outputs that come inside their
 * events (up to 1 MiB: most of a batch job's) the next download writes the output from the event,
 * and removes those files once it has: it never looked at them, and they stayed for ever. A
 * streamed output's download takes over one of them and removes the others (two killed downloads,
 * or one beside a Ctrl-C part file, left all but one for good: review K7); an output already there
 * whole does too.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { partName } from '../../client/client.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-stale-parts-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('a download that finishes what a stopped one started', () => {
  it.each([
    ['a small output (written from its event)', 20_000],
    ['a streamed output (over 1 MiB)', 3 * 2 ** 20],
  ])("leaves nothing a stopped download left behind, for %s (a Ctrl-C part file, killed downloads' own files)", async (_, size) => {
    const src = path.join(dir, `src-${size}`);
    await mkdir(src);
    const bytes = randomBytes(size);
    await writeFile(path.join(src, 'a.bin'), bytes);
    const job = await cluster.client.submit({ passthrough: {} }, [path.join(src, 'a.bin')]);
    expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    const leave = async (dest: string): Promise<void> => {
      // What a download stopped by Ctrl-C leaves: the first bytes, as the output's part file.
      await writeFile(partName(dest), bytes.subarray(0, 8_000));
      // What two downloads killed outright leave: each its own file, of this machine and a process that is gone.
      for (const rand of ['0123abcd', '4567cdef']) {
        const deadPid = spawnSync('true').pid!;
        const own = `.tessera-${sha(os.hostname()).slice(0, 6)}-${deadPid}-${sha('a.bin').slice(0, 12)}-${rand}.tessera-part`;
        await writeFile(path.join(path.dirname(dest), own), bytes.subarray(0, 4_000));
      }
    };

    for (const how of ['cli', 'library'] as const) {
      const out = path.join(dir, `out-${size}-${how}`);
      await mkdir(out);
      const dest = path.join(out, 'a.bin');
      await leave(dest);
      if (how === 'cli') {
        const r = await cluster.runCli(['download', job.id, '-o', out, '--json']);
        expect(r.code, r.stderr).toBe(0);
      } else {
        await cluster.client.collect(job.id, out);
      }
      // The output is there and whole...
      expect(sha(await readFile(dest))).toBe(sha(bytes));
      // ...and nothing a stopped download left is: taken over or removed, not left behind.
      expect((await readdir(out)).sort(), how).toEqual(['a.bin']);
    }
    // Downloaded again, the output already there whole: what stopped downloads left since goes too.
    const out = path.join(dir, `out-${size}-cli`);
    await leave(path.join(out, 'a.bin'));
    const r = await cluster.runCli(['download', job.id, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(out)).sort(), 'output already there').toEqual(['a.bin']);
  });
});
