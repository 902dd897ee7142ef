/**
 * A video job in a cluster where some workers are older than the coordinator (a rolling upgrade).
 *
 * The coordinator cuts a video into NUT chunks (exact frame times), and has the audio encoded beside
 * the first segment, only where every worker that can take video work advertises the features
 * (`video-nut-chunks`, `video-audio-beside-segment`); with an older worker among them it cuts
 * Matroska, which newer workers read too, and plans the audio as a subtask of its own. Segments
 * that rely on a feature require it, so an older worker that joins afterwards is never sent one;
 * a lossless job's segments require `video-lossless`, which older workers lack. Real coordinator and worker over real gRPC on loopback; the
 * older worker is a Connect stream written by hand, registering without `features`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { countVideoPackets, probeMedia } from '../../shared/media/probe.js';
import type { VideoSubtaskPlan } from '../../shared/media/video-plan.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { CoordinatorMessage__Output } from '../../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { WorkerMessage } from '../../shared/proto/generated/tessera/v1/WorkerMessage.js';
import { Worker } from '../../worker/worker.js';
import { makeVideo } from '../helpers/media.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * A worker from before `Capabilities.features`: registers for video with x264, records the plan of
 * every assignment it gets and, once it has one, goes away (its subtask is queued again).
 */
function olderWorker(address: string) {
  const { proto } = loadTesseraProto();
  const client = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Connect(md: grpc.Metadata): grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output> };
  const call = client.Connect(new grpc.Metadata());
  const plans: VideoSubtaskPlan[] = [];
  let registered = false;
  call.on('data', (m: CoordinatorMessage__Output) => {
    if (m.registered) registered = true;
    for (const a of m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])) {
      plans.push(JSON.parse(a.plan_json) as VideoSubtaskPlan);
      call.cancel();
    }
  });
  call.on('error', () => undefined);
  call.write({ register: { name: 'older', slots: 1, instance_id: 'older', capabilities: { kinds: ['video'], encoders: ['libx264', 'aac'], cpu_count: 1, labels: {} } } });
  return {
    plans,
    isRegistered: () => registered,
    close(): void {
      call.cancel();
      client.close();
    },
  };
}

async function cluster(prefix: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const client = new TesseraClient({ address });
  cleanups.push(async () => client.close());
  const startWorker = async (): Promise<void> => {
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'current' });
    worker.start();
    cleanups.push(() => worker.close());
    await worker.registered;
  };
  return { dir, address, client, startWorker };
}

describe('video chunks with workers of two versions', () => {
  it('cuts Matroska while an older worker can take video work, and the current worker reads it', async () => {
    const c = await cluster('tessera-mixed-old-');
    const older = olderWorker(c.address);
    cleanups.push(async () => older.close());
    await expect.poll(older.isRegistered, { timeout: 10_000, interval: 10 }).toBe(true);
    await c.startWorker();
    const src = await makeVideo(c.dir, 'clip.mp4', { duration: 3, gop: 15, audioChannels: 2 });
    // The audio left out: the first subtask the older worker is sent is a segment.
    const job = await c.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, audio_codec: 'none' } }, [src]);
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    // The older worker was sent a segment (then went away); it names Matroska chunks.
    const segments = older.plans.filter((p) => p.type === 'segment');
    expect(segments.length).toBeGreaterThan(0);
    for (const p of segments) {
      expect(p.chunks.length).toBeGreaterThan(0);
      for (const name of p.chunks) expect(name).toMatch(/\.mkv$/);
    }
    const files = await c.client.download(job.id, path.join(c.dir, 'out'));
    expect(await countVideoPackets([...files.values()][0]!)).toBe(75);
  });

  it('has the audio encoded as a subtask of its own while an older worker can take video work', async () => {
    const c = await cluster('tessera-mixed-audio-');
    const older = olderWorker(c.address);
    cleanups.push(async () => older.close());
    await expect.poll(older.isRegistered, { timeout: 10_000, interval: 10 }).toBe(true);
    await c.startWorker();
    const src = await makeVideo(c.dir, 'clip.mp4', { duration: 3, gop: 15, audioChannels: 2 });
    const job = await c.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1 } }, [src]);
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks.map((s) => s.label).filter((l) => l.includes('audio'))).toEqual(['clip.mp4 audio']);
    for (const p of older.plans) if (p.type === 'segment') expect(p.audio).toBeUndefined();
    const files = await c.client.download(job.id, path.join(c.dir, 'out'));
    const out = [...files.values()][0]!;
    expect(await countVideoPackets(out)).toBe(75);
    expect((await probeMedia(out)).audio).toHaveLength(1);
  });

  it('cuts NUT when every worker reads it, and never sends those segments to an older worker that joins', async () => {
    const c = await cluster('tessera-mixed-new-');
    await c.startWorker();
    const src = await makeVideo(c.dir, 'clip.mp4', { duration: 5, gop: 15, audioChannels: 2 });
    const job = await c.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1 } }, [src]);
    // Joins once the job is planned, while its segments are still queued for the one-slot worker.
    let older: ReturnType<typeof olderWorker> | undefined;
    const done = await c.client.wait(job.id, (e) => {
      if (!older && e.type === 'subtask_state') {
        older = olderWorker(c.address);
        cleanups.push(async () => older!.close());
      }
    });
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(older?.isRegistered()).toBe(true);
    // Five segments, the first with the audio beside it.
    expect(done.subtasks.map((s) => s.label)).toEqual(['clip.mp4 segment 1 (0.0s-1.0s) and audio', ...[2, 3, 4, 5].map((n) => `clip.mp4 segment ${n} (${n - 1}.0s-${n}.0s)`)]);
    expect(older!.plans).toEqual([]);
    expect(new Set(done.subtasks.map((s) => s.worker))).toEqual(new Set(['current']));
    const files = await c.client.download(job.id, path.join(c.dir, 'out'));
    const out = [...files.values()][0]!;
    expect(await countVideoPackets(out)).toBe(125);
    expect((await probeMedia(out)).audio).toHaveLength(1);
  });

  it('sends a lossless job\'s segments only to workers that know lossless: never to an older one, which would encode them lossy', async () => {
    const c = await cluster('tessera-mixed-lossless-');
    const older = olderWorker(c.address);
    cleanups.push(async () => older.close());
    await expect.poll(older.isRegistered, { timeout: 10_000, interval: 10 }).toBe(true);
    await c.startWorker();
    const src = await makeVideo(c.dir, 'clip.mp4', { duration: 3, gop: 15 });
    const job = await c.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, audio_codec: 'none', lossless: true } }, [src]);
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(older.plans).toEqual([]);
    expect(new Set(done.subtasks.map((s) => s.worker))).toEqual(new Set(['current']));
    const files = await c.client.download(job.id, path.join(c.dir, 'out'));
    expect(await countVideoPackets([...files.values()][0]!)).toBe(75);
  });
});
