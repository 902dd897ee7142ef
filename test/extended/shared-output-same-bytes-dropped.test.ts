/**
 * A shared output with the very bytes of "the file an uploaded input came from" leaves that file
 * as it is and lists it as the output, never the job's to remove: a job whose submission fails
 * before its upload ends is removed "with everything it made", its published shared outputs
 * included (JobManager.removeDropped). A passthrough (which plans and publishes while the upload
 * runs) uploaded from its own output folder, whose upload is then cut, deleted the user's original
 * file from that folder when the output had replaced it.
 */
import { mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { holdSubmission, rawJobService, sendInput, until } from '../helpers/raw-grpc.js';

let dir: string;
let out: string;
let c: TestCluster;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-same-bytes-drop-')));
  out = path.join(dir, 'renders', 'out');
  await mkdir(out, { recursive: true });
  c = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--shared-output-root', path.join(dir, 'renders')] });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it("a submission cut after an early output replaced the user's own file with the same bytes leaves that file in place", async () => {
  // The user's original, in the output folder, uploaded from there.
  const original = path.join(out, 'a.bin');
  const bytes = Buffer.alloc(4096, 7);
  await writeFile(original, bytes);
  const before = await stat(original);
  const raw = rawJobService(c.address);
  try {
    const { call, answer } = holdSubmission(raw, { label: 'same-bytes-drop', passthrough: {}, shared_output_dir: out, input_count: 2 });
    sendInput(call, { name: 'a.bin', data: bytes });
    // Published early: the file at out/a.bin is now the job's output (another inode, same bytes).
    // (Before 72ee33e the job was refused here instead, and the file never replaced: waited for 5 s at most.)
    await until('a.bin published over the original', async () => {
      const st = await stat(original).catch(() => undefined);
      return !st || st.ino !== before.ino ? true : undefined;
    }, 200).catch(() => undefined);
    // The upload is cut before its second input: the submission fails and the job is dropped.
    call.cancel();
    await answer;
    // Give the coordinator time to remove what the dropped job made.
    await new Promise((r) => setTimeout(r, 1500));
    // Observed: out/a.bin is gone (ENOENT): the user's own file was deleted with the dropped job.
    const left = await readFile(original).catch((e: NodeJS.ErrnoException) => e.code);
    expect(left).toEqual(bytes);
  } finally {
    raw.close();
  }
}, 60_000);
