/**
 * The coordinator's spool: job inputs, subtask outputs and job outputs as files in the data dir.
 * Writes are atomic (temp file + rename), so a crash never leaves a half-written file under a
 * final name.
 */
import { statSync } from 'node:fs';
import { lstat, mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { status } from '../shared/grpc-status.js';
import { TesseraError, describeStorageFault, hasLocalTroubleCode, storageFaultCode } from '../shared/errors.js';
import { closeWriteStream, threadedWriteStream } from '../shared/file-writer.js';
import { newSha256, writeWithBackpressure } from '../shared/streams.js';
import { makeDir } from '../shared/make-dir.js';

/** Where a spool file lies without symlinks, and its identity: what a worker on this machine checks before reading it in place. */
export interface LocalFile {
  path: string;
  ino: number;
  mtimeMs: number;
}

export class Spool {
  /** The root without symlinks, once `offerLocalReads` has run: spool files are then offered to workers that see them. */
  private realRoot: string | undefined;
  /** Identities of spool files by job, then path (a file is written once, then only read or removed). */
  private readonly identities = new Map<string, Map<string, LocalFile>>();

  /** `<root>/jobs/`: every job's files lie under it. */
  private readonly jobsPrefix: string;

  constructor(readonly root: string) {
    this.jobsPrefix = path.join(root, 'jobs') + path.sep;
  }

  /**
   * From now on `localFile` answers: workers on this machine (or that mount the data dir at the
   * same path) read the job's files in place instead of fetching them through the coordinator.
   */
  async offerLocalReads(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    this.realRoot = await realpath(this.root);
  }

  /**
   * A spool file as offered to workers to read in place, or undefined (not offered, not in the
   * spool, or gone). A worker reads it only if it finds this inode with this time at this path;
   * otherwise it fetches the bytes as before. A file the spool wrote itself (an upload, a worker's
   * output) is known from then; another (one a job kind made) is looked up once, a stat on the
   * event loop, and remembered until the job's files are removed.
   */
  localFile(file: string): LocalFile | undefined {
    const jobId = this.jobOf(file);
    if (jobId === undefined) return undefined;
    const known = this.identities.get(jobId)?.get(file);
    if (known) return known;
    const st = statSync(file, { throwIfNoEntry: false });
    return st?.isFile() ? this.remember(jobId, file, st) : undefined;
  }

  /** The data dir without symlinks while spool files are offered to workers in place, "" otherwise. */
  get localRoot(): string {
    return this.realRoot ?? '';
  }

  /**
   * The folder of job `jobId` where workers on this machine write their outputs themselves (the
   * parent of every `subtaskDir`, made when the job was prepared), without symlinks; "" unless
   * local reads are offered.
   */
  localSubtasksDir(jobId: string): string {
    return this.realRoot === undefined ? '' : path.join(this.realRoot, 'jobs', jobId, 'st');
  }

  /** Records the identity of `file`, a spool file put there by a worker (moved, not written by the spool). */
  adopt(file: string, st: { ino: number; mtimeMs: number }): void {
    const jobId = this.jobOf(file);
    if (jobId !== undefined) this.remember(jobId, file, st);
  }

  /** The job a spool file belongs to, while files are offered (`<root>/jobs/<job>/...`). */
  private jobOf(file: string): string | undefined {
    const jobs = this.jobsPrefix;
    if (this.realRoot === undefined || !file.startsWith(jobs)) return undefined;
    const jobId = file.slice(jobs.length).split(path.sep, 1)[0];
    return jobId && file.length > jobs.length + jobId.length + 1 ? jobId : undefined;
  }

  private remember(jobId: string, file: string, st: { ino: number; mtimeMs: number }): LocalFile {
    let files = this.identities.get(jobId);
    if (!files) this.identities.set(jobId, (files = new Map()));
    const known = { path: this.realRoot + file.slice(this.root.length), ino: st.ino, mtimeMs: st.mtimeMs };
    files.set(file, known);
    return known;
  }

  /** Forgets the identities of a job's files (they are being removed). */
  private forget(jobId: string): void {
    this.identities.delete(jobId);
  }

  jobDir(jobId: string): string {
    return path.join(this.root, 'jobs', jobId);
  }
  inputPath(jobId: string, name: string): string {
    return path.join(this.jobDir(jobId), 'in', name);
  }
  subtaskDir(jobId: string, subtaskId: string): string {
    return path.join(this.jobDir(jobId), 'st', subtaskId);
  }
  outputDir(jobId: string): string {
    return path.join(this.jobDir(jobId), 'out');
  }
  workDir(jobId: string): string {
    return path.join(this.jobDir(jobId), 'work');
  }

  /**
   * Makes the folders of a job that must exist before its subtasks run: `st` where workers on this
   * machine may write their outputs into it themselves (they never make it), and `work` for a kind
   * that writes files of its own (`opts.work`). The others are made as files arrive: `in` by the
   * first upload (`writeAtomic`), `out` by the first output published. A job of no-op subtasks,
   * thousands a second, thus makes at most two folders (its own and `st`) rather than six.
   */
  async prepareJob(jobId: string, opts: { work: boolean }): Promise<void> {
    const dirs = [...(this.realRoot === undefined ? [] : ['st']), ...(opts.work ? ['work'] : [])];
    await Promise.all(dirs.map((d) => makeDir(path.join(this.jobDir(jobId), d))));
  }

  async removeJob(jobId: string): Promise<void> {
    this.forget(jobId);
    await rm(this.jobDir(jobId), { recursive: true, force: true });
  }

  /**
   * Removes the job folders of jobs that have no record (`known`: the ids the store holds): what a
   * submission cut short by a crash had received. Only while nothing else uses the spool (start-up,
   * before the server takes calls). Returns how many folders, and their bytes.
   */
  async removeOrphans(known: ReadonlySet<string>): Promise<{ folders: number; bytes: number }> {
    const jobsDir = path.join(this.root, 'jobs');
    let entries;
    try {
      entries = await readdir(jobsDir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { folders: 0, bytes: 0 };
      throw err;
    }
    let folders = 0;
    let bytes = 0;
    for (const e of entries) {
      if (!e.isDirectory() || known.has(e.name)) continue;
      const dir = path.join(jobsDir, e.name);
      bytes += await sizeOf(dir);
      await rm(dir, { recursive: true, force: true });
      folders++;
    }
    return { folders, bytes };
  }

  /** Removes a job's work folder (its planners' and mergers' files), nothing else. */
  async removeWork(jobId: string): Promise<void> {
    await rm(this.workDir(jobId), { recursive: true, force: true });
  }

  /** Removes what a finished job no longer reads: its intermediates and (with `inputs`) its inputs; its outputs stay. */
  async removeIntermediates(jobId: string, opts: { inputs: boolean }): Promise<void> {
    this.forget(jobId);
    // Only the folders the job made (see prepareJob): one listing, rather than two lookups for each.
    const made: string[] | undefined = await readdir(this.jobDir(jobId)).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : undefined));
    const dirs = [...(opts.inputs ? ['in'] : []), 'st', 'work'].filter((d) => !made || made.includes(d));
    await Promise.all(dirs.map((d) => rm(path.join(this.jobDir(jobId), d), { recursive: true, force: true })));
  }

  /**
   * Streams chunks into `dest` atomically, hashing on the way. Enforces `maxBytes`; when
   * `expectedSha256` is given, a mismatch is a retryable DATA_LOSS and nothing is kept.
   */
  async writeAtomic(
    dest: string,
    chunks: AsyncIterable<Buffer>,
    opts: { maxBytes?: number; limitName?: string; expectedSha256?: () => string | undefined; what: string; signal?: AbortSignal; /** The job input the file is, named in errors' metadata. */ input?: string },
  ): Promise<{ size: number; sha256: string }> {
    await makeDir(path.dirname(dest)).catch((err: unknown) => {
      throw storageTrouble(err, opts) ?? err;
    });
    const tmp = `${dest}.${randomUUID().slice(0, 8)}.tmp`;
    const out = threadedWriteStream(tmp);
    // Errors reach us through write/finished; a late one after destroy() must not crash the process.
    out.on('error', () => undefined);
    const hash = newSha256();
    let size = 0;
    try {
      for await (const chunk of chunks) {
        size += chunk.length;
        if (opts.maxBytes !== undefined && size > opts.maxBytes) {
          throw new TesseraError(status.RESOURCE_EXHAUSTED, `${opts.what} is larger than the limit of ${opts.maxBytes} bytes${opts.limitName ? ` (${opts.limitName})` : ''}`, { retryable: false, input: opts.input });
        }
        hash.update(chunk);
        await writeWithBackpressure(out, chunk, opts.signal);
      }
      out.end();
      await finished(out);
      const sha256 = hash.digest('hex');
      const expected = opts.expectedSha256?.();
      if (expected && expected !== sha256) throw new TesseraError(status.DATA_LOSS, `${opts.what}: checksum mismatch (sent ${expected}, received ${sha256})`, { retryable: true, input: opts.input });
      await rename(tmp, dest);
      // Known from now on to workers that may read it in place: no stat when it is assigned.
      const jobId = this.jobOf(dest);
      if (jobId !== undefined) await stat(dest).then((st) => this.remember(jobId, dest, st), () => undefined);
      return { size, sha256 };
    } catch (err) {
      await closeWriteStream(out);
      await rm(tmp, { force: true });
      throw storageTrouble(err, opts) ?? err;
    }
  }
}

/**
 * The coordinator's own trouble storing a file, said as such (retried, never the sender's fault):
 * a full disk or quota, out of descriptors (RESOURCE_EXHAUSTED), or a spool that cannot be written
 * at all, read-only or failing (FAILED_PRECONDITION: it lasts until someone fixes it; its errno
 * rides along as the cause, which storageFaultCode reads). Undefined for other errors.
 */
export function storageTrouble(err: unknown, opts: { what: string; input?: string }): TesseraError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (hasLocalTroubleCode(err)) {
    return new TesseraError(status.RESOURCE_EXHAUSTED, `${opts.what}: ${code === 'ENOSPC' ? "the coordinator's disk is full" : `the coordinator cannot store it (${code})`}`, { retryable: true, input: opts.input });
  }
  const fault = storageFaultCode(err);
  if (fault) return new TesseraError(status.FAILED_PRECONDITION, `${opts.what}: the coordinator cannot write its spool (${describeStorageFault(fault)})`, { retryable: true, input: opts.input, cause: err });
  return undefined;
}

/** Bytes of the files under `dir` (links not followed). */
async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await sizeOf(p);
    else total += await lstat(p).then((st) => st.size, () => 0);
  }
  return total;
}
