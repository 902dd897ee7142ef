/**
 * Two downloads of the same job into the same folder at once (the library's `collect`/`download`
 * twice, two `tessera download` runs): both succeed with the output's bytes, and no part file is
 * left. Each writes a file of its own; the one that finishes second finds the output already
 * there with the very bytes (size and SHA-256) and counts it as downloaded.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;
let jobId: string;
const bytes = new Map<string, Buffer>();

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-concurrent-dl-'));
  cluster = await startCluster({ workers: 1, slots: 2 });
  // Small outputs (they come inside their events to `collect`) and large ones (streamed).
  const sizes: Record<string, number> = { 'a.bin': 2_000, 'b.bin': 30_000, 'c.bin': 500_000, 'big1.bin': 3 * 2 ** 20, 'big2.bin': 2 * 2 ** 20 + 17 };
  const files: string[] = [];
  for (const [name, size] of Object.entries(sizes)) {
    bytes.set(name, randomBytes(size));
    files.push(path.join(dir, name));
    await writeFile(files.at(-1)!, bytes.get(name)!);
  }
  const job = await cluster.client.submit({ passthrough: {} }, files);
  expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
  jobId = job.id;
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function expectComplete(out: string): Promise<void> {
  const names = (await readdir(out)).sort();
  expect(names, 'the outputs, and no part file').toEqual([...bytes.keys()].sort());
  for (const [name, b] of bytes) expect(sha(await readFile(path.join(out, name))), name).toBe(sha(b));
}

describe('concurrent downloads into one folder', () => {
  it('library: collect twice and download twice at once both succeed, every round', async () => {
    for (let round = 0; round < 6; round++) {
      const out = await mkdtemp(path.join(dir, `lib-${round}-`));
      const results = await Promise.allSettled(
        round % 2 === 0 ? [cluster.client.collect(jobId, out), cluster.client.collect(jobId, out)] : [cluster.client.download(jobId, out), cluster.client.download(jobId, out)],
      );
      for (const r of results) expect(r.status === 'rejected' ? String(r.reason) : 'ok', `round ${round}`).toBe('ok');
      await expectComplete(out);
    }
  }, 120_000);

  it('library: a download that finds a stopped one\'s part file resumes it while another starts afresh', async () => {
    const out = await mkdtemp(path.join(dir, 'resume-'));
    // What an earlier download left: the first MiB of big1.bin.
    await writeFile(path.join(out, '.big1.bin.tessera-part'), bytes.get('big1.bin')!.subarray(0, 2 ** 20));
    const results = await Promise.allSettled([cluster.client.download(jobId, out), cluster.client.download(jobId, out), cluster.client.collect(jobId, out)]);
    for (const r of results) expect(r.status === 'rejected' ? String(r.reason) : 'ok').toBe('ok');
    await expectComplete(out);
  }, 60_000);

  it('library: what a download killed outright left under its own name is resumed by the next one, and goes', async () => {
    const out = await mkdtemp(path.join(dir, 'killed-'));
    // A process that has ended: its id names the killed download's file (as SIGKILL would leave it).
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => gone.once('exit', resolve));
    const digest = sha(Buffer.from('big1.bin')).slice(0, 12);
    const host = sha(Buffer.from(os.hostname())).slice(0, 6);
    const orphan = path.join(out, `.tessera-${host}-${gone.pid}-${digest}-0123abcd.tessera-part`);
    await writeFile(orphan, bytes.get('big1.bin')!.subarray(0, 2 ** 20));
    // Another machine's (a shared folder): its process cannot be told from here, so it is left alone.
    const theirs = path.join(out, `.tessera-${host === 'abcdef' ? 'fedcba' : 'abcdef'}-${gone.pid}-${digest}-4567cdef.tessera-part`);
    await writeFile(theirs, Buffer.from('in progress elsewhere'));
    await cluster.client.download(jobId, out);
    expect((await readdir(out)).sort()).toEqual([...bytes.keys(), path.basename(theirs)].sort());
    await rm(theirs);
    await expectComplete(out);
  }, 60_000);

  it('CLI: two `tessera download JOB -o DIR` at once both exit 0', async () => {
    for (let round = 0; round < 3; round++) {
      const out = await mkdtemp(path.join(dir, `cli-${round}-`));
      const runs = await Promise.all([cluster.runCli(['download', jobId, '-o', out, '--json']), cluster.runCli(['download', jobId, '-o', out, '--json'])]);
      for (const r of runs) {
        expect(r.stderr).not.toMatch(/ENOENT|EEXIST|ALREADY_EXISTS/);
        expect(r.code, r.stderr).toBe(0);
      }
      await expectComplete(out);
    }
  }, 120_000);
});
