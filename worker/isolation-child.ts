/**
 * The child side of worker/isolation.ts: receives one subtask at a time over IPC, runs the kind's
 * processor and sends back progress and the result (or the error, with its gRPC status).
 */
import { status } from '../shared/grpc-status.js';
import pino from 'pino';
import sharp from 'sharp';
import { TesseraError, localTroubleErrno } from '../shared/errors.js';
import { adoptFfmpegInfo, type FfmpegInfo } from '../shared/ffmpeg.js';
import type { LocalFile, ProcessResult, WorkerProcessor } from '../shared/job-kind.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';

/** What the parent sends: a subtask, without the parts that cannot cross a process boundary. */
export interface ChildRequest {
  type: 'run';
  kind: string;
  /** The worker's ffmpeg probe, sent with a child's first request once the worker has it. */
  ffmpeg?: FfmpegInfo;
  ctx: { jobId: string; subtaskId: string; attempt: number; phase: number; params: unknown; spec: JobSpec__Output; plan: unknown; inputs: LocalFile[]; workDir: string; threads: number };
}

/** What the child sends back. */
export type ChildReply =
  | { type: 'started' }
  | { type: 'progress'; fraction: number; message: string }
  | { type: 'done'; result: ProcessResult }
  | { type: 'error'; error: { message: string; code?: number; retryable?: boolean; input?: string; errno?: string } };

/** Serves requests until the parent goes away. */
export async function isolationChildMain(): Promise<void> {
  const log = pino({ level: process.env['TESSERA_LOG_LEVEL'] ?? 'info', base: { pid: process.pid, component: 'processor' } }, pino.destination(2));
  const override = process.env['TESSERA_ISOLATION_PROCESSORS'];
  const processors = override
    ? ((await import(override)) as { processors: ReadonlyMap<string, WorkerProcessor> }).processors
    : (await import('./processors/index.js')).workerProcessors;
  const send = (m: ChildReply): void => {
    process.send?.(m);
  };
  // The parent kills us on abort, so a request needs no signal of its own beyond one that never fires.
  const never = new AbortController().signal;
  // The worker is gone, however it went (SIGKILL and the OOM killer included): take everything this
  // child started with it. It leads its own process group (worker/isolation.ts spawns it detached),
  // and ffmpeg ignores SIGPIPE, so an orphaned encode would run on to its end. Killing the group
  // kills this process too.
  process.on('disconnect', () => {
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {
      // Not a group leader (started some other way): there is no group of ours to kill.
    }
    process.exit(0);
  });
  process.on('message', (m: ChildRequest) => {
    if (m?.type !== 'run') return;
    // Taken: a death from here on is this subtask's (the parent runs it again on a fresh child only before).
    send({ type: 'started' });
    if (m.ffmpeg) adoptFfmpegInfo(m.ffmpeg);
    void (async () => {
      try {
        const processor = processors.get(m.kind);
        if (!processor) throw new TesseraError(status.FAILED_PRECONDITION, `this worker cannot run ${m.kind} subtasks`, { retryable: true });
        sharp.concurrency(m.ctx.threads);
        const result = await processor.process({
          ...m.ctx,
          signal: never,
          progress: (fraction, message = '') => send({ type: 'progress', fraction, message }),
          log: log.child({ job: m.ctx.jobId, subtask: m.ctx.subtaskId, attempt: m.ctx.attempt }),
        });
        send({ type: 'done', result });
      } catch (err) {
        const e = err as Partial<TesseraError>;
        send({
          type: 'error',
          // A TesseraError's local trouble (ffmpeg's full disk) travels as its errno, which tells the worker's own trouble from the subtask's.
          error: err instanceof TesseraError ? { message: err.message, code: err.code, retryable: err.retryable, ...(err.input ? { input: err.input } : {}), ...(localTroubleErrno(err) && { errno: localTroubleErrno(err) }) } : { message: e?.message ?? String(err), ...(typeof (err as NodeJS.ErrnoException)?.code === 'string' && { errno: (err as NodeJS.ErrnoException).code }) },
        });
      }
    })();
  });
}
