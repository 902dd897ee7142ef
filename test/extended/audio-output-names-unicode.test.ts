/**
 * README, "Security": outputs "are named after their inputs plus a little"; images keep their
 * input's base name (`a.jpg` -> `a.webp`) and videos theirs (`a.mov` -> `a.mp4`), letters beyond
 * ASCII, spaces and all (only names Windows cannot hold are refused, at submission).
 *
 * The audio kind's outputs instead replace every character outside `[A-Za-z0-9_.+-]` with `_`
 * (shared/media/audio-pieces.ts `outputName`): `Beyoncé – Halo.wav` came out as
 * `Beyonc____Halo.mp3`, `日本語.wav` as `___.mp3`, and `é.wav` and `ü.wav` as `_.mp3` and
 * `_-2.mp3`, which no one can tell apart or predict.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let cluster: TestCluster;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-names-'));
  cluster = await startCluster({ workers: 1, slots: 2 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('audio output names', () => {
  it('keep the input name beyond ASCII, as image and video outputs do', async () => {
    const names = ['Beyoncé – Halo.wav', '日本語.wav', 'é.wav', 'ü.wav'];
    const files = names.map((n) => {
      const p = path.join(dir, n);
      execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=d=0.5', '-y', p]);
      return p;
    });
    const job = await cluster.client.submit({ audio: { codec: 'mp3' } }, files);
    const { job: done } = await cluster.client.collect(job.id, path.join(dir, 'out'));
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const outputs = done.outputs.map((o) => o.name).filter((n) => n !== 'audio-report.json').sort();
    // Observed: ['Beyonc____Halo.mp3', '_-2.mp3', '_.mp3', '___.mp3'].
    expect(outputs).toEqual(['Beyoncé – Halo.mp3', 'é.mp3', 'ü.mp3', '日本語.mp3'].sort());
  }, 60_000);
});
