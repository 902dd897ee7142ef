/**
 * The client library's public surface: typed (declarations in dist, `import ... from 'tessera'`),
 * the option and error types of its signatures exported, a spec checked against the contract and
 * the files checked before anything is sent, and errors that all carry a numeric gRPC `code`.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient, TesseraError, checkJobSpec, type JobSpec } from '../client/index.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { deadAddress } from './helpers/addresses.js';

const root = fileURLToPath(new URL('..', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-client-api-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const caught = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

describe('types', () => {
  it('a TypeScript program using the README example and the exported types type-checks against dist', async () => {
    // Inside the package, so that `tessera` resolves to it (a package's own name, through `exports`).
    const work = path.join(root, 'test-output', `types-${process.pid}`);
    await mkdir(work, { recursive: true });
    try {
      await writeFile(
        path.join(work, 'example.ts'),
        `import { TesseraClient, TesseraError, status, type DownloadOptions, type SubmitOptions, type WatchOptions, type Job, type JobSpec, type ImageParams, type ServiceError } from 'tessera';
import { TesseraClient as Direct } from '../../dist/client/index.js';
const client = new TesseraClient({ address: 'coordinator:7700' });
const submitOptions: SubmitOptions = { retryForMs: 0 };
const watchOptions: WatchOptions = { reconnectForMs: 1000 };
const downloadOptions: DownloadOptions = { overwrite: false };
const job: Job = await client.submit({ image: { width: 800, format: 'webp' } }, ['a.jpg', 'b.jpg'], submitOptions);
const { job: done, paths } = await client.collect(job.id, 'out', { ...watchOptions, ...downloadOptions, onEvent: (e) => console.log(e.type, e.message) });
const code: number = new TesseraError(3, 'x').code;
const direct: Direct = client;
console.log(done.state, paths.size, code, direct.address);
// The README's refusal, with the input it is about (the exported type had no \`input\`).
try {
  await client.submit({ image: { width: 800, format: 'webp' } }, ['a.jpg']);
} catch (err) {
  const e = err as ServiceError;
  if (e.code === status.INVALID_ARGUMENT) console.log(e.details, e.metadata, e.input);
}
// A double is a number: submit refuses a string there, and the type says so (it took one; review CLI2).
const params: ImageParams = { width: 800, blur: 1.5 };
// @ts-expect-error a string for a double
const refused: JobSpec = { image: { blur: '2' } };
const audio: JobSpec = { audio: { trim: { start: 1, end: 2.5 }, loudness: -16 } };
console.log(params, refused, audio);
`,
      );
      await writeFile(path.join(work, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['example.ts'] }));
      const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      const run = await promisify(execFile)(process.execPath, [tsc, '-p', work]).then(
        () => ({ ok: true, out: '' }),
        (e: { stdout?: string }) => ({ ok: false, out: e.stdout ?? String(e) }),
      );
      expect(run.out).toBe('');
      expect(run.ok).toBe(true);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('submit checks the spec against the contract before sending anything', () => {
  const cases: [string, unknown, string][] = [
    ['a uint32 past its range', { image: { width: 2 ** 32 + 10 } }, 'spec.image.width: 4294967306 is not a uint32'],
    ['a negative uint32', { image: { width: -5 } }, 'spec.image.width: -5 is not a uint32'],
    ['a fraction for an integer', { image: { width: 1.5 } }, 'spec.image.width: 1.5 is not a uint32'],
    ['a fractional int32', { image: { rotate: 45.5 } }, 'spec.image.rotate: 45.5 is not an int32'],
    ['a string for a number', { image: { width: 'abc' } }, 'spec.image.width: "abc" is not a uint32'],
    ['an int32 past its range', { passthrough: {}, priority: 2 ** 32 + 5 }, 'spec.priority: 4294967301 is not an int32'],
    ['an unknown field', { image: { widht: 100 } }, 'spec.image.widht: no such field in ImageParams'],
    ['an unknown top-level field', { passthru: {} }, 'spec.passthru: no such field in JobSpec'],
    ['a number for a string', { image: { format: 7 } }, 'spec.image.format: 7 is not a string'],
    ['a string for a bool', { image: { grayscale: 'yes' } }, 'spec.image.grayscale: "yes" is not a bool'],
    ['NaN for a number', { image: { blur: Number.NaN } }, 'spec.image.blur: NaN is not a finite number'],
    ['a number for a message', { image: 5 }, 'spec.image: 5 is not a ImageParams message'],
    ['two job kinds', { image: { width: 10 }, passthrough: {} }, 'spec: image and passthrough are both set'],
  ];
  it.each(cases)('%s', async (_what, spec, message) => {
    const client = new TesseraClient({ address: await deadAddress() });
    try {
      const file = path.join(dir, 'in.bin');
      await writeFile(file, 'x');
      const err = await caught(client.submit(spec as JobSpec, [file], { retryForMs: 0 }));
      expect(err).toBeInstanceOf(TesseraError);
      expect((err as TesseraError).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((err as TesseraError).message).toContain(message);
    } finally {
      client.close();
    }
  });

  it('passes what fits: every kind the CLI builds, a job read back, 64-bit fields as strings', () => {
    for (const spec of [
      { label: 'x', priority: -3, max_attempts: 2, request_id: 'r', image: { width: 800, height: 600, fit: 'cover', rotate: -90, blur: 0.5, grayscale: true, format: 'webp', crop: { left: 0, top: 0, width: 10, height: 10 } } },
      { video: { codec: 'h264', crf: 23, fps: 29.97 } },
      { audio: { codec: 'opus', trim: { start: 1.5, end: 3 } } },
      { passthrough: { subtasks: 2 }, params: 'passthrough' },
      { thumbnails: { every: 2, width: 160 }, image: undefined, video: null },
    ]) {
      expect(() => checkJobSpec(spec), JSON.stringify(spec)).not.toThrow();
    }
  });
});

describe('submit checks the files before sending anything', () => {
  it('a folder, a file missing, two files under one name: INVALID_ARGUMENT naming the path', async () => {
    const client = new TesseraClient({ address: await deadAddress() });
    try {
      const a = path.join(dir, 'one', 'same.bin');
      const b = path.join(dir, 'two', 'same.bin');
      await mkdir(path.dirname(a), { recursive: true });
      await mkdir(path.dirname(b), { recursive: true });
      await writeFile(a, 'a');
      await writeFile(b, 'b');
      const cases: [string[], string][] = [
        [[a, dir], `${dir}: is a folder`],
        [[a, path.join(dir, 'missing.bin')], `${path.join(dir, 'missing.bin')}: no such file`],
        [[a, b], `${a} and ${b} would both be input "same.bin"`],
      ];
      // The files are looked up together, and judged in order: the first bad one is named.
      cases.push([[a, path.join(dir, 'missing.bin'), dir, ...Array.from({ length: 100 }, (_, i) => path.join(dir, `gone-${i}.bin`))], `${path.join(dir, 'missing.bin')}: no such file`]);
      for (const [files, message] of cases) {
        // By reference too, where the paths are also resolved meanwhile: the check's refusal, not the resolution's.
        for (const shared of [false, true]) {
          const err = await caught(client.submit({ passthrough: {} }, files, { retryForMs: 0, shared }));
          expect(err, message).toBeInstanceOf(TesseraError);
          expect((err as TesseraError).code).toBe(grpc.status.INVALID_ARGUMENT);
          expect((err as TesseraError).message).toContain(message);
        }
      }
      // Named apart, the same two go (and fail only at the address, where nothing listens).
      const err = await caught(client.submit({ passthrough: {} }, [a, b], { names: ['a.bin', 'b.bin'], retryForMs: 0 }));
      expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });
});

describe('errors', () => {
  let cluster: TestCluster;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('the coordinator\'s and the client\'s both carry a numeric gRPC code and name what they are about', async () => {
    cluster = await startCluster({ workers: 1, slots: 1 });
    const server = await caught(cluster.client.getJob('no-such-job'));
    expect((server as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    expect((server as Error).message).toContain('no-such-job');
    const file = path.join(dir, 'real.bin');
    await writeFile(file, 'real');
    const job = await cluster.client.wait((await cluster.client.submit({ passthrough: {} }, [file])).id);
    const local = await caught(cluster.client.download(job.id, path.join(dir, 'dl'), { names: ['nope.bin'] }));
    expect(local).toBeInstanceOf(TesseraError);
    expect((local as TesseraError).code).toBe(grpc.status.NOT_FOUND);
    expect((local as Error).message).toContain('"nope.bin"');
  }, 60_000);
});

describe('keepalive', () => {
  it('is checked when the client is made: INVALID_ARGUMENT naming the setting, given or from the environment', () => {
    const made = (f: () => unknown): unknown => {
      try {
        return f();
      } catch (err) {
        return err;
      }
    };
    const tooOften = made(() => new TesseraClient({ address: '127.0.0.1:9', keepalive: { timeMs: 1000 } }));
    expect(tooOften).toBeInstanceOf(TesseraError);
    expect(tooOften).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^keepalive\.timeMs 1000: must be a whole number of ms, at least 5000: .*\(TESSERA_KEEPALIVE_MS sets it too\)$/) });
    const saved = process.env['TESSERA_KEEPALIVE_TIMEOUT_MS'];
    process.env['TESSERA_KEEPALIVE_TIMEOUT_MS'] = '10';
    try {
      expect(made(() => new TesseraClient({ address: '127.0.0.1:9' }))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^TESSERA_KEEPALIVE_TIMEOUT_MS=10: /) });
      // Past what a timer waits: every connection was dropped at its first ping.
      process.env['TESSERA_KEEPALIVE_TIMEOUT_MS'] = '2147483648';
      expect(made(() => new TesseraClient({ address: '127.0.0.1:9' }))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^TESSERA_KEEPALIVE_TIMEOUT_MS=2147483648: must be at most 2147483647 ms/) });
      expect(made(() => new TesseraClient({ address: '127.0.0.1:9', keepalive: { timeMs: 20_000, timeoutMs: 2 ** 31 } }))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^keepalive\.timeoutMs 2147483648: must be at most/) });
      // Both given: the environment is not read.
      const client = made(() => new TesseraClient({ address: '127.0.0.1:9', keepalive: { timeMs: 20_000, timeoutMs: 8_000 } }));
      expect(client).toBeInstanceOf(TesseraClient);
      (client as TesseraClient).close();
    } finally {
      if (saved === undefined) delete process.env['TESSERA_KEEPALIVE_TIMEOUT_MS'];
      else process.env['TESSERA_KEEPALIVE_TIMEOUT_MS'] = saved;
    }
  });
});

describe('options', () => {
  const made = (f: () => unknown): unknown => {
    try {
      return f();
    } catch (err) {
      return err;
    }
  };

  it('deadlineMs and reconnectForMs no timer can wait are INVALID_ARGUMENT naming them, never a crash of the process or "could not be reached"', async () => {
    // Before: Infinity crashed the caller's process once the coordinator was reached (grpc-js threw
    // "Deadline is too far in the future" outside any promise), 0 or 2**31 answered "the coordinator
    // could not be reached" while it was up (Node runs a longer timer after 1 ms).
    for (const deadlineMs of [Infinity, 0, -5, Number.NaN, 1.5, 2 ** 31]) {
      expect(made(() => new TesseraClient({ address: '127.0.0.1:9', deadlineMs })), String(deadlineMs)).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^deadlineMs: /) });
    }
    const client = new TesseraClient({ address: '127.0.0.1:9' });
    try {
      // A call's own: a rejection, not a throw.
      const call = client.getJob('j', { deadlineMs: Infinity });
      expect(await caught(call)).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^deadlineMs: /) });
      // reconnectForMs is a window, not a timer: any length goes (a CLI's --reconnect-for of 30 days
      // was refused after the job was made), a negative one is refused.
      expect(await caught(client.wait('j', undefined, { reconnectForMs: -1 }))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^reconnectForMs: /) });
      expect(await caught(client.wait('j', undefined, { reconnectForMs: Infinity }))).toMatchObject({ code: grpc.status.UNAVAILABLE });
    } finally {
      client.close();
    }
  });

  it('a token is trimmed as from TESSERA_TOKEN_FILE; one no header can carry is INVALID_ARGUMENT, without the token', () => {
    // Before: a token read with readFileSync kept its line break, and every call threw, quoting it.
    const fromFile = made(() => new TesseraClient({ address: '127.0.0.1:9', token: 'alice-token-0123456789abcdef\n' }));
    expect(fromFile).toBeInstanceOf(TesseraClient);
    (fromFile as TesseraClient).close();
    const secret = 'pässwort-geheim-0123456789';
    const refused = made(() => new TesseraClient({ address: '127.0.0.1:9', token: secret }));
    expect(refused).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/^the client token \(the token option\) holds a character other than printable ASCII/) });
    expect((refused as Error).message).not.toContain(secret);
  });

  it('one AbortSignal shared by many calls at once draws no warning of a leak', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const client = new TesseraClient({ address: await deadAddress() });
    const shutdown = new AbortController();
    try {
      await Promise.all(Array.from({ length: 20 }, () => caught(client.getJob('j', { signal: shutdown.signal }))));
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      client.close();
    }
  });
});

describe('LocalCluster', () => {
  it('starts nothing once stopped: a process it would no longer stop would keep the program alive', async () => {
    const { LocalCluster } = await import('../client/index.js');
    const cluster = await new LocalCluster({ workers: 1 }).start();
    await cluster.stop();
    await expect(cluster.startCoordinator()).rejects.toThrow('LocalCluster: cannot start coordinator: the cluster was stopped (make a new LocalCluster)');
    expect(() => cluster.startWorker()).toThrow(/^LocalCluster: cannot start worker-\d+: the cluster was stopped/);
  });

  it('whose workers exit at start (a bad argument) fails at once, with their last words, not after 30 s', async () => {
    const { LocalCluster } = await import('../client/index.js');
    const started = Date.now();
    const err = await new LocalCluster({ workers: 1, workerArgs: ['--slots', 'zero'] }).start().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/^worker-1 exited \(2\) before it registered: .*--slots/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
