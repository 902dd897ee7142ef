/**
 * Runs processors in child processes, so that one that crashes (a libvips or ffmpeg segfault), hangs
 * (a native call that ignores its AbortSignal) or balloons in memory (a decompression bomb that got
 * past the header checks) is killed without taking the worker down; the subtask fails with a clear
 * error and the worker takes the next one.
 *
 * Each child is the leader of its own process group, so killing the group also kills the ffmpeg
 * processes it started. Memory is the resident size of the whole tree, polled; sharp's memory is
 * native, which worker_threads' `resourceLimits` would not see, and `ulimit -v` breaks V8's address
 * space reservations. Healthy children are reused, so a subtask does not pay for a process start.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { status } from '../shared/grpc-status.js';
import { TesseraError } from '../shared/errors.js';
import { knownFfmpegInfo } from '../shared/ffmpeg.js';
import type { ProcessContext, ProcessResult } from '../shared/job-kind.js';
import type { Logger } from '../shared/logger.js';
import { withoutBulkMalloc } from '../shared/malloc.js';
import { isolationChildMain, type ChildReply, type ChildRequest } from './isolation-child.js';

/** Entry point of a child: this module compiled (tests run from source, so they use the build in dist/). */
const ENTRY = import.meta.url.endsWith('.ts') ? fileURLToPath(new URL('../dist/worker/isolation.js', import.meta.url)) : fileURLToPath(import.meta.url);

/** Kinds that touch no untrusted decoder. */
const IN_PROCESS_KINDS: ReadonlySet<string> = new Set(['passthrough']);


/** Set in a child's environment; the child then serves requests instead of being a library. */
const CHILD_ENV = 'TESSERA_ISOLATION_CHILD';

export interface IsolationOptions {
  /** Resident memory ceiling of a subtask's process tree, in MiB. */
  memoryLimitMb: number;
  /** How often memory is sampled. */
  pollMs?: number;
  /** Module whose `processors` export (a Map) replaces the built-in processors in children (tests). */
  processorsModule?: string;
  /** Idle children kept for reuse. */
  maxIdle?: number;
  /** Children started at once, so the first subtasks do not wait for Node and sharp to load. */
  prewarm?: number;
  log: Logger;
}

/** A child still holding more than this share of the ceiling after its subtask is retired, not pooled. */
const RETIRE_ABOVE_CEILING_SHARE = 0.25;

export class ProcessorIsolation {
  private readonly idle: ChildProcess[] = [];
  private readonly busy = new Set<ChildProcess>();
  /** Children that have been sent the worker's ffmpeg probe. */
  private readonly informed = new WeakSet<ChildProcess>();
  private closed = false;

  constructor(private readonly opts: IsolationOptions) {
    for (let i = 0; i < (opts.prewarm ?? 0); i++) this.idle.push(this.spawn());
  }

  private takeIdle(): ChildProcess | undefined {
    for (let c = this.idle.pop(); c; c = this.idle.pop()) if (c.exitCode === null && c.signalCode === null) return c;
    return undefined;
  }

  /** Runs `ctx` with the processor of `kind` in a child process; rejects with a TesseraError when the child dies. */
  async run(kind: string, ctx: ProcessContext<unknown>): Promise<ProcessResult> {
    if (this.closed) throw new TesseraError(status.UNAVAILABLE, 'worker shutting down', { retryable: true });
    ctx.signal.throwIfAborted();
    const idle = this.takeIdle();
    try {
      return await this.runOn(idle ?? this.spawn(), kind, ctx);
    } catch (err) {
      // An idle child that died while it waited (the OOM killer, a kill from outside) before its
      // exit was noticed never got the subtask: it runs on a fresh child instead.
      if (!idle || !(err as { beforeStart?: boolean }).beforeStart || this.closed || ctx.signal.aborted) throw err;
      return this.runOn(this.spawn(), kind, ctx);
    }
  }

  private async runOn(child: ChildProcess, kind: string, ctx: ProcessContext<unknown>): Promise<ProcessResult> {
    this.busy.add(child);
    const ffmpeg = this.informed.has(child) ? undefined : knownFfmpegInfo();
    if (ffmpeg) this.informed.add(child);
    const request: ChildRequest = {
      type: 'run',
      kind,
      ...(ffmpeg ? { ffmpeg } : {}),
      ctx: { jobId: ctx.jobId, subtaskId: ctx.subtaskId, attempt: ctx.attempt, phase: ctx.phase, params: ctx.params, spec: ctx.spec, plan: ctx.plan, inputs: ctx.inputs, workDir: ctx.workDir, threads: ctx.threads },
    };
    let healthy = false;
    try {
      const result = await this.exchange(child, request, ctx);
      healthy = true;
      return result;
    } catch (err) {
      // A processor's own error leaves the child healthy; a kill, crash or abort does not.
      healthy = (err as { fromChild?: boolean }).fromChild === true;
      throw err;
    } finally {
      this.busy.delete(child);
      // A child that kept much of what its subtask used (glibc holds libvips' freed heap) is not
      // pooled: the ceiling counts its whole tree, and its next subtask, one that fits, was killed
      // for memory the last one left (and an idle child held it meanwhile).
      const kept = healthy ? treeRss(child.pid) : 0;
      if (healthy && !this.closed && this.idle.length < (this.opts.maxIdle ?? 4) && kept <= this.opts.memoryLimitMb * 1024 * 1024 * RETIRE_ABOVE_CEILING_SHARE) this.idle.push(child);
      else killTree(child);
    }
  }

