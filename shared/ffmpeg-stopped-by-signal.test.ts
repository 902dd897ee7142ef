/**
 * An ffmpeg stopped by a signal it handles ("Exiting normally, received signal N", exit status
 * 255) is this machine's trouble, tried again. ffmpeg at its default log level prints the input's
 * tags and its file name too: an input whose title or name says so, and that fails for its own
 * reason, is still the input's fault (INVALID_ARGUMENT naming it), not UNAVAILABLE and retried on
 * every worker (review K7).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runFfmpeg } from './ffmpeg.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-k7-ffsig-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const PHRASE = 'Exiting normally, received signal 2.';

it("an input tagged with ffmpeg's signal line that fails for its own reason is still the input's fault", async () => {
  const plain = path.join(dir, 'plain.wav');
  const tagged = path.join(dir, 'tagged.wav');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=0.5', plain]);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=0.5', '-metadata', `title=${PHRASE}`, tagged]);
  // The reference: an audio file asked for its video fails as the input's.
  await expect(runFfmpeg(['-y', '-i', plain, '-map', '0:v', '-f', 'null', '-'], { input: 'plain.wav' })).rejects.toMatchObject({ codeName: 'INVALID_ARGUMENT', retryable: false });
  // Observed: UNAVAILABLE, retryable, "ffmpeg was stopped by signal 2 on this machine, not because of the input".
  await expect(runFfmpeg(['-y', '-i', tagged, '-map', '0:v', '-f', 'null', '-'], { input: 'tagged.wav' })).rejects.toMatchObject({ codeName: 'INVALID_ARGUMENT', retryable: false });
});

it("an input named with ffmpeg's signal line that does not decode is still the input's fault", async () => {
  const corrupt = path.join(dir, `x ${PHRASE}mp4`);
  await writeFile(corrupt, Buffer.alloc(5000, 7));
  await expect(runFfmpeg(['-y', '-i', corrupt, '-f', 'null', '-'], { input: 'x.mp4' })).rejects.toMatchObject({ codeName: 'INVALID_ARGUMENT', retryable: false });
});

it('an ffmpeg stopped by a signal it handles (SIGINT from outside) is still this machine\'s trouble, tried again', async () => {
  const marker = `tessera-k7-${process.pid}-${Date.now()}`;
  const run = runFfmpeg(['-re', '-f', 'lavfi', '-i', 'sine=duration=30', '-metadata', `comment=${marker}`, '-f', 'wav', '-y', path.join(dir, 'long.wav')], { input: 'long.wav' });
  const outcome = run.then(() => 'done', (err: unknown) => err);
  let pid: number | undefined;
  for (let i = 0; i < 100 && pid === undefined; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const found = execFileSync('pgrep', ['-f', `^\\S*ffmpeg .*${marker}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
    pid = found[0];
  }
  expect(pid, 'the ffmpeg process').toBeDefined();
  await new Promise((r) => setTimeout(r, 300));
  process.kill(pid!, 'SIGINT');
  await expect(outcome).resolves.toMatchObject({ codeName: 'UNAVAILABLE', retryable: true, message: expect.stringContaining('stopped by signal 2') });
});
