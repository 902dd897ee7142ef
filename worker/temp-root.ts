/**
 * The worker's temp root: a folder of its own under the system temp folder (TMPDIR), made and
 * checked writable at start, kept with a heartbeat, and the sweep that removes those of workers
 * that died without cleaning up (SIGKILL, OOM).
 *
 * Whether another root's worker is alive cannot be told from its PID alone: workers in containers
 * sharing one scratch folder live in PID namespaces of their own, where the other's PID is nobody
 * (a live worker's files were removed under its running subtask), and a container restarted with
 * the same host name and PID made a root of the same name as its killed predecessor's and never
 * removed what that one left. So each root's name is unique to its process, and a live worker
 * answers on a Unix socket in its root, whatever namespace either is in (a refused connection: its
 * worker is gone). Where there is no socket (a path too long for one, a root of an earlier version),
 * the `.alive` file says which PID namespace and PID made it and is touched every
 * {@link TEMP_HEARTBEAT_MS}: such a root is dead when its PID is gone in the namespace that made it
 * (this worker's), or when its heartbeat stopped {@link STALE_MS} ago.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import { lstat, open, readdir, rm, utimes } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { processAlive } from '../shared/machine.js';

const TEMP_PREFIX = 'tessera-worker-';
const ALIVE = '.alive';
/** The socket a live worker listens on in its root. */
const SOCKET = '.s';
/** sun_path holds 108 bytes, its terminating NUL included. */
const MAX_SOCKET_PATH = 107;
/** How often a worker touches its root's `.alive` (and sweeps the dead ones'). */
export const TEMP_HEARTBEAT_MS = 30_000;
/** A root whose heartbeat is this old is a dead worker's, whatever its PID. */
export const STALE_MS = 4 * TEMP_HEARTBEAT_MS;

/**
 * How often this worker touches its root: {@link TEMP_HEARTBEAT_MS}, or, as a test knob and not a
 * setting, TESSERA_TEST_TEMP_HEARTBEAT_MS (a positive whole number of ms, at most the default), so
 * that a test of what a heartbeat repairs need not wait 30 s. A sweep still takes a root for dead
 * only after {@link STALE_MS}.
 */
export function tempHeartbeatMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env['TESSERA_TEST_TEMP_HEARTBEAT_MS'];
  return v && /^[1-9]\d*$/.test(v) ? Math.min(Number(v), TEMP_HEARTBEAT_MS) : TEMP_HEARTBEAT_MS;
}

/**
 * A temp root name private to this worker process: its name, its PID and a random part, which
 * starts with a letter (an earlier version's sweep took a name's last number for its worker's PID).
 */
export function defaultTempRoot(name: string): string {
  // A long name (up to 256 bytes is taken) is cut, with a hash of the whole, to keep the folder's
  // name under the file system's 255 bytes: past about 222 the worker failed at start, blaming TMPDIR.
  let part = name.replace(/[^\w.-]/g, '_');
  if (part.length > MAX_NAME_PART) part = `${part.slice(0, MAX_NAME_PART - 9)}~${createHash('sha1').update(name).digest('hex').slice(0, 8)}`;
  // Absolute even under a relative TMPDIR: encodes run ffmpeg in their own folder (a two-pass
  // encode's statistics files), where every other path they name must still be found.
  return path.resolve(os.tmpdir(), `${TEMP_PREFIX}${part}-${process.pid}-r${randomBytes(4).toString('hex')}`);
}

/** Most characters of a worker's name in its temp root's name (the rest: prefix, PID, random part). */
const MAX_NAME_PART = 160;

/** This process's PID namespace ("pid:[4026531836]"), or "" where /proc does not tell. */
function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

/**
 * Makes `root` and its heartbeat; throws an error that names the folder and the reason where this
 * process cannot write there (a read-only TMPDIR took every subtask and failed it as a "processor
 * error: ENOENT", recursive mkdir's report of EROFS).
 */
export function makeTempRoot(root: string): void {
  try {
    mkdirSync(path.dirname(root), { recursive: true });
    // Not recursive: the real error (EROFS, EACCES) comes back.
    mkdirSync(root, { mode: 0o700 });
    writeFileSync(path.join(root, ALIVE), `${pidNamespace()} ${process.pid}\n`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`temp folder ${path.dirname(root)} cannot be written by this worker (${e.code ?? e.message}): set TMPDIR to a folder it can write`);
  }
}

/**
 * Listens on the root's socket, which tells other workers this one is alive (see the module's
 * comment); resolves to the server (to close at the end), or undefined where there is none.
 */
export async function listenInTempRoot(root: string): Promise<net.Server | undefined> {
  const file = path.join(root, SOCKET);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH) return undefined;
  const server = net.createServer((socket) => socket.destroy());
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(file, () => {
      server.unref();
      resolve(server);
    });
  });
}

