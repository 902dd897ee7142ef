/**
 * Numeric options a TypeScript caller passes as `number`: the README says `listJobs({ limit })`
 * returns "up to limit" jobs and that every error the library rejects with carries a numeric gRPC
 * `code`. A fractional or negative limit returned more jobs than asked (every job up to 50 or
 * 1000), and a fractional download `concurrency` rejected with p-limit's bare TypeError.
 * `download` and `readOutput` took any `reconnectForMs` where `wait` and `collect` refuse a
 * negative one or NaN: NaN made a download whose coordinator had gone retry for ever.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/index.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-numeric-options-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const caught = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

describe('numeric options out of their range', () => {
  it('listJobs never returns more jobs than its limit: a fraction or a negative number is refused (INVALID_ARGUMENT) or honoured', async () => {
    for (let i = 0; i < 4; i++) await cluster.client.submit({ passthrough: {} }, []);
    for (const limit of [2.5, -1]) {
      const got = await cluster.client.listJobs({ limit }).then(
        (jobs) => ({ jobs }),
        (err: unknown) => ({ err }),
      );
      // It was 4 jobs for limit 2.5 (a second page asked with limit 0.5, sent as 0: the default 50) and for -1 (sent as a uint32: 1000).
      expect('err' in got ? (got.err as grpc.ServiceError).code : got, `limit ${limit}`).toBe(grpc.status.INVALID_ARGUMENT);
    }
  });

  it('a download concurrency that is not a whole number rejects with a gRPC code, not a bare TypeError', async () => {
    const file = path.join(dir, 'a.bin');
    await writeFile(file, 'a');
    const job = await cluster.client.wait((await cluster.client.submit({ passthrough: {} }, [file])).id);
    const err = await caught(cluster.client.download(job.id, path.join(dir, 'out'), { concurrency: 2.5 }));
    // It was a TypeError "Expected `concurrency` to be a number from 1 and up", code undefined.
    expect((err as grpc.ServiceError | undefined)?.code, String(err)).toBe(grpc.status.INVALID_ARGUMENT);
  });
  it('reconnectForMs of download and readOutput: a negative number or NaN is INVALID_ARGUMENT naming it, as for wait and collect (NaN retried for ever)', async () => {
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
  it("submit's retryForMs: a negative number or NaN is INVALID_ARGUMENT naming it, before anything is sent (NaN resent a submission whose coordinator went away for ever)", async () => {
    await writeFile(path.join(dir, 'r.bin'), 'r');
    const before = (await cluster.client.listJobs()).length;
    for (const v of [-1, Number.NaN]) {
      expect(await caught(cluster.client.submit({ passthrough: {} }, [path.join(dir, 'r.bin')], { retryForMs: v })), `retryForMs ${v}`).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        message: expect.stringMatching(/^retryForMs: /),
      });
    }
    expect((await cluster.client.listJobs()).length, 'no job made').toBe(before);
  });
});

// A client whose options are refused threw from its constructor after making its grpc-js client,
// never closed: grpc-js keeps every channel in its channelz registry until close() (review L).
// grpc-js's own channelz registry (the one its channels register in).
const channelz = createRequire(createRequire(import.meta.url).resolve('@grpc/grpc-js'))('./channelz.js') as {
  getChannelzHandlers(): { GetTopChannels(call: { request: object }, cb: (err: unknown, res: { channel: unknown[] }) => void): void };
};

function channelsRegistered(): Promise<number> {
  return new Promise((resolve, reject) =>
    channelz.getChannelzHandlers().GetTopChannels({ request: { start_channel_id: 0, max_results: 100_000 } }, (err, res) => (err ? reject(err) : resolve(res.channel.length))),
  );
}

describe('a client whose options are refused', () => {
  it('leaves no channel behind (a closed client leaves none either)', async () => {
    const before = await channelsRegistered();
    for (let i = 0; i < 20; i++) new TesseraClient({ address: '127.0.0.1:1' }).close();
    expect(await channelsRegistered()).toBe(before);
    for (let i = 0; i < 20; i++) {
      expect(() => new TesseraClient({ address: '127.0.0.1:1', deadlineMs: -1 })).toThrow(/deadlineMs/);
      expect(() => new TesseraClient({ address: '127.0.0.1:1', token: 'two\nlines' })).toThrow(/token/);
    }
    // Observed: 40 more channels registered, never released.
    expect(await channelsRegistered()).toBe(before);
  });
});
