/**
 * Bounded chaos run: jobs of every kind while workers are SIGKILLed and replaced at random.
 * Every job must complete with verified outputs, and no temp file may remain anywhere.
 * Bounded in count (a fixed set of jobs, at most 12 kills) and time (stops by itself).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { runFfprobe } from '../../shared/ffmpeg.js';
import type { JobSpec } from '../../client/client.js';
import { generateAudio } from '../helpers/audio-media.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { makeVideo } from '../helpers/media.js';

let cluster: TestCluster | undefined;
let dir = '';

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function frameCount(file: string): Promise<number> {
  const r = await runFfprobe<{ streams: { nb_read_packets?: string }[] }>(['-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-i', file]);
  return Number(r.streams[0]?.nb_read_packets ?? 0);
}

async function duration(file: string): Promise<number> {
  const r = await runFfprobe<{ format: { duration?: string } }>(['-show_entries', 'format=duration', '-i', file]);
  return Number(r.format.duration ?? 0);
}

describe('chaos', () => {
  it('every job of every kind completes with verified outputs while workers are killed and restarted', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-chaos-'));
    cluster = await startCluster({ workers: 3, slots: 1, coordinatorArgs: ['--heartbeat-ms', '250', '--ttl-ms', '2000', '--max-attempts', '8'] });
    const c = cluster;

    const images: string[] = [];
    for (let i = 0; i < 8; i++) {
      const f = path.join(dir, `img-${i}.png`);
      await sharp({ create: { width: 300 + i, height: 200, channels: 3, background: { r: i * 30, g: 80, b: 160 } } }).png().toFile(f);
      images.push(f);
    }
    const video = await makeVideo(dir, 'clip.mp4', { duration: 6, width: 160, height: 120, fps: 25, audioChannels: 2, gop: 25 });
    const audio = await generateAudio(path.join(dir, 'talk.wav'), { source: 'speech', seconds: 40, rate: 48000, layout: 'stereo', ext: 'wav' });
    const blobs: string[] = [];
    for (let i = 0; i < 4; i++) {
      const f = path.join(dir, `blob-${i}.bin`);
      await writeFile(f, randomBytes(400_000 + i));
      blobs.push(f);
    }

    const jobs: { spec: JobSpec; files: string[]; verify: (paths: Map<string, string>) => Promise<void> }[] = [];
    for (let k = 0; k < 2; k++) {
      jobs.push({
        spec: { image: { width: 120, format: 'webp' } },
        files: images,
        verify: async (paths) => {
          expect(paths.size).toBe(images.length);
          for (const p of paths.values()) expect((await sharp(p).metadata()).width).toBe(120);
        },
      });
      jobs.push({
        spec: { video: { codec: 'h264', preset: 'ultrafast', crf: 30, segment_seconds: 1 } },
        files: [video],
        verify: async (paths) => {
          const out = [...paths.values()][0]!;
          expect(await frameCount(out)).toBe(await frameCount(video));
        },
      });
      jobs.push({
        spec: { thumbnails: { count: 6, width: 80 } },
        files: [video],
        verify: async (paths) => {
          expect([...paths.keys()].filter((n) => /\.(jpg|jpeg)$/.test(n)).length).toBe(6);
        },
      });
      jobs.push({
        spec: { audio: { codec: 'flac', normalize: true, segment_seconds: 10 } },
        files: [audio],
        verify: async (paths) => {
          const out = [...paths.values()].find((p) => p.endsWith('.flac'))!;
          expect(Math.abs((await duration(out)) - 40)).toBeLessThan(0.05);
        },
      });
      jobs.push({
        spec: { passthrough: { work_ms: 300 } },
        files: blobs,
        verify: async (paths) => {
          for (const b of blobs) expect(await readFile(paths.get(path.basename(b))!)).toEqual(await readFile(b));
        },
      });
    }

    const submitted = await Promise.all(jobs.map((j) => c.client.submit(j.spec, j.files)));
    let running = true;
    let kills = 0;
    const chaos = (async () => {
      const deadline = Date.now() + 150_000;
      while (running && kills < 12 && Date.now() < deadline) {
        await sleep(1500 + Math.random() * 1500);
        if (!running) break;
        const alive = c.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
        const victim = alive[Math.floor(Math.random() * alive.length)];
        if (!victim) continue;
        victim.child.kill('SIGKILL');
        kills++;
        await sleep(300);
        c.startWorker();
      }
    })();
    const finished = await Promise.all(submitted.map((j) => c.client.wait(j.id)));
    running = false;
    await chaos;

    for (const [i, job] of finished.entries()) {
      expect(job.state, `${job.kind}: ${job.message}`).toBe('JOB_STATE_SUCCEEDED');
      const paths = await c.client.download(job.id, path.join(dir, 'out', job.id));
      await jobs[i]!.verify(paths);
    }
    expect(kills).toBeGreaterThan(0);
    process.stdout.write(`[chaos] ${finished.length} jobs, ${kills} workers killed, ${finished.reduce((n, j) => n + j.subtasks.filter((s) => s.attempt > 1).length, 0)} subtasks re-run\n`);

    // No intermediates left on the coordinator...
    for (const j of finished) {
      expect(existsSync(path.join(c.dataDir, 'spool', 'jobs', j.id, 'st'))).toBe(false);
      expect(existsSync(path.join(c.dataDir, 'spool', 'jobs', j.id, 'work'))).toBe(false);
    }
    // ...and none on the workers once they have stopped (the replacements clean up after the killed ones).
    const pids = c.workers.map((w) => w.child.pid);
    await c.stop();
    cluster = undefined;
    const alive = c.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).length;
    expect(alive).toBe(0);
    const left = (await readdir(os.tmpdir())).filter((n) => n.startsWith('tessera-worker-') && pids.some((p) => n.endsWith(`-${p}`)));
    // SIGKILLed workers cannot clean up; the next worker to start removes their folders. Start one to sweep.
    if (left.length > 0) {
      const sweeper = await startCluster({ workers: 1, slots: 1 });
      await sweeper.stop();
    }
    const after = (await readdir(os.tmpdir())).filter((n) => n.startsWith('tessera-worker-') && pids.some((p) => n.endsWith(`-${p}`)));
    expect(after).toEqual([]);
  });
});
