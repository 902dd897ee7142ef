/**
 * The temp-root sweep (worker/temp-root.ts, be5f6c8/ef1c616) and a live worker of an earlier
 * version on the same host (the README's upgrade: "Upgrade workers one by one"; its "temp files"
 * row: the folders of killed workers are removed, "never a live one's").
 *
 * An earlier version's root is `tessera-worker-NAME-PID`, with no socket and no `.alive`. Its PID
 * is alive in this PID namespace, yet the sweep removes it once the folder itself has not changed
 * for STALE_MS (two minutes): an old worker's long subtask (a video segment, whose attempt folder
 * was made more than two minutes ago) has its files deleted under it by the upgraded worker beside
 * it. The sweep before ef1c616 kept any root whose PID was alive.
 */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { removeStaleTempRoots } from '../worker/temp-root.js';

let tmp = '';
let savedTmpdir: string | undefined;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'tessera-live-legacy-'));
  savedTmpdir = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
});

afterEach(async () => {
  if (savedTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmpdir;
  await rm(tmp, { recursive: true, force: true });
});

it("an earlier version's root whose worker is alive (its PID, in this namespace) is kept, however long its subtask runs", async () => {
  // This test's own process stands for the old worker: its PID is alive.
  const root = path.join(tmp, `tessera-worker-old-${process.pid}`);
  await mkdir(path.join(root, 'job-1-seg-0-a1'), { recursive: true });
  await writeFile(path.join(root, 'job-1-seg-0-a1', 'segment.mkv'), 'encoding...');
  // The attempt folder was made three minutes ago; the encode writes inside it, not in the root.
  const then = new Date(Date.now() - 180_000);
  await utimes(root, then, then);
  const removed = await removeStaleTempRoots();
  // Observed: removed 1, the folder gone under the running subtask.
  expect(removed).toBe(0);
  expect(await readdir(tmp)).toEqual([path.basename(root)]);
});
