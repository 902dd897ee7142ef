/**
 * `submit` aborted (or its client closed) once its upload is sent, while the coordinator has not
 * answered yet (it is still storing the last input, checking shared files, on a slow link): the
 * README says aborting the signal rejects with `signal.reason`, `close()` ends every call still
 * running with CANCELLED, and a job the coordinator made meanwhile is cancelled, found by the
 * submission's request_id (where that id was the library's own).
 *
 * JobServices of the test's own read the whole submission and hold their answer, so that the window
 * is there every time; like a coordinator, they make the job once its submission has ended, and
 * ListJobs finds it by request_id.
 */
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { TesseraClient, type JobSpec, type LeftBehind } from '../../client/index.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { loadTesseraProto } from '../../shared/proto.js';
import { startCluster } from '../helpers/cluster.js';
import { exitAfterMark } from '../helpers/exit-timing.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { pagesNeverAnswered, standInsOfThisFile, type StandIn } from '../helpers/submit-stand-in.js';

const files = standInsOfThisFile('tessera-late-abort-');
/** A stand-in coordinator (test/helpers/submit-stand-in.ts), shut down after the file. */
const { servers, standIn } = files;

type Settled = { job?: unknown; err?: unknown; ms: number };
const settle = (p: Promise<unknown>): Promise<Settled> => {
  const started = Date.now();
  return p.then((job) => ({ job, ms: Date.now() - started }), (err: unknown) => ({ err, ms: Date.now() - started }));
};

async function file(name: string): Promise<string> {
  const f = path.join(files.dir(), name);
  await writeFile(f, 'hello');
  return f;
}

/**
 * Submits `spec` with one file named `name` to `s`, its signal aborted (with `reason`) 100 ms after
 * the upload is in; `then` runs with how the call settled, and the client is closed after.
 */
async function abortedAfterUpload(s: StandIn, spec: JobSpec, name: string, then: (r: Settled) => Promise<void> | void, reason?: unknown): Promise<void> {
  const client = new TesseraClient({ address: s.address });
  try {
    const ac = new AbortController();
    s.uploaded = () => setTimeout(() => ac.abort(reason), 100);
    await then(await settle(client.submit(spec, [await file(name)], { signal: ac.signal })));
  } finally {
    client.close();
  }
}

