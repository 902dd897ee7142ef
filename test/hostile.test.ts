/**
 * A corpus of hostile inputs through a real cluster: each gets its documented status and message,
 * the coordinator and workers stay up, the next job succeeds, and no byte of a secret file appears
 * in any output. Also the hardened ffmpeg runner against inputs, playlists and concat lists that
 * point at /etc/passwd, at local files with a media extension, and at a port on 127.0.0.1 where a
 * server of the test's own listens and counts connections (never any other address): nothing
 * hostile may make anything connect to it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegBinaries, runFfmpeg } from '../shared/ffmpeg.js';
import { loadTesseraProto } from '../shared/proto.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { errorInput } from '../shared/errors.js';

let cluster: TestCluster;
let dir: string;
const SECRET = '/etc/passwd';
/**
 * A server on 127.0.0.1 that every URL in the hostile files points at: it counts the connections
 * made to it and closes each at once (so a client that did connect fails only after it was counted).
 */
let trap: net.Server | undefined;
let trapPort: number;
let connections = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-hostile-'));
  trap = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  trapPort = await new Promise<number>((resolve) => trap!.listen(0, '127.0.0.1', () => resolve((trap!.address() as net.AddressInfo).port)));
  cluster = await startCluster({ workers: 2, slots: 1 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  await new Promise((resolve) => (trap ? trap.close(resolve) : resolve(undefined)));
  await rm(dir, { recursive: true, force: true });
});

const write = async (name: string, data: Buffer | string): Promise<string> => {
  const f = path.join(dir, name);
  await writeFile(f, data);
  return f;
};

/** A PNG whose header declares `w` x `h` with a few bytes of image data (a decompression bomb's header). */
function pngDeclaring(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0))]);
}

/** Sets every mvhd/mdhd duration of an MP4 to 2^32-1 ticks at a timescale of 1: 136 years. */
function absurdDuration(mp4: Buffer): Buffer {
  const out = Buffer.from(mp4);
  for (const box of ['mvhd', 'mdhd']) {
    for (let i = out.indexOf(box); i >= 0; i = out.indexOf(box, i + 4)) {
      if (out[i + 4] !== 0) continue; // version 0 only: 32-bit fields
      out.writeUInt32BE(1, i + 16); // timescale
      out.writeUInt32BE(0xffffffff, i + 20); // duration
    }
  }
  return out;
}

/** An HLS playlist of these segments. */
const playlist = (...segments: string[]): string => `#EXTM3U\n#EXT-X-TARGETDURATION:10\n${segments.map((s) => `#EXTINF:10,\n${s}\n`).join('')}#EXT-X-ENDLIST\n`;
const hls = (): string => playlist(SECRET, `http://127.0.0.1:${trapPort}/seg.ts`);
const ffconcat = (): string => `ffconcat version 1.0\nfile '${SECRET}'\nfile 'http://127.0.0.1:${trapPort}/x.mp4'\n`;

async function submitError(kind: 'image' | 'video' | 'audio', files: string[], params: object = {}): Promise<{ code: number; details: string }> {
  try {
    await cluster.client.submit({ [kind]: params }, files);
  } catch (err) {
    return err as { code: number; details: string };
  }
  throw new Error('submit succeeded');
}

