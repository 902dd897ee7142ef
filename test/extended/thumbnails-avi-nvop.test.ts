/**
 * An XviD/DivX AVI codes a frame that repeats the one before (a still stretch, a capture's
 * duplicated frame) as an N-VOP: a chunk of a few bytes, "vop_coded = 0". It is a frame of the
 * stream (ffprobe lists it as a packet with its own time, and the AVI's frame count holds it), but
 * ffmpeg's decoder outputs nothing for it. Picked by frame number, counting the probe's packets
 * while `select='eq(n,...)'` counts decoded frames, every thumbnail after one was a frame too late
 * and the last ones did not exist (DATA_LOSS): such a file is picked by time (`-ss`), where each is
 * the frame shown at its time.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-nvop-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const VOP = Buffer.from([0, 0, 1, 0xb6]);

/** The header of a VOP (`vop` after its start code) turned into an N-VOP: its times kept, vop_coded 0. */
function notCoded(vop: Buffer): Buffer {
  const bit = (i: number): number => (vop[i >> 3]! >> (7 - (i & 7))) & 1;
  const out: number[] = [];
  let i = 0;
  out.push(bit(i++), bit(i++)); // vop_coding_type
  for (;;) { const b = bit(i++); out.push(b); if (b === 0) break; } // modulo_time_base
  out.push(bit(i++)); // marker
  for (let k = 0; k < 5; k++) out.push(bit(i++)); // vop_time_increment (resolution 25: 5 bits)
  out.push(bit(i++)); // marker
  out.push(0); // vop_coded = 0
  out.push(0); // next_start_code stuffing: 0 then 1s
  while (out.length % 8) out.push(1);
  return Buffer.from(Array.from({ length: out.length / 8 }, (_, j) => parseInt(out.slice(8 * j, 8 * j + 8).join(''), 2)));
}

const tiny = (f: string | Buffer): Promise<Buffer> => sharp(f).resize(64, 48, { fit: 'fill' }).removeAlpha().raw().toBuffer();

/** The AVI (2.2 s, 55 frames, chunks 5-9 N-VOPs), and what a player shows at a time: the chunk number of the decoded frame. */
async function xvidWithNVops(): Promise<{ src: string; at: (t: number) => number; nearest: (thumb: Buffer) => number }> {
  // 2 s at 25 fps with frame 4 held for five more frames (55 frames, 2.2 s); the held ones coded as N-VOPs.
  const raw = path.join(dir, 'dup.m4v');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=25:d=2', '-vf', 'loop=loop=5:size=1:start=4,setpts=N/25/TB', '-c:v', 'mpeg4', '-bf', '0', '-g', '100', '-f', 'm4v', raw]);
  const bytes = await readFile(raw);
  const starts: number[] = [];
  for (let at = bytes.indexOf(VOP); at >= 0; at = bytes.indexOf(VOP, at + 4)) starts.push(at);
  const pieces: Buffer[] = [bytes.subarray(0, starts[0])];
  starts.forEach((s, k) => {
    const vop = bytes.subarray(s + 4, starts[k + 1] ?? bytes.length);
    pieces.push(VOP, k >= 5 && k <= 9 ? notCoded(vop) : vop);
  });
  await writeFile(raw, Buffer.concat(pieces));
  const src = path.join(dir, 'xvid.avi');
  // (ffmpeg itself: runFfmpeg reads only the formats a job may send, and a raw .m4v is not one.)
  await promisify(execFile)('ffmpeg', ['-y', '-v', 'error', '-r', '25', '-i', raw, '-c', 'copy', src]);
  const packets = await runFfprobe<{ packets?: unknown[] }>(['-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-i', src]);
  expect(packets.packets).toHaveLength(55);
  // What a player shows at each time: the decoded frames, by their times (frame_pts: the chunk number).
  const shown = await mkdtemp(path.join(dir, 'shown-'));
  await runFfmpeg(['-y', '-v', 'error', '-i', src, '-vsync', 'passthrough', '-frame_pts', '1', path.join(shown, '%d.png')]);
  const decoded = (await readdir(shown)).map((f) => Number.parseInt(f, 10)).sort((a, b) => a - b);
  expect(decoded).toHaveLength(50); // the N-VOPs (chunks 5-9) decode to nothing
  const pictures = new Map(await Promise.all(decoded.map(async (n) => [n, await tiny(path.join(shown, `${n}.png`))] as const)));
  const at = (t: number): number => decoded.find((n) => n >= Math.round(t * 25)) ?? decoded[decoded.length - 1]!;
  const nearest = (thumb: Buffer): number => {
    let best = -1;
    let bestD = Infinity;
    for (const [n, p] of pictures) {
      const d = p.reduce((s, v, i) => s + Math.abs(v - thumb[i]!), 0);
      if (d < bestD) [best, bestD] = [n, d];
    }
    return best;
  };
  return { src, at, nearest };
}

async function thumbsOf(every: number): Promise<{ errors: unknown[]; shown: number[]; want: number[] }> {
  const { src, at, nearest } = await xvidWithNVops();
  const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every, width: 64 }), [src], { dir });
  const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-')).sort((a, b) => a.name.localeCompare(b.name));
  const shown = await Promise.all(thumbs.map(async (o) => nearest(await tiny(o.path))));
  const want = Array.from({ length: Math.ceil(2.2 / every) }, (_, i) => at(i * every));
  return { errors: run.errors, shown, want };
}

describe('thumbnails of an XviD-style AVI with N-VOPs (repeated frames coded as "not coded")', () => {
  it('--every 0.5: the last thumbnail (the last frame) is made, not DATA_LOSS "no frame came out"', async () => {
    const got = await thumbsOf(0.5);
    // Observed: [{ code: 'DATA_LOSS', message: 'xvid.avi: no frame came out for thumb-00005.jpg' }]: frame number 54 asked, 50 decoded.
    expect(got.errors).toEqual([]);
    expect(got.shown.length).toBe(got.want.length);
  }, 60_000);

  it('--every 0.6: each thumbnail after the repeated frames is the frame shown at its time, not 5 frames (0.2 s) later', async () => {
    const got = await thumbsOf(0.6);
    expect(got.errors).toEqual([]);
    // Wanted (chunk numbers) [0, 15, 30, 45]; observed [0 or 1, 20, 35, 50]. Within a frame (JPEG noise on a tiny picture).
    expect(got.shown.map((n, i) => Math.abs(n - got.want[i]!) <= 1), `shown ${got.shown.join(', ')}, wanted ${got.want.join(', ')}`).toEqual(got.want.map(() => true));
  }, 60_000);
});