describe('submit, between the end of its upload and the answer', () => {
  it('an aborted signal rejects at once with its reason (not the job the coordinator answers later)', async () => {
    const reason = new Error('stop waiting for the answer');
    // The answer is held 30 s, the bound on the rejection 10 s: far from both the 0.2-0.7 s it
    // takes on a loaded machine and the answer it must not wait for.
    await abortedAfterUpload(await standIn({ holdMs: 30_000 }), { passthrough: {} }, 'a.bin', (r) => {
      // Before: resolved with the job when the coordinator answered, the signal long aborted.
      expect(r.job).toBeUndefined();
      expect(r.err).toBe(reason);
      expect(r.ms).toBeLessThan(10_000);
    }, reason);
  });

  it('a job the coordinator made meanwhile is found by its request_id and cancelled, not left running unseen', async () => {
    const s = await standIn({ holdMs: 30_000 });
    await abortedAfterUpload(s, { passthrough: {} }, 'b.bin', async (r) => {
      expect((r.err as Error).name).toBe('AbortError');
      expect(r.ms).toBeLessThan(10_000); // the coordinator holds its answer 30 s
      // Before: the call was cut at the abort; the job the coordinator had made ran on, and the
      // caller, given a bare AbortError, could not know of it (review L).
      await expect.poll(() => s.cancelled, { timeout: 5000 }).toEqual([...s.made.values()]);
      expect(s.cancelled).toHaveLength(1);
    });
  });

  it('onCleanUp is given the clean-up, which settles with the job it cancelled, or none where the coordinator made none', async () => {
    // Made: the job is named, in its state after the cancel.
    const s = await standIn({ holdMs: Infinity });
    const client = new TesseraClient({ address: s.address });
    try {
      const ac = new AbortController();
      s.uploaded = () => setTimeout(() => ac.abort(), 100);
      let cleanUp: Promise<LeftBehind> | undefined;
      await expect(client.submit({ passthrough: {} }, [await file('told-1.bin')], { signal: ac.signal, onCleanUp: (p) => (cleanUp = p) })).rejects.toMatchObject({ name: 'AbortError' });
      // Handed over before the call rejects: a caller can wait for it before it closes the client.
      expect(cleanUp).toBeDefined();
      expect(await cleanUp).toEqual({ jobId: 'job-1', state: 'JOB_STATE_CANCELLED' });
    } finally {
      client.close();
    }
    // None found (a coordinator that lists its jobs at once, the job not made yet): an empty finding;
    // the coordinator gone before it could tell: the error.
    for (const how of ['none', 'gone'] as const) {
      const none = await standIn({ holdMs: Infinity, makeMs: 60_000, lookups: how === 'none' ? 'old' : 'new' });
      const other = new TesseraClient({ address: none.address });
      try {
        const ac = new AbortController();
        none.uploaded = () => setTimeout(() => ac.abort(), 100);
        let cleanUp: Promise<LeftBehind> | undefined;
        await other.submit({ passthrough: {} }, [await file(`told-${how}.bin`)], { signal: ac.signal, onCleanUp: (p) => (cleanUp = p) }).catch(() => undefined);
        if (how === 'gone') none.server.forceShutdown();
        const found = await cleanUp!;
        if (how === 'none') expect(found).toEqual({});
        else {
          expect(found.jobId).toBeUndefined();
          expect([grpc.status.CANCELLED, grpc.status.UNAVAILABLE]).toContain(found.error?.code);
        }
      } finally {
        other.close();
      }
    }
  });

  it("with the caller's own request_id, cancels nothing: the job may be an earlier call's (a repeat is answered with it)", async () => {
    const s = await standIn({ holdMs: 300 });
    // An earlier call with this id made a job (its caller holds it).
    s.made.set('nightly-42', 'job-of-an-earlier-call');
    await abortedAfterUpload(s, { request_id: 'nightly-42', passthrough: {} }, 'c.bin', async (r) => {
      expect((r.err as Error).name).toBe('AbortError');
      await sleep(800);
      // Before: CancelJob of the job an earlier, successful call with that id had made (review K).
      expect(s.cancelled).toEqual([]);
    });
  });

  it('closed right after the abort (`finally { client.close() }`), still cancels the job made meanwhile', async () => {
    const s = await standIn({ holdMs: 300 });
    const client = new TesseraClient({ address: s.address });
    const ac = new AbortController();
    s.uploaded = () => setTimeout(() => ac.abort(), 100);
    try {
      await expect(client.submit({ passthrough: {} }, [await file('d.bin')], { signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' });
    } finally {
      client.close();
    }
    // Before: the closed client refused the cancellation, and the job ran on (review K).
    await expect.poll(() => s.cancelled, { timeout: 5000 }).toEqual([...s.made.values()]);
  });

  it('aborted and closed in one turn (a shutdown handler), either order, still cancels the job made meanwhile', async () => {
    for (const order of ['abort, close', 'close, abort']) {
      const s = await standIn({ holdMs: 2000 });
      const client = new TesseraClient({ address: s.address });
      const ac = new AbortController();
      s.uploaded = () =>
        setTimeout(() => {
          if (order === 'abort, close') ac.abort();
          client.close();
          ac.abort();
        }, 50);
      await client.submit({ passthrough: {} }, [await file(`same-turn-${order.length}-${order[0]}.bin`)], { signal: ac.signal }).catch(() => undefined);
      expect(s.made.size, order).toBe(1);
      // Before: the clean-up was decided once the cut call had ended, by then the client was closed
      // (review M); closed first, the clean-up stopped at the closed client (review N).
      await expect.poll(() => s.cancelled, { timeout: 5000 }).toEqual([...s.made.values()]);
    }
  });

  it('close() alone (a SIGTERM handler): the job made meanwhile is cancelled', async () => {
    const s = await standIn({ holdMs: 2000 });
    const client = new TesseraClient({ address: s.address });
    s.uploaded = () => setTimeout(() => client.close(), 100);
    const err = await client.submit({ passthrough: {} }, [await file('n-a.bin')]).catch((e: unknown) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.CANCELLED);
    expect(s.made.size).toBe(1);
    // Before: no look-up and no CancelJob (the client closed first); the job ran on, and the caller
    // held no id of it (review N).
    await expect.poll(() => s.cancelled, { timeout: 2500 }).toEqual([...s.made.values()]);
  });

  it('close() ends it at once with CANCELLED ("the client was closed")', async () => {
    const s = await standIn({ holdMs: 30_000 });
    const client = new TesseraClient({ address: s.address });
    s.uploaded = () => setTimeout(() => client.close(), 100);
    const r = await settle(client.submit({ passthrough: {} }, [await file('e.bin')]));
    // Before: resolved with the job when the coordinator answered (30 s here), after close().
    expect(r.job).toBeUndefined();
    expect((r.err as grpc.ServiceError).code).toBe(grpc.status.CANCELLED);
    expect((r.err as Error).message).toContain('the client was closed');
    expect(r.ms).toBeLessThan(10_000);
  });
});

describe('a try whose job was made but whose answer was lost (the connection dropped), then the submission given up', () => {
  it('cancels the job that try made, whether the caller aborted as the resend started or the resend was refused (the file changed)', async () => {
    for (const end of ['aborted', 'file changed'] as const) {
      // The client reaches the coordinator through a proxy of the test's, which drops the connection
      // (a network cut, a coordinator host rebooting) right after the first try's job is made.
      let proxy: TcpProxy | undefined;
      const s = await standIn({ holdMs: 0 });
      const f = await file(`lost-${end.length}.bin`);
      s.onMade = () => {
        proxy?.cut();
        if (end === 'file changed') void appendFile(f, ' world');
      };
      proxy = new TcpProxy({ host: '127.0.0.1', port: s.port });
      const client = new TesseraClient({ address: await proxy.start() });
      try {
        const ac = new AbortController();
        let retryErr: grpc.ServiceError | undefined;
        const r = await settle(
          client.submit({ passthrough: {} }, [f], {
            signal: ac.signal,
            onRetry: (err) => {
              retryErr = err;
              // The caller gives up as the resend starts (an AbortSignal.timeout running out while
              // the coordinator could not be reached, say).
              if (end === 'aborted') ac.abort();
            },
          }),
        );
        if (end === 'aborted') {
          expect(retryErr?.code, String(retryErr)).toBe(grpc.status.UNAVAILABLE);
          expect((r.err as Error).name).toBe('AbortError');
        } else {
          expect((r.err as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
          expect(String(r.err)).toContain('submit it anew');
        }
        expect(s.made.size, end).toBe(1);
        // Before: nothing cancelled; the job ran on, and the caller's error named no job (reviews J,
        // N: following "submit it anew" made a second job beside the first).
        await expect.poll(() => s.cancelled, { timeout: 5000 }).toEqual([...s.made.values()]);
      } finally {
        client.close();
        await proxy.stop();
      }
    }
  }, 30_000);
});

describe('what holds the process after a late abort', () => {
  /**
   * A child that submits to `address`, aborts `abortMs` after its upload's last bytes were handed
   * over (not after its start: on a loaded machine that fell before the upload's end; review G),
   * then closes its client or not: the ms from then to its exit.
   */
  const abortThenExit = (address: string, abortMs: number, close: boolean, deadlineMs?: number): Promise<number | 'still running'> =>
    exitAfterMark(
      `const client = new TesseraClient({ address: '${address}'${deadlineMs ? `, deadlineMs: ${deadlineMs}` : ''} });
const ac = new AbortController();
const p = client.submit({ passthrough: {} }, [file], { signal: ac.signal, onUpload: (u) => { if (u.sentBytes === u.totalBytes) setTimeout(() => ac.abort(), ${abortMs}); } });
await p.catch((e) => { if (e.name !== 'AbortError') throw e; });
${close ? 'client.close();' : ''}
mark();`,
      15_000,
    );

  it('close() right after it: the job is cancelled before the process exits, within about a second when nothing answers', async () => {
    const quick = await standIn({ holdMs: 3000 });
    const r = await abortThenExit(quick.address, 300, true);
    // Cancelled before the process ended. (It then exits at once, where close()'s grace timer held
    // it a second whatever (review J): not asserted, a loaded machine's process exit varies as much.)
    expect(quick.made.size, 'the submission reached the coordinator whole').toBe(1);
    expect(quick.cancelled).toEqual([...quick.made.values()]);
    expect(typeof r, `process exit after close(): ${r}`).toBe('number');
    // A coordinator that reads everything and answers nothing (its look-ups neither).
    const silent = await standIn({ holdMs: Infinity, lookups: false });
    const r2 = await abortThenExit(silent.address, 300, true);
    // Before: about 9.5 s, at the submission's own deadline (review K).
    expect(typeof r2 === 'number' && r2 < 4000, `process exit after close(): ${r2}`).toBe(true);
  }, 40_000);

  it('without close(), on a coordinator that does not answer: the process is not held until the unary deadline', async () => {
    const silent = await standIn({ holdMs: Infinity, lookups: false });
    const r = await abortThenExit(silent.address, 300, false, 8000);
    // Before: held until the client's unary deadline (8 s here, 15 s by default; review J).
    expect(typeof r === 'number' && r < 4000, `process exit after the abort: ${r}`).toBe(true);
  }, 30_000);
});

describe('a shared submission aborted before any of it left this process (a real coordinator)', () => {
  it('leaves no job running: none made, or the one made cancelled', async () => {
    const shared = path.join(files.dir(), 'shared');
    await mkdir(shared, { recursive: true });
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(files.dir(), 'data'), log: createLogger('test', 'silent', 'json'), http: '', sharedRoots: [shared] });
    const client = new TesseraClient({ address: await coordinator.start() });
    try {
      await client.listJobs();
      const f = path.join(shared, 'g.bin');
      await writeFile(f, 'hello');
      const ac = new AbortController();
      const r = await settle(
        client.submit({ passthrough: {} }, [f], {
          shared: true,
          signal: ac.signal,
          // Aborted in the same turn as the call is started: nothing of it has left this process yet.
          onUpload: () => queueMicrotask(() => ac.abort()),
        }),
      );
      expect((r.err as Error).name).toBe('AbortError');
      // Before: the submission was left to go out whole after the abort, and the job was made (review J).
      await expect.poll(async () => (await client.listJobs()).filter((j) => j.state !== 'JOB_STATE_CANCELLED').map((j) => j.id), { timeout: 5000 }).toEqual([]);
    } finally {
      client.close();
      await coordinator.close();
    }
  });
});

describe('a real cluster whose answer to the submission is held back (a slow link)', () => {
  it('a submit aborted once the job is made leaves no job running', async () => {
    const cluster = await startCluster({ workers: 1 });
    // A proxy of the test's forwards client -> coordinator freely and holds the coordinator's bytes
    // back from the start of the upload, so the answer is reliably late.
    const [host, port] = cluster.address.split(':') as [string, string];
    const proxy = new TcpProxy({ host, port: Number(port) });
    const via = new TesseraClient({ address: await proxy.start() });
    try {
      await via.listWorkers();
      const ac = new AbortController();
      const submitting = settle(via.submit({ passthrough: { work_ms: 20_000 } }, [await file('h.bin')], { signal: ac.signal, onUpload: () => proxy.holdAnswers() }));
      // The coordinator has made the job (seen by a direct client); its answer is held.
      await expect.poll(async () => (await cluster.client.listJobs()).length, { timeout: 10_000 }).toBe(1);
      ac.abort();
      const r = await submitting;
      expect((r.err as Error).name).toBe('AbortError');
      // The link catches up 3 s later (the client stays open, as a long-running service's).
      await sleep(3000);
      proxy.releaseAnswers();
      // Before: the job ran on (to SUCCEEDED), and the caller's AbortError named nothing (review L);
      // then, answers 3 s late outlived the look-up's 2 s deadline (review M).
      await expect.poll(async () => (await cluster.client.listJobs()).map((j) => j.state), { timeout: 10_000 }).toEqual(['JOB_STATE_CANCELLED']);
    } finally {
      via.close();
      await proxy.stop();
      await cluster.stop();
    }
  }, 60_000);
});

describe('submit gives up (not aborted) after a try that sent everything', () => {
  it('the answer came, a later page of its subtasks failed (DEADLINE_EXCEEDED): the job is cancelled or named', async () => {
    const { address, cancelled } = await pagesNeverAnswered(servers);
    const client = new TesseraClient({ address, deadlineMs: 500 });
    try {
      const err = await client.submit({ passthrough: {} }, [await file('n-e.bin')]).catch((e: unknown) => e);
      expect((err as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
      // Before: DEADLINE_EXCEEDED naming no job, nothing cancelled; job-big ran on unseen (review N).
      await expect.poll(() => cancelled, { timeout: 5000 }).toEqual(['job-big']);
    } finally {
      client.close();
    }
  });
});

const ALICE = 'alice-token-aaaaaaaaaaaaaaaa';

describe('a submission refused for its token (nothing was made)', () => {
  it('costs one failed authentication, not two: the right token still gets in after three mistakes (burst 4)', async () => {
    for (const how of ['shared', 'no inputs'] as const) {
      const shared = path.join(files.dir(), `auth-shared-${how.length}`);
      await mkdir(shared, { recursive: true });
      const f = path.join(shared, 'a.bin');
      await writeFile(f, 'hello');
      const coordinator = new Coordinator({
        listen: '127.0.0.1:0',
        dataDir: path.join(files.dir(), `auth-data-${how.length}`),
        log: createLogger('test', 'silent', 'json'),
        http: '',
        sharedRoots: [shared],
        // Four failures, then one back every 100 s.
        auth: { workerToken: 'worker-token-cccccccccccccccc', clientTokens: [{ id: 'alice', role: 'client', token: ALICE }], rateLimit: { burst: 4, perSecond: 0.01 } },
      });
      const address = await coordinator.start();
      const typo = new TesseraClient({ address, token: 'alice-token-typo-aaaaaaaaaaa' });
      const right = new TesseraClient({ address, token: ALICE });
      try {
        for (let i = 0; i < 3; i++) {
          const err = await typo.submit({ passthrough: {} }, how === 'shared' ? [f] : [], { shared: how === 'shared' }).catch((e: unknown) => e);
          expect((err as { code?: number }).code, `${how}, mistake ${i + 1}: ${String(err)}`).toBe(16); // UNAUTHENTICATED
        }
        await new Promise((r) => setTimeout(r, 300));
        // Before: RESOURCE_EXHAUSTED "too many failed authentications from 127.0.0.1" (each refusal
        // was followed by a look-up of its job with the same unknown token; review P).
        const job = await right.submit({ passthrough: {} }, how === 'shared' ? [f] : [], { shared: how === 'shared' }).catch((e: unknown) => e);
        expect(String((job as Error).message ?? ''), how).not.toMatch(/too many failed authentications/);
        expect((job as { id?: string }).id, `${how}: ${String(job)}`).toBeTruthy();
      } finally {
        typo.close();
        right.close();
        await coordinator.close();
      }
    }
  }, 30_000);
});

const dist = fileURLToPath(new URL('../../dist/', import.meta.url));

describe('a submission to a coordinator that is down (connection refused: nothing of it left this process)', () => {
  /** A child that reaches a JobService of its own, shuts it down, then submits (shared or with no inputs) without retrying: ms from the rejection to its exit. */
  const exitAfterRefusedConnection = (how: 'shared' | 'no inputs'): Promise<number | 'still running'> =>
    exitAfterMark(
      `const grpc = await import(${JSON.stringify(path.join(dist, '../node_modules/@grpc/grpc-js/build/src/index.js'))});
const { loadTesseraProto } = await import(${JSON.stringify(path.join(dist, 'shared/proto.js'))});
const { proto } = loadTesseraProto();
const server = new grpc.Server();
server.addService(proto.tessera.v1.JobService.service, { ListJobs: (_c, cb) => cb(null, { jobs: [], next_page_token: '' }) });
const port = await new Promise((r, j) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? j(e) : r(p))));
const client = new TesseraClient({ address: '127.0.0.1:' + port });
await client.listJobs();
server.forceShutdown();
await new Promise((r) => setTimeout(r, 200));
const err = await client.submit({ passthrough: {} }, ${how === 'shared' ? '[file]' : '[]'}, { shared: ${how === 'shared'}, retryForMs: 0 }).catch((e) => e);
if (err.code !== 14) throw new Error('expected UNAVAILABLE, got ' + err);
mark();`,
      15_000,
    );

  it('the process exits at once after the rejection, as before (no look-up of a job that cannot exist)', async () => {
    for (const how of ['shared', 'no inputs'] as const) {
      // Before: about 5000 ms (a look-up of its job waited for the coordinator its 5 s; review P).
      const r = await exitAfterRefusedConnection(how);
      expect(typeof r === 'number' && r < 2500, `${how}: exit ${r} ms after the rejection`).toBe(true);
    }
  }, 60_000);
});

type Made = { id: string; request_id: string; cancelled: boolean };

/** A stand-in coordinator: `submit(n, requestId)` decides the n-th SubmitJob's end; ListJobs/CancelJob as the clean-up uses them. */
async function scriptedStandIn(opts: {
  submit: (n: number, made: Made, cb: grpc.sendUnaryData<unknown>) => void;
  getJob?: (cb: grpc.sendUnaryData<unknown>) => void;
}): Promise<{ address: string; jobs: Made[]; server: grpc.Server }> {
  const { proto } = loadTesseraProto();
  const jobs: Made[] = [];
  let n = 0;
  const server = new grpc.Server();
  const jobMsg = (j: Made): object => ({ id: j.id, state: j.cancelled ? 'JOB_STATE_CANCELLED' : 'JOB_STATE_RUNNING', spec: { request_id: j.request_id, passthrough: {} } });
  server.addService(proto.tessera.v1.JobService.service, {
    SubmitJob: (call: grpc.ServerReadableStream<{ spec?: { request_id: string } }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      let requestId = '';
      call.on('data', (m) => {
        if (m.spec) requestId = m.spec.request_id;
      });
      call.on('end', () => {
        n++;
        // A repeat of the same request_id is the same job (as the coordinator's findByRequest).
        let made = jobs.find((j) => j.request_id === requestId);
        if (!made) jobs.push((made = { id: `job-${jobs.length + 1}`, request_id: requestId, cancelled: false }));
        opts.submit(n, made, cb);
      });
    },
    GetJob: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => opts.getJob?.(cb),
    ListJobs: (call: grpc.ServerUnaryCall<{ request_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { jobs: jobs.filter((j) => !call.request.request_id || j.request_id === call.request.request_id).map(jobMsg), next_page_token: '' }),
    CancelJob: (call: grpc.ServerUnaryCall<{ job_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const j = jobs.find((x) => x.id === call.request.job_id);
      if (j) j.cancelled = true;
      cb(null, j ? jobMsg(j) : {});
    },
  } as never);
  const port = await new Promise<number>((r, j) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? j(e) : r(p))));
  return { address: `127.0.0.1:${port}`, jobs, server };
}

describe('a job a rejected submission made is cancelled, whatever code the rejection carries', () => {
  /** Submits to `s` (retrying for `retryForMs`), expects PERMISSION_DENIED, and that the one job made is cancelled. */
  async function refusedYetCancelled(s: Awaited<ReturnType<typeof scriptedStandIn>>, retryForMs: number): Promise<void> {
    const client = new TesseraClient({ address: s.address });
    try {
      const err = (await client.submit({ passthrough: {} }, [await file(`q-${retryForMs}.bin`)], { retryForMs }).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(s.jobs).toHaveLength(1);
      await expect.poll(() => s.jobs[0]!.cancelled, { timeout: 5000 }).toBe(true);
    } finally {
      client.close();
      s.server.forceShutdown();
    }
  }

  it('a try whose answer was lost made the job; the repeat is refused (a coordinator restarted with a lower --max-client-priority checks it before the repeat look-up)', async () => {
    // Before: the job try 1 made was left running where the caller, told PERMISSION_DENIED, could not see it (review Q).
    const s = await scriptedStandIn({
      submit: (n, _made, cb) =>
        n === 1
          ? cb({ code: grpc.status.UNAVAILABLE, details: 'Connection dropped' }) // the job made, its answer lost
          : cb({ code: grpc.status.PERMISSION_DENIED, details: 'spec.priority 5 is over the highest a client token may ask on this coordinator (--max-client-priority=0)' }),
    });
    await refusedYetCancelled(s, 10_000);
  }, 20_000);

  it('the job was answered, and a page of its subtasks (restOfSubtasks) is refused: the job the caller never got is cancelled', async () => {
    // Before: left running, the page's refusal taken for the submission's (review Q).
    const s = await scriptedStandIn({
      submit: (_n, made, cb) => cb(null, { id: made.id, state: 'JOB_STATE_RUNNING', spec: { request_id: made.request_id, passthrough: {} }, subtasks: [], next_subtask_page_token: 'p2' }),
      getJob: (cb) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'refused' }),
    });
    await refusedYetCancelled(s, 0);
  }, 20_000);
});

describe('onCleanUp, the job having ended between the look-up and the cancel ', () => {
  it('settles with { jobId, state } of the ended job (README: "or that had already ended"), not an error telling to cancel it', async () => {
    const cluster = await startCluster({ workers: 1, slots: 1 });
    const [host, port] = cluster.address.split(':') as [string, string];
    const proxy = new TcpProxy({ host, port: Number(port) });
    const via = new TesseraClient({ address: await proxy.start() });
    try {
      await via.listWorkers();
      const f = path.join(files.dir(), 'r.bin');
      await writeFile(f, 'hello');
      const ac = new AbortController();
      let cleanUp: Promise<LeftBehind> | undefined;
      // The coordinator's answer held from the start of the upload: it has made the job, this side does not know.
      const submitting = via.submit({ passthrough: { work_ms: 1500 } }, [f], { signal: ac.signal, onUpload: () => proxy.holdAnswers(), onCleanUp: (p) => (cleanUp = p) }).catch((e: unknown) => e);
      await expect.poll(async () => (await cluster.client.listJobs()).map((j) => j.state), { timeout: 10_000 }).toEqual(['JOB_STATE_RUNNING']);
      // Aborted while it runs: the look-up goes out and is answered "running" (held on the link).
      ac.abort();
      expect((await submitting as Error).name).toBe('AbortError');
      expect(cleanUp).toBeDefined();
      // The job ends meanwhile; then the link catches up (within the clean-up's 5 s).
      await expect.poll(async () => (await cluster.client.listJobs()).map((j) => j.state), { timeout: 4000 }).toEqual(['JOB_STATE_SUCCEEDED']);
      proxy.releaseAnswers();
      const found = await cleanUp!;
      const [job] = await cluster.client.listJobs();
      // Before: { jobId, error: FAILED_PRECONDITION "job ... has already finished (succeeded) ..." },
      // which the CLI printed as "could not be cancelled (...); cancel it with: tessera cancel ID" (review R).
      expect(found).toEqual({ jobId: job!.id, state: 'JOB_STATE_SUCCEEDED' });
    } finally {
      via.close();
      await proxy.stop();
      await cluster.stop();
    }
  }, 60_000);
});
