import { createRequire } from 'node:module';
import type { Metadata, ServiceError } from '@grpc/grpc-js';
import { status } from './grpc-status.js';
import type { Logger } from 'pino';

/** Names of gRPC status codes, as they travel in messages (`ItemError.code`, `SubtaskResult.error_code`). */
export type StatusName = keyof typeof status;

/**
 * A domain error that knows its gRPC status and whether retrying can help.
 * Everything a client or worker should see as a specific status is thrown as one of these.
 */
export class TesseraError extends Error {
  /** gRPC status code sent to the caller. */
  readonly code: status;
  /** True when running the same work again (elsewhere, later) may succeed. */
  readonly retryable: boolean;
  /** The input (file name) the error is about, when there is one. */
  readonly input: string | undefined;

  constructor(code: status, message: string, options: { retryable?: boolean; input?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TesseraError';
    this.code = code;
    this.retryable = options.retryable ?? defaultRetryable(code);
    this.input = options.input;
  }

  get codeName(): StatusName {
    return statusName(this.code);
  }
}

export const invalidArgument = (message: string, input?: string): TesseraError =>
  new TesseraError(status.INVALID_ARGUMENT, message, { input, retryable: false });
export const failedPrecondition = (message: string, input?: string): TesseraError =>
  new TesseraError(status.FAILED_PRECONDITION, message, { input, retryable: false });
export const notFound = (message: string): TesseraError => new TesseraError(status.NOT_FOUND, message, { retryable: false });
export const resourceExhausted = (message: string, input?: string): TesseraError =>
  new TesseraError(status.RESOURCE_EXHAUSTED, message, { input, retryable: false });
export const unavailable = (message: string, cause?: unknown): TesseraError =>
  new TesseraError(status.UNAVAILABLE, message, { retryable: true, cause });
export const dataLoss = (message: string): TesseraError => new TesseraError(status.DATA_LOSS, message, { retryable: true });

/** The errno codes of this machine's trouble (see isLocalTrouble), for errors that carry one. */
export const LOCAL_TROUBLE_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE']);

/** Whether an error carries one of LOCAL_TROUBLE_CODES as its errno, itself or in its cause. */
export function hasLocalTroubleCode(err: unknown): boolean {
  return errnosOf(err).some((c) => LOCAL_TROUBLE_CODES.has(c));
}

/**
 * The errno of this machine's trouble with its own storage or descriptors an error carries, itself
 * or in its cause: one of LOCAL_TROUBLE_CODES, or EROFS; undefined for any other.
 */
export function localTroubleErrno(err: unknown): string | undefined {
  return errnosOf(err).find((c) => LOCAL_TROUBLE_CODES.has(c) || c === 'EROFS');
}

/** The errno codes an error carries, itself and in its cause. */
function errnosOf(err: unknown): string[] {
  const errno = (e: unknown): unknown => (e as NodeJS.ErrnoException | undefined)?.code;
  return [errno(err), errno((err as Error | undefined)?.cause)].filter((c): c is string => typeof c === 'string');
}

/**
 * Errno codes of storage that cannot be written at all (a file system remounted read-only after an
 * I/O error, a device failing, a data dir whose permissions changed): the machine's trouble, as a
 * full disk is, but one that lasts until someone fixes it.
 */
export const STORAGE_FAULT_CODES: ReadonlySet<string> = new Set(['EROFS', 'EIO', 'EACCES', 'EPERM']);

/** The STORAGE_FAULT_CODES errno an error carries, itself or in its cause, or undefined. */
export function storageFaultCode(err: unknown): string | undefined {
  return errnosOf(err).find((c) => STORAGE_FAULT_CODES.has(c));
}

/**
 * Whether an error carries this machine's own trouble that passes by itself or once an operator
 * sees to it, and is waited out rather than failing the work: a disk full or out of quota, no file
 * descriptors left (LOCAL_TROUBLE_CODES), a disk read-only or failing (EROFS, EIO). Permissions are
 * left out: a file it may not read is the job's.
 */
export function isOwnTroubleToWaitOut(err: unknown): boolean {
  const fault = storageFaultCode(err);
  return hasLocalTroubleCode(err) || fault === 'EROFS' || fault === 'EIO';
}

const STORAGE_FAULT_TEXT: Readonly<Record<string, string>> = { EROFS: 'read-only file system', EIO: 'input/output error', EACCES: 'permission denied', EPERM: 'operation not permitted' };

/** "read-only file system, EROFS" for a storage fault's errno. */
export function describeStorageFault(code: string): string {
  return `${STORAGE_FAULT_TEXT[code] ?? code}, ${code}`;
}

/**
 * Whether an error log tells of this machine's trouble (a full disk or quota, too many open files, a read-only one)
 * rather than of the input: such a failure is retried, elsewhere, not blamed on the file. Only an
 * error line counts: one that is not indented (ffmpeg indents metadata) and ends with the system's
 * message after ": ", once every path in `paths` is taken out (a file may be named after one).
 * Memory and I/O errors are left out: corrupt or truncated files cause those too.
 */
export function isLocalTrouble(log: string, paths: readonly string[] = []): boolean {
  return localTroubleCode(log, paths) !== undefined;
}

const TROUBLE_CODES: Readonly<Record<string, string>> = { 'No space left on device': 'ENOSPC', 'Disk quota exceeded': 'EDQUOT', 'Too many open files': 'EMFILE', 'Read-only file system': 'EROFS' };
const TROUBLE_LINE = new RegExp(`: (${Object.keys(TROUBLE_CODES).join('|')})\\s*$`);

const EMPTY_NOTE = /\s*Resolution note:\s*$/;

/**
 * grpc-js ends a failed connection's message with "Resolution note: " and nothing after it when
 * name resolution had nothing to say: that empty suffix is taken off (`details` and `message`),
 * so that an error ends with its cause. Other errors are returned as they are.
 */
export function tidyGrpcError<E>(err: E): E {
  const e = err as { details?: unknown; message?: unknown; input?: unknown; metadata?: unknown } | null;
  if (e && typeof e.details === 'string') e.details = e.details.replace(EMPTY_NOTE, '');
  if (e && typeof e.message === 'string') e.message = e.message.replace(EMPTY_NOTE, '');
  // The input a refusal is about (its trailing metadata `tessera-input-bin`), as `input`, where a
  // TesseraError of the client's own has it too.
  if (e && typeof e === 'object' && e.metadata && e.input === undefined) {
    const input = errorInput(e);
    if (input !== undefined) e.input = input;
  }
  return err;
}

/** A worker's report of an input whose bytes arrived with another SHA-256 than they left with. */
export function inputChecksumMismatch(name: string): TesseraError {
  return dataLoss(`input ${name}: checksum mismatch after transfer`);
}

/** The input an {@link inputChecksumMismatch} message names, or undefined for any other message. */
export function inputOfChecksumMismatch(message: string): string | undefined {
  return /^input (.+): checksum mismatch after transfer$/.exec(message)?.[1];
}

/** `INPUT: message`, unless the message names the input first already (as most do). */
export function withInput(input: string, message: string): string {
  return !input || message.startsWith(`${input}:`) ? message : `${input}: ${message}`;
}

/** The errno code (ENOSPC, EDQUOT, EMFILE) of the trouble an error log tells of (see isLocalTrouble), or undefined. */
export function localTroubleCode(log: string, paths: readonly string[] = []): string | undefined {
  return localTrouble(log, paths)?.code;
}

/**
 * The trouble an error log tells of: its errno code and the line that tells it. `paths` (the
 * command's own files, whose names could read as trouble) are not read as part of a line.
 */
export function localTrouble(log: string, paths: readonly string[] = []): { code: string; line: string } | undefined {
  const named = paths.filter((p) => p.length > 0);
  for (const line of log.split('\n')) {
    if (/^\s/.test(line)) continue;
    let l = line;
    for (const p of named) l = l.split(p).join('');
    const m = TROUBLE_LINE.exec(l);
    if (m) return { code: TROUBLE_CODES[m[1]!]!, line: line.trim() };
  }
  return undefined;
}

function defaultRetryable(code: status): boolean {
  return code === status.UNAVAILABLE || code === status.DATA_LOSS || code === status.DEADLINE_EXCEEDED || code === status.INTERNAL || code === status.ABORTED;
}

export function statusName(code: number): StatusName {
  const name = (Object.keys(status) as StatusName[]).find((k) => status[k] === code);
  return name ?? 'UNKNOWN';
}

export function statusFromName(name: string): status {
  const code = (status as unknown as Record<string, number>)[name];
  return code === undefined ? status.UNKNOWN : code;
}

/** True for an AbortError / an error raised because a signal was aborted. */
export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as NodeJS.ErrnoException).code === 'ABORT_ERR');
}

