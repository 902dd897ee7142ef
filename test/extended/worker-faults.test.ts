/**
 * Worker runtime faults, with real processes, a real ffmpeg and a real gRPC server:
 *
 * - ffmpeg dies with the process that started it: a worker SIGKILLed mid-encode (isolated
 *   processor or in-process) and an isolated processor killed from outside (the OOM killer) leave
 *   no encode running. The worker processes here run the build (dist/: `npm run build` first).
 * - ffmpeg that cannot be started is this machine's trouble (UNAVAILABLE, retried), not the input's.
 * - input fetches stop when the subtask is cancelled or a write fails, and their gRPC calls end at
 *   once instead of staying open (the coordinator sending on) until their deadline.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ProcessContext } from '../../shared/job-kind.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { Assignment__Output } from '../../shared/proto/generated/tessera/v1/Assignment.js';
import type { FetchTaskInputRequest__Output } from '../../shared/proto/generated/tessera/v1/FetchTaskInputRequest.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import type { WorkerServiceClient } from '../../shared/proto/generated/tessera/v1/WorkerService.js';
import { executeSubtask, fetchInputs, type ExecutorDeps } from '../../worker/executor.js';
import { ProcessorIsolation } from '../../worker/isolation.js';
import { passthroughProcessor } from '../../worker/processors/passthrough.js';
import { startCluster } from '../helpers/cluster.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The build the spawned worker processes run (isolation children always run it). */
const DIST = path.join(ROOT, 'dist');
const distUrl = (rel: string): string => pathToFileURL(path.join(DIST, rel)).href;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-worker-faults-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Polls `fn` until it returns something other than undefined/false, for up to `ms`. */
async function until<T>(what: string | (() => string), fn: () => T | undefined | false, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// Processes, from /proc.

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
  /** Start time in clock ticks since boot: with the pid, names the process even if the pid is reused. */
  start: string;
}

function readProc(pid: number): Proc | undefined {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = st.lastIndexOf(')');
    const rest = st.slice(close + 2).split(' ');
    return { pid, comm: st.slice(st.indexOf('(') + 1, close), state: rest[0]!, ppid: Number(rest[1]), start: rest[19]! };
  } catch {
    return undefined;
  }
}

/** Every live process whose ancestry includes `root` (not `root` itself). */
function descendants(root: number): Proc[] {
  const all = new Map<number, Proc>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const p = readProc(Number(e));
    if (p) all.set(p.pid, p);
  }
  return [...all.values()].filter((p) => {
    for (let q: Proc | undefined = p, n = 0; q && n < 64; q = all.get(q.ppid), n++) if (q.ppid === root) return true;
    return false;
  });
}

/** Whether the process recorded as `p` still runs (not gone, not a zombie, not another process under its pid). */
function running(p: Proc): boolean {
  const now = readProc(p.pid);
  return now !== undefined && now.start === p.start && now.state !== 'Z' && now.state !== 'X';
}

/** Leaves nothing running after a failed test: only the processes it recorded, by pid. */
function killLeftovers(procs: Proc[]): void {
  for (const p of procs) if (running(p)) process.kill(p.pid, 'SIGKILL');
}

