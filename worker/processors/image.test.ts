/**
 * The image processor tells a bad image from this worker's own trouble. A full disk used to be
 * reported as the photo's INVALID_ARGUMENT (a permanent item error); it is now a retryable
 * failure of the subtask, which the coordinator runs again elsewhere. The full disk is real:
 * the output name is a link to /dev/full, where every write fails with ENOSPC.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import type { ProcessContext } from '../../shared/job-kind.js';
import { validateImageParams, type ImageParams } from '../../shared/kinds/image-params.js';
import { imageProcessor } from './image.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-imgproc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(files: Record<string, Buffer>, workDir: string): Promise<ReturnType<typeof imageProcessor.process>> {
  const inputs = await Promise.all(
    Object.entries(files).map(async ([name, bytes]) => {
      const file = path.join(dir, name);
      await writeFile(file, bytes);
      return { name, path: file, size: bytes.length };
    }),
  );
  const ctx: ProcessContext<ImageParams> = {
    jobId: 'job',
    subtaskId: 'st',
    attempt: 1,
    phase: 0,
    params: validateImageParams({ width: 64, format: 'jpeg' }),
    spec: {} as ProcessContext<ImageParams>['spec'],
    plan: { type: 'batch', items: inputs.map((i) => ({ input: i.name, output: path.parse(i.name).name })) },
    inputs,
    workDir,
    signal: new AbortController().signal,
    progress: () => undefined,
    threads: 1,
    log: pino({ level: 'silent' }),
  };
  return imageProcessor.process(ctx);
}

describe('image processor failures', () => {
  it('a corrupt image is its own item error; a full disk fails the subtask, retryably, naming neither as bad input', async () => {
    const good = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#357' } }).jpeg().toBuffer();
    const ok = await mkdtemp(path.join(dir, 'ok-'));
    const r = await run({ 'good.jpg': good, 'corrupt.jpg': good.subarray(0, 200) }, ok);
    expect(r.outputs.map((o) => o.name)).toEqual(['good.jpg']);
    expect(r.itemErrors).toEqual([expect.objectContaining({ input: 'corrupt.jpg', code: 'INVALID_ARGUMENT' })]);

    const full = path.join(dir, 'full');
    await mkdir(full);
    await symlink('/dev/full', path.join(full, 'good.jpg'));
    await expect(run({ 'good.jpg': good }, full)).rejects.toMatchObject({ codeName: 'UNAVAILABLE', retryable: true, message: expect.stringMatching(/good\.jpg: .*No space left on device.*this worker's trouble, not the image's/s) });
  });

  it('an input named after the error, or tagged with it, is still judged as an input', async () => {
    const good = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#357' } }).jpeg().toBuffer();
    const r = await run({ 'x: No space left on device.jpg': good.subarray(0, 200) }, await mkdtemp(path.join(dir, 'named-')));
    expect(r.itemErrors).toEqual([expect.objectContaining({ input: 'x: No space left on device.jpg', code: 'INVALID_ARGUMENT' })]);

    // ffmpeg at its default log level prints the input's name and its tags: neither is an error.
    const tagged = path.join(dir, 'x: No space left on device.wav');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=1', '-metadata', 'title=No space left on device', tagged]);
    const { stderr } = await runFfmpeg(['-y', '-i', tagged, '-f', 'null', '-'], { input: 'x: No space left on device.wav' });
    expect(stderr).toContain('No space left on device');
    const corrupt = path.join(dir, 'y: No space left on device.mp4');
    await writeFile(corrupt, Buffer.alloc(5000, 7));
    await expect(runFfmpeg(['-y', '-i', corrupt, '-f', 'null', '-'], { input: 'y: No space left on device.mp4' })).rejects.toMatchObject({ codeName: 'INVALID_ARGUMENT', retryable: false });
  });

  it('ffmpeg that cannot write its output (it exits 0 then) fails retryably, not as the input', async () => {
    const err = await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=1', '-f', 'wav', '/dev/full'], { input: 'tone.wav' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ codeName: 'UNAVAILABLE', retryable: true, message: expect.stringMatching(/^tone\.wav: ffmpeg failed on this machine, not because of the input: .*No space left on device/) });
  });
});
