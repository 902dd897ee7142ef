/**
 * A refused param is named with its kind, `video.codec` as `image.fit` is: video, audio and
 * thumbnails named a bare `codec` or `bitrate`, which a client filling a form from the message
 * cannot tell from `audio_bitrate` or another kind's field (reviews VID5, CLI5). Through a real
 * coordinator's SubmitJob.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';

let dir: string;
let coordinator: Coordinator;
let client: TesseraClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-params-named-'));
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log: createLogger('test', 'silent', 'json'), http: '', shutdownGraceMs: 1000 });
  await coordinator.start();
  client = new TesseraClient({ address: coordinator.address });
});

afterAll(async () => {
  client?.close();
  await coordinator?.close();
  await rm(dir, { recursive: true, force: true });
});

it.each([
  [{ video: { codec: 'mpeg2' } }, 'video.codec: "mpeg2" is not one of h264, h265, vp9, av1'],
  [{ video: { crf: 20, bitrate: '2M' } }, 'video.crf and video.bitrate: give one or the other, not both'],
  [{ video: { audio_bitrate: '1k' } }, 'video.audio_bitrate: "1k" is not a rate within 8k..1M'],
  [{ thumbnails: { count: 3, every: 2 } }, 'thumbnails.every and thumbnails.count: give one or the other'],
  // A field's field, and fields joined by a slash (review SELF4).
  [{ audio: { trim: { start: 5, end: 2 } } }, 'audio.trim.end: 2 must be after trim.start 5'],
  [{ audio: { track: 2, language: 'eng' } }, 'audio.track/audio.language: give one of'],
  // A refusal of new submissions only (checkNew), named alike.
  [{ audio: { codec: 'mp3', bitrate: '512k' } }, 'audio.bitrate: 512k is over the 320k MP3 allows'],
  // Already named so, and left as it was.
  [{ image: { fit: 'stretch' } }, 'image.fit: "stretch" is not one of'],
])('%j is refused naming %s', async (spec, message) => {
  const err = await client.submit(spec, []).then(() => undefined, (e: unknown) => e as { code?: number; details?: string });
  expect(err?.code).toBe(status.INVALID_ARGUMENT);
  expect(err?.details?.startsWith(message), err?.details).toBe(true);
});