// A long x264 encode of a generated source, read at its native rate (-re): it would run for ten
// minutes at little CPU.
const encodeArgs = (out: string): string[] => ['-re', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=10', '-t', '600', '-c:v', 'libx264', '-preset', 'ultrafast', '-threads', '1', '-y', out];

const ENCODE_PROCESSORS = `
import path from 'node:path';
import { runFfmpeg } from ${JSON.stringify(distUrl('shared/ffmpeg.js'))};
export const processors = new Map([
  ['encode', { name: 'encode', params: () => ({}), async process(ctx) {
    await runFfmpeg(${JSON.stringify(encodeArgs('OUT'))}.map((a) => (a === 'OUT' ? path.join(ctx.workDir, 'out.mp4') : a)), { onProgress: () => undefined });
    return { outputs: [] };
  } }],
  ['ok', { name: 'ok', params: () => ({}), process: async () => ({ outputs: [] }) }],
]);
`;

const silentLog = `const log = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {}, child() { return log; } };`;

/** A worker process that runs an encode in an isolated processor (the default worker mode). */
const ISOLATED_WORKER = `
import { ProcessorIsolation } from ${JSON.stringify(distUrl('worker/isolation.js'))};
${silentLog}
const [processorsModule, workDir] = process.argv.slice(2);
const isolation = new ProcessorIsolation({ memoryLimitMb: 4096, log, processorsModule });
const ctx = { jobId: 'j', subtaskId: 's', attempt: 1, phase: 0, params: {}, spec: {}, plan: null, inputs: [], workDir, signal: new AbortController().signal, progress() {}, threads: 1, log };
isolation.run('encode', ctx).then(() => process.exit(3), (e) => { console.error(e.message); process.exit(4); });
setInterval(() => undefined, 1000);
`;

/** A worker process that runs the encode itself (--memory-limit-mb 0: processors in-process). */
const IN_PROCESS_WORKER = `
import { runFfmpeg } from ${JSON.stringify(distUrl('shared/ffmpeg.js'))};
const out = process.argv[2];
runFfmpeg(${JSON.stringify(encodeArgs('OUT'))}.map((a) => (a === 'OUT' ? out : a)), { onProgress: () => undefined }).then(() => process.exit(3), (e) => { console.error(e.message); process.exit(4); });
setInterval(() => undefined, 1000);
`;

describe('ffmpeg dies with the process that started it', () => {
  const leftovers: Proc[] = [];
  const workers: ChildProcess[] = [];
  afterEach(() => {
    killLeftovers(leftovers.splice(0));
    for (const w of workers.splice(0)) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  });

  /** Starts `script` as a worker process, waits for its ffmpeg, SIGKILLs it, and returns what it had started. */
  async function killWorkerMidEncode(name: string, script: string, args: string[]): Promise<{ started: Proc[]; ffmpeg: Proc[] }> {
    const file = path.join(dir, `${name}.mjs`);
    await writeFile(file, script);
    let stderr = '';
    const worker = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    workers.push(worker);
    worker.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const ffmpeg = await until(() => `ffmpeg under worker ${worker.pid} (stderr: ${stderr})`, () => {
      if (worker.exitCode !== null) throw new Error(`the worker exited (${worker.exitCode}) before its ffmpeg started: ${stderr}`);
      const f = descendants(worker.pid!).filter((p) => p.comm === 'ffmpeg');
      return f.length > 0 ? f : undefined;
    });
    // Everything it started, the isolation child included, and only now: ffmpeg is running.
    const started = descendants(worker.pid!);
    leftovers.push(...started);
    const exited = once(worker, 'exit');
    worker.kill('SIGKILL');
    await exited;
    return { started, ffmpeg };
  }

  it('a worker SIGKILLed while its isolated processor encodes leaves no ffmpeg (nor anything else it started) running', async () => {
    const processors = path.join(dir, 'encode-processors.mjs');
    await writeFile(processors, ENCODE_PROCESSORS);
    const workDir = await mkdtemp(path.join(dir, 'iso-'));
    const { started, ffmpeg } = await killWorkerMidEncode('isolated-worker', ISOLATED_WORKER, [processors, workDir]);
    expect(ffmpeg.length).toBe(1);
    // The isolation child (node) and its ffmpeg, at least.
    expect(started.map((p) => p.comm)).toEqual(expect.arrayContaining(['node', 'ffmpeg']));
    const still = (): string => started.filter(running).map((p) => `${p.comm} ${p.pid}`).join(', ');
    await until(() => `the processes the worker started to end (still running: ${still()})`, () => started.every((p) => !running(p)));
  });

  it('a worker SIGKILLed while encoding in-process (--memory-limit-mb 0) leaves no ffmpeg running', async () => {
    const workDir = await mkdtemp(path.join(dir, 'inproc-'));
    const { ffmpeg } = await killWorkerMidEncode('in-process-worker', IN_PROCESS_WORKER, [path.join(workDir, 'out.mp4')]);
    expect(ffmpeg.length).toBe(1);
    await until(`ffmpeg ${ffmpeg[0]!.pid} to end`, () => !running(ffmpeg[0]!));
  });

  it('an isolated processor killed from outside (the OOM killer) takes its ffmpeg with it; the worker runs the next subtask', async () => {
    const processors = path.join(dir, 'encode-processors.mjs');
    await writeFile(processors, ENCODE_PROCESSORS);
    const workDir = await mkdtemp(path.join(dir, 'oom-'));
    const isolation = new ProcessorIsolation({ memoryLimitMb: 4096, processorsModule: processors, log: pino({ level: 'silent' }) });
    const ctx = (): ProcessContext<unknown> => ({ jobId: 'j', subtaskId: 's', attempt: 1, phase: 0, params: {}, spec: {} as JobSpec__Output, plan: null, inputs: [], workDir, signal: new AbortController().signal, progress: () => undefined, threads: 1, log: pino({ level: 'silent' }) });
    try {
      const outcome = isolation.run('encode', ctx()).then(
        () => new Error('the encode finished'),
        (e: unknown) => e,
      );
      const ffmpeg = await until('ffmpeg under the isolation child', () => descendants(process.pid).find((p) => p.comm === 'ffmpeg'));
      leftovers.push(ffmpeg);
      // Its parent is the processor's child process (setpriv, where used, has exec'd ffmpeg).
      const child = readProc(ffmpeg.ppid)!;
      expect(child.comm).toBe('node');
      process.kill(child.pid, 'SIGKILL');
      expect(await outcome).toMatchObject({ code: status.INTERNAL, retryable: true, message: expect.stringMatching(/processor crashed \(killed by SIGKILL\)/) });
      await until(`ffmpeg ${ffmpeg.pid} to end`, () => !running(ffmpeg));
      expect((await isolation.run('ok', ctx())).outputs).toEqual([]);
    } finally {
      isolation.close();
    }
  });

  it('an idle processor child killed before the worker noticed is not handed the next subtask: a fresh child runs it', async () => {
    const processors = path.join(dir, 'pid-processors.mjs');
    await writeFile(processors, `export const processors = new Map([['pid', { name: 'pid', params: () => ({}), async process() { return { outputs: [], result: process.pid }; } }]]);\n`);
    const isolation = new ProcessorIsolation({ memoryLimitMb: 1024, processorsModule: processors, log: pino({ level: 'silent' }) });
    const ctx = (): ProcessContext<unknown> => ({ jobId: 'j', subtaskId: 's', attempt: 1, phase: 0, params: {}, spec: {} as JobSpec__Output, plan: null, inputs: [], workDir: dir, signal: new AbortController().signal, progress: () => undefined, threads: 1, log: pino({ level: 'silent' }) });
    try {
      // Killed (the OOM killer, an operator) in the same turn as the next assignment comes: the
      // worker has not yet seen it exit. Before, the subtask failed as "processor crashed". Also
      // once the kill has landed (its IPC pipe gone: the request fails as EPIPE) but the worker
      // has still not seen it, its event loop busy meanwhile.
      for (const busyMs of [0, 300]) {
        // Its child, healthy, goes back to the idle ones.
        const first = (await isolation.run('pid', ctx())).result as number;
        process.kill(first, 'SIGKILL');
        for (const until = Date.now() + busyMs; Date.now() < until; );
        const second = (await isolation.run('pid', ctx())).result as number;
        expect(second, `busy ${busyMs} ms`).toBeGreaterThan(0);
        expect(second).not.toBe(first);
      }
    } finally {
      isolation.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("processor children take the worker's ffmpeg probe", () => {
  it('a child has the version and encoders the worker probed before it runs anything, and never probes ffmpeg itself', async () => {
    // Where the child would run ffmpeg at all, this one fails: a probe of its own shows as an error.
    const processors = path.join(dir, 'probe-processors.mjs');
    await writeFile(
      processors,
      `import { knownFfmpegInfo, ffmpegInfo } from ${JSON.stringify(distUrl('shared/ffmpeg.js'))};
export const processors = new Map([['probe', { name: 'probe', params: () => ({}), async process() {
  const before = knownFfmpegInfo() ?? null;
  return { outputs: [], result: { before, after: ffmpegInfo() } };
} }]]);
`,
    );
    const { ffmpegInfo } = await import('../../shared/ffmpeg.js');
    const info = ffmpegInfo();
    const saved = process.env['FFMPEG_PATH'];
    process.env['FFMPEG_PATH'] = path.join(dir, 'no-such-dir', 'ffmpeg');
    const isolation = new ProcessorIsolation({ memoryLimitMb: 1024, processorsModule: processors, log: pino({ level: 'silent' }) });
    const ctx = (): ProcessContext<unknown> => ({ jobId: 'j', subtaskId: 's', attempt: 1, phase: 0, params: {}, spec: {} as JobSpec__Output, plan: null, inputs: [], workDir: dir, signal: new AbortController().signal, progress: () => undefined, threads: 1, log: pino({ level: 'silent' }) });
    try {
      // The first request carries the probe; the same child, idle again, keeps it for the next one.
      for (let i = 0; i < 2; i++) expect((await isolation.run('probe', ctx())).result).toEqual({ before: info, after: info });
    } finally {
      isolation.close();
      if (saved === undefined) delete process.env['FFMPEG_PATH'];
      else process.env['FFMPEG_PATH'] = saved;
    }
  });
});

describe('ffmpeg that cannot be started is this machine trouble', () => {
  /** The ffmpeg module loaded afresh with FFMPEG_PATH and FFPROBE_PATH set to `bin` (it resolves them once). */
  async function withBinary<T>(bin: string, fn: (m: typeof import('../../shared/ffmpeg.js')) => Promise<T>): Promise<T> {
    const saved = { ffmpeg: process.env['FFMPEG_PATH'], ffprobe: process.env['FFPROBE_PATH'] };
    process.env['FFMPEG_PATH'] = bin;
    process.env['FFPROBE_PATH'] = bin;
    try {
      vi.resetModules();
      return await fn(await import('../../shared/ffmpeg.js'));
    } finally {
      for (const [k, v] of [['FFMPEG_PATH', saved.ffmpeg], ['FFPROBE_PATH', saved.ffprobe]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      vi.resetModules();
    }
  }

  const probeArgs = ['-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=1', '-t', '1', '-f', 'null', '-'];

  /** What a failure to start must look like: retryable UNAVAILABLE naming the binary and the errno, blaming no input. */
  function expectCannotStart(err: unknown, bin: string, errno: string): void {
    expect(err).toMatchObject({ name: 'TesseraError', code: status.UNAVAILABLE, retryable: true, input: undefined });
    const message = (err as Error).message;
    expect(message).toContain(bin);
    expect(message).toContain(errno);
    expect(message).toMatch(/this machine's trouble, not the input's/);
  }

  it('a missing ffmpeg binary (ENOENT) fails with UNAVAILABLE, retryable, naming the path and errno', async () => {
    const bin = path.join(dir, 'no-such-dir', 'ffmpeg');
    const err = await withBinary(bin, (m) => m.runFfmpeg(probeArgs, { input: 'clip.mp4' }).then(() => undefined, (e: unknown) => e));
    expectCannotStart(err, bin, 'ENOENT');
  });

  it('an ffprobe that is not executable (EACCES) fails with UNAVAILABLE, retryable', async () => {
    const bin = path.join(dir, 'not-executable-ffprobe');
    await writeFile(bin, '#!/bin/sh\nexit 0\n');
    await chmod(bin, 0o644);
    const err = await withBinary(bin, (m) => m.runFfprobe(['-show_format', '-i', path.join(dir, 'clip.mp4')], { input: 'clip.mp4' }).then(() => undefined, (e: unknown) => e));
    expectCannotStart(err, bin, 'EACCES');
  });

  it('an executable ffmpeg whose interpreter is missing (exec fails: ENOENT) fails with UNAVAILABLE, retryable', async () => {
    const bin = path.join(dir, 'broken-ffmpeg');
    await writeFile(bin, '#!/no/such/interpreter\n');
    await chmod(bin, 0o755);
    const err = await withBinary(bin, (m) => m.runFfmpeg(probeArgs, { input: 'clip.mp4' }).then(() => undefined, (e: unknown) => e));
    expectCannotStart(err, bin, 'ENOENT');
  });

  it('a worker whose ffmpeg cannot be started registers without the media kinds, says why once, and takes image work', async () => {
    const bin = path.join(dir, 'no-such-dir', 'ffmpeg');
    const logs: string[] = [];
    const cluster = await startCluster({ workers: 0, onLog: (who, line) => who === 'no-ffmpeg' && logs.push(line) });
    try {
      cluster.startWorker('no-ffmpeg', [], { env: { FFMPEG_PATH: bin } });
      await cluster.waitForWorkers(1);
      const [w] = await cluster.client.listWorkers();
      expect(w!.name).toBe('no-ffmpeg');
      expect(w!.capabilities!.kinds).toEqual(expect.arrayContaining(['image', 'passthrough']));
      for (const k of ['video', 'audio', 'thumbnails']) expect(w!.capabilities!.kinds).not.toContain(k);
      expect(w!.capabilities!.ffmpeg_version).toBe('');
      expect(w!.capabilities!.encoders).toEqual([]);
      const warnings = logs.filter((l) => l.includes('ffmpeg not available'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(bin);
      expect(warnings[0]).toContain('ENOENT');
      const photo = path.join(dir, 'no-ffmpeg.png');
      await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a6' } }).png().toFile(photo);
      const job = await cluster.client.submit({ image: { width: 32, format: 'webp' } }, [photo]);
      const done = await cluster.client.wait(job.id);
      expect(done.state).toBe('JOB_STATE_SUCCEEDED');
      expect(done.subtasks.map((st) => st.worker)).toEqual([w!.name]);
    } finally {
      await cluster.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('input fetches end their calls', () => {
  interface Fetch {
    name: string;
    cancelled: boolean;
    ended: boolean;
  }
  /** How the server sends each input: all at once (small), or slowly, never reaching its end. */
  const SLOW = new Set(['big.bin']);
  const SMALL_BYTES = 1000;
  const BIG_BYTES = 2 * 1024 ** 3;
  const CHUNK = 256 * 1024;

  let server: grpc.Server;
  let client: WorkerServiceClient;
  const fetches: Fetch[] = [];

  beforeAll(async () => {
    const { proto } = loadTesseraProto();
    server = new grpc.Server();
    server.addService(proto.tessera.v1.WorkerService.service, {
      FetchTaskInput: (call: grpc.ServerWritableStream<FetchTaskInputRequest__Output, { data: Buffer }>) => {
        const f: Fetch = { name: call.request.name, cancelled: false, ended: false };
        fetches.push(f);
        call.on('cancelled', () => (f.cancelled = true));
        if (!SLOW.has(f.name)) {
          call.write({ data: Buffer.alloc(SMALL_BYTES, 1) });
          call.end();
          f.ended = true;
          return;
        }
        let room = true;
        const timer = setInterval(() => {
          if (call.cancelled) f.cancelled = true;
          if (f.cancelled) {
            clearInterval(timer);
            return;
          }
          if (!room) return;
          room = call.write({ data: Buffer.alloc(CHUNK, 2) });
          if (!room) call.once('drain', () => (room = true));
        }, 20);
      },
      Connect: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
      UploadTaskOutput: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: status.UNIMPLEMENTED, details: 'not here' }),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    client = new proto.tessera.v1.WorkerService(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as WorkerServiceClient;
  });
  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });
  afterEach(() => {
    fetches.length = 0;
  });

  const input = (name: string): Assignment__Output['inputs'][number] => ({
    name,
    size: String(SLOW.has(name) ? BIG_BYTES : SMALL_BYTES),
    sha256: '',
    inline_data: Buffer.alloc(0),
    inline: false,
    shared_path: '',
    mtime_ms: 0,
    ino: '',
    spooled: false,
  });
  const assignment = (id: string, names: string[]): Assignment__Output => ({
    subtask_id: id,
    job_id: 'job-1',
    attempt: 1,
    kind: 'passthrough',
    spec: {} as JobSpec__Output,
    plan_json: '',
    inputs: names.map(input),
    timeout_ms: 0,
    phase: 0,
    shared_output_dir: '',
    shared_output_token: '',
  });
  const deps = (tempRoot: string, metadata: () => grpc.Metadata = () => new grpc.Metadata()): ExecutorDeps => ({
    client,
    metadata,
    processors: new Map([['passthrough', passthroughProcessor]]),
    threads: 1,
    tempRoot,
    log: pino({ level: 'silent' }),
    progress: () => undefined,
  });
  const open = (): string[] => fetches.filter((f) => !f.ended && !f.cancelled).map((f) => f.name);

  it('a write that fails (a full disk) cancels the input call at once, and no later input is fetched', async () => {
    // The worker's temp folder on a 1 MiB disk of its own: big.bin fills it. (A symlink to /dev/full
    // stood for it once; the worker's file writer has since refused to follow it, ELOOP, and the
    // test's "ENOSPC" matched its own folder's name.)
    const tempRoot = await mkdtemp(path.join(dir, 'small-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tempRoot]);
    try {
      const result = await executeSubtask(assignment('enospc', ['big.bin', 'later.bin']), new AbortController().signal, { ...deps(tempRoot), name: 'w1' });
      // This machine's trouble, said so and naming where: not an INTERNAL "processor error: ENOSPC"
      // the job blamed on its input (review OPS4).
      expect(result).toMatchObject({ ok: false, retryable: true, error_code: 'UNAVAILABLE' });
      expect(result.error_message).toMatch(new RegExp(`^worker w1 failed, not because of the input: its temp folder ${tempRoot} is full \\(ENOSPC: no space left on device`));
    } finally {
      execFileSync('umount', ['-l', tempRoot]);
    }
    expect(fetches.map((f) => f.name)).toEqual(['big.bin']);
    await until(() => `the server to see big.bin's call cancelled (open: ${open().join(', ')})`, () => fetches[0]!.cancelled);
    expect(fetches.map((f) => f.name)).toEqual(['big.bin']);
  });

  it('a cancel that lands as an input call is made cancels that call at once, and no later input is fetched', async () => {
    const tempRoot = await mkdtemp(path.join(dir, 'cancel-'));
    const controller = new AbortController();
    let calls = 0;
    // The metadata of the second call is made just before the call: the subtask is cancelled then.
    const metadata = (): grpc.Metadata => {
      if (++calls === 2) controller.abort();
      return new grpc.Metadata();
    };
    const result = await executeSubtask(assignment('cancel', ['first.bin', 'big.bin', 'later.bin']), controller.signal, deps(tempRoot, metadata));
    expect(result).toMatchObject({ ok: false, error_code: 'CANCELLED', retryable: true });
    expect(calls).toBe(2);
    // big.bin's call may be cancelled before the server ever sees it; if it does see it, it must end.
    await until(() => `no input call left open (open: ${open().join(', ')})`, () => open().length === 0);
    await new Promise((r) => setTimeout(r, 500));
    expect(open()).toEqual([]);
    expect(fetches.map((f) => f.name)).not.toContain('later.bin');
    expect(fetches.map((f) => f.name)[0]).toBe('first.bin');
  });

  it('inputs of a subtask already cancelled are not fetched at all', async () => {
    const workDir = await mkdtemp(path.join(dir, 'precancelled-'));
    const controller = new AbortController();
    controller.abort();
    const err = await fetchInputs(assignment('precancelled', ['big.bin', 'later.bin']), workDir, controller.signal, deps(workDir)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'AbortError' });
    // Give a call that was started the time to reach the server.
    await new Promise((r) => setTimeout(r, 1000));
    expect(fetches).toEqual([]);
  });
});
