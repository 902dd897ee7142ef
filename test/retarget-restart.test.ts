/**
 * A video job planned for an encoder no worker has is pointed at another encoder of the codec
 * (CoordinatorKind.retarget, called from JobManager.explainWaiting). The change is made to the
 * subtasks' `plan` and `requires`, but JobStore.saveSubtask only writes a subtask's live state:
 * after a coordinator restart the job's subtasks are read back with the old encoder. Segments that
 * had run with the new one are done, so retarget (only while every segment of the input is
 * pending) no longer applies, and the rest wait for the old encoder for good.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from './helpers/cluster.js';
import { ffmpegBinaries, runFfmpeg } from '../shared/ffmpeg.js';
import type { Job__Output } from '../shared/proto/generated/tessera/v1/Job.js';

let dir: string;
let wrapper: string;
let clip: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-retarget-restart-'));
  wrapper = path.join(dir, 'ffmpeg-without');
  const real = ffmpegBinaries().ffmpeg;
  // As test/capabilities-mixed-encoders.test.ts: an ffmpeg without the encoders in $HIDE_ENC.
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
  // 8 s, a keyframe a second: 8 segments of 1 s.
  await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-t', '8', '-c:v', 'libx264', '-g', '25', '-pix_fmt', 'yuv420p', '-y', clip]);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const TERMINAL = new Set(['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED', 'JOB_STATE_PARTIALLY_SUCCEEDED']);

describe('an AV1 job pointed at libaom-av1, the coordinator restarted while its segments run', () => {
  it('goes on with libaom-av1 after the restart', async () => {
    const c = await new LocalCluster({ workers: 0 }).start();
    try {
      // Planned while no worker has an AV1 encoder: the plan names libsvtav1.
      c.startWorker('no-av1', ['--slots', '1'], { env: { FFMPEG_PATH: wrapper, HIDE_ENC: 'libsvtav1 libaom-av1 librav1e' } });
      await c.waitForWorkers(1);
      const job = await c.client.submit({ video: { codec: 'av1', crf: 50, audio_codec: 'none', segment_seconds: 1 } }, [clip]);
      for (let i = 0; i < 60 && !/waiting for a worker/.test((await c.client.getJob(job.id)).message); i++) await sleep(250);
      // A libaom-only worker joins: the pending segments are pointed at libaom-av1 and start.
      c.startWorker('aom-only', ['--slots', '1'], { env: { FFMPEG_PATH: wrapper, HIDE_ENC: 'libsvtav1' } });
      let j: Job__Output = await c.client.getJob(job.id);
      const done = (x: Job__Output) => x.subtasks.filter((s) => s.state === 'SUBTASK_STATE_SUCCEEDED').length;
      for (let i = 0; i < 400 && done(j) === 0 && !TERMINAL.has(j.state); i++) {
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
      const end = Date.now() + 12_000;
      j = await c.client.getJob(job.id);
      while (!TERMINAL.has(j.state) && Date.now() < end) {
        await sleep(500);
        j = await c.client.getJob(job.id);
      }
      // Observed: still JOB_STATE_RUNNING, "waiting for a worker that can run it: none of the 2
      // connected worker(s) has the encoder libsvtav1 ..." (the retarget was never stored).
      expect({ state: j.state, message: j.message }).toEqual({ state: 'JOB_STATE_SUCCEEDED', message: expect.anything() });
    } finally {
      await c.stop();
    }
  }, 90_000);
});
