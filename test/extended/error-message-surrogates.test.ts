/**
 * A refusal whose message quotes a client's input name, cut: a name of emoji (astral characters,
 * two UTF-16 units each) was cut between the two halves of one, and grpc-js's `encodeURI` of the
 * status message threw on the lone surrogate, in the server's call callback: the whole coordinator
 * went down, for any client, with one SubmitJob. Now names are cut by code point, and every status
 * message is made well-formed before it is sent.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { rawJobService, rawSubmit } from '../helpers/raw-grpc.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { sha256 } from '../../shared/streams.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** A ListJobs on a fresh stub: the coordinator still answers. */
function listJobs(address: string): Promise<grpc.ServiceError | null> {
  const client = rawJobService(address);
  return new Promise((resolve) => {
    client.ListJobs({ limit: 1 }, { deadline: Date.now() + 5000 }, (err) => {
      client.close();
      resolve(err);
    });
  });
}

const upload = (name: string) => {
  const data = Buffer.from('x');
  return [
    { spec: { passthrough: {} } },
    { input: { name, size: 1 } },
    { data },
    { input_end: { sha256: sha256(data) } },
  ];
};

describe('a refused input name of astral characters', () => {
  // 39 ASCII letters then emoji: the message quotes name.slice(0, 40), which ends in half an emoji.
  it('too long: INVALID_ARGUMENT naming the limit, and the coordinator goes on serving', async () => {
    cluster = await startCluster({ workers: 0 });
    const err = await rawSubmit(cluster.address, upload('a'.repeat(39) + '\u{1F600}'.repeat(50)) as never);
    expect({ code: err?.code, details: err?.details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('longer than 200 bytes') });
    expect(await listJobs(cluster.address)).toBeNull();
  }, 30_000);

  // 182 bytes (under the limit) with a `?`: the message quotes printable(name), cut to 80 units.
  it('with a character Windows forbids: INVALID_ARGUMENT naming it, and the coordinator goes on serving', async () => {
    cluster = await startCluster({ workers: 0 });
    const err = await rawSubmit(cluster.address, upload('a' + '\u{1F600}'.repeat(45) + '?') as never);
    expect({ code: err?.code, details: err?.details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('which Windows does not allow') });
    expect(await listJobs(cluster.address)).toBeNull();
  }, 30_000);
});
