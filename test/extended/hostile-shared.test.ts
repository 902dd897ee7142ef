/**
 * A hostile client and a hostile worker: a client swapping its shared input for a symlink to a
 * file outside the shared roots once it was checked (read in place by a worker, or streamed by the
 * coordinator), a client token learning the workers' session ids, a worker reporting NaN progress.
 */
import { link, mkdir, mkdtemp, readFile, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { WorkerServiceClient } from '../../shared/proto/generated/tessera/v1/WorkerService.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let shared: string;
let outside: string;
const clusters: TestCluster[] = [];
const clients: TesseraClient[] = [];

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-hostile-')));
  shared = path.join(dir, 'shared');
  outside = path.join(dir, 'outside');
  await mkdir(shared, { recursive: true });
  await mkdir(outside);
  // What the client must never see: a file outside every --shared-root (a worker token file, another
  // client's spooled input...), readable by the worker's user.
  await writeFile(path.join(outside, 'secret.bin'), 'the worker token file, or another client\'s input');
});

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(clusters.map((c) => c.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('hostile client: inputs by reference', () => {
  it('a shared input swapped for a symlink to a file outside the shared roots while its subtask runs is not read', async () => {
    const c = await startCluster({ workers: 1, coordinatorArgs: ['--shared-root', shared] });
    clusters.push(c);
    const file = path.join(shared, 'swap.bin');
    await writeFile(file, 'an innocent file inside the shared root');
    // The client chooses the subtask's length (passthrough.work_ms): the worker checks the shared
    // file once, links it into its work folder, and reads through that link only at the end.
    const job = await c.client.submit({ passthrough: { work_ms: 4000 } }, [file], { shared: true });
    for (const until = Date.now() + 30_000; ; await sleep(25)) {
      if (Date.now() > until) throw new Error('the subtask did not start within 30 s');
      const j = await c.client.getJob(job.id);
      if (j.subtasks.some((s) => s.state === 'SUBTASK_STATE_RUNNING')) break;
    }
    await sleep(1500);
    // The client (who may write in its shared folder) swaps the file for a link to the secret.
    await symlink(path.join(outside, 'secret.bin'), path.join(shared, 'swap.tmp'));
    await rename(path.join(shared, 'swap.tmp'), file);
    const done = await c.client.wait(job.id);
    const got = done.state === 'JOB_STATE_SUCCEEDED' ? await readFile((await c.client.download(job.id, path.join(dir, 'out-swap'))).get('swap.bin')!, 'utf8') : '';
    // README (Inputs by reference): a file swapped for a symlink since it was checked is not read.
    // The worker reads the file it checked, through its descriptor: the job gets the bytes submitted.
    expect(got).not.toContain('worker token');
    expect([done.state, got]).toEqual(['JOB_STATE_SUCCEEDED', 'an innocent file inside the shared root']);
  }, 60_000);
});

const WORKER = 'worker-token-0123456789abcdef';
const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdef0';
const ROOT = 'root-token-0123456789abcdef';

/** A worker written by hand that presents the worker token: it registers and keeps what it is given. */
function tokenWorker(address: string, name: string) {
  const { proto } = loadTesseraProto();
  const stub = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure()) as WorkerServiceClient;
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${WORKER}`);
  const call = stub.Connect(md);
  const seen: { subtask_id: string; attempt: number; inputs: { name: string }[] }[] = [];
  let id = '';
  const heartbeat = setInterval(() => call.write({ heartbeat: { slots_used: 0, load: 0, rss_bytes: '0', running: [] } }), 500);
  call.on('data', (msg: { registered?: { worker_id: string }; assign?: (typeof seen)[number]; assign_batch?: { assignments: typeof seen } }) => {
    if (msg.registered) id = msg.registered.worker_id;
    for (const a of msg.assign ? [msg.assign] : (msg.assign_batch?.assignments ?? [])) seen.push(a);
  });
  call.on('error', () => undefined);
  call.write({ register: { name, slots: 1, instance_id: `${name}-1`, capabilities: { kinds: ['passthrough'] } } });
  return {
    seen,
    id: () => id,
    /** FetchTaskInput as session `as` (the x-tessera-worker-id header), with the worker token. */
    fetch(as: string, req: { subtask_id: string; attempt: number; name: string }, offset = '0'): Promise<{ data?: Buffer; err?: grpc.ServiceError }> {
      const m = new grpc.Metadata();
      m.set('authorization', `Bearer ${WORKER}`);
      m.set('x-tessera-worker-id', as);
      return new Promise((resolve) => {
        const parts: Buffer[] = [];
        const s = stub.FetchTaskInput({ ...req, offset: offset as unknown as number }, m, { deadline: Date.now() + 5000 });
        s.on('data', (c: { data: Buffer }) => parts.push(c.data));
        s.on('end', () => resolve({ data: Buffer.concat(parts) }));
        s.on('error', (err: grpc.ServiceError) => resolve({ err }));
      });
    },
    stop() {
      clearInterval(heartbeat);
      call.cancel();
      stub.close();
    },
  };
}

describe('hostile client: inputs by reference, streamed by the coordinator', () => {
  it('FetchTaskInput never serves the bytes of a file outside the shared roots, whatever the client does to its shared file meanwhile', async () => {
    const sub = path.join(dir, 'race');
    const sharedRace = path.join(sub, 'shared');
    await mkdir(sharedRace, { recursive: true });
    const secret = path.join(sub, 'secret.txt');
    await writeFile(secret, 'SECRET'.repeat(20));
    const file = path.join(sharedRace, 'f.bin');
    await writeFile(file, 'x'.repeat(100));
    const c = await startCluster({ workers: 0, coordinatorArgs: ['--shared-root', sharedRace, '--no-local-reads'] });
    clusters.push(c);
    // A worker on another machine: it is streamed the bytes (a plain stub, as in test/extended/security.test.ts).
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.WorkerService(c.address, grpc.credentials.createInsecure()) as WorkerServiceClient;
    const call = stub.Connect(new grpc.Metadata());
    const seen: { subtask_id: string; attempt: number; inputs: { name: string }[] }[] = [];
    let id = '';
    call.on('data', (m: { registered?: { worker_id: string }; assign?: (typeof seen)[number]; assign_batch?: { assignments: typeof seen } }) => {
      if (m.registered) id = m.registered.worker_id;
      for (const a of m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])) seen.push(a);
    });
    call.on('error', () => undefined);
    const hb = setInterval(() => call.write({ heartbeat: { slots_used: 0, load: 0, rss_bytes: '0', running: [] } }), 500);
    call.write({ register: { name: 'far', slots: 1, instance_id: 'far-1', capabilities: { kinds: ['passthrough'] } } });
    let stop = false;
    try {
      await c.client.submit({ passthrough: {} }, [file], { shared: true });
      for (const until = Date.now() + 10_000; seen.length < 1; await sleep(20)) if (Date.now() > until) throw new Error('no assignment');
      const a = seen[0]!;
      // The client flips its file between itself (kept under a second name: same inode, size and
      // time) and a symlink to the secret, as fast as it can.
      await link(file, path.join(sharedRace, '.orig'));
      const swapper = (async () => {
        while (!stop) {
          await symlink(secret, path.join(sharedRace, '.lnk')).catch(() => undefined);
          await rename(path.join(sharedRace, '.lnk'), file).catch(() => undefined);
          await rm(file).catch(() => undefined);
          await link(path.join(sharedRace, '.orig'), file).catch(() => undefined);
        }
      })();
      let leaked = '';
      let served = 0;
      for (let i = 0; i < 400 && !leaked; i++) {
        const md = new grpc.Metadata();
        md.set('x-tessera-worker-id', id);
        const data = await new Promise<Buffer | undefined>((resolve) => {
          const parts: Buffer[] = [];
          const s = stub.FetchTaskInput({ subtask_id: a.subtask_id, attempt: a.attempt, name: a.inputs[0]!.name, offset: 0 }, md);
          s.on('data', (d: { data: Buffer }) => parts.push(d.data));
          s.on('end', () => resolve(Buffer.concat(parts)));
          s.on('error', () => resolve(undefined));
        });
        if (data) served++;
        if (data?.includes('SECRET')) leaked = data.toString();
      }
      stop = true;
      await swapper;
      // The file is checked before and after it is read, but opened for the read by path, following links.
      expect(leaked, `${served} fetches answered`).toBe('');
    } finally {
      stop = true;
      clearInterval(hb);
      call.cancel();
      stub.close();
    }
  }, 120_000);
});

describe('tokens: what a client token and the worker token reveal', () => {
  let c: TestCluster;
  beforeAll(async () => {
    const tokens = path.join(dir, 'clients.txt');
    await writeFile(tokens, `alice:${ALICE}\nbob:${BOB}\nroot:${ROOT}:admin\n`);
    c = await startCluster({
      workers: 0,
      coordinatorArgs: ['--worker-token', WORKER, '--client-tokens-file', tokens, '--no-local-reads'],
      clientOptions: { token: ROOT },
    });
    clusters.push(c);
  }, 60_000);

  it("ListWorkers does not give a plain client token the workers' session ids (with the worker token, one reads the inputs leased to that worker)", async () => {
    const victim = tokenWorker(c.address, 'victim');
    const hostile = tokenWorker(c.address, 'hostile');
    try {
      const alice = new TesseraClient({ address: c.address, token: ALICE, deadlineMs: 5000 });
      const bob = new TesseraClient({ address: c.address, token: BOB, deadlineMs: 5000 });
      clients.push(alice, bob);
      for (const until = Date.now() + 10_000; (await bob.listWorkers()).length < 2; await sleep(50)) if (Date.now() > until) throw new Error('workers did not register');
      // Alice's job: its subtask goes to one of the two; the hostile one is made to hold its slot first.
      const hold = await alice.submit({ passthrough: { subtasks: 1, work_ms: 60_000 } }, []);
      for (const until = Date.now() + 10_000; victim.seen.length + hostile.seen.length < 1; await sleep(25)) if (Date.now() > until) throw new Error('no assignment');
      const secretFile = path.join(dir, 'alice-private.bin');
      await writeFile(secretFile, "alice's private photo bytes");
      const job = await alice.submit({ passthrough: {} }, [secretFile]);
      for (const until = Date.now() + 10_000; victim.seen.length + hostile.seen.length < 2; await sleep(25)) if (Date.now() > until) throw new Error('no second assignment');
      const [leasedTo, other] = victim.seen.some((a) => a.inputs.length > 0) ? [victim, hostile] : [hostile, victim];
      const a = leasedTo.seen.find((x) => x.inputs.length > 0)!;
      // Bob, a plain client, learns the session ids of the workers.
      const seenByBob = await bob.listWorkers();
      const idOfHolder = seenByBob.find((w) => w.name === (leasedTo === victim ? 'victim' : 'hostile'))!.id;
      // Someone with the worker token and Bob's list reads an input leased to another worker.
      const stolen = await other.fetch(idOfHolder, { subtask_id: a.subtask_id, attempt: a.attempt, name: a.inputs[0]!.name });
      await alice.cancel(hold.id);
      await alice.cancel(job.id);
      // README: a client token sees "the workers' names, states, slots, kinds, encoders and labels";
      // the session id is what FetchTaskInput and UploadTaskOutput take as the worker's identity.
      expect(
        seenByBob.map((w) => w.id),
        `as bob's list named it, another worker read ${JSON.stringify(stolen.data?.toString() ?? stolen.err?.details)}`,
      ).toEqual(['', '']);
    } finally {
      victim.stop();
      hostile.stop();
    }
  }, 60_000);
});