/**
 * The one error boundary: maps any thrown value to a gRPC ServiceError.
 * Typed errors keep their code and message; aborts become CANCELLED; anything else is logged with
 * its stack and sent as INTERNAL with a generic message, so stacks never reach a client.
 */
export function toServiceError(err: unknown, log?: Logger): Partial<ServiceError> & { code: status; details: string } {
  if (err instanceof TesseraError) {
    return withMetadata(err.code, err.message, err.input);
  }
  if (isAbortError(err)) return withMetadata(status.CANCELLED, 'cancelled');
  const maybe = err as { code?: unknown; details?: unknown };
  if (typeof maybe?.code === 'number' && typeof maybe.details === 'string' && maybe.code in status) {
    // Already a gRPC error (for example from a nested call): pass it through unchanged.
    return withMetadata(maybe.code, maybe.details);
  }
  log?.error({ err }, 'internal error');
  // Its own storage unwritable (the path is in the log, not told to peers): said as such, not as a bug.
  const fault = storageFaultCode(err);
  if (fault) return withMetadata(status.FAILED_PRECONDITION, `the coordinator cannot write its data dir (${describeStorageFault(fault)}; see its log)`);
  return withMetadata(status.INTERNAL, 'internal error (see the coordinator log)');
}

/**
 * Trailing metadata key of the input (file name) an error is about: binary (`-bin`), so that any
 * UTF-8 name travels as it is. {@link errorInput} reads it on the client.
 */
