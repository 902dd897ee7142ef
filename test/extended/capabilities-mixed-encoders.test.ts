/**
 * Clusters whose workers differ in the ffmpeg encoders they have. Real coordinator and worker
 * processes; a worker's ffmpeg is a wrapper that hides some encoders, as a build without them
 * would: `-encoders` leaves them out, and asking for one fails with "Unknown encoder".
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, LocalCluster } from '../helpers/cluster.js';
import { ffmpegBinaries, runFfmpeg } from '../../shared/ffmpeg.js';
import type { Job__Output } from '../../shared/proto/generated/tessera/v1/Job.js';

let dir: string;
let wrapper: string;
let clip: string;
/** 8 s, a keyframe a second: 8 segments of 1 s. */
let longClip: string;
let cluster: LocalCluster | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mixed-encoders-'));
  wrapper = path.join(dir, 'ffmpeg-without');
  const real = ffmpegBinaries().ffmpeg;
  // $HIDE_ENC: the encoders this ffmpeg lacks.
  await writeFile(
    wrapper,
    `#!/bin/sh
prev=""
for a in "$@"; do
  case "$prev" in -c:v|-c:a|-vcodec|-acodec|-codec:v|-codec:a)
    for e in $HIDE_ENC; do [ "$a" = "$e" ] && { echo "Unknown encoder '$e'" >&2; exit 1; }; done;;
  esac
  prev="$a"
done
if [ "$1" = "-encoders" ]; then
  ${real} "$@" | grep -v -E "^ [VAS][F.][S.][X.][B.][D.] ($(echo "$HIDE_ENC" | sed 's/ /|/g')) "
  exit 0
fi
exec ${real} "$@"
`,
  );
  await chmod(wrapper, 0o755);
  clip = path.join(dir, 'clip.mp4');
  await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc=size=96x64:rate=10', '-t', '3', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-y', clip]);
  longClip = path.join(dir, 'long.mp4');
  await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-t', '8', '-c:v', 'libx264', '-g', '25', '-pix_fmt', 'yuv420p', '-y', longClip]);
});

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const TERMINAL = new Set(['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED']);

async function pollJob(c: LocalCluster, id: string, until: (j: Job__Output) => boolean, ms: number): Promise<Job__Output> {
  const end = Date.now() + ms;
  let j = await c.client.getJob(id);
  while (!until(j) && !TERMINAL.has(j.state) && Date.now() < end) {
    await sleep(250);
    j = await c.client.getJob(id);
  }
  return j;
}

async function clusterWith(workers: { name: string; hide: string }[]): Promise<LocalCluster> {
  const c = await new LocalCluster({ workers: 0 }).start();
  cluster = c;
  for (const w of workers) c.startWorker(w.name, ['--slots', '1'], { env: { FFMPEG_PATH: wrapper, HIDE_ENC: w.hide } });
  await c.waitForWorkers(workers.length);
  return c;
}

describe('thumbnails as WebP on a worker whose ffmpeg has no libwebp', () => {
  it('are not sent to it and blamed on the input: the job waits, saying libwebp is missing', async () => {
    const c = await clusterWith([{ name: 'no-webp', hide: 'libwebp libwebp_anim' }]);
    const [w] = await c.client.listWorkers();
    expect(w!.capabilities?.kinds).toContain('thumbnails');
    expect(w!.capabilities?.encoders).not.toContain('libwebp');
    const job = await c.client.submit({ thumbnails: { every: 1, width: 48, format: 'webp' } }, [clip]);
    const j = await pollJob(c, job.id, (x) => /waiting for a worker/.test(x.message), 10_000);
    // Observed: JOB_STATE_FAILED, "clip.mp4: ffmpeg-without failed: Unknown encoder 'libwebp'" as
    // INVALID_ARGUMENT against the user's input (the plan requires no encoder; the worker runs
    // `-c:v libwebp`).
    expect(j.errors.map((e) => `${e.code}: ${e.message}`)).toEqual([]);
    expect(j.state).not.toBe('JOB_STATE_FAILED');
    expect(j.message).toMatch(/libwebp/);
  });
});

describe('an AV1 job planned while no worker has an AV1 encoder', () => {
  it('starts once a worker with libaom-av1 (an AV1 encoder the video kind uses) joins', async () => {
    const c = await clusterWith([{ name: 'no-av1', hide: 'libsvtav1 libaom-av1 librav1e' }]);
    const job = await c.client.submit({ video: { codec: 'av1', crf: 50, audio_codec: 'none' } }, [clip]);
    const waiting = await pollJob(c, job.id, (x) => /waiting for a worker/.test(x.message), 10_000);
    expect(waiting.message).toMatch(/waiting for a worker that can run it/);
    // A worker whose ffmpeg has libaom-av1 (not SVT-AV1) joins: it can encode AV1.
    c.startWorker('aom-only', ['--slots', '1'], { env: { FFMPEG_PATH: wrapper, HIDE_ENC: 'libsvtav1' } });
    await c.waitForWorkers(2);
    // Observed: it stays queued for good, "none of the 2 connected worker(s) has the encoder
    // libsvtav1 (its ffmpeg lacks it)": the plan fixed libsvtav1 when the cluster had no AV1 encoder.
    const later = await pollJob(c, job.id, (x) => !/waiting for a worker/.test(x.message), 8_000);
    expect(later.message).not.toMatch(/waiting for a worker/);
  });
});

