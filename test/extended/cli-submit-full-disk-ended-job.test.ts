/**
 * `tessera submit` whose download stops on a full disk: the job had already succeeded (a video's
 * output is published when its merge ends, i.e. with the job), yet the CLI said "job ID goes on",
 * never that it had succeeded, and exited 1: the user is told the job is still running and cannot
 * tell from the output whether the work succeeded or failed.
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { withSmallDisk } from '../helpers/tmpfs.js';

const disk = withSmallDisk('tessera-fulldisk-');
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
});

describe('tessera submit, download stopped by a full disk after the job ended', () => {
  it('does not say the job "goes on", and says it succeeded', async () => {
    const video = path.join(disk.dir, 'v.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=25:duration=2', '-pix_fmt', 'yuv420p', video]);
    // Leave a few KiB free on the 1 MiB disk: less than the output (about 10 KiB).
    await writeFile(path.join(disk.small, 'filler'), Buffer.alloc(1024 * 1024 - 8 * 1024)).catch(() => undefined);
    const out = path.join(disk.small, 'out');
    const r = await cluster.runCli(['submit', 'video', video, '-o', out, '--no-progress'], { timeoutMs: 60_000 });
    const what = `exit ${r.code}\nstderr: ${r.stderr}`;
    expect(r.stderr, what).toMatch(/RESOURCE_EXHAUSTED/);
    const id = /job ([0-9a-f-]{36})/.exec(r.stderr)?.[1];
    expect(id, what).toBeDefined();
    const job = await cluster.client.getJob(id!);
    expect(job.state).toBe('JOB_STATE_SUCCEEDED');
    // It was "(job ID goes on; its outputs stay on the coordinator: tessera download ID ... -o DIR)".
    expect(r.stderr, what).not.toMatch(/goes on/);
    expect(r.stderr, what).toMatch(/succeeded/);
  }, 60_000);
});
