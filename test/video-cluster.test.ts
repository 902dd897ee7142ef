/**
 * The video and thumbnails kinds on a real cluster: a coordinator and two 1-slot worker processes
 * (built dist/; run `npm run build` first), driven through the client library.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobEvent } from '../client/client.js';
import { LocalCluster } from '../client/local-cluster.js';
import { decodeCheck, probeMedia, probePacketSpan, probeVideoIndex } from '../shared/media/probe.js';
import { ffmpegBinaries, runFfprobe } from '../shared/ffmpeg.js';
import { makeVideo } from './helpers/media.js';

let dir: string;
let cluster: LocalCluster;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-cluster-'));
  cluster = await new LocalCluster({ workers: 2, slots: 1 }).start();
});
afterEach(async () => {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Process ids of the ffmpeg processes descending from the worker processes (processors may run in
 * child processes); with `arg`, only those whose command line has it.
 */
const workerFfmpegs = (arg?: string): Promise<number[]> => ffmpegsUnder(new Set(cluster.workers.map((w) => w.child.pid)), arg);

/** Process ids of the ffmpeg processes descending from `roots`; with `arg`, only those whose command line has it. */
async function ffmpegsUnder(roots: ReadonlySet<number | undefined>, arg?: string): Promise<number[]> {
  const procs = new Map<number, { name: string; ppid: number }>();
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const m = /^\d+ \((.*)\) (\S+) (\d+)/.exec(stat);
    // A killed ffmpeg its worker has not reaped yet (state Z) has stopped.
    if (m && m[2] !== 'Z') procs.set(Number(pid), { name: m[1]!, ppid: Number(m[3]) });
  }
  const found: number[] = [];
  for (const [pid, p] of procs) {
    if (p.name !== 'ffmpeg') continue;
    if (arg && !(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').includes(arg)) continue;
    for (let up = p.ppid, depth = 0; up > 1 && depth < 6; up = procs.get(up)?.ppid ?? 0, depth++) {
      if (roots.has(up)) {
        found.push(pid);
        break;
      }
    }
  }
  return found;
}

/**
 * The start time of process `pid` (field 22 of /proc/PID/stat, in clock ticks since boot), or
 * undefined when there is no such process or it is a zombie (it has stopped). With the pid it names
 * one process: a pid may be reused.
 */
async function liveStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The command name may hold spaces and parentheses: the fields resume after its last ')'.
  const m = /^\d+ \(.*\) (\S+) (.*)$/s.exec(stat.trim());
  if (!m || m[1] === 'Z') return undefined;
  // Fields from the 4th (ppid) on: the 22nd is at index 18.
  return m[2]!.split(' ')[18];
}