  private spawn(): ChildProcess {
    const child = fork(ENTRY, [], {
      env: {
        // libvips under glibc malloc fragments badly with many threads (sharp's own guidance; it is
        // why sharp defaults to one thread there): two arenas keep the children's RSS in check.
        MALLOC_ARENA_MAX: '2',
        ...withoutBulkMalloc(process.env),
        [CHILD_ENV]: '1',
        // The worker's own level, whichever way it was given (flag, config key, variable).
        TESSERA_LOG_LEVEL: this.opts.log.level,
        ...(this.opts.processorsModule ? { TESSERA_ISOLATION_PROCESSORS: this.opts.processorsModule } : {}),
      },
      // Its own process group: killing -pid also kills the ffmpeg it runs.
      detached: true,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    // Idle children must not keep the worker process alive.
    child.unref();
    child.channel?.unref();
    child.on('error', () => undefined);
    // Dead by any means (a crash, the OOM killer, a kill from outside): what it started may live on
    // in its group, reparented, ffmpeg encoding away. Swept at once: the group's id stays reserved
    // while anything is left in it, and is only reused after a pid wraparound once it is empty.
    const pid = child.pid;
    child.once('exit', () => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Nothing left in the group.
      }
    });
    return child;
  }

  private exchange(child: ChildProcess, request: ChildRequest, ctx: ProcessContext<unknown>): Promise<ProcessResult> {
    return new Promise<ProcessResult>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        ctx.signal.removeEventListener('abort', onAbort);
        child.off('message', onMessage);
        child.off('exit', onExit);
        child.channel?.unref();
        fn();
      };
      // Whether the child said it took the request.
      let started = false;
      const onMessage = (m: ChildReply): void => {
        if (m.type === 'started') started = true;
        else if (m.type === 'progress') ctx.progress(m.fraction, m.message);
        else if (m.type === 'done') finish(() => resolve(m.result));
        else if (m.type === 'error') {
          const e = m.error;
          const err = e.code !== undefined ? new TesseraError(e.code, e.message, { retryable: e.retryable ?? false, ...(e.input ? { input: e.input } : {}), ...(e.errno && { cause: Object.assign(new Error(e.errno), { code: e.errno }) }) }) : Object.assign(new Error(e.message), e.errno ? { code: e.errno } : {});
          finish(() => reject(Object.assign(err, { fromChild: true })));
        }
      };
      const onExit = (code: number | null, sig: NodeJS.Signals | null): void => {
        const how = sig ? `killed by ${sig}` : `exit code ${code}`;
        finish(() => reject(Object.assign(new TesseraError(status.INTERNAL, `processor crashed (${how}); the worker is unharmed`, { retryable: true }), { beforeStart: !started })));
      };
      const onAbort = (): void => {
        // Kill first, so that a processor ignoring its signal (a hang) cannot hold the slot.
        killTree(child);
        finish(() => reject(ctx.signal.reason ?? new DOMException('aborted', 'AbortError')));
      };
      const limitBytes = this.opts.memoryLimitMb * 1024 * 1024;
      const poll = setInterval(() => {
        const rss = treeRss(child.pid);
        if (rss <= limitBytes) return;
        this.opts.log.warn({ subtask: ctx.subtaskId, rssMb: Math.round(rss / 2 ** 20), rssBytes: rss, limitMb: this.opts.memoryLimitMb }, 'subtask over its memory ceiling: killed');
        killTree(child);
        finish(() =>
          reject(new TesseraError(status.RESOURCE_EXHAUSTED, `subtask used ${Math.round(rss / 2 ** 20)} MiB, over the worker's memory ceiling --memory-limit-mb=${this.opts.memoryLimitMb}: killed`, { retryable: false })),
        );
      }, this.opts.pollMs ?? 200);
      child.channel?.ref();
      child.on('message', onMessage);
      child.on('exit', onExit);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      child.send(request, (err) => {
        // Not delivered (the child died and its channel is gone: EPIPE): it never took the subtask either.
        if (err) finish(() => reject(Object.assign(new TesseraError(status.INTERNAL, `cannot start the processor: ${err.message}`, { retryable: true }), { beforeStart: true })));
      });
    });
  }

  /**
   * The runner for a kind, or undefined to run it in-process: passthrough decodes nothing (bytes in =
   * bytes out), and its no-op subtasks are what measures the cluster's own overhead.
   */
  hookFor(kind: string): ((kind: string, ctx: ProcessContext<unknown>) => Promise<ProcessResult>) | undefined {
    return IN_PROCESS_KINDS.has(kind) ? undefined : (k, ctx) => this.run(k, ctx);
  }

  /** Kills every child (idle and busy). Idempotent. */
  close(): void {
    this.closed = true;
    for (const c of [...this.idle, ...this.busy]) killTree(c);
    this.idle.length = 0;
  }
}

/** SIGKILLs a child's process group (the child and everything it started). */
function killTree(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/** Resident bytes of `pid` and its descendants (Linux /proc; 0 elsewhere, which disables the ceiling). */
export function treeRss(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let total = 0;
  const seen = new Set<number>();
  const visit = (p: number): void => {
    if (seen.has(p) || seen.size > 256) return;
    seen.add(p);
    try {
      // VmRSS is in kB whatever the kernel's page size (statm counts pages: 64 KiB on some arm64 kernels).
      total += Number(/^VmRSS:\s*(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      for (const t of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/)) if (t) visit(Number(t));
    } catch {
      // The process ended between two reads.
    }
  };
  visit(pid);
  return total;
}

if (process.env[CHILD_ENV] === '1' && process.send) void isolationChildMain();
