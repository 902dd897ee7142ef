/**
 * A shared input whose path has a name over the file system's limit (255 bytes) can never be
 * looked up: it is a wrong argument, answered at once with INVALID_ARGUMENT, not UNAVAILABLE "try
 * again", the status gRPC clients (and this project's own client) retry, for a request that can
 * never succeed. (The tessera CLI stats the file itself first and says ENAMETOOLONG; other clients
 * do not.)
 */
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SharedRoots } from '../../coordinator/shared-inputs.js';
import { status } from '../../shared/grpc-status.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { rawSubmit } from '../helpers/raw-grpc.js';

let dir: string;
let media: string;
let c: TestCluster;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-long-name-')));
  media = path.join(dir, 'media');
  await mkdir(media, { recursive: true });
  await mkdir(path.join(dir, 'data'));
  c = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--shared-root', media] });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const longName = (): string => path.join(media, 'a'.repeat(300), 'in.mp4');

it('SharedRoots.lookup: a name over 255 bytes is INVALID_ARGUMENT (or NOT_FOUND), not UNAVAILABLE "try again"', async () => {
  const roots = await SharedRoots.create([media], path.join(dir, 'data'));
  const err = await roots.lookup('in.mp4', longName(), 0).then(() => undefined, (e: unknown) => e as { code?: number; message?: string });
  // Observed: code 14 (UNAVAILABLE), "... cannot be looked up (ENAMETOOLONG); try again".
  expect(err?.code, err?.message).not.toBe(status.UNAVAILABLE);
  expect([status.INVALID_ARGUMENT, status.NOT_FOUND]).toContain(err?.code);
});

it('a submission by reference (gRPC) with such a path is answered INVALID_ARGUMENT or NOT_FOUND, not UNAVAILABLE', async () => {
  const err = await rawSubmit(c.address, [{ spec: { passthrough: {} } }, { input: { name: 'in.mp4', shared_path: longName() } }]);
  // Observed: UNAVAILABLE "... cannot be looked up (ENAMETOOLONG); try again": a client retries it.
  expect(err?.code, err?.details).not.toBe(status.UNAVAILABLE);
  expect([status.INVALID_ARGUMENT, status.NOT_FOUND]).toContain(err?.code);
}, 30_000);