describe('hostile inputs through a real cluster', () => {
  it('an image batch: each bad file fails as its own item with its status, the good ones (by content) succeed', async () => {
    const good = await sharp({ create: { width: 80, height: 60, channels: 3, background: '#c63' } }).png().toBuffer();
    const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#888', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg().toBuffer();
    const files = [
      await write('good.png', good),
      await write('looks-like-text.txt', good), // wrong extension: recognised by content, processed
      await write('empty.png', Buffer.alloc(0)),
      await write('random.jpg', Buffer.concat([Buffer.from([1, 2, 3, 4]), randomBytes(4096)])),
      await write('truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 3))),
      await write('truncated.png', good.subarray(0, 40)),
      await write('bomb.png', pngDeclaring(100_000, 100_000)),
      await write('external.svg', `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><image xlink:href="file://${SECRET}" width="10" height="10"/><image xlink:href="http://127.0.0.1:${trapPort}/x.png"/></svg>`),
      await write('playlist.png', hls()),
    ];
    const job = await cluster.client.submit({ image: { width: 40, format: 'png' } }, files);
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(done.outputs.map((o) => o.name).sort()).toEqual(['good.png', 'looks-like-text.png']);
    const errors = Object.fromEntries(done.errors.map((e) => [e.input, e]));
    const expected: Record<string, [string, RegExp]> = {
      'empty.png': ['INVALID_ARGUMENT', /empty\.png: the file is empty/],
      'random.jpg': ['INVALID_ARGUMENT', /random\.jpg: content is not an accepted image format \(unrecognised binary data/],
      'truncated.jpg': ['INVALID_ARGUMENT', /truncated\.jpg/],
      'truncated.png': ['INVALID_ARGUMENT', /truncated\.png: not a decodable image/],
      'bomb.png': ['RESOURCE_EXHAUSTED', /bomb\.png: 100000x100000 = 10000000000 pixels is over the limit --max-pixels=/],
      'external.svg': ['INVALID_ARGUMENT', /external\.svg: SVG is not accepted/],
      'playlist.png': ['INVALID_ARGUMENT', /playlist\.png: HLS playlists are not accepted/],
    };
    expect(Object.keys(errors).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, [code, message]] of Object.entries(expected)) {
      expect(errors[name]!.code, name).toBe(code);
      expect(errors[name]!.message, name).toMatch(message);
    }
    const out = path.join(dir, 'out-images');
    await cluster.client.download(job.id, out);
    const secret = await readFile(SECRET);
    for (const f of await readdir(out)) expect((await readFile(path.join(out, f))).includes(secret.subarray(0, 16))).toBe(false);
    // Nothing fetched the SVG's or the playlist's URL.
    expect(connections).toBe(0);
  });

  it('video: playlists, concat lists, truncated files and absurd durations or sizes are refused at submit, naming the file and limit', async () => {
    const mp4 = await write('src.mp4', '');
    await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc=s=64x48:d=1:r=10', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-y', mp4]);
    const bytes = await readFile(mp4);
    const cases: [string, Buffer | string, number, RegExp][] = [
      ['list.m3u8', hls(), grpc.status.INVALID_ARGUMENT, /list\.m3u8: HLS playlists are not accepted/],
      ['concat.mp4', ffconcat(), grpc.status.INVALID_ARGUMENT, /concat\.mp4: ffconcat lists are not accepted/],
      ['truncated.mp4', bytes.subarray(0, 200), grpc.status.INVALID_ARGUMENT, /truncated\.mp4: not a readable media file/],
      ['forever.mp4', absurdDuration(bytes), grpc.status.RESOURCE_EXHAUSTED, /forever\.mp4: duration \d+\.\d s is over the limit --max-media-seconds=/],
      ['huge.y4m', Buffer.concat([Buffer.from('YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n'), Buffer.alloc(4096)]), grpc.status.RESOURCE_EXHAUSTED, /huge\.y4m: 16000x16000 video is over the limit --max-video-pixels=/],
    ];
    for (const [name, data, code, message] of cases) {
      const err = await submitError('video', [await write(name, data)]);
      expect(err.code, name).toBe(code);
      expect(err.details, name).toMatch(message);
      expect(err.details).not.toContain('root:');
    }
    // Audio's allow-list refuses a playlist too.
    expect((await submitError('audio', [path.join(dir, 'list.m3u8')])).details).toMatch(/HLS playlists are not accepted/);
    expect(connections).toBe(0);
  });

  it('names with ../ or absolute paths, oversized and malformed messages, unknown kinds and out-of-range params', async () => {
    const { proto } = loadTesseraProto();
    const raw = new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 }) as JobServiceClient;
    const submitRaw = (messages: object[]): Promise<{ code: number; details: string; input?: string }> =>
      new Promise((resolve) => {
        const call = raw.SubmitJob({ deadline: Date.now() + 20_000 }, (err) => resolve(err ? { code: err.code, details: err.details, input: errorInput(err) } : { code: 0, details: 'ok' }));
        for (const m of messages) call.write(m);
        call.end();
      });
    for (const name of ['../escape.png', '/etc/passwd', '..', 'a\\b.png']) {
      const r = await submitRaw([{ spec: { image: { width: 10 } } }, { input: { name, size: 3 } }, { data: Buffer.from('abc') }, { input_end: {} }]);
      expect(r.code, name).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.details, name).toMatch(/input name .* (must not contain slashes|is not a plain file name)/);
      // The name refused rides in the trailer, as every refusal of one input's does.
      expect(r.input, name).toBe(name);
    }
    // Names that read as another (invisible, or drawn as slashes), blank ones, and names of
    // Tessera's own temporary files (one job's cleanup in a shared output folder would take another's output).
    for (const [name, why] of [
      ['invoice\u202Egpj.exe', 'contains invisible or formatting characters'],
      ['a\u200Bb.png', 'contains invisible or formatting characters'],
      ['a\u2215b.png', 'contains a character drawn as a slash'],
      ['a\uFF0Fb.png', 'contains a character drawn as a slash'],
      ['\u00A0 ', 'is blank'],
      ['.tessera-0123-x.part', 'is reserved'],
      ['.x.tessera-part', 'is reserved'],
      // Names a client on Windows could not download as a file: devices, forbidden characters, a trailing dot or space.
      ['CON', 'is the device CON on Windows'],
      ['nul.txt', 'is the device NUL on Windows'],
      ['COM1.png', 'is the device COM1 on Windows'],
      ['lpt9 .tar.gz', 'is the device LPT9 on Windows'],
      ['a:b.txt', 'contains ":", which Windows does not allow'],
      ['what?.png', 'contains "\\?", which Windows does not allow'],
      ['a<b>.png', 'contains "<", which Windows does not allow'],
      ['say"hi".png', 'contains """, which Windows does not allow'],
      ['a|b.png', 'contains "\\|", which Windows does not allow'],
      ['star*.png', 'contains "\\*", which Windows does not allow'],
      ['photo.', 'ends with a dot, which Windows drops'],
      ['photo.png ', 'ends with a space, which Windows drops'],
    ]) {
      const r = await submitRaw([{ spec: { image: { width: 10 } } }, { input: { name, size: 3 } }, { data: Buffer.from('abc') }, { input_end: {} }]);
      expect(r.code, name).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.details, name).toMatch(new RegExp(`^input name ".*" ${why}`));
      // The name refused rides in the trailer, as every refusal of one input's does.
      expect(r.input, name).toBe(name);
    }
    // Two inputs of one job that one file system would take for one file: case, Unicode form.
    const two = (a: string, b: string): object[] => [{ spec: { image: { width: 10 } } }, { input: { name: a, size: 3 } }, { data: Buffer.from('abc') }, { input_end: {} }, { input: { name: b, size: 3 } }, { data: Buffer.from('abc') }, { input_end: {} }];
    expect(await submitRaw(two('a.png', 'a.png'))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'input name "a.png" is used twice in this job' });
    for (const [a, b] of [
      ['Photo.JPG', 'photo.jpg'],
      ['caf\u00e9.png', 'cafe\u0301.png'],
    ]) {
      expect(await submitRaw(two(a!, b!)), b).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: `input name "${b}" differs from the job's input "${a}" only in case or Unicode form: on macOS and Windows they would be one file; rename one of them`,
      });
    }
    // Names are limited in bytes, not characters: 130 x "é" is 260 bytes, past what a file system takes.
    for (const name of ['x'.repeat(300), 'é'.repeat(130)]) {
      expect(await submitRaw([{ spec: { image: { width: 10 } } }, { input: { name, size: 1 } }])).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/input name ".*\.\.\." is longer than 200 bytes \(UTF-8\)/) });
    }
    expect(await submitRaw([{ spec: {} }])).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/spec\.params: no job kind given that this coordinator knows/) });
    expect(await submitRaw([{ spec: { image: { width: -5 } } }])).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/image\.width/) });
    expect(await submitRaw([{ spec: { video: { crf: 1000 } } }])).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/crf: 1000 is outside/) });
    // Over the 16 MiB message limit: refused by grpc-js before any handler runs.
    expect(await submitRaw([{ spec: { image: { width: 10 }, label: 'x'.repeat(17 * 1024 * 1024) } }])).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    raw.close();

    // Raw bytes that are not a valid protobuf, through a generic client.
    const Generic = grpc.makeGenericClientConstructor(
      { GetJob: { path: '/tessera.v1.JobService/GetJob', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
      'Raw',
    );
    const generic = new Generic(cluster.address, grpc.credentials.createInsecure()) as unknown as { GetJob: (req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void; close(): void };
    for (const junk of [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0xff, 0xff, 0xff]), randomBytes(64)]) {
      const err = await new Promise<grpc.ServiceError | null>((resolve) => generic.GetJob(junk, new grpc.Metadata(), { deadline: Date.now() + 5000 }, resolve));
      // Either the bytes fail to decode (INTERNAL from grpc-js), or they decode to a job id that does
      // not exist, or to none at all (protobufjs reads a length past the end as an empty string).
      expect([grpc.status.INTERNAL, grpc.status.NOT_FOUND, grpc.status.INVALID_ARGUMENT], junk.toString('hex')).toContain(err?.code);
    }
    generic.close();
  });

  it('after all that, the coordinator and both workers are up and the next job succeeds', async () => {
    expect(cluster.coordinator!.child.exitCode).toBeNull();
    for (const w of cluster.workers) expect(w.child.exitCode).toBeNull();
    expect((await cluster.client.listWorkers()).filter((w) => w.state === 'active')).toHaveLength(2);
    const file = await write('after.png', await sharp({ create: { width: 50, height: 50, channels: 3, background: '#0a0' } }).png().toBuffer());
    const job = await cluster.client.submit({ image: { width: 25 } }, [file]);
    expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
  });
});

