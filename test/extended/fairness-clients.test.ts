/**
 * Clients sharing the cluster (tokens): within a priority the scheduler takes turns among the
 * clients that submitted the work, then among each client's jobs. A client that splits its work
 * into many jobs gets no more of the slots than one that submits a single job. Real coordinator and
 * worker processes; the work is the diagnostic kind's simulated time.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TesseraClient } from '../../client/index.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

const WORKER = 'worker-token-0123456789abcdef';
const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdef0';
const OPS = 'ops-token-0123456789abcdef0';

let cluster: TestCluster;
let dir: string;
const clients: TesseraClient[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-fair-clients-'));
  const tokens = path.join(dir, 'clients.txt');
  await writeFile(tokens, `alice:${ALICE}\nbob:${BOB}\nops:${OPS}:admin\n`);
  // No worker yet: every job is queued before the first slot is given out.
  cluster = await startCluster({
    workers: 0,
    coordinatorArgs: ['--worker-token', WORKER, '--client-tokens-file', tokens, '--max-client-priority', '5'],
    workerArgs: ['--worker-token', WORKER],
    clientOptions: { token: ALICE },
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it("gives a client with one job as many slots as a client that split the same work into four: its job ends before any of the other's", async () => {
  const as = (token: string): TesseraClient => {
    const c = new TesseraClient({ address: cluster.address, token });
    clients.push(c);
    return c;
  };
  const alice = as(ALICE);
  const bob = as(BOB);
  const spec = { passthrough: { subtasks: 6, work_ms: 250 } };
  const aliceJobs = [];
  for (let i = 0; i < 4; i++) aliceJobs.push((await alice.submit(spec, [])).id);
  const bobJob = (await bob.submit(spec, [])).id;
  cluster.startWorker('w', ['--slots', '2', '--prefetch', '0']);
  const ended = await Promise.all([...aliceJobs.map((id) => alice.wait(id)), bob.wait(bobJob)]);
  for (const j of ended) expect(j.state).toBe('JOB_STATE_SUCCEEDED');
  const finished = ended.map((j) => Number(j.finished_at_ms));
  const bobFinished = finished.at(-1)!;
  // Turns among the five jobs (as before) ran them side by side, Bob's, the newest, ending last
  // or nearly so; turns among the two clients give Bob every other slot: done after about 12 of
  // the 30 subtasks, while each of Alice's jobs has had about 3 of its 6.
  expect(bobFinished, `finished at ${JSON.stringify(finished)}`).toBeLessThan(Math.min(...finished.slice(0, 4)));
}, 60_000);

it('refuses a client token a priority over --max-client-priority (PERMISSION_DENIED, naming it), not an admin token', async () => {
  const alice = new TesseraClient({ address: cluster.address, token: ALICE });
  const ops = new TesseraClient({ address: cluster.address, token: OPS });
  clients.push(alice, ops);
  const refused = await alice.submit({ priority: 6, passthrough: { work_ms: 0 } }, []).catch((e: { code: number; details: string }) => e);
  expect(refused).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'spec.priority 6 is over the highest a client token may ask on this coordinator (--max-client-priority=5); an admin token may ask more' });
  // Nothing of it was made.
  expect((await alice.listJobs()).filter((j) => j.spec?.priority === 6)).toEqual([]);
  for (const [c, priority] of [[alice, 5], [ops, 50]] as const) {
    const job = await c.wait((await c.submit({ priority, passthrough: { work_ms: 0 } }, [])).id);
    expect(job.state).toBe('JOB_STATE_SUCCEEDED');
  }
}, 60_000);
