/**
 * Inputs by reference: a client names a file on storage the coordinator shares with it (and
 * usually with the workers) instead of uploading its bytes. Render farms and media pipelines work
 * this way because moving every input through one coordinator costs more than the media work.
 *
 * Only folders the operator lists with `--shared-root` may be referenced: a path is resolved
 * (symlinks included) and must lie inside one of them, or the input is refused. Such files are
 * read in place and never written or removed; their size and modification time at submission
 * stand in for a checksum, and a file changed since then is refused when next read.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { TesseraError } from '../shared/errors.js';
import type { SpoolFile } from '../shared/job-kind.js';

export class SharedRoots {
  private constructor(private readonly roots: readonly string[]) {}

  /** Resolves the configured folders once (they must exist). */
  static async create(dirs: readonly string[]): Promise<SharedRoots> {
    const roots: string[] = [];
    for (const d of dirs) {
      const real = await realpath(path.resolve(d)).catch(() => {
        throw new Error(`--shared-root ${d}: no such folder`);
      });
      if (!(await stat(real)).isDirectory()) throw new Error(`--shared-root ${d}: not a folder`);
      roots.push(real);
    }
    return new SharedRoots(roots);
  }

  get list(): readonly string[] {
    return this.roots;
  }

  /**
   * The spool entry for input `name` given by reference as `sharedPath`, or a gRPC error naming the
   * input and the problem: FAILED_PRECONDITION when this coordinator shares nothing, PERMISSION_DENIED
   * outside the shared roots, NOT_FOUND, INVALID_ARGUMENT for something that is not a regular file.
   */
  async resolve(name: string, sharedPath: string): Promise<SpoolFile> {
    const refuse = (code: status, why: string): TesseraError => new TesseraError(code, `input ${name}: ${why}`, { input: name, retryable: false });
    if (this.roots.length === 0) throw refuse(status.FAILED_PRECONDITION, `submitted by reference (${sharedPath}) but this coordinator shares no folder: start it with --shared-root, or upload the file`);
    if (!path.isAbsolute(sharedPath)) throw refuse(status.INVALID_ARGUMENT, `shared path ${sharedPath} is not absolute`);
    let real: string;
    try {
      real = await realpath(sharedPath);
    } catch {
      throw refuse(status.NOT_FOUND, `shared path ${sharedPath} does not exist`);
    }
    if (!this.roots.some((r) => real === r || real.startsWith(r.endsWith(path.sep) ? r : r + path.sep))) {
      throw refuse(status.PERMISSION_DENIED, `shared path ${sharedPath} is outside the coordinator's shared folders`);
    }
    const st = await stat(real);
    if (!st.isFile()) throw refuse(status.INVALID_ARGUMENT, `shared path ${sharedPath} is not a regular file`);
    return { name, path: real, size: st.size, sha256: '', shared: { mtimeMs: st.mtimeMs } };
  }
}

/** Throws FAILED_PRECONDITION (naming the input) when a shared input changed since it was submitted. */
export async function assertSharedUnchanged(f: SpoolFile): Promise<void> {
  if (!f.shared) return;
  const st = await stat(f.path).catch(() => undefined);
  if (!st || !st.isFile() || st.size !== f.size || st.mtimeMs !== f.shared.mtimeMs) {
    throw new TesseraError(status.FAILED_PRECONDITION, `input ${f.name}: the shared file ${f.path} ${st ? 'changed' : 'was removed'} after the job was submitted`, { input: f.name, retryable: false });
  }
}