/** Runs ffmpeg through the runner: the error it ends with (undefined if it succeeded). */
const runnerError = (args: string[]): Promise<Error | undefined> =>
  runFfmpeg(args).then(
    () => undefined,
    (e: Error) => e,
  );

/** Copies every stream's packets, untouched, into one raw file: whatever the input let ffmpeg read ends up there. */
const copyAll = (input: string, out: string, before: string[] = []): string[] => [...before, '-i', input, '-map', '0', '-c', 'copy', '-f', 'data', '-y', out];

describe('hardened ffmpeg runner', () => {
  it('never connects anywhere: a URL input, playlists and concat lists pointing at a listening port on 127.0.0.1', async () => {
    const url = `http://127.0.0.1:${trapPort}`;
    const cases: [string, string[]][] = [
      ['a URL as the input', copyAll(`${url}/direct.mp4`, path.join(dir, 'direct.out'))],
      ['an HLS segment', copyAll(await write('net.m3u8', playlist(`${url}/seg.ts`)), path.join(dir, 'net-m3u8.out'))],
      ['an HLS key', copyAll(await write('key.m3u8', `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-KEY:METHOD=AES-128,URI="${url}/key"\n#EXTINF:10,\n${url}/seg.ts\n#EXT-X-ENDLIST\n`), path.join(dir, 'key.out'))],
      // With the concat demuxer's own check of file names off: only the runner's protocol list stops it.
      ['an ffconcat entry', copyAll(await write('net.ffconcat', `ffconcat version 1.0\nfile '${url}/x.mp4'\n`), path.join(dir, 'net-concat.out'), ['-safe', '0'])],
    ];
    const before = connections;
    for (const [what, args] of cases) {
      const err = await runnerError(args);
      expect(err, what).toBeInstanceOf(Error);
      expect(connections, what).toBe(before);
    }
    // The same URL input through ffmpeg without the runner does connect: the server counts, and
    // what kept the runs above off it is the runner's hardening.
    await new Promise((resolve) => execFile(ffmpegBinaries().ffmpeg, ['-hide_banner', '-nostdin', '-i', `${url}/direct.mp4`, '-f', 'null', '-'], { timeout: 30_000 }, resolve));
    expect(connections).toBeGreaterThan(before);
  });

  it('an m3u8 or ffconcat list pointing at /etc/passwd reads nothing of it into its output', async () => {
    const secret = await readFile(SECRET, 'utf8');
    for (const [name, text, before] of [
      ['p.m3u8', playlist(SECRET), []],
      ['c.ffconcat', `ffconcat version 1.0\nfile '${SECRET}'\n`, []],
      ['unsafe.ffconcat', `ffconcat version 1.0\nfile '${SECRET}'\n`, ['-safe', '0']],
    ] as const) {
      const input = await write(name, text);
      const out = path.join(dir, `${name}.out.txt`);
      const err = await runnerError(copyAll(input, out, [...before]));
      expect(err, name).toBeInstanceOf(Error);
      expect(err!.message).toMatch(/failed/);
      expect(err!.message).not.toContain(secret.split('\n')[0]!);
      const written = await readFile(out, 'utf8').catch(() => '');
      expect(written.includes(secret.slice(0, 16))).toBe(false);
    }
  });

  it('an m3u8 naming local files with a media extension (a secret copied to secret.ts, a private MPEG-TS) reads neither into its output', async () => {
    // /etc/passwd under a name that ffmpeg's HLS extension check lets through.
    await copyFile(SECRET, path.join(dir, 'secret.ts'));
    const secret = await readFile(SECRET);
    // Someone else's media: MPEG-TS with an MP2 audio track whose frames are known.
    const privateEs = path.join(dir, 'private.mp2');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:d=1', '-c:a', 'mp2', '-f', 'mp2', '-y', privateEs]);
    await runFfmpeg(['-i', privateEs, '-c', 'copy', '-f', 'mpegts', '-y', path.join(dir, 'private.ts')]);
    const frames = await readFile(privateEs);
    for (const [name, segment, bytes] of [
      ['secret.m3u8', 'secret.ts', secret],
      ['private.m3u8', 'private.ts', frames],
    ] as const) {
      const out = path.join(dir, `${name}.out`);
      const err = await runnerError(copyAll(await write(name, playlist(segment)), out));
      const written = await readFile(out).catch(() => Buffer.alloc(0));
      // Not one 64-byte run of the file's bytes in what the run wrote.
      const leaked = Array.from({ length: Math.floor(bytes.length / 64) }, (_, i) => bytes.subarray(i * 64, i * 64 + 64)).filter((run) => written.includes(run)).length;
      expect(leaked, `${name}: ${written.length} bytes written, ${err ? `failed: ${err.message}` : 'ffmpeg succeeded'}`).toBe(0);
      expect(err, name).toBeInstanceOf(Error);
    }
  });
});