/** Whether a worker answers on the socket in `dir`: true, false (refused), or undefined (no socket, or no telling). */
function answers(dir: string): Promise<boolean | undefined> {
  const file = path.join(dir, SOCKET);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const socket = net.connect(file);
    const done = (v: boolean | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(true), 2000);
    socket.once('connect', () => done(true));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? false : err.code === 'ENOENT' ? undefined : true));
  });
}

/**
 * Touches `root`'s heartbeat, making it again where it is gone (the root removed by a tmp cleaner
 * or an operator, and made again bare by the next subtask: without it, and its socket, another
 * worker's sweep took the live root for a dead one's and removed it under a running subtask);
 * true where it had to be made again (the caller listens on the socket again).
 */
export async function touchTempRoot(root: string): Promise<boolean> {
  const now = new Date();
  return utimes(path.join(root, ALIVE), now, now).then(
    () => false,
    () => {
      try {
        mkdirSync(root, { recursive: true, mode: 0o700 });
        writeFileSync(path.join(root, ALIVE), `${pidNamespace()} ${process.pid}\n`);
        return true;
      } catch {
        // Not writable any more: each subtask then fails as this worker's trouble.
        return false;
      }
    },
  );
}

/**
 * The heartbeat file of `dir`: its text and time, where it is a small regular file of this user.
 * Opened without following a link and without blocking: a FIFO planted there hung the sweep, and
 * after four of them every file read of the worker (libuv's four threads each blocked in open).
 */
async function heartbeatOf(dir: string): Promise<{ text: string; mtimeMs: number } | undefined> {
  const fh = await open(path.join(dir, ALIVE), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK).catch(() => undefined);
  if (!fh) return undefined;
  try {
    const st = await fh.stat();
    if (!st.isFile() || !ownedHere(st)) return undefined;
    const buf = Buffer.alloc(128);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return { text: buf.subarray(0, bytesRead).toString('utf8'), mtimeMs: st.mtimeMs };
  } finally {
    await fh.close();
  }
}

/** Whether a file is this process's user's (everything is, where there are no users). */
function ownedHere(st: { uid: number }): boolean {
  return process.getuid === undefined || st.uid === process.getuid();
}

/** Whether the worker that made the temp root `dir` (named `entry`) is gone. */
async function deadRoot(dir: string, entry: string, ns: string, now: number, dirMtimeMs: number): Promise<boolean> {
  const answered = await answers(dir);
  if (answered !== undefined) return !answered;
  const heartbeat = await heartbeatOf(dir);
  const alive = heartbeat?.text;
  const [madeIn, pidText] = alive?.trim().split(' ') ?? [];
  // A root of an earlier version (no random part) has no heartbeat: its PID ends its name. One of
  // this version without a heartbeat is being made: only its age tells.
  const legacy = !/-\d+-r[0-9a-f]{8}$/.test(entry);
  const pid = Number(pidText ?? (legacy ? /-(\d+)$/.exec(entry)?.[1] : undefined) ?? NaN);
  // Made in this namespace: its PID tells (an earlier version's root too, as that version did).
  const sameNamespace = alive === undefined ? legacy : madeIn !== '' && madeIn === ns;
  // (Alive there: alive, however old its folder; an earlier version's worker keeps no heartbeat, and
  // a long subtask of one had its files removed under it.)
  if (Number.isSafeInteger(pid) && sameNamespace) return !processAlive(pid);
  // Anywhere else, the heartbeat (an earlier version's root: the folder's own time, which changes
  // with every subtask folder made or removed in it).
  return now - (heartbeat?.mtimeMs ?? dirMtimeMs) > STALE_MS;
}

/** Removes the temp roots of dead workers (see the module's comment); returns how many. */
export async function removeStaleTempRoots(own?: string): Promise<number> {
  const ns = pidNamespace();
  const now = Date.now();
  let removed = 0;
  for (const entry of await readdir(os.tmpdir()).catch(() => [] as string[])) {
    const dir = path.join(os.tmpdir(), entry);
    if (!entry.startsWith(TEMP_PREFIX) || dir === own || !/-\d+(-r[0-9a-f]{8})?$/.test(entry)) continue;
    // Only a real folder of this user: in a shared /tmp anyone can make one of such a name, and
    // swap a folder inside it for a link while the removal walks it (it then removed the link's
    // target's files). Inside a folder of this user's, no one else can.
    const st = await lstat(dir).catch(() => undefined);
    if (!st || !st.isDirectory() || !ownedHere(st)) continue;
    if (!(await deadRoot(dir, entry, ns, now, st.mtimeMs))) continue;
    await rm(dir, { recursive: true, force: true });
    removed++;
  }
  return removed;
}
