/**
 * README: `reconnectForMs` (in the library's watch and download options) is a number of ms;
 * `wait`, `watch`, `collect`, and `download` and `readOutput` too, refuse a negative one or NaN
 * with INVALID_ARGUMENT naming it. The last two took anything: NaN made the retry window never
 * close (`steadyNow() - started > NaN` is false), so a download whose coordinator had gone retried
 * for ever instead of failing with UNAVAILABLE.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-download-reconnect-for-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const caught = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

describe('reconnectForMs of download and readOutput', () => {
  it('a negative number or NaN is INVALID_ARGUMENT naming it, as for wait and collect', async () => {
    await writeFile(path.join(dir, 'a.bin'), randomBytes(2 * 2 ** 20));
    const job = await cluster.client.submit({ passthrough: {} }, [path.join(dir, 'a.bin')]);
    expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    for (const v of [-1, Number.NaN]) {
      // The reference: wait and collect refuse it.
      expect(await caught(cluster.client.collect(job.id, path.join(dir, `c${v}`), { reconnectForMs: v }))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
      expect(await caught(cluster.client.download(job.id, path.join(dir, `d${v}`), { reconnectForMs: v })), `download, reconnectForMs ${v}`).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        message: expect.stringMatching(/reconnectForMs/),
      });
      const read = (async () => {
        for await (const chunk of cluster.client.readOutput(job.id, 'a.bin', { reconnectForMs: v })) void chunk;
      })();
      expect(await caught(read), `readOutput, reconnectForMs ${v}`).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/reconnectForMs/) });
    }
  });
});
