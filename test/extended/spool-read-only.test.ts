/**
 * The coordinator's spool turns read-only under it (a file system remounted read-only after an I/O
 * error, `errors=remount-ro`, a full-disk guard). README (error codes): INTERNAL is for the
 * coordinator's own bugs; "a full disk fails with RESOURCE_EXHAUSTED" and a worker's result the
 * coordinator's disk cannot take is "not held against the worker". The spool handles only
 * ENOSPC/EDQUOT/EMFILE/ENFILE (LOCAL_TROUBLE_CODES) as its own trouble: EROFS (which Node's
 * recursive mkdir reports as ENOENT) falls through to the generic INTERNAL "internal error (see the
 * coordinator log)" for the client, and a worker's outputs that cannot be stored fail its
 * attempts as its own fault, quarantining healthy workers.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
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

/** A coordinator (outputs uploaded, as from workers on other machines) and a client; `readOnly()` makes its spool's jobs folder read-only (a bind mount, as root). */
async function coordinatorWith(): Promise<{ dir: string; address: string; client: TesseraClient; readOnly: () => void; writable: () => void }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-spool-ro-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  const jobs = path.join(dataDir, 'spool', 'jobs');
  await mkdir(jobs, { recursive: true });
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '', localReads: false });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const client = new TesseraClient({ address });
  cleanups.push(() => client.close());
  let mounted = false;
  const writable = (): void => {
    if (mounted) execFileSync('umount', ['-l', jobs]);
    mounted = false;
  };
  const readOnly = (): void => {
    execFileSync('mount', ['--bind', jobs, jobs]);
    mounted = true;
    cleanups.push(writable);
    execFileSync('mount', ['-o', 'remount,bind,ro', jobs]);
  };
  return { dir, address, client, readOnly, writable };
}

describe("a coordinator whose spool is read-only", () => {
  it('refuses an upload with a status and message that say its disk cannot be written, not INTERNAL "internal error"', async () => {
    const { dir, client, readOnly } = await coordinatorWith();
    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(100_000, 3));
    readOnly();
    const err = (await client.submit({ passthrough: {} }, [file]).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(err).toBeDefined();
    expect({ code: err.code, details: err.details }).toEqual({ code: grpc.status.FAILED_PRECONDITION, details: 'input a.bin: the coordinator cannot write its spool (read-only file system, EROFS)' });
    expect(await client.listJobs()).toEqual([]);
  }, 30_000);

  it('waits for its spool to be writable again before the outputs it could not store are retried; healthy workers are not quarantined', async () => {
    const { dir, address, client, readOnly, writable } = await coordinatorWith();
    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(100_000, 3));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.submit({ passthrough: {} }, [file])).id);
    readOnly();
    startWorkers(address);
    // Observed before: every result's upload failed INTERNAL, counted against its worker ("wa"
    // quarantined) and the jobs failed with "internal error".
    await sleep(1500);
    writable();
    for (const id of ids) expect((await client.wait(id)).state).toBe('JOB_STATE_SUCCEEDED');
    expect((await client.listWorkers()).map((w) => [w.name, w.state]).sort()).toEqual([
      ['wa', 'active'],
      ['wb', 'active'],
    ]);
  }, 60_000);

  it('fails them once the wait for its own disk is over, saying the spool cannot be written', async () => {
    process.env.TESSERA_FULL_DISK_WAIT_MS = '1000';
    cleanups.push(() => void delete process.env.TESSERA_FULL_DISK_WAIT_MS);
    const { dir, address, client, readOnly } = await coordinatorWith();
    const file = path.join(dir, 'a.bin');
    await writeFile(file, Buffer.alloc(100_000, 3));
    const id = (await client.submit({ passthrough: {} }, [file])).id;
    readOnly();
    startWorkers(address);
    const job = await client.wait(id);
    expect(job.state).toBe('JOB_STATE_FAILED');
    expect(job.errors.map((e) => e.code)).toEqual(['FAILED_PRECONDITION']);
    expect(job.errors[0]!.message).toMatch(/the coordinator cannot write its spool \(read-only file system, EROFS\)/);
    expect((await client.listWorkers()).every((w) => w.state === 'active')).toBe(true);
  }, 60_000);
});

function startWorkers(address: string): void {
  for (const name of ['wa', 'wb']) {
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name });
    worker.start();
    cleanups.push(() => worker.close());
  }
}
