/**
 * A live worker's temp root deleted from under it (a tmp cleaner, an operator's `rm -rf
 * /tmp/tessera-*`): the next subtask makes the root again (recursive mkdir), bare, and the 30 s
 * heartbeat (2 s here, through a test knob) restores its `.alive` and its socket, which tell other
 * workers it is alive. It could not (its non-recursive mkdir of the root, already there, failed with EEXIST, which it
 * swallowed): another worker's sweep then took the live root for a dead one's once the folder's
 * own time was 2 minutes old, and removed it under the running subtask.
 */
import { existsSync, mkdirSync, rmSync, utimesSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultTempRoot, makeTempRoot, removeStaleTempRoots, STALE_MS, touchTempRoot } from '../../worker/temp-root.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir = '';
let cluster: TestCluster | undefined;
const savedTmp = process.env['TMPDIR'];

afterEach(async () => {
  if (savedTmp === undefined) delete process.env['TMPDIR'];
  else process.env['TMPDIR'] = savedTmp;
  await cluster?.stop();
  cluster = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

async function within<T>(ms: number, fn: () => Promise<T> | T): Promise<T | undefined> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    const v = await fn();
    if (v) return v;
  }
  return undefined;
}

describe("a live worker's temp root deleted while it runs", () => {
  it('gets its heartbeat back from the next touch, so that no sweep takes it for a dead worker\'s', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-wk-scratch-'));
    process.env['TMPDIR'] = dir; // the sweep below only sees this folder
    const root = defaultTempRoot('wk-live');
    makeTempRoot(root);
    // Deleted from outside; a subtask then makes its attempt folder (executor: recursive mkdir).
    rmSync(root, { recursive: true });
    mkdirSync(path.join(root, 'st-x-a1'), { recursive: true });
    // The worker's periodic heartbeat.
    await touchTempRoot(root);
    expect(existsSync(path.join(root, '.alive')), 'the heartbeat file is made again').toBe(true);
    // Two minutes later (no subtask folder made or removed meanwhile: a long one runs) another worker starts.
    const old = new Date(Date.now() - STALE_MS - 60_000);
    utimesSync(root, old, old);
    await touchTempRoot(root);
    await removeStaleTempRoots();
    expect(existsSync(path.join(root, 'st-x-a1')), "the live worker's running attempt folder").toBe(true);
  });

  it('end to end: a second worker starting on the machine does not remove the live worker\'s files under its running subtask', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-wk-scratch-'));
    const scratch = path.join(dir, 'scratch');
    mkdirSync(scratch);
    cluster = await startCluster({ workers: 0, coordinatorArgs: ['--no-local-reads'] });
    // Its heartbeat every 2 s (test knob) instead of 30 s: what matters is that one goes by.
    const heartbeatMs = 2000;
    cluster.startWorker('live', ['--slots', '1', '--prefetch', '0'], { env: { TMPDIR: scratch, TESSERA_TEST_TEMP_HEARTBEAT_MS: String(heartbeatMs) } });
    await cluster.waitForWorkers(1);
    const live = (await readdir(scratch)).find((e) => e.startsWith('tessera-worker-live-'))!;
    expect(live).toBeTruthy();
    // A tmp cleaner removes the idle worker's folder.
    rmSync(path.join(scratch, live), { recursive: true });
    const blob = path.join(dir, 'blob.bin');
    await writeFile(blob, randomBytes(100_000));
    // Long enough to be running still at the last check after a second worker's start on a loaded
    // machine (it is cancelled then).
    const job = await cluster.client.submit({ max_attempts: 1, passthrough: { work_ms: heartbeatMs + 60_000 } }, [blob]);
    const attempt = await within(10_000, async () => (await readdir(path.join(scratch, live)).catch(() => [] as string[])).find((e) => e.startsWith('st-')));
    expect(attempt, 'the running attempt folder').toBeTruthy();
    // One heartbeat of the worker's temp root goes by.
    await sleep(heartbeatMs + 2000);
    // Time passes with the long subtask running: the root's own time grows old (simulated).
    const old = new Date(Date.now() - STALE_MS - 60_000);
    utimesSync(path.join(scratch, live), old, old);
    expect(existsSync(path.join(scratch, live, attempt!)), 'still there before the second worker starts').toBe(true);
    cluster.startWorker('other', ['--slots', '1'], { env: { TMPDIR: scratch } });
    await cluster.waitForWorkers(2);
    await sleep(1000);
    expect(existsSync(path.join(scratch, live, attempt!)), "the live worker's running attempt folder").toBe(true);
    await cluster.client.cancel(job.id).catch(() => undefined);
  }, 90_000);
});