export const ERROR_INPUT_KEY = 'tessera-input-bin';

const require = createRequire(import.meta.url);

/**
 * grpc-js's Metadata, loaded when an error is first turned into a gRPC one: only processes that
 * answer calls do that, and they have grpc-js loaded already; a processor child never does, and so
 * never loads grpc-js (see shared/grpc-status.ts).
 */
function newMetadata(): Metadata {
  return new (require('@grpc/grpc-js') as typeof import('@grpc/grpc-js')).Metadata();
}

/**
 * Most bytes of an error's message on the wire. A status message that repeats a client's 100 KB
 * job id is larger than the HTTP/2 header list a client accepts: the status never arrives, and
 * that client's connection stops answering.
 */
const MAX_DETAILS_BYTES = 4096;

/**
 * A status message as it can go on the wire: at most MAX_DETAILS_BYTES, and well-formed. A message
 * that quotes a client's text cut in the middle of an astral character (an emoji is two UTF-16
 * units) holds a lone surrogate, and grpc-js's `encodeURI` of it throws as the status is sent: in a
 * handler's callback, an exception that took the whole process down. Written as UTF-8 and read
 * back, a lone surrogate becomes U+FFFD.
 */
export function statusDetails(details: string): string {
  const bytes = Buffer.from(details, 'utf8');
  if (bytes.length > MAX_DETAILS_BYTES) return `${bytes.subarray(0, MAX_DETAILS_BYTES).toString('utf8').replace(/\uFFFD$/, '')}... (cut)`;
  return bytes.toString('utf8');
}

function withMetadata(code: status, details: string, input?: string): Partial<ServiceError> & { code: status; details: string } {
  details = statusDetails(details);
  if (input && Buffer.byteLength(input) > MAX_DETAILS_BYTES) input = undefined;
  const metadata = newMetadata();
  if (input) metadata.set(ERROR_INPUT_KEY, Buffer.from(input, 'utf8'));
  return { code, details, message: details, metadata };
}

/** The input an error is about: a TesseraError's own, or the one a coordinator's error carries in its metadata. */
export function errorInput(err: unknown): string | undefined {
  if (err instanceof TesseraError) return err.input;
  const value = (err as { metadata?: { get?: (key: string) => unknown[] } } | undefined)?.metadata?.get?.(ERROR_INPUT_KEY)?.[0];
  return Buffer.isBuffer(value) && value.length > 0 ? value.toString('utf8') : undefined;
}

/** Wraps an error thrown by a grpc-js client call so callers can branch on `code`. */
export function describeError(err: unknown): string {
  if (err instanceof TesseraError) return `${err.codeName}: ${err.message}`;
  const e = err as { code?: number; details?: string; message?: string };
  if (typeof e?.code === 'number' && typeof e.details === 'string') return `${statusName(e.code)}: ${e.details}`;
  return e?.message ?? String(err);
}
