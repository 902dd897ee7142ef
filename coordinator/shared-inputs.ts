/**
 * Inputs by reference: a client names a file on storage the coordinator shares with it (and
 * usually with the workers) instead of uploading its bytes. Render farms and media pipelines work
 * this way because moving every input through one coordinator costs more than the media work.
 *
 * Only folders the operator lists with `--shared-root` may be referenced (never `/`, system folders
 * or anything overlapping the coordinator's data dir). A path must lie inside a root as written
 * and once resolved (symlinks included), or the input is refused. A file with more than one name
 * (hard links) is refused too, unless the operator allows it (`--shared-root-allow-hardlinks`):
 * its other names may lie anywhere on that file system, and no path tells where. Such files are read in place and
 * never written or removed. Their identity at submission (device, inode, size, modification time)
 * stands in for a checksum: every later read resolves the path again and checks it against that,
 * so a file changed, replaced or swapped for a symlink since is refused, not read.
 *
 * A job may also name a folder inside a root for its outputs (`spec.shared_output_dir`, see
 * shared/shared-output.ts): resolved the same way at submission, and again before each publication.
 */
import { constants, realpathSync, statSync, type Stats } from 'node:fs';
import { access, open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { status } from '../shared/grpc-status.js';
import { TesseraError } from '../shared/errors.js';
import type { SpoolFile } from '../shared/job-kind.js';
import { hasControlCharacters, pathCharacterProblem } from '../shared/names.js';
import { makeDir } from '../shared/make-dir.js';

const SYSTEM = ['/proc', '/sys', '/dev', '/run'];

const inside = (p: string, root: string): boolean => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

type Shared = NonNullable<SpoolFile['shared']>;

/**
 * Shared files looked up at once (submission, re-checks). libuv runs file-system calls on 4
 * threads by default: a hung mount must leave some to the rest of the coordinator.
 */
export const SHARED_LOOKUPS = 2;

const identity = (st: Stats): Shared => ({ mtimeMs: st.mtimeMs, ino: st.ino, dev: st.dev });

/** Whether `st` is the file `f` was when it was submitted (size, modification time, inode, device). */
const sameIdentity = (st: Stats, f: SpoolFile): boolean =>
  st.isFile() && st.size === f.size && st.mtimeMs === f.shared!.mtimeMs && st.ino === f.shared!.ino && st.dev === f.shared!.dev;

/**
 * `d` as a shared folder (`--shared-root`, `--shared-output-root`): its real path, or why it cannot
 * be one (missing, not a folder, the whole file system, a system folder, overlapping the data dir).
 * Synchronous: the CLI's checks of a configuration (`--print-config` too) run it.
 */
export function sharedRootProblem(d: string, dataDir: string): { real: string } | { problem: string } {
  // Given empty (an unset variable in a unit file): never the working folder, shared with every client.
  if (d.trim() === '') return { problem: 'empty (it would be the working folder)' };
  let real: string;
  try {
    real = realpathSync(path.resolve(d));
  } catch {
    return { problem: 'no such folder' };
  }
  if (!statSync(real).isDirectory()) return { problem: 'not a folder' };
  if (real === path.parse(real).root) return { problem: 'the whole file system cannot be shared; name the media folders' };
  if (SYSTEM.some((s) => inside(real, s))) return { problem: 'a system folder cannot be shared' };
  let data: string;
  try {
    data = realpathSync(dataDir);
  } catch {
    data = path.resolve(dataDir);
  }
  if (inside(data, real) || inside(real, data)) return { problem: `overlaps the data dir ${data} (other jobs' files and the job store)` };
  return { real };
}

export class SharedRoots {
  private constructor(
    private readonly roots: readonly string[],
    /** Folders clients may have outputs written into (`--shared-output-root`): writing is its own grant. */
    private readonly outputRoots: readonly string[] = [],
    /** Accept files with several names (hard links) under the roots (`--shared-root-allow-hardlinks`). */
    readonly allowHardlinks = false,
  ) {}

  /**
   * Resolves the configured folders once: `dirs` clients may read from, `outputDirs` they may have
   * outputs written to. Each must exist, and none may expose the system or the data dir.
   * `allowHardlinks`: accept files under `dirs` that have other names too (see {@link lookup}).
   */
  static async create(dirs: readonly string[], dataDir: string, outputDirs: readonly string[] = [], o: { allowHardlinks?: boolean } = {}): Promise<SharedRoots> {
    const check = async (flag: string, d: string): Promise<string> => {
      const found = sharedRootProblem(d, dataDir);
      if ('problem' in found) throw new Error(`${flag} ${d}: ${found.problem}`);
      return found.real;
    };
    const roots: string[] = [];
    for (const d of dirs) roots.push(await check('--shared-root', d));
    const outputRoots: string[] = [];
    for (const d of outputDirs) outputRoots.push(await check('--shared-output-root', d));
    return new SharedRoots(roots, outputRoots, o.allowHardlinks === true);
  }

  /** No shared folder: every reference is refused, and so is every shared input read later. */
  static none(): SharedRoots {
    return new SharedRoots([]);
  }

  get outputList(): readonly string[] {
    return this.outputRoots;
  }

  get list(): readonly string[] {
    return this.roots;
  }

  /**
   * The spool entry for input `name` given by reference as `sharedPath`, or a gRPC error naming the
   * input and the problem: FAILED_PRECONDITION when this coordinator shares nothing, PERMISSION_DENIED
   * outside the shared roots (before anything there is looked at) or for a file with other names
   * (hard links, unless allowed), NOT_FOUND, INVALID_ARGUMENT for a relative path or something that
   * is not a regular file.
   */
  async resolve(name: string, sharedPath: string): Promise<SpoolFile> {
    return (await this.lookup(name, sharedPath, 0)).file;
  }

  /**
   * `resolve`, and the first `headBytes` of the file (fewer if it is shorter) read through the
   * same descriptor: the submission's format and header check needs them, and would otherwise
   * open the file again. No `head` when that read failed: the check reads the file itself, and
   * refuses it as its own input. The file's type and its count of names are taken from that
   * descriptor (fstat) before a byte is read: what is judged is what would be read.
   */
  async lookup(name: string, sharedPath: string, headBytes: number): Promise<{ file: SpoolFile; head: Buffer | undefined }> {
    const refuse = (code: status, why: string): TesseraError => new TesseraError(code, `input ${name}: ${why}`, { input: name, retryable: false });
    if (this.roots.length === 0) throw refuse(status.FAILED_PRECONDITION, `submitted by reference (${sharedPath}) but this coordinator shares no folder: start it with --shared-root, or upload the file`);
    if (hasControlCharacters(sharedPath)) throw refuse(status.INVALID_ARGUMENT, `shared path ${JSON.stringify(sharedPath)} contains control characters`);
    if (!path.isAbsolute(sharedPath)) throw refuse(status.INVALID_ARGUMENT, `shared path ${sharedPath} is not absolute`);
    const outside = (): TesseraError => refuse(status.PERMISSION_DENIED, `shared path ${sharedPath} is outside the coordinator's shared folders`);
    // As written first (`..` folded), so that nothing outside is even looked up; then resolved. The
    // folded path is what is resolved: given as written, the kernel would take `lnk/..` through the
    // link, and answer for a file outside (one there: PERMISSION_DENIED; none: NOT_FOUND).
    const asWritten = path.resolve(sharedPath);
    if (!this.covers(asWritten)) throw outside();
    let real: string;
    try {
      real = await realpath(asWritten);
    } catch (err) {
      // Only a name that is not there is NOT_FOUND: a folder on the way the coordinator may not
      // enter hides a file that exists (as an unreadable file is, PERMISSION_DENIED).
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') throw refuse(status.PERMISSION_DENIED, `shared path ${sharedPath} is not readable by the coordinator (a folder on its way cannot be entered: ${code})`);
      if (code === 'ELOOP') throw refuse(status.INVALID_ARGUMENT, `shared path ${sharedPath} runs through too many symbolic links`);
      if (code === 'ENAMETOOLONG' || code === 'EINVAL') throw refuse(status.INVALID_ARGUMENT, `shared path ${sharedPath} is not a path this file system takes (${code})`);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw refuse(status.UNAVAILABLE, `shared path ${sharedPath} cannot be looked up (${code ?? String(err)}); try again`);
      throw refuse(status.NOT_FOUND, `shared path ${sharedPath} does not exist`);
    }
    if (!this.covers(real)) throw outside();
    // Judged on the descriptor's own status, before anything is read through it.
    const judge = (st: Stats): void => {
      if (!st.isFile()) throw refuse(status.INVALID_ARGUMENT, `shared path ${sharedPath} is not a regular file`);
      // realpath sees symlinks, not hard links: another name of this file may lie outside the
      // roots (a secret linked in by someone who may write here), and nothing tells where.
      if (st.nlink > 1 && !this.allowHardlinks) {
        throw refuse(
          status.PERMISSION_DENIED,
          `shared path ${sharedPath} is a file with ${st.nlink} names (hard links), and the coordinator cannot tell whether the others lie outside its shared folders: submit a copy, or start the coordinator with --shared-root-allow-hardlinks where hard links under the shared folders are made on purpose`,
        );
      }
    };
    const opened = await statNoFollow(real, headBytes, judge).catch((err: NodeJS.ErrnoException) => err);
    if (opened instanceof TesseraError) throw opened;
    if (opened instanceof Error) {
      // O_NOFOLLOW on a symlink swapped in after realpath: ELOOP. Not readable by the coordinator: EACCES.
      if (opened.code === 'EACCES' || opened.code === 'EPERM') throw refuse(status.PERMISSION_DENIED, `shared path ${sharedPath} is not readable by the coordinator`);
      // A folder on the way replaced (by a link) between the path's check and its open.
      if (opened.code === 'EMOVED') throw refuse(status.PERMISSION_DENIED, `shared path ${sharedPath} changed while it was looked up (a folder on its way replaced, by a symbolic link?): submit it again once it stays put`);
      if (opened.code === 'ELOOP') throw refuse(status.INVALID_ARGUMENT, `shared path ${sharedPath} is not a regular file`);
      throw refuse(status.NOT_FOUND, `shared path ${sharedPath} does not exist`);
    }
    const { st, head } = opened;
    return { file: { name, path: real, size: st.size, sha256: '', shared: identity(st) }, head };
  }

  /**
   * Throws FAILED_PRECONDITION (naming the input) unless `f`, a shared input, is still the file that
   * was submitted: the same path once resolved, inside a current root, with the same identity.
   * Inputs that are not shared pass.
   */
  /**
   * `f` (a shared input) opened for reading, checked by its descriptor to be the file submitted:
   * what is read through it is that file, whatever its path names meanwhile (a client swapping its
   * file for a symlink between a check by path and an open by path would have another file read).
   * FAILED_PRECONDITION as {@link assertUnchanged} when it is not. The caller closes it.
   */
  async openUnchanged(f: SpoolFile): Promise<FileHandle> {
    const changed = (how: string): TesseraError => new TesseraError(status.FAILED_PRECONDITION, `input ${f.name}: the shared file ${f.path} ${how} after the job was submitted`, { input: f.name, retryable: false });
    if (!f.shared) throw new Error(`openUnchanged: ${f.name} is not a shared input`);
    const fh = await open(f.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
      throw changed(err.code === 'ENOENT' ? 'was removed' : 'changed');
    });
    try {
      if (!(await opensAt(fh, f.path)) || !sameIdentity(await fh.stat(), f)) throw changed('changed');
      return fh;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /** Throws {@link openUnchanged}'s error when the file `fh` reads is no longer `f` as submitted (changed while it was read). */
  async assertHandleUnchanged(fh: FileHandle, f: SpoolFile): Promise<void> {
    if (!sameIdentity(await fh.stat(), f)) throw new TesseraError(status.FAILED_PRECONDITION, `input ${f.name}: the shared file ${f.path} changed while it was read`, { input: f.name, retryable: false });
  }

  async assertUnchanged(f: SpoolFile): Promise<void> {
    if (!f.shared) return;
    const real = await realpath(f.path).catch(() => undefined);
    // The file is where it was, but this coordinator no longer shares its folder (restarted
    // without that --shared-root): the operator's change, not the file's, and told so.
    if (real === f.path && !this.covers(real)) {
      const shares = this.roots.length === 0 ? 'shares no folder now (started without --shared-root)' : `shares only ${this.roots.join(', ')} now`;
      throw new TesseraError(status.FAILED_PRECONDITION, `input ${f.name}: the shared file ${f.path} is no longer inside this coordinator's shared folders: it ${shares}; start it with the folder in --shared-root and submit the job again`, { input: f.name, retryable: false });
    }
    const st = real === f.path ? (await statNoFollow(real).catch(() => undefined))?.st : undefined;
    if (!st || !sameIdentity(st, f)) throw new TesseraError(status.FAILED_PRECONDITION, `input ${f.name}: the shared file ${f.path} ${st || real ? 'changed' : 'was removed'} after the job was submitted`, { input: f.name, retryable: false });
  }

  /**
   * The folder a job writes its outputs to (`spec.shared_output_dir`), resolved and made if missing,
   * or a gRPC error naming it: FAILED_PRECONDITION when this coordinator has no output root,
   * PERMISSION_DENIED outside them (as written or resolved) or not writable, INVALID_ARGUMENT for a
   * relative path or a file.
   */
  async resolveOutputDir(dir: string): Promise<string> {
    const oddCharacters = pathCharacterProblem(dir);
    const refuse = (code: status, why: string): TesseraError => new TesseraError(code, `spec.shared_output_dir ${oddCharacters ? JSON.stringify(dir) : dir}: ${why}`, { retryable: false });
    if (oddCharacters) throw refuse(status.INVALID_ARGUMENT, oddCharacters);
    if (this.outputRoots.length === 0) throw refuse(status.FAILED_PRECONDITION, 'this coordinator writes outputs to no shared folder: start it with --shared-output-root, or download the outputs');
    if (!path.isAbsolute(dir)) throw refuse(status.INVALID_ARGUMENT, 'not an absolute path');
    const outside = (): TesseraError => refuse(status.PERMISSION_DENIED, "outside the coordinator's shared output folders");
    const covers = (p: string): boolean => this.coversOutput(p);
    // Folded (`..` taken off as written) before anything is resolved or made: `lnk/../made`, given
    // as written, would be made through the link, outside every root, before the check refused it.
    const asWritten = path.resolve(dir);
    if (!covers(asWritten)) throw outside();
    let real = await realpath(asWritten).catch(() => undefined);
    if (real === undefined) {
      // Made, with its parents, as `-o DIR` would be, if what exists of it lies inside a root.
      for (let existing = path.dirname(asWritten); ; existing = path.dirname(existing)) {
        if (!covers(existing)) throw outside();
        const resolved = await realpath(existing).catch(() => undefined);
        if (resolved === undefined) continue;
        if (!covers(resolved)) throw outside();
        break;
      }
      // makeDir: the system's own reason (Node's recursive mkdir said ENOENT for a read-only share).
      await makeDir(asWritten).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EACCES' || err.code === 'EPERM' || err.code === 'EROFS') throw refuse(status.PERMISSION_DENIED, `not writable by the coordinator: cannot create it (${err.code === 'EROFS' ? 'a read-only file system' : err.code})`);
        throw refuse(err.code === 'ENOTDIR' ? status.INVALID_ARGUMENT : status.FAILED_PRECONDITION, `cannot create it: ${err.code ?? err.message}`);
      });
      real = await realpath(asWritten);
    }
    if (!covers(real)) throw outside();
    if (!(await stat(real)).isDirectory()) throw refuse(status.INVALID_ARGUMENT, 'not a folder');
    await access(real, constants.W_OK | constants.X_OK).catch(() => {
      throw refuse(status.PERMISSION_DENIED, 'not writable by the coordinator');
    });
    return real;
  }

  /**
   * Throws FAILED_PRECONDITION unless output folder `dir` (resolved at submission) still resolves to
   * itself inside a root: a folder swapped for a symlink since must not carry writes elsewhere.
   */
  async assertOutputDir(dir: string): Promise<void> {
    const real = await realpath(dir).catch(() => undefined);
    if (real !== dir) {
      throw new TesseraError(status.FAILED_PRECONDITION, `spec.shared_output_dir ${dir} ${real ? 'now resolves elsewhere' : 'was removed'} after the job was submitted`, { retryable: false });
    }
    if (!this.coversOutput(real)) {
      // Nothing moved: the coordinator was restarted without the root (or with another).
      const roots = this.outputRoots.length > 0 ? `its --shared-output-root is now ${this.outputRoots.join(', ')}` : 'it now has no --shared-output-root';
      throw new TesseraError(status.FAILED_PRECONDITION, `spec.shared_output_dir ${dir} is no longer under a shared output root of this coordinator (${roots}): start it with the root the job was submitted under`, { retryable: false });
    }
  }

  private coversOutput(p: string): boolean {
    return this.outputRoots.some((r) => inside(p, r));
  }

  private covers(p: string): boolean {
    return this.roots.some((r) => inside(p, r));
  }
}