describe('video on a cluster of 2 workers', () => {
  it('encodes segments on both workers and stitches a file with every frame and the audio', async () => {
    const src = await makeVideo(dir, 'clip.mkv', { duration: 4, openGop: true, gop: 12, audioChannels: 2 });
    const job = await cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, container: 'mp4' } }, [src]);
    const events: JobEvent[] = [];
    const done = await cluster.client.wait(job.id, (e) => events.push(e));
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    const segments = done.subtasks.filter((s) => s.label.includes('segment'));
    expect(segments.length).toBeGreaterThanOrEqual(4);
    expect(new Set(segments.map((s) => s.worker)).size).toBe(2);
    // Workers report encoding progress (ffmpeg's clock): every segment sent some, and the job's
    // progress never went backwards on its way to 1.
    const progress = events.filter((e) => e.type === 'progress');
    for (const s of segments) expect(progress.some((e) => e.subtask?.id === s.id && /encoding|done/.test(e.message)), s.label).toBe(true);
    const fractions = events.filter((e) => e.type === 'progress' || e.type === 'subtask_state').map((e) => e.progress);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(events.at(-1)).toMatchObject({ final: true, progress: 1 });
    const files = await cluster.client.download(job.id, path.join(dir, 'out'));
    const out = files.get('clip.mp4')!;
    const [srcIndex, decoded, info] = await Promise.all([probeVideoIndex(src), decodeCheck(out), probeMedia(out)]);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(srcIndex.frameTimes.length);
    expect(Math.abs(info.video!.duration - (srcIndex.end - srcIndex.frameTimes[0]!))).toBeLessThan(0.041);
    expect(Math.abs(info.audio[0]!.duration - info.video!.duration)).toBeLessThan(0.05);
  });

  it('a video damaged part-way fails as INVALID_ARGUMENT naming it and where once a second worker agrees, not as DATA_LOSS retried three times; with --fps it is made, with a warning', async () => {
    const src = await makeVideo(dir, 'damaged.mp4', { width: 320, height: 240, duration: 6, gop: 50 });
    // Zeros over five frames' data from about 3.4 s, inside a chunk.
    const { packets } = await runFfprobe<{ packets: { pts_time: string; pos: string; size: string }[] }>(['-select_streams', 'v:0', '-show_entries', 'packet=pts_time,pos,size', '-i', src]);
    const at = packets.findIndex((p) => Number(p.pts_time) >= 3.4);
    const [first, last] = [packets[at]!, packets[at + 4]!];
    const bytes = await readFile(src);
    bytes.fill(0, Number(first.pos) + 100, Number(last.pos) + Number(last.size));
    await writeFile(src, bytes);
    const job = await cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 2 } }, [src]);
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_FAILED');
    expect(done.errors).toEqual([
      {
        input: 'damaged.mp4',
        code: 'INVALID_ARGUMENT',
        // Where the damage is (3.4 s, give or take the frames B-frames hold back), not the segment's start (2.0 s; review VID2).
        message: expect.stringMatching(/^damaged\.mp4: the video is damaged from about 3\.[2-4] s \(segment \d, 2\.0 s long\): \d+ of its \d+ frames cannot be decoded \(ffmpeg: .+\); repair or re-encode the file first$/),
      },
    ]);
    // Only about the frames whose data is gone: a damaged packet does not end the chunk's read.
    const lost = Number(/: (\d+) of its/.exec(done.errors[0]!.message)![1]);
    expect(lost, done.errors[0]!.message).toBeLessThanOrEqual(8);
    // Not retried as a fault: the other worker is asked once (one worker's word could be its own
    // broken decoder's), agrees, and that is the end of it.
    const failed = done.subtasks.filter((s) => s.state === 'SUBTASK_STATE_FAILED');
    expect(failed.map((s) => s.attempt)).toEqual([2]);
    expect(done.errors[0]!.message).not.toContain('asking another worker');

    // With --fps the resampling fills the frames lost by holding the one before, and every planned
    // frame comes out: the video is made, and the job warns where it is damaged.
    const resampled = await cluster.client.wait((await cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 2, fps: 24 } }, [src])).id);
    expect(resampled.state, JSON.stringify(resampled.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(resampled.warnings).toEqual([
      {
        input: 'damaged.mp4',
        message: expect.stringMatching(/^the video is damaged in segment \d \(from about 3\.[2-4] s\) \(ffmpeg: .+\): every frame was made, but frames there may show blocks or smears, or repeat the frame before where --fps filled frames the decoder lost; repair or re-encode the file for a clean copy$/),
      },
    ]);
  });

  it("keeps the source's chapters, title, audio language and subtitles, whichever way the audio goes", async () => {
    // A source with chapters, tags and a subtitle track, as a film's file has them.
    const plain = await makeVideo(dir, 'plain.mp4', { duration: 4, gop: 12, audioChannels: 2 });
    const meta = path.join(dir, 'meta.txt');
    await writeFile(meta, [';FFMETADATA1', 'title=A film', 'comment=kept', ...[['0', '1500', 'Opening'], ['1500', '4000', 'Ending']].flatMap(([start, end, title]) => ['[CHAPTER]', 'TIMEBASE=1/1000', `START=${start}`, `END=${end}`, `title=${title}`])].join('\n') + '\n');
    const srt = path.join(dir, 'subs.srt');
    await writeFile(srt, '1\n00:00:01,000 --> 00:00:02,500\nGuten Tag\n\n2\n00:00:03,000 --> 00:00:03,800\nAuf Wiedersehen\n\n');
    const src = path.join(dir, 'film.mp4');
    // Straight ffmpeg: Tessera's runner allows no ffmetadata or SRT input.
    await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-y', '-i', plain, '-i', meta, '-i', srt, '-map', '0', '-map', '2', '-map_metadata', '1', '-map_chapters', '1', '-c', 'copy', '-c:s', 'mov_text', '-metadata:s:a:0', 'language=fra', '-metadata:s:s:0', 'language=deu', src]);
    const runs = [
      { container: 'mp4', audio_codec: 'aac', subtitles: 'mov_text' },
      { container: 'mkv', audio_codec: 'copy', subtitles: 'subrip' },
      { container: 'webm', audio_codec: 'none', subtitles: 'webvtt' },
    ];
    const jobs = await Promise.all(runs.map(({ container, audio_codec }) => cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, container, audio_codec } }, [src])));
    for (const [k, job] of jobs.entries()) {
      const done = await cluster.client.wait(job.id);
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      const out = (await cluster.client.download(job.id, path.join(dir, `out-${k}`))).get(`film.${runs[k]!.container}`)!;
      type Probe = { chapters: Array<{ start_time: string; end_time: string; tags?: Record<string, string> }>; format: { tags?: Record<string, string> }; streams: Array<{ codec_type: string; codec_name: string; tags?: Record<string, string> }> };
      const probe = await runFfprobe<Probe>(['-show_chapters', '-show_entries', 'format_tags:stream=codec_type,codec_name:stream_tags', '-i', out]);
      const what = JSON.stringify(runs[k]);
      expect(probe.chapters.map((c) => [Number(c.start_time), Number(c.end_time), c.tags?.['title']]), what).toEqual([[0, 1.5, 'Opening'], [1.5, 4, 'Ending']]);
      // Tag names are upper case in Matroska.
      const tags = Object.fromEntries(Object.entries(probe.format.tags ?? {}).map(([key, v]) => [key.toLowerCase(), v]));
      expect(tags, what).toMatchObject({ title: 'A film', comment: 'kept' });
      const audio = probe.streams.filter((st) => st.codec_type === 'audio');
      if (runs[k]!.audio_codec === 'none') expect(audio, what).toEqual([]);
      else expect(audio.map((st) => st.tags?.['language']), what).toEqual(['fra']);
      // The subtitles in the container's own form, with their language, cues and times.
      const subs = probe.streams.filter((st) => st.codec_type === 'subtitle');
      expect(subs.map((st) => [st.codec_name, st.tags?.['language']]), what).toEqual([[runs[k]!.subtitles, 'deu']]);
      const cues = (await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-i', out, '-map', '0:s:0', '-f', 'srt', '-'])).stdout;
      expect(cues, what).toContain('Guten Tag');
      expect(cues, what).toContain('Auf Wiedersehen');
      // The first cue 1 s after the first picture and 1.5 s long, as in the source (a muxer may move
      // the whole file's timeline, as Matroska does for the AAC priming of a copied track).
      const timing = await runFfprobe<{ packets: Array<{ pts_time: string; duration_time?: string }> }>(['-select_streams', 's:0', '-show_entries', 'packet=pts_time,duration_time', '-i', out]);
      const videoStart = Number((await runFfprobe<{ streams: Array<{ start_time: string }> }>(['-select_streams', 'v:0', '-show_entries', 'stream=start_time', '-i', out])).streams[0]!.start_time);
      const first = timing.packets.find((pk) => Math.abs(Number(pk.duration_time) - 1.5) < 0.01);
      expect(first, `${what}: ${JSON.stringify(timing.packets)}`).toBeDefined();
      expect(Math.abs(Number(first!.pts_time) - videoStart - 1), `${what}: cue at ${first!.pts_time}, video from ${videoStart}`).toBeLessThan(0.002);
      // The pictures are all there, whatever else the file holds.
      expect((await decodeCheck(out)).frames, what).toBe(100);
    }
  });

  it('keeps every audio track of the source, encoded or copied, each with its language', async () => {
    const plain = await makeVideo(dir, 'plain.mp4', { duration: 4, gop: 12, audioChannels: 2 });
    const src = path.join(dir, 'dubbed.mp4');
    // A second, mono track at another rate, starting with the picture and ending 1 s before it.
    await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-y', '-i', plain, '-f', 'lavfi', '-i', 'sine=frequency=660:sample_rate=44100:duration=3', '-map', '0', '-map', '1', '-c:v', 'copy', '-c:a:0', 'copy', '-c:a:1', 'aac', '-metadata:s:a:0', 'language=eng', '-metadata:s:a:1', 'language=fra', src]);
    const runs = [
      { container: 'mp4', audio_codec: 'aac' },
      { container: 'mkv', audio_codec: 'copy' },
    ];
    const jobs = await Promise.all(runs.map((video) => cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, ...video } }, [src])));
    for (const [k, job] of jobs.entries()) {
      const done = await cluster.client.wait(job.id);
      const what = JSON.stringify(runs[k]);
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      // Encoded: the second track as a subtask of its own.
      expect(done.subtasks.filter((st) => st.label === 'dubbed.mp4 audio track 2'), what).toHaveLength(runs[k]!.audio_codec === 'copy' ? 0 : 1);
      const out = (await cluster.client.download(job.id, path.join(dir, `dub-${k}`))).get(`dubbed.${runs[k]!.container}`)!;
      type Probe = { streams: Array<{ channels: number; sample_rate: string; tags?: Record<string, string> }> };
      const streams = (await runFfprobe<Probe>(['-select_streams', 'a', '-show_entries', 'stream=channels,sample_rate:stream_tags=language', '-i', out])).streams;
      expect(streams.map((st) => [st.channels, st.tags?.['language']]), what).toEqual([[2, 'eng'], [1, 'fra']]);
      // Both tracks from the picture's start, the first as long as it, the second 1 s shorter.
      const [video, first, second] = await Promise.all(['v:0', 'a:0', 'a:1'].map((st) => probePacketSpan(out, st)));
      expect([first!.start - video!.start, first!.end - video!.end, second!.start - video!.start, second!.end - video!.end + 1].map((d) => Math.abs(d) < 0.05), what).toEqual([true, true, true, true]);
    }
  });

  it('makes thumbnails and a sprite sheet across both workers', async () => {
    const src = await makeVideo(dir, 'thumbs.mp4', { duration: 8 });
    const job = await cluster.client.submit({ thumbnails: { every: 0.5, width: 64, sprite: '4x4' } }, [src]);
    const done = await cluster.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(new Set(done.subtasks.map((s) => s.worker)).size).toBe(2);
    const names = done.outputs.map((o) => o.name).sort();
    expect(names.filter((n) => n.startsWith('thumb-'))).toHaveLength(16);
    expect(names).toContain('sprite.jpg');
    expect(names).toContain('thumbnails.vtt');
  });

  it('cancel stops the ffmpeg processes on the workers', async () => {
    const src = await makeVideo(dir, 'long.mp4', { duration: 20, width: 640, height: 360 });
    const job = await cluster.client.submit({ video: { preset: 'veryslow', segment_seconds: 10, audio_codec: 'none' } }, [src]);
    // Wait until both workers run an encoder (on a loaded machine one may still be starting: then
    // at least one must run). Encoders only: a worker's short ffmpeg runs before its encode (a
    // probe, a cut) may be gone by the next scan. Every encoder seen is recorded with its start
    // time: after the cancel each must be gone, by pid, wherever it was re-parented to (an ffmpeg
    // whose processor died goes to init and would no longer show under a worker).
    const encoders = new Map<number, string>();
    const until = Date.now() + 30_000;
    for (;;) {
      const found = await workerFfmpegs('libx264');
      for (const pid of found) {
        const started = await liveStartTime(pid);
        if (started !== undefined) encoders.set(pid, started);
      }
      if (found.length >= 2 || Date.now() >= until) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(encoders.size).toBeGreaterThanOrEqual(1);
    const t0 = Date.now();
    await cluster.client.cancel(job.id);
    // Gone: no such process, a zombie (killed, not reaped yet), or the pid reused by another.
    const alive = async (): Promise<number[]> => {
      const left: number[] = [];
      for (const [pid, started] of encoders) if ((await liveStartTime(pid)) === started) left.push(pid);
      return left;
    };
    let goneBy = -1;
    while (Date.now() - t0 < 15_000) {
      const scanStart = Date.now();
      if ((await alive()).length === 0 && (await workerFfmpegs()).length === 0) {
        goneBy = scanStart - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await alive(), 'encoders still running after the cancel').toEqual([]);
    // Nor did a worker start another ffmpeg for the cancelled job.
    expect(await workerFfmpegs()).toEqual([]);
    process.stdout.write(`[video] cancel: ${encoders.size} encoder(s) gone ${goneBy} ms after the cancel was sent\n`);
    const final = await cluster.client.wait(job.id);
    expect(final.state).toBe('JOB_STATE_CANCELLED');
  });

  it('a coordinator stopped while it stitches exits at once; restarted, it stitches again and leaves no half-made output', async () => {
    // The cluster's ffmpeg is a wrapper that, while `freeze` exists, stops itself before it runs a
    // stitch (segments joined by ffmpeg's concat demuxer and stream copy, run by the coordinator): the
    // coordinator is then told to stop in the middle of a merge, whatever the host's speed.
    // Everything else (the workers' encoders read their chunks through concat too) runs the real ffmpeg.
    const freeze = path.join(dir, 'freeze');
    const wrapper = path.join(dir, 'ffmpeg');
    await writeFile(freeze, '');
    await writeFile(wrapper, `#!/bin/sh\ncase " $* " in *" concat "*" -c copy "*) [ -e '${freeze}' ] && kill -STOP $$ ;; esac\nexec '${ffmpegBinaries().ffmpeg}' "$@"\n`, { mode: 0o755 });
    await cluster.stop();
    cluster = await new LocalCluster({ workers: 2, slots: 1, env: { FFMPEG_PATH: wrapper } }).start();
    const src = await makeVideo(dir, 'stitch.mkv', { duration: 4, gop: 12, audioChannels: 2 });
    const job = await cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, container: 'mp4' } }, [src]);
    const coordinator = cluster.coordinator!;
    let stitcher: number | undefined;
    for (const until = Date.now() + 90_000; stitcher === undefined && Date.now() < until; ) {
      for (const pid of await readdir('/proc')) {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        // Stopped (T), a child of the coordinator.
        if (/^\d+ \(.*\) T (\d+) /.exec(stat)?.[1] === String(coordinator.child.pid)) stitcher = Number(pid);
      }
      if (stitcher === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(stitcher, 'the coordinator never ran the stitch').toBeDefined();
    const started = await liveStartTime(stitcher!);
    // The segments as they stand while their stitch is frozen: every one encoded (some maybe twice,
    // a straggler's speculative copy on a busy host).
    const encoded = (await cluster.client.getJob(job.id)).subtasks.filter((s) => s.label.includes('segment')).map((s) => [s.label, s.state, s.attempt]);
    expect(encoded.every(([, state]) => state === 'SUBTASK_STATE_SUCCEEDED'), JSON.stringify(encoded)).toBe(true);
    const t0 = Date.now();
    coordinator.child.kill('SIGTERM');
    const code = await coordinator.exited;
    const exitMs = Date.now() - t0;
    // It did not wait for the frozen merge (nor for its grace period), and left no ffmpeg behind.
    expect(code).toBe(0);
    expect(exitMs).toBeLessThan(4000);
    expect(await liveStartTime(stitcher!)).not.toBe(started);
    await rm(freeze);
    await cluster.startCoordinator();
    const done = await cluster.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    // Segments encoded before the stop were not encoded again.
    expect(done.subtasks.filter((s) => s.label.includes('segment')).map((s) => [s.label, s.state, s.attempt])).toEqual(encoded);
    const files = await cluster.client.download(job.id, path.join(dir, 'stitched'));
    expect([...files.keys()]).toEqual(['stitch.mp4']);
    const out = files.get('stitch.mp4')!;
    const [srcIndex, decoded, info] = await Promise.all([probeVideoIndex(src), decodeCheck(out), probeMedia(out)]);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(srcIndex.frameTimes.length);
    expect(Math.abs(info.audio[0]!.duration - info.video!.duration)).toBeLessThan(0.05);
    // The stopped merge's folder went with the job's other intermediates once its end was stored.
    const leftovers = async (): Promise<string[]> => (await readdir(cluster.dataDir, { recursive: true })).filter((f) => /(^|\/)merge-\d+-/.test(String(f)));
    for (const until = Date.now() + 10_000; (await leftovers()).length > 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
    expect(await leftovers()).toEqual([]);
    process.stdout.write(`[video] coordinator stopped mid-stitch: exited in ${exitMs} ms; restarted, the job finished\n`);
  });
});
