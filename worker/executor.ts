/**
 * Runs one assigned subtask: fetch its inputs (verified), call the kind's processor with an
 * AbortSignal, upload the outputs (verified), and build the result message.
 */
import { constants as fsConstants, existsSync, mkdirSync } from 'node:fs';
import { access, copyFile, link, lstat, mkdir, open, readFile, readlink, realpath, rm, stat, symlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type * as grpc from '@grpc/grpc-js';
import pLimit from 'p-limit';
import { status } from '../shared/grpc-status.js';
import { INLINE_LIMIT, INLINE_RESULT_BYTES, transferDeadlineMs } from '../shared/config.js';
import { TesseraError, dataLoss, inputChecksumMismatch, invalidArgument, isAbortError, localTroubleErrno, statusName } from '../shared/errors.js';
import { deadline } from '../shared/grpc-handlers.js';
import type { LocalFile, ProcessContext, ProcessResult, WorkerProcessor } from '../shared/job-kind.js';
import type { Logger } from '../shared/logger.js';
import { NameSet, safeFileName, safeOutputName } from '../shared/names.js';
import type { Assignment__Output } from '../shared/proto/generated/tessera/v1/Assignment.js';
import type { OutputRef } from '../shared/proto/generated/tessera/v1/OutputRef.js';
import type { SubtaskResult } from '../shared/proto/generated/tessera/v1/SubtaskResult.js';
import type { UploadTaskOutputRequest } from '../shared/proto/generated/tessera/v1/UploadTaskOutputRequest.js';
import type { UploadTaskOutputResponse__Output } from '../shared/proto/generated/tessera/v1/UploadTaskOutputResponse.js';
import type { WorkerServiceClient } from '../shared/proto/generated/tessera/v1/WorkerService.js';
import { canWriteShared, sharedOutputTemp } from '../shared/shared-output.js';
import { asWire, readEncodedChunks } from '../shared/encoded-chunks.js';
import { fieldNumber } from '../shared/proto.js';
import { closeWriteStream, threadedWriteStream } from '../shared/file-writer.js';
import { endsWithAnswer, newSha256, sha256, sha256File, writeWithBackpressure } from '../shared/streams.js';
import { steadyNow } from '../shared/clock.js';

export interface ExecutorDeps {
  client: WorkerServiceClient;
  metadata: () => grpc.Metadata;
  processors: ReadonlyMap<string, WorkerProcessor>;
  /** Runs a processor somewhere it cannot hurt the worker (worker/isolation.ts); in-process when absent. */
  isolate?: ((kind: string, ctx: ProcessContext<unknown>) => Promise<ProcessResult>) | undefined;
  threads: number;
  tempRoot: string;
  /** The worker's name, for messages about this machine (its full temp folder). */
  name?: string;
  log: Logger;
  progress: (subtaskId: string, attempt: number, fraction: number, message: string) => void;
}

/** Executes an assignment and returns the result message to send (never throws). */
export async function executeSubtask(a: Assignment__Output, signal: AbortSignal, deps: ExecutorDeps): Promise<SubtaskResult> {
  const started = steadyNow();
  let log: Logger | undefined;
  const logger = (): Logger => (log ??= deps.log.child({ job: a.job_id, subtask: a.subtask_id, attempt: a.attempt }));
  // The work folder is made when first asked for: a subtask without inputs or files of its own
  // (diagnostic no-ops, thousands a second) then costs no mkdir/rmdir. The attempt makes the name
  // unique within this worker process, whose temp root is private to it.
  const workDir = path.join(deps.tempRoot, `st-${a.subtask_id.replace(/[^\w.-]/g, '_').slice(0, 80)}-a${a.attempt}`);
  let made = false;
  const ensureWorkDir = (): string => {
    if (!made) {
      mkdirSync(workDir, { recursive: true });
      made = true;
    }
    return workDir;
  };
  const base = { subtask_id: a.subtask_id, attempt: a.attempt };
  // Shared inputs read in place through descriptors held while the subtask runs (see fetchInputs).
  const held: FileHandle[] = [];
  try {
    // Cancelled while it waited in the prefetch queue: nothing to run.
    signal.throwIfAborted();
    const processor = deps.processors.get(a.kind);
    if (!processor) throw new TesseraError(status.FAILED_PRECONDITION, `this worker cannot run ${a.kind} subtasks`, { retryable: true });
    if (!a.spec) throw new TesseraError(status.INVALID_ARGUMENT, 'assignment without a job spec', { retryable: false });
    const inputs = a.inputs.length > 0 ? await fetchInputs(a, ensureWorkDir(), signal, deps, held) : [];
    const ctx: ProcessContext<unknown> = {
      jobId: a.job_id,
      subtaskId: a.subtask_id,
      attempt: a.attempt,
      phase: a.phase,
      params: processor.params(a.spec),
      spec: a.spec,
      plan: JSON.parse(a.plan_json || 'null') as unknown,
      inputs,
      get workDir() {
        return ensureWorkDir();
      },
      signal,
      progress: (fraction, message = '') => deps.progress(a.subtask_id, a.attempt, fraction, message),
      threads: deps.threads,
      get log() {
        return logger();
      },
    };
    const result: ProcessResult = await (deps.isolate ? deps.isolate(a.kind, ctx) : processor.process(ctx));
    signal.throwIfAborted();
    // Outputs go straight into the folder the assignment names (the job's shared output folder, or
    // the coordinator's spool) when this worker sees it at that path; otherwise they are uploaded.
    const dir = result.outputs.length > 0 && a.shared_output_dir && (await canWriteShared(a.shared_output_dir)) ? a.shared_output_dir : '';
    const outputs: OutputRef[] = [];
    // Small outputs ride inside the result, up to INLINE_RESULT_BYTES in all: a subtask making
    // thousands of thumbnails uploads the rest rather than pass the control stream's message limit.
    const inline = { left: INLINE_RESULT_BYTES };
    let placed: Array<OutputRef | undefined> = [];
    const placedLeft = (): OutputRef[] => placed.slice(outputs.length).filter((o) => o !== undefined);
    try {
      // Placed several at a time: one at a time, the link and checksum of each of a subtask's 250
      // thumbnails kept its slot 0.6 s past its work. An output that cannot be placed there (the
      // coordinator's full disk, a file system that refuses links or copies) is uploaded: the
      // upload's answer tells the coordinator's fault from this worker's.
      placed = dir ? await placeOutputs(a, result.outputs, dir, signal) : [];
      for (const [i, o] of result.outputs.entries()) outputs.push(placed[i] ?? (await uploadOutput(a, o, signal, deps, inline)));
    } catch (err) {
      // Those placed, the ones after a failed upload too.
      await Promise.all([...outputs, ...placedLeft()].map((o) => (o.shared_path ? rm(o.shared_path, { force: true }) : undefined)));
      throw err;
    }
    return {
      ...base,
      ok: true,
      outputs,
      item_errors: (result.itemErrors ?? []).map((e) => ({ input: e.input, code: e.code, message: e.message })),
      result_json: result.result === undefined ? '' : JSON.stringify(result.result),
      duration_ms: String(steadyNow() - started),
    };
  } catch (err) {
    return { ...base, ok: false, ...describeFailure(err, signal, logger(), deps), duration_ms: String(steadyNow() - started) };
  } finally {
    await Promise.all(held.map((fh) => fh.close().catch(() => undefined)));
    if (made) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function describeFailure(err: unknown, signal: AbortSignal, log: Logger, deps: Pick<ExecutorDeps, 'tempRoot' | 'name'>): Pick<SubtaskResult, 'error_code' | 'error_message' | 'retryable' | 'worker_trouble'> {
  if (signal.aborted || isAbortError(err)) {
    const reason = signal.reason as unknown;
    if (reason instanceof TesseraError) return { error_code: reason.codeName, error_message: reason.message, retryable: reason.retryable };
    return { error_code: 'CANCELLED', error_message: 'cancelled', retryable: true };
  }
  // ffmpeg's full disk (shared/ffmpeg.ts) is the worker's own trouble too, as its errno says.
  if (err instanceof TesseraError) return { error_code: err.codeName, error_message: err.message, retryable: err.retryable, ...(err.retryable && localTroubleErrno(err) && { worker_trouble: true }) };
  const e = err as { code?: unknown; details?: unknown };
  if (typeof e?.code === 'number' && typeof e.details === 'string') {
    // A gRPC call of ours failed (fetch/upload): transport trouble is worth another try.
    return { error_code: statusName(e.code), error_message: e.details, retryable: e.code !== status.INVALID_ARGUMENT && e.code !== status.FAILED_PRECONDITION };
  }
  // This machine's trouble (its temp folder full or read-only, no file descriptors left), met by
  // the fetch of an input or by a processor's own write: said as such, tried again (elsewhere, or
  // here once there is room), not an INTERNAL "processor error" blamed on the input (review OPS4).
  const errno = localTroubleErrno(err);
  if (errno) {
    // File descriptors are the process's or the system's, not the folder's (review SELF).
    const why = errno === 'EMFILE' || errno === 'ENFILE' ? 'it has no file descriptors left' : `its temp folder ${deps.tempRoot} ${errno === 'EROFS' ? 'is read-only' : 'is full'}`;
    const who = deps.name ? `worker ${deps.name}` : 'this worker';
    log.warn({ err: (err as Error).message, tempRoot: deps.tempRoot }, `${why}: the subtask is handed back`);
    return { error_code: 'UNAVAILABLE', error_message: `${who} failed, not because of the input: ${why} (${(err as Error).message})`, retryable: true, worker_trouble: true };
  }
  log.error({ err }, 'processor crashed');
  return { error_code: 'INTERNAL', error_message: `processor error: ${(err as Error)?.message ?? String(err)}`, retryable: true };
}

/**
 * Whether the file at an input's shared path is the one submitted: no symlink on the way (the path
 * was resolved at submission), the same inode, size and modification time, and readable.
 */
async function sameSharedFile(input: Assignment__Output['inputs'][number]): Promise<boolean> {
  try {
    if ((await realpath(input.shared_path)) !== input.shared_path) return false;
    const st = await stat(input.shared_path);
    if (!st.isFile() || st.size !== Number(input.size) || st.mtimeMs !== input.mtime_ms || String(st.ino) !== input.ino) return false;
    await access(input.shared_path, fsConstants.R_OK);
    return true;
  } catch {
    // Not mounted here, or not readable: the coordinator streams it instead.
    return false;
  }
}

/** Whether this system names a process's open files as /proc/PID/fd/N (Linux). */
const PROC_FD = existsSync(`/proc/${process.pid}/fd`);

/**
 * A shared input (on a client's shared storage) opened once, not through a symlink at its last
 * step, and checked by its descriptor to be the file submitted: undefined when it is not. What is
 * read through the descriptor is that file whatever the path names later: a client swapping its
 * file for a symlink to another (the worker token's, another job's) after the check is not read.
 */
async function openShared(input: Assignment__Output['inputs'][number]): Promise<FileHandle | undefined> {
  const fh = await open(input.shared_path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK).catch(() => undefined);
  if (!fh) return undefined;
  const st = await fh.stat().catch(() => undefined);
  if (st?.isFile() && st.size === Number(input.size) && st.mtimeMs === input.mtime_ms && String(st.ino) === input.ino) return fh;
  await fh.close().catch(() => undefined);
  return undefined;
}

/**
 * Fetches an assignment's inputs into `workDir`/in (exported for tests; executeSubtask is its
 * caller). Shared inputs read in place are opened here; their descriptors go into `held`, for the
 * caller to close once the subtask is over.
 */
export async function fetchInputs(a: Assignment__Output, workDir: string, signal: AbortSignal, deps: ExecutorDeps, held: FileHandle[] = []): Promise<LocalFile[]> {
  const dir = path.join(workDir, 'in');
  if (a.inputs.length > 0) await mkdir(dir, { recursive: true });
  const files: LocalFile[] = [];
  // Two inputs of one name would write the second through the first (a shared input's link: the
  // client's own file on its storage); a coordinator never sends them, a buggy or hostile one might.
  const names = new NameSet();
  for (const input of a.inputs) {
    // Cancelled (or timed out) while the previous input came in: fetch no more.
    signal.throwIfAborted();
    const name = safeFileName(input.name, 'input name');
    if (names.has(name)) throw invalidArgument(`input ${name}: named twice in one assignment`);
    names.add(name);
    const file = path.join(dir, name);
    // Shared storage this worker sees at the same path: read in place, nothing is copied. The link
    // keeps the input's name for processors that go by it. A client's file is linked as the
    // descriptor checked here (the processors, children of this process, open /proc/PID/fd/N: the
    // same file, whatever its path names meanwhile); the coordinator's spool, which no client
    // writes, by its path. Not the file submitted here: streamed by the coordinator, which refuses
    // a changed one.
    const fh = input.shared_path && !input.spooled && PROC_FD ? await openShared(input) : undefined;
    if (fh || (input.shared_path && (input.spooled || !PROC_FD) && (await sameSharedFile(input)))) {
      if (fh) held.push(fh);
      await symlink(fh ? `/proc/${process.pid}/fd/${fh.fd}` : input.shared_path, file);
      files.push({ name, path: file, size: Number(input.size) });
      continue;
    }
    const hash = newSha256();
    let size = 0;
    if (input.inline) {
      hash.update(input.inline_data);
      size = input.inline_data.length;
      // A new file, never through a link that is there.
      await writeFile(file, input.inline_data, { flag: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW });
    } else {
      const out = threadedWriteStream(file);
      // A write still in flight when an abort destroys the stream errors later: that error is
      // already reported through the abort, and must not crash the worker as an unhandled event.
      out.on('error', () => undefined);
      const call = deps.client.FetchTaskInput({ subtask_id: a.subtask_id, attempt: a.attempt, name: input.name, offset: 0 }, deps.metadata(), {
        deadline: deadline(transferDeadlineMs(Number(input.size))),
      });
      const onAbort = (): void => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      // Aborted while the call was being made: a listener added after the abort never fires.
      if (signal.aborted) call.cancel();
      let ended = false;
      try {
        for await (const chunk of call as AsyncIterable<{ data: Buffer }>) {
          // A write that failed (a full disk) ends the loop here with its error (writeWithBackpressure).
          hash.update(chunk.data);
          size += chunk.data.length;
          // Past what was announced: refused at once, not written until the call's deadline.
          if (size > Number(input.size)) throw dataLoss(`input ${name}: more than the ${input.size} bytes announced arrived`);
          await writeWithBackpressure(out, chunk.data, signal);
        }
        ended = true;
        out.end();
        await finished(out);
      } finally {
        signal.removeEventListener('abort', onAbort);
        // Stopped before the end (an abort, a failed write): leaving the loop only destroys the
        // grpc-js stream, which does not end the call; the coordinator would go on sending, and the
        // call stay open, until its deadline (hours for a large input).
        if (!ended) call.cancel();
        await closeWriteStream(out);
      }
    }
    const digest = hash.digest('hex');
    if (input.sha256 && digest !== input.sha256) throw inputChecksumMismatch(name);
    if (size !== Number(input.size)) throw dataLoss(`input ${name}: ${size} bytes arrived, ${input.size} expected`);
    files.push({ name, path: file, size });
  }
  return files;
}

async function uploadOutput(a: Assignment__Output, o: { name: string; path: string; source?: string }, signal: AbortSignal, deps: ExecutorDeps, inline: { left: number }): Promise<OutputRef> {
  const name = safeOutputName(o.name);
  const { size } = await stat(o.path);
  if (size <= INLINE_LIMIT && size <= inline.left) {
    inline.left -= size;
    const data = await readFile(o.path);
    return { name, size: String(size), sha256: sha256(data), inline: true, inline_data: data, source: o.source ?? '' };
  }
  const hash = newSha256();
  const response = await new Promise<UploadTaskOutputResponse__Output>((resolve, reject) => {
    // Ended by the coordinator's answer (a refusal mid-upload): stop reading and writing there.
    const { signal: sending, callback } = endsWithAnswer(resolve, reject, signal);
    const call = deps.client.UploadTaskOutput(deps.metadata(), { deadline: deadline(transferDeadlineMs(size)) }, callback);
    const onAbort = (): void => call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    void (async () => {
      try {
        call.write({ header: { subtask_id: a.subtask_id, attempt: a.attempt, name, size: String(size) } });
        for await (const chunk of readEncodedChunks(o.path, { field: fieldNumber('tessera.v1.UploadTaskOutputRequest', 'data'), size, signal: sending })) {
          hash.update(chunk.data);
          await writeWithBackpressure(call, asWire<UploadTaskOutputRequest>(chunk.message), sending);
        }
        call.write({ sha256: hash.digest('hex') });
        call.end();
      } catch (err) {
        call.cancel();
        reject(err);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    })();
  });
  return { name, size: response.size, sha256: response.sha256, inline: false, source: o.source ?? '' };
}

/**
 * Writes output `o` into folder `dir` (the job's shared output folder, or the coordinator's spool)
 * under its lease's temporary name; the coordinator moves it when it takes it. A file the processor
 * made is linked there when the folder is on the same file system, and so is an input from the
 * spool handed back unchanged into the spool (never changed once uploaded, and the coordinator
 * takes a link to nothing else); anything else (another input handed back, another file system,
 * one that refuses links) is copied by the kernel (a reflink where the file system has them). The
 * checksum is taken by reading the file meanwhile, except for an input read in place and handed
 * back unchanged: that one is the input's, as submitted, if the input is still that file once
 * copied. Undefined when it cannot be placed there for any other reason than its name being taken
 * (a full disk, a file system that refuses): nothing is left behind, and the caller uploads it
 * instead.
 */
export async function writeSharedOutput(a: Assignment__Output, o: { name: string; path: string; source?: string }, dir: string, signal: AbortSignal): Promise<OutputRef | undefined> {
  const name = safeOutputName(o.name);
  const dest = sharedOutputTemp(dir, a.job_id, a.subtask_id, a.shared_output_token, name);
  const st = await lstat(o.path);
  const size = st.isFile() ? st.size : (await stat(o.path)).size;
  const input = st.isSymbolicLink() ? await inputReadInPlace(a, o.path) : undefined;
  // Into the spool, not the job's own shared output folder (where a user's file would share its
  // inode with the spool's).
  const intoSpool = dir !== (a.spec?.shared_output_dir ?? '');
  // Link or copy: either makes `dest` or fails on whatever is there (never follows or replaces it).
  const place = async (): Promise<void> => {
    if (st.isFile() && (await tryLink(o.path, dest))) return;
    if (input?.spooled && intoSpool && (await tryLink(input.shared_path, dest))) {
      // Still the inode the assignment named (not a file put there since)? Otherwise copied after all.
      const linked = await lstat(dest);
      if (String(linked.ino) === input.ino && linked.mtimeMs === input.mtime_ms && linked.size === Number(input.size)) return;
      await rm(dest, { force: true });
    }
    await copyFile(o.path, dest, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
  };
  const [placed, hashed] = await Promise.allSettled([place(), input ? input.sha256 : sha256File(o.path, signal)]);
  const err = (placed.status === 'rejected' ? placed.reason : hashed.status === 'rejected' ? hashed.reason : undefined) as NodeJS.ErrnoException | undefined;
  if (err?.code === 'EEXIST') throw new TesseraError(status.ALREADY_EXISTS, `output ${name}: something else took its temporary name ${dest}`, { retryable: true });
  if (err) {
    await rm(dest, { force: true });
    if (signal.aborted || isAbortError(err)) throw err;
    return undefined;
  }
  let sha = (hashed as PromiseFulfilledResult<string>).value;
  // Replaced on its shared storage while it was copied: the copy is hashed as it is.
  if (input && !(await sameSharedFile(input))) sha = await sha256File(dest, signal);
  return { name, size: String(size), sha256: sha, inline: false, shared_path: dest, source: o.source ?? '' };
}

/** Outputs placed in the shared folder or spool at once, at most. */
const PLACED_AT_ONCE = 8;

/**
 * {@link writeSharedOutput} for each of `outputs`, {@link PLACED_AT_ONCE} at a time; undefined for
 * those that could not be placed. Where one fails outright, those placed are removed again once
 * all have settled, and its error is thrown.
 */
async function placeOutputs(a: Assignment__Output, outputs: ReadonlyArray<{ name: string; path: string; source?: string }>, dir: string, signal: AbortSignal): Promise<Array<OutputRef | undefined>> {
  const limit = pLimit(PLACED_AT_ONCE);
  const settled = await Promise.allSettled(outputs.map((o) => limit(() => writeSharedOutput(a, o, dir, signal))));
  const failed = settled.find((r) => r.status === 'rejected');
  if (!failed) return settled.map((r) => (r as PromiseFulfilledResult<OutputRef | undefined>).value);
  await Promise.all(settled.map((r) => (r.status === 'fulfilled' && r.value?.shared_path ? rm(r.value.shared_path, { force: true }) : undefined)));
  throw failed.reason;
}

/** Links `from` at `dest`: false where it cannot be (another file system, links refused); rejects if `dest` exists. */
async function tryLink(from: string, dest: string): Promise<boolean> {
  return link(from, dest).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === 'EEXIST' ? Promise.reject(err) : false),
  );
}

/** The input that `file` (a symlink in the work folder) reads in place, if it still is that file and has a checksum. */
async function inputReadInPlace(a: Assignment__Output, file: string): Promise<Assignment__Output['inputs'][number] | undefined> {
  const target = await readlink(file).catch(() => '');
  const input = a.inputs.find((i) => i.shared_path !== '' && i.shared_path === target && i.sha256 !== '');
  return input && (await sameSharedFile(input)) ? input : undefined;
}