/**
 * The file's own status through a descriptor opened for reading: a symlink put in its place is not
 * followed (O_NOFOLLOW), a FIFO cannot block the coordinator (O_NONBLOCK), a file the coordinator
 * may not read is refused now rather than when it is read, and on NFS the open revalidates the
 * attributes with the server (close-to-open), where a bare lstat may answer from a cache up to a
 * minute old and miss a file rewritten on another host. With `headBytes`, a regular file's first
 * bytes are read too (one read: on a network mount it may return fewer; none if it fails).
 * `judge` sees the status first and may throw, and then nothing is read.
 */
/**
 * Whether `fh` is the file at `real`, a resolved path: as the kernel names the descriptor
 * (/proc/self/fd), or, without /proc, as realpath names the path now (the same device and inode).
 * O_NOFOLLOW refuses a symbolic link at the last step only: a folder on the way swapped for a link
 * between the path's check and its open (a client that may write under a shared root) had the
 * coordinator open, record and serve any file it may read (review SEC).
 */
async function opensAt(fh: FileHandle, real: string): Promise<boolean> {
  const named = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => undefined);
  if (named !== undefined) return named === real;
  if ((await realpath(real).catch(() => undefined)) !== real) return false;
  const [a, b] = await Promise.all([fh.stat(), stat(real)]);
  return a.dev === b.dev && a.ino === b.ino;
}

async function statNoFollow(file: string, headBytes = 0, judge?: (st: Stats) => void): Promise<{ st: Stats; head: Buffer | undefined }> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await opensAt(fh, file))) throw Object.assign(new Error(`${file} was not the file opened`), { code: 'EMOVED' });
    const st = await fh.stat();
    judge?.(st);
    if (headBytes === 0 || !st.isFile()) return { st, head: undefined };
    const head = Buffer.allocUnsafe(Math.min(headBytes, st.size));
    const read = head.length > 0 ? await fh.read(head, 0, head.length, 0).catch(() => undefined) : { bytesRead: 0 };
    return { st, head: read && head.subarray(0, read.bytesRead) };
  } finally {
    await fh.close();
  }
}
