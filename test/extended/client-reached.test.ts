/**
 * README: "Once a client has reached its coordinator, its later calls wait for it while it cannot
 * be reached (a restart): a unary call up to its deadline". The client counted the coordinator as
 * reached only once a call had *succeeded*: a coordinator that answered with a refusal (NOT_FOUND
 * for a job id) was reached just the same, but the client's next call during a restart failed at
 * once with UNAVAILABLE "No connection established" instead of waiting for it to come back.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/index.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ workers: 0 });
});

afterAll(async () => {
  await cluster?.stop();
});

async function restartWhile<T>(call: () => Promise<T>): Promise<{ value?: T; err?: grpc.ServiceError; ms: number }> {
  cluster.coordinator!.child.kill('SIGKILL');
  await cluster.coordinator!.exited;
  const back = new Promise<void>((resolve, reject) => setTimeout(() => cluster.startCoordinator().then(resolve, reject), 1500));
  const started = Date.now();
  const result = await call().then(
    (value) => ({ value, ms: Date.now() - started }),
    (err: grpc.ServiceError) => ({ err, ms: Date.now() - started }),
  );
  await back;
  return result;
}

describe('a coordinator that answered with a refusal was reached', () => {
  it('a call made while it restarts waits for it (as after a success), rather than failing at once', async () => {
    // Control: after a call that succeeded, the next one waits through the restart.
    const ok = new TesseraClient({ address: cluster.address });
    try {
      await ok.listWorkers();
      const r = await restartWhile(() => ok.listJobs({ limit: 1 }));
      expect(r.err?.message).toBeUndefined();
    } finally {
      ok.close();
    }

    const c = new TesseraClient({ address: cluster.address });
    try {
      const refused = await c.getJob('no-such-job').catch((e: grpc.ServiceError) => e);
      expect((refused as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
      const r = await restartWhile(() => c.listJobs({ limit: 1 }));
      // It was: UNAVAILABLE "No connection established. Last error: Error: connect ECONNREFUSED ..." within a few ms.
      expect(r.err?.message).toBeUndefined();
      expect(r.value).toEqual(expect.any(Array));
    } finally {
      c.close();
    }
  }, 60_000);
});
