/**
 * WAV headers past 4 GiB. A 32-bit RIFF size cannot hold them: ffmpeg (asked with `-rf64 auto`, as
 * the audio kind's intermediates are) writes RF64 with the real size in a `ds64` chunk, broadcast
 * files come as RF64 or BW64, and stream writers put 0xFFFFFFFF for "to the end". Read as plain
 * RIFF, such a file's frame count wrapped modulo 2^32 and the job succeeded with part of the audio.
 */
import { mkdtemp, open, rm, truncate } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFfmpeg } from '../ffmpeg.js';
import { readWavInfo, wavHeader } from './audio-wav.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-wav-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sine = async (out: string, rf64: string): Promise<void> => {
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=1', '-ac', '2', '-c:a', 'pcm_s16le', '-f', 'wav', '-rf64', rf64, out]);
};

/** An RF64 header (ds64, fmt, data) for `dataBytes` of 16-bit stereo at 48 kHz. */
function rf64Header(riff: 'RF64' | 'BW64', dataBytes: bigint): Buffer {
  const plain = wavHeader('s16', 48_000, 2, 0);
  const ds64 = Buffer.alloc(8 + 28);
  ds64.write('ds64', 0, 'ascii');
  ds64.writeUInt32LE(28, 4);
  ds64.writeBigUInt64LE(dataBytes + 36n + 36n, 8);
  ds64.writeBigUInt64LE(dataBytes, 16);
  ds64.writeBigUInt64LE(dataBytes / 4n, 24);
  const b = Buffer.concat([plain.subarray(0, 12), ds64, plain.subarray(12)]);
  b.write(riff, 0, 'ascii');
  b.writeUInt32LE(0xffffffff, 4);
  b.writeUInt32LE(0xffffffff, b.length - 4);
  return b;
}

describe('readWavInfo past 4 GiB', () => {
  it("reads ffmpeg's RF64 and its -rf64 auto output (a plain RIFF under 4 GiB)", async () => {
    for (const mode of ['always', 'auto']) {
      const file = path.join(dir, `sine-${mode}.wav`);
      await sine(file, mode);
      expect(await readWavInfo(file)).toMatchObject({ format: 's16', sampleRate: 48_000, channels: 2, frames: 48_000, dataBytes: 192_000 });
    }
  });

  it('takes the 64-bit data size of RF64 and BW64 past 4 GiB (sparse files)', async () => {
    for (const riff of ['RF64', 'BW64'] as const) {
      const dataBytes = 2n ** 32n + 4000n;
      const header = rf64Header(riff, dataBytes);
      const file = path.join(dir, `big-${riff}.wav`);
      const fh = await open(file, 'w');
      await fh.write(header, 0, header.length, 0);
      await fh.close();
      await truncate(file, header.length + Number(dataBytes));
      const info = await readWavInfo(file);
      expect(info).toMatchObject({ dataOffset: header.length, declaredBytes: Number(dataBytes), dataBytes: Number(dataBytes), frames: Number(dataBytes / 4n), sizeStated: true });
      // Cut short by a byte more than a frame: the size it states is more than is there.
      await truncate(file, header.length + Number(dataBytes) - 8);
      expect(await readWavInfo(file)).toMatchObject({ declaredBytes: Number(dataBytes), dataBytes: Number(dataBytes) - 8, sizeStated: true });
    }
  });

  it('reads a data size of 0xFFFFFFFF in a plain RIFF as "to the end of the file"', async () => {
    const header = wavHeader('s16', 48_000, 2, 0);
    header.writeUInt32LE(0xffffffff, header.length - 4);
    const file = path.join(dir, 'stream.wav');
    const fh = await open(file, 'w');
    await fh.write(header, 0, header.length, 0);
    await fh.close();
    await truncate(file, header.length + 4 * 1000);
    expect(await readWavInfo(file)).toMatchObject({ frames: 1000, dataBytes: 4000, sizeStated: false });
  });
});
