/**
 * One worker's word that an input is bad fails a job for good, so a worker whose own decoder is
 * broken (a library built without a format, a damaged install) would fail every job it is given:
 * before an input is failed as INVALID_ARGUMENT, another worker is asked. Here one of two real
 * worker processes runs an ffmpeg that answers its capability probe but fails every run with
 * "Invalid data found when processing input", as a decoder does of a damaged file (an audio
 * file's decode on a worker then fails as "cannot decode audio").
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../client/local-cluster.js';
import { ffmpegBinaries, runFfmpeg } from '../../shared/ffmpeg.js';

let dir: string;
let cluster: LocalCluster;
const lines: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-second-opinion-'));
  const broken = path.join(dir, 'broken-ffmpeg');
  // The probes (-version, -encoders, -h) pass through; anything else fails as a decoder would.
  await writeFile(
    broken,
    `#!/bin/sh\ncase " $* " in *" -version "*|*" -encoders "*|*" -h "*|*" -hide_banner -buildconf "*) exec ${ffmpegBinaries().ffmpeg} "$@";; esac\necho "[h264 @ 0x1] Invalid data found when processing input" >&2\nexit 1\n`,
  );
  await chmod(broken, 0o755);
  // No quarantine: the broken worker keeps taking work, test after test.
  cluster = await new LocalCluster({ workers: 0, logLevel: 'info', coordinatorArgs: ['--quarantine-failures', '0', '--shared-root', dir], onLog: (who, line) => who === 'coordinator' && lines.push(line) }).start();
  cluster.startWorker('good', ['--slots', '1']);
  cluster.startWorker('broken', ['--slots', '1'], { env: { FFMPEG_PATH: broken } });
  await cluster.waitForWorkers(2);
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('an input one worker calls bad', () => {
  it('is given to another worker first: the jobs succeed, and the worker that was wrong is counted for it', async () => {
    const src = path.join(dir, 'tone.flac');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:d=3', '-c:a', 'flac', '-y', src]);
    // Four jobs of one file each: both workers take some first.
    const jobs = await Promise.all([0, 1, 2, 3].map(async () => cluster.client.submit({ audio: { codec: 'wav' } }, [src])));
    const done = await Promise.all(jobs.map((j) => cluster.client.wait(j.id)));
    for (const d of done) {
      expect(d.state, JSON.stringify(d.errors)).toBe('JOB_STATE_SUCCEEDED');
      expect(d.subtasks.every((s) => s.worker === 'good')).toBe(true);
    }
    // The broken worker took some first ("cannot decode audio": INVALID_ARGUMENT); they ran again on the good one.
    expect(done.some((d) => d.subtasks.some((s) => s.attempt > 1))).toBe(true);
    for (let i = 0; i < 200 && !lines.some((l) => l.includes('another worker processed')); i++) await sleep(50);
    const counted = lines.map((l) => JSON.parse(l) as { msg: string; worker?: string; processedBy?: string }).filter((l) => l.msg.startsWith('a worker called an input bad that another worker processed'));
    expect(counted.length).toBeGreaterThan(0);
    expect(counted.every((l) => l.worker === 'broken' && l.processedBy === 'good')).toBe(true);
  });

  it('still fails a truly bad input as INVALID_ARGUMENT, naming it, with no note of a second opinion', async () => {
    const bad = path.join(dir, 'bad.flac');
    const good = await readFile(path.join(dir, 'tone.flac'));
    // A FLAC whose frames are noise after its header: every worker's decoder fails it.
    await writeFile(bad, Buffer.concat([good.subarray(0, 8192), randomBytes(good.length - 8192)]));
    const d = await cluster.client.wait((await cluster.client.submit({ audio: { codec: 'wav' } }, [bad])).id);
    expect(d.state).toBe('JOB_STATE_FAILED');
    expect(d.errors).toEqual([expect.objectContaining({ input: 'bad.flac', code: 'INVALID_ARGUMENT' })]);
    expect(d.errors[0]!.message).not.toContain('asking another worker');
  });

  it('in a batch is given to another worker too: every good file comes out, a truly bad one still fails', async () => {
    // Nine small files, grouped several to a subtask where they arrive together (a busy machine
    // may plan them one by one: then each gets a subtask of its own, as in the first test). How a
    // batch's inputs are asked about, one by one, is coordinator/job-manager.test.ts's.
    const names = Array.from({ length: 8 }, (_, i) => `clip-${i}.flac`);
    for (const [i, n] of names.entries()) await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=${300 + 50 * i}:d=1`, '-c:a', 'flac', '-y', path.join(dir, n)]);
    const files = [...names.map((n) => path.join(dir, n)), path.join(dir, 'bad.flac')];
    const seen = lines.length;
    const d = await cluster.client.wait((await cluster.client.submit({ audio: { codec: 'wav' } }, files, { shared: true })).id);
    // Every good file came out; only the truly bad one failed, once, as its own.
    expect(d.outputs.map((o) => o.name).filter((n) => n.endsWith('.wav')).sort()).toEqual(names.map((n) => n.replace('.flac', '.wav')).sort());
    expect(d.errors).toEqual([expect.objectContaining({ input: 'bad.flac', code: 'INVALID_ARGUMENT' })]);
    // What the broken worker called bad ran again on the good one, and the broken one was counted for it.
    expect(lines.slice(seen).some((l) => l.includes('a worker called an input bad that another worker processed') && l.includes('"worker":"broken"'))).toBe(true);
    // The job's end is one log line, with its state, counts and message.
    for (let i = 0; i < 200 && !lines.some((l) => l.includes(d.id) && l.includes('job finished')); i++) await sleep(50);
    const ends = lines.slice(seen).map((l) => JSON.parse(l) as { msg: string; job?: string; final?: boolean; state?: string; outputs?: number; message?: string }).filter((l) => l.job === d.id && (l.final || l.msg === 'job finished'));
    expect(ends).toEqual([expect.objectContaining({ msg: 'job finished', state: 'partially_succeeded', outputs: d.outputs.length, message: d.message })]);
  });
});
