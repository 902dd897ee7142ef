/**
 * Outputs written to shared storage (`JobSpec.shared_output_dir`): render farms read their inputs
 * from a share and write the results back to one, so nothing crosses the coordinator twice.
 *
 * A worker that sees the job's folder at the same path writes each final output there itself,
 * under a hidden temporary name that only its lease may use; the coordinator checks the file,
 * then renames it to its output name when it publishes it. Temporary names carry the job id, so
 * whatever a failed, cancelled or superseded attempt leaves behind is removed when the job ends.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, copyFile, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

const TEMP_PREFIX = '.tessera-';
const TEMP_SUFFIX = '.part';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Where the lease with `token` of subtask `subtaskId` writes output `name` in the shared folder
 * `dir`: computed the same way by the worker and the coordinator, and never the same for two leases.
 */
export function sharedOutputTemp(dir: string, jobId: string, subtaskId: string, token: string, name: string): string {
  const tag = createHash('sha256').update(`${subtaskId}\0${token}\0${name}`).digest('hex').slice(0, 20);
  return path.join(dir, `${TEMP_PREFIX}${jobId}-${tag}${TEMP_SUFFIX}`);
}

/** The job whose temporary file `file` is (by its name), if it is one. */
export function jobOfSharedTemp(file: string): string | undefined {
  const base = path.basename(file);
  if (!base.startsWith(TEMP_PREFIX) || !base.endsWith(TEMP_SUFFIX)) return undefined;
  const jobId = base.slice(TEMP_PREFIX.length, TEMP_PREFIX.length + 36);
  return UUID.test(jobId) ? jobId : undefined;
}

/**
 * Removes the temporary files job `jobId` left in `dir`: those among `known` (paths the coordinator
 * was told of) by name, then whatever a listing of the folder finds. A folder the coordinator may
 * write to but not list (a drop folder, `-wx`) gives up only the known ones: the listing's error is
 * thrown once they are gone (ENOENT, a folder gone, is not an error).
 */
export async function removeSharedTemps(dir: string, jobId: string, known: Iterable<string> = []): Promise<void> {
  const prefix = `${TEMP_PREFIX}${jobId}-`;
  const ours = (n: string): boolean => n.startsWith(prefix) && n.endsWith(TEMP_SUFFIX);
  const named = [...known].filter((p) => path.dirname(p) === dir && ours(path.basename(p)));
  await Promise.all(named.map((p) => rm(p, { force: true })));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await Promise.all(names.filter(ours).map((n) => rm(path.join(dir, n), { force: true })));
}

/**
 * Moves `src` to `dest`, replacing it atomically. Across file systems (the spool on local disk, the
 * folder on a network share) the bytes are copied beside `dest` first under a temporary name of
 * job `jobId`, so that a reader never sees half a file.
 */
export async function moveInto(src: string, dest: string, jobId: string): Promise<void> {
  try {
    await rename(src, dest);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
  }
  const tmp = path.join(path.dirname(dest), `${TEMP_PREFIX}${jobId}-copy-${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  try {
    await copyFile(src, tmp, fsConstants.COPYFILE_EXCL);
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await rm(src, { force: true });
}

/**
 * Whether this process can write outputs into `dir` in place: it is there under the same path (no
 * symlink on the way, as the coordinator resolved it), a folder, and writable.
 */
export async function canWriteShared(dir: string): Promise<boolean> {
  try {
    if ((await realpath(dir)) !== dir || !(await stat(dir)).isDirectory()) return false;
    await access(dir, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}
