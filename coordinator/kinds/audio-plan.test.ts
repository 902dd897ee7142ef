import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../../shared/channel.js';
import { ffmpegBinaries } from '../../shared/ffmpeg.js';
import type { PlanContext, SpoolFile } from '../../shared/job-kind.js';
import { validateAudioParams, type AudioJobParams } from '../../shared/kinds/audio-params.js';
import { createLogger } from '../../shared/logger.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { planItems } from '../../test/helpers/plans.js';
import { planAudio, splitWholeFiles } from './audio-plan.js';
import { resolveLimits } from '../../shared/limits.js';

const run = promisify(execFile);
let dir: string;
let tone: string;
let long: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-plan-'));
  tone = path.join(dir, 'tone.wav');
  long = path.join(dir, 'long.wav');
  await run(ffmpegBinaries().ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=f=440:d=3:r=48000', '-ac', '2', tone]);
  await run(ffmpegBinaries().ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=f=220:d=25:r=48000', '-ac', '2', long]);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `count` copies of the 3 s tone as inputs n0.wav, n1.wav, ... (or of the 25 s one). */
async function inputs(count: number, from = 0, source = tone): Promise<SpoolFile[]> {
  const size = (await stat(source)).size;
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const name = `n${from + i}.wav`;
      const file = path.join(dir, name);
      await copyFile(source, file);
      return { name, path: file, size, sha256: '' };
    }),
  );
}

function context(slots: number, params: AudioJobParams, given: SpoolFile[], arriving?: Channel<SpoolFile>): PlanContext<AudioJobParams> {
  return {
    jobId: 'j',
    params,
    spec: {} as JobSpec__Output,
    inputs: given,
    cluster: { workers: slots, slots, encoders: new Set<string>(['libmp3lame']), encoderSets: [], features: new Set<string>() },
    workDir: dir,
    signal: new AbortController().signal,
    log: createLogger('test', 'silent'),
    warn: () => undefined,
    limits: resolveLimits(),
    arriving,
  };
}

/** Plans while the files arrive through a channel; `next` gives each subtask's items as it comes. */
async function planArriving(slots: number, params = validateAudioParams({ codec: 'mp3' })) {
  const arriving = new Channel<SpoolFile>();
  const { subtasks, later } = await planAudio(context(slots, params, [], arriving));
  expect(subtasks).toEqual([]);
  const { next, rest } = planItems(later!);
  return { arriving, next, rest };
}

describe('an audio job planned while its files arrive', () => {
  it('groups a batch that is all in at once as the job planned at once groups it', async () => {
    const files = await inputs(8);
    const whole = await planAudio(context(2, validateAudioParams({ codec: 'mp3' }), files));
    const { arriving, rest } = await planArriving(2);
    arriving.push(...files);
    arriving.end();
    expect(await rest()).toEqual(whole.subtasks.map((s) => s.items));
    expect(whole.subtasks.map((s) => s.items.length)).toEqual([2, 2, 2, 2]);
  });

  it('sends a full group (16 files) while as much again waits behind it, and spreads the rest over the slots at the end', async () => {
    const files = await inputs(40);
    const { arriving, next, rest } = await planArriving(2);
    arriving.push(...files);
    expect(await next()).toEqual(files.slice(0, 16).map((f) => f.name));
    arriving.end();
    // 24 files of 3 s left: two groups per slot at least, 18 s each.
    expect((await rest()).map((g) => g.length)).toEqual([6, 6, 6, 6]);
  });

  it('spreads what waits over the slots once no file came for a moment', async () => {
    const { arriving, next } = await planArriving(2);
    arriving.push(...(await inputs(2)));
    const started = Date.now();
    expect(await next()).toEqual(['n0.wav']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    expect(await next()).toEqual(['n1.wav']);
    arriving.end();
    expect(await next()).toEqual(['(done)']);
  });

  it('sends a long file\'s segments as soon as it has arrived', async () => {
    const { arriving, next } = await planArriving(2, validateAudioParams({ codec: 'mp3', segment_seconds: 10 }));
    arriving.push(...(await inputs(1, 100, long)));
    // 25 s in segments of 10 s: three, before the upload has ended.
    expect([await next(), await next(), await next()]).toEqual([['n100.wav'], ['n100.wav'], ['n100.wav']]);
    arriving.end();
    expect(await next()).toEqual(['(done)']);
  });
});

describe('audio split', () => {
  it('cuts a group of whole files into one subtask per file (of those asked, when given), and leaves a segment alone', () => {
    const file = (name: string): SpoolFile => ({ name, path: `/spool/${name}`, size: 100, sha256: '' }) as SpoolFile;
    const render = (input: string) => ({ input, output: input.replace('.flac', '.mp3') });
    const group = { label: 'files a.flac .. b.flac (2)', inputs: [file('a.flac'), file('b.flac')], weight: 40, items: ['a.flac', 'b.flac'], requires: { encoders: ['libmp3lame'] }, plan: { type: 'whole', files: [render('a.flac'), render('b.flac')] } };
    expect(splitWholeFiles(group)).toEqual([
      { label: 'file a.flac', inputs: [group.inputs[0]], weight: 20, items: ['a.flac'], requires: { encoders: ['libmp3lame'] }, plan: { type: 'whole', files: [render('a.flac')] } },
      { label: 'file b.flac', inputs: [group.inputs[1]], weight: 20, items: ['b.flac'], requires: { encoders: ['libmp3lame'] }, plan: { type: 'whole', files: [render('b.flac')] } },
    ]);
    expect(splitWholeFiles(group, ['b.flac'])?.map((p) => p.items)).toEqual([['b.flac']]);
    const single = { ...group, inputs: [file('a.flac')], items: ['a.flac'], plan: { type: 'whole', files: [render('a.flac')] } };
    expect(splitWholeFiles(single)).toBeUndefined();
    expect(splitWholeFiles(single, ['a.flac'])?.map((p) => p.items)).toEqual([['a.flac']]);
    expect(splitWholeFiles({ ...group, plan: { type: 'segment', file: render('a.flac') } }, ['a.flac'])).toBeUndefined();
  });
});
