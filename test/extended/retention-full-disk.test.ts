/**
 * Retention on a full data dir. The README: a finished job's "outputs, record and events are
 * removed --retention-hours after it ended". When the data dir's disk is full, removing expired
 * jobs is what gives the room back; the sweep must not wait for a store write that the same full
 * disk refuses (it deleted from the store first, and on SQLITE_FULL kept the job and its files:
 * the disk stayed full for good, however many jobs expired).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

describe('retention on a full disk', () => {
  it("removes an expired job's files even when the store cannot write (the disk they fill is full)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-retfull-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const mnt = path.join(dir, 'data');
    await mkdir(mnt);
    // A 4 MiB tmpfs as the data dir (the tests run as root, as CI does).
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    cleanups.push(() => void execFileSync('umount', ['-l', mnt]));

    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: mnt, log, http: '', retentionMs: 2000 });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    const client = new TesseraClient({ address });
    cleanups.push(() => client.close());
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w' });
    worker.start();
    cleanups.push(() => worker.close());
    await worker.registered;

    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(1024 * 1024, 7));
    const job = await client.wait((await client.submit({ passthrough: {} }, [file])).id);
    expect(job.state).toBe('JOB_STATE_SUCCEEDED');
    const jobDir = path.join(mnt, 'spool', 'jobs', job.id);
    expect(await readdir(path.join(jobDir, 'out'))).toEqual(['a.bin']);

    // Something else fills the disk to the last byte (logs, another program).
    const st = await statfs(mnt);
    await writeFile(path.join(mnt, 'filler'), Buffer.alloc(st.bavail * st.bsize)).catch(() => undefined);
    expect((await statfs(mnt)).bavail).toBe(0);

    // The job's retention (2 s) passes, and a few sweeps (1 s apart) with it.
    await sleep(Math.max(0, Number(job.finished_at_ms) + 2000 - Date.now()) + 4000);
    // Its megabyte of outputs is what would give the disk room again.
    expect(await readdir(jobDir).catch(() => [])).toEqual([]);
    expect((await statfs(mnt)).bavail).toBeGreaterThan(0);
  }, 30_000);
});