describe('hostile worker: malformed messages', () => {
  it("a worker's progress fraction of NaN does not become the job's progress", async () => {
    const c = await startCluster({ workers: 0 });
    clusters.push(c);
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.WorkerService(c.address, grpc.credentials.createInsecure()) as WorkerServiceClient;
    const call = stub.Connect(new grpc.Metadata());
    const seen: { subtask_id: string; attempt: number }[] = [];
    call.on('data', (m: { assign?: (typeof seen)[number]; assign_batch?: { assignments: typeof seen } }) => {
      for (const a of m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])) seen.push(a);
    });
    call.on('error', () => undefined);
    call.write({ register: { name: 'nan', slots: 1, instance_id: 'nan-1', capabilities: { kinds: ['passthrough'] } } });
    try {
      const job = await c.client.submit({ passthrough: { subtasks: 1 } }, []);
      for (const until = Date.now() + 10_000; seen.length < 1; await sleep(20)) if (Date.now() > until) throw new Error('no assignment');
      call.write({ progress: { subtask_id: seen[0]!.subtask_id, attempt: seen[0]!.attempt, fraction: Number.NaN, message: 'working' } });
      await sleep(300);
      const j = await c.client.getJob(job.id);
      // Job.progress is "0..1"; a NaN reaches every watcher and the CLI as the job's progress.
      expect(Number.isFinite(j.progress), `job progress ${j.progress}, subtask ${j.subtasks[0]?.progress}`).toBe(true);
      expect(Number.isFinite(j.subtasks[0]!.progress)).toBe(true);
    } finally {
      call.cancel();
      stub.close();
    }
  }, 60_000);

  it('FetchTaskInput at an offset past the input (or no whole number) is OUT_OF_RANGE, not the whole input or INTERNAL', async () => {
    const c = await startCluster({ workers: 0 });
    clusters.push(c);
    // Workers need no token here: the one it presents is not looked at.
    const w = tokenWorker(c.address, 'offsets');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-offsets-'));
    try {
      const file = path.join(dir, 'in.bin');
      await writeFile(file, Buffer.alloc(100, 7));
      await c.client.submit({ passthrough: {} }, [file]);
      for (const until = Date.now() + 10_000; w.seen.length < 1; await sleep(20)) if (Date.now() > until) throw new Error('no assignment');
      const a = w.seen[0]!;
      const fetchAt = async (offset: string): Promise<{ bytes?: number; code?: number; details?: string }> => {
        const r = await w.fetch(w.id(), { subtask_id: a.subtask_id, attempt: a.attempt, name: a.inputs[0]!.name }, offset);
        return r.err ? { code: r.err.code, details: r.err.details } : { bytes: r.data!.length };
      };
      expect(await fetchAt('60')).toEqual({ bytes: 40 });
      expect(await fetchAt('100')).toEqual({ bytes: 0 });
      // Before: 2^53 + 1 read as 2^53, then sent the whole input; 2^64 - 1 failed as INTERNAL, logged with a stack.
      for (const offset of ['101', '9007199254740993', '18446744073709551615']) {
        expect(await fetchAt(offset), offset).toMatchObject({ code: grpc.status.OUT_OF_RANGE, details: expect.stringMatching(/is past the end of input in\.bin \(100 bytes\)$/) });
      }
    } finally {
      w.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