describe('tessera submit of a job no connected worker can run', () => {
  it('says what the job waits for (not on a terminal: plain progress lines)', async () => {
    const c = await clusterWith([{ name: 'no-av1', hide: 'libsvtav1 libaom-av1 librav1e' }]);
    const child = spawn(process.execPath, [CLI_PATH, 'submit', 'video', '--codec', 'av1', '--audio-codec', 'none', clip, '-o', path.join(dir, 'out'), '--coordinator', c.address], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' },
    });
    let said = '';
    child.stdout.on('data', (d: Buffer) => (said += d.toString()));
    child.stderr.on('data', (d: Buffer) => (said += d.toString()));
    const closed = new Promise((resolve) => child.on('close', resolve));
    try {
      // The coordinator has said it (job message and a job_state event); give the CLI 2 s more.
      const end = Date.now() + 15_000;
      let message = '';
      while (Date.now() < end && !/waiting for a worker/.test(message)) {
        await sleep(250);
        message = (await c.client.listJobs())[0]?.message ?? '';
      }
      expect(message).toMatch(/has the encoder libsvtav1/);
      // The CLI says it once its watch has the event: waited for (it was a fixed 2 s, from the
      // coordinator's message, not from the CLI's own start on a loaded machine).
      for (const until = Date.now() + 20_000; Date.now() < until && !/waiting for a worker that can run it: .*libsvtav1/.test(said); ) await sleep(100);
    } finally {
      child.kill('SIGINT');
      await closed;
    }
    // Observed: "progress 0% accepted 1 input(s)" and nothing more: a plain line is written only
    // when the percentage changes, and a waiting job's stays at 0.
    expect(said).toMatch(/waiting for a worker that can run it: .*libsvtav1/);
  });
});

describe('tessera submit of a job no connected worker can run, on a terminal', () => {
  it('shows what is missing, not a status cut off before it', async () => {
    const c = await clusterWith([{ name: 'no-av1', hide: 'libsvtav1 libaom-av1 librav1e' }]);
    const command = [process.execPath, CLI_PATH, 'submit', 'video', '--codec', 'av1', '--audio-codec', 'none', clip, '-o', path.join(dir, 'out-tty'), '--coordinator', c.address].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    // util-linux `script` runs the CLI on a pseudo-terminal: it draws its progress bar.
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TESSERA_LOG_LEVEL: 'warn', COLUMNS: '200' } });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
    child.stderr.on('data', (d: Buffer) => (screen += d.toString()));
    const closed = new Promise((resolve) => child.on('close', resolve));
    try {
      // Until the bar shows what is missing (was: 15 s for its first words, then a fixed 1.5 s).
      const end = Date.now() + 30_000;
      while (Date.now() < end && !(/waiting for a worker/.test(screen) && /libsvtav1/.test(screen))) await sleep(250);
    } finally {
      child.stdin.write('\x03');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await closed;
      clearTimeout(t);
    }
    expect(screen).toMatch(/waiting for a worker/);
    // Observed: "| waiting for a worker that can run it: none of the 1 connecte": the bar's status
    // is cut to 60 characters, and the first 38 of them are the fixed words.
    expect(screen).toMatch(/libsvtav1/);
  });
});

/*
 * The encoder switch is stored with the subtasks' live state, the only part a state update writes:
 * after a coordinator restart the job went back to the encoder no worker has, and waited for good.
 */
describe('an AV1 job pointed at libaom-av1, the coordinator restarted while its segments run', () => {
  it('goes on with libaom-av1 after the restart', async () => {
    const c = await new LocalCluster({ workers: 0 }).start();
    cluster = c;
    // Planned while no worker has an AV1 encoder: the plan names libsvtav1.
    c.startWorker('no-av1', ['--slots', '1'], { env: { FFMPEG_PATH: wrapper, HIDE_ENC: 'libsvtav1 libaom-av1 librav1e' } });
    await c.waitForWorkers(1);
    const job = await c.client.submit({ video: { codec: 'av1', crf: 50, audio_codec: 'none', segment_seconds: 1 } }, [longClip]);
    for (let i = 0; i < 60 && !/waiting for a worker/.test((await c.client.getJob(job.id)).message); i++) await sleep(250);
    // A libaom-only worker joins: the pending segments are pointed at libaom-av1 and start.
    c.startWorker('aom-only', ['--slots', '1'], { env: { FFMPEG_PATH: wrapper, HIDE_ENC: 'libsvtav1' } });
    let j: Job__Output = await c.client.getJob(job.id);
    const done = (x: Job__Output) => x.subtasks.filter((s) => s.state === 'SUBTASK_STATE_SUCCEEDED').length;
    // Up to a minute or more (was 400 turns, about 20-25 s) for the worker's start and its first
    // libaom-av1 segment beside two other test files on two cores; it ends at the first segment.
    for (let i = 0; i < 1200 && done(j) === 0 && !TERMINAL.has(j.state); i++) {
      await sleep(50);
      j = await c.client.getJob(job.id);
    }
    expect(done(j), 'a segment encoded with libaom-av1').toBeGreaterThan(0);
    expect(j.state, 'not over before the restart (else nothing to see)').toBe('JOB_STATE_RUNNING');
    // The coordinator restarts (same data dir and port); the workers reconnect.
    c.coordinator!.child.kill('SIGKILL');
    await c.coordinator!.exited;
    await c.startCoordinator();
    await c.waitForWorkers(2);
    // libaom-av1 beside two other test files on two cores takes its time: the bound is generous,
    // what is asserted is the end state.
    const end = Date.now() + 60_000;
    j = await c.client.getJob(job.id);
    while (!TERMINAL.has(j.state) && Date.now() < end) {
      await sleep(500);
      j = await c.client.getJob(job.id);
    }
    // Observed: still JOB_STATE_RUNNING, "waiting for a worker that can run it: none of the 2
    // connected worker(s) has the encoder libsvtav1 ..." (the retarget was never stored).
    expect({ state: j.state, message: j.message }).toEqual({ state: 'JOB_STATE_SUCCEEDED', message: expect.anything() });
  }, 150_000);
});
