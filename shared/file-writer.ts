import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { constants as fsc } from 'node:fs';
import { CHUNK_SIZE } from './config.js';

/**
 * A file WriteStream whose writes happen in a thread of their own, in pieces of 64 KiB: for the
 * large files this project receives (the coordinator's spool, a worker's fetched inputs, the
 * client's downloads), where every received 1 MiB chunk is written.
 *
 * On this project's machines (Linux 6.18 in a microVM, ext4) one buffered write of 1 MiB into
 * page-cache memory the system had not used for a while costs 2-3.5 ms of system time, the same
 * bytes in 64 KiB writes 0.3-0.9 ms (docs/performance.md): a large write gets its page cache in
 * large folios, which the host has to hand back first. Sixteen writes per MiB through libuv's pool
 * cost the receiving thread more in completions than the kernel saved; here the main thread copies
 * each chunk into a slot buffer and hands it to the writer thread with one message, and the thread
 * makes the small writes synchronously, on the other core, and hands the buffer back.
 *
 * Semantics are those of `fs.createWriteStream(file, { flags, start })` with backpressure: writes
 * are accepted while a slot is free, an error (a full disk) fails the next write or `end()`, and
 * 'finish' means every byte is in the file and the thread has closed it. The thread opens the
 * file by path (never through a symbolic link: O_NOFOLLOW) with its own descriptor and closes it
 * before 'close' is emitted, also on destroy(), so after 'close' nothing writes to the file any more.
 */
export function threadedWriteStream(file: string, opts: { start?: number; flags?: 'w' | 'r+'; mode?: number } = {}): Writable {
  return new ThreadedWriteStream(file, opts.start ?? 0, opts.flags ?? 'w', opts.mode ?? 0o666);
}

/** The largest single write the thread hands the kernel. */
const WRITE_PIECE_BYTES = 64 * 1024;
/** One slot holds one chunk (or a chunk's piece) on its way to the thread. */
const SLOT_BYTES = CHUNK_SIZE;
/**
 * Slots of the process's pool, and how many one stream may hold: how far its writes may run behind
 * the chunks accepted. The pool's buffers are made with the thread and kept, going to the thread
 * with each write and coming back with its answer (transferred, not copied): memory touched for the
 * first time is dear on these machines (buffers made for each stream cost a coordinator taking 400
 * photos 3 CPU-s). Not shared memory: V8 copies into that word by word (`relaxed_memmove`), which
 * cost a download's main thread about 0.6 ms per MiB, as much as hashing it.
 */
const POOL_SLOTS = 8;
const STREAM_SLOTS = 4;

type ToThread =
  | { t: 'open'; id: number; path: string; flags: number; mode: number }
  | { t: 'write'; id: number; slot: number; buffer: ArrayBuffer; length: number; position: number }
  | { t: 'close'; id: number };
type ThreadError = { message: string; code?: string; errno?: number; syscall?: string; path?: string };
type FromThread = { t: 'opened' | 'wrote' | 'closed'; id: number; slot?: number; buffer?: ArrayBuffer; err?: ThreadError };

/**
 * The writer thread's code. Handed to the Worker as source text (`eval`), so that it runs the same
 * from the compiled files and from the TypeScript sources under test: it must not use anything
 * from outside its own body.
 */
function writerThread(pieceBytes: number): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('node:fs') as typeof import('node:fs');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const files = new Map<number, { fd: number; err?: ThreadError }>();
  const asError = (e: unknown): ThreadError => {
    const x = e as NodeJS.ErrnoException;
    return { message: String(x?.message ?? x), code: x?.code, errno: x?.errno, syscall: x?.syscall, path: x?.path };
  };
  parentPort!.on('message', (m: ToThread) => {
    if (m.t === 'open') {
      try {
        files.set(m.id, { fd: fs.openSync(m.path, m.flags, m.mode) });
        parentPort!.postMessage({ t: 'opened', id: m.id });
      } catch (e) {
        parentPort!.postMessage({ t: 'opened', id: m.id, err: asError(e) });
      }
      return;
    }
    const f = files.get(m.id);
    if (m.t === 'write') {
      if (f && !f.err) {
        try {
          const bytes = new Uint8Array(m.buffer);
          let at = 0;
          let position = m.position;
          for (let left = m.length; left > 0; ) {
            const n = fs.writeSync(f.fd, bytes, at, Math.min(pieceBytes, left), position);
            at += n;
            position += n;
            left -= n;
          }
        } catch (e) {
          f.err = asError(e);
        }
      }
      parentPort!.postMessage({ t: 'wrote', id: m.id, slot: m.slot, buffer: m.buffer, err: f ? f.err : { message: 'the file is not open' } }, [m.buffer]);
      return;
    }
    let err: ThreadError | undefined;
    if (f) {
      files.delete(m.id);
      try {
        fs.closeSync(f.fd);
      } catch (e) {
        err = asError(e);
      }
    }
    parentPort!.postMessage({ t: 'closed', id: m.id, err });
  });
}

/**
 * The process's writer thread and its pool of slots, started with its first stream; it keeps the
 * process up only while a stream is open.
 */
class WriterThread {
  private static current: WriterThread | undefined;
  private readonly worker: Worker;
  private readonly streams = new Map<number, ThreadedWriteStream>();
  private nextId = 1;
  /** The pool's buffers by slot; a slot's is here while it is free or being filled, in the thread while it writes. */
  private readonly buffers: ArrayBuffer[] = Array.from({ length: POOL_SLOTS }, () => new ArrayBuffer(SLOT_BYTES));
  private readonly free: number[] = Array.from({ length: POOL_SLOTS }, (_, i) => i);
  private readonly waiting: { resolve: (slot: number) => void; reject: (err: Error) => void }[] = [];
  private lostWith: Error | undefined;

  static get(): WriterThread {
    return (WriterThread.current ??= new WriterThread());
  }

  private constructor() {
    this.worker = new Worker(`(${writerThread.toString()})(${WRITE_PIECE_BYTES})`, {
      eval: true,
      name: 'tessera file writer',
      // Not the process's flags: `--input-type=module` would make the source a module, without `require`.
      execArgv: [],
    });
    this.worker.unref();
    this.worker.on('message', (m: FromThread) => {
      if (m.t === 'wrote') {
        this.buffers[m.slot!] = m.buffer!;
        this.release(m.slot!);
      }
      this.streams.get(m.id)?.fromThread(m);
    });
    const lost = (err: Error): void => {
      if (WriterThread.current === this) WriterThread.current = undefined;
      this.lostWith ??= err;
      for (const w of this.waiting.splice(0)) w.reject(err);
      for (const s of this.streams.values()) s.threadLost(err);
      this.streams.clear();
    };
    this.worker.on('error', lost);
    this.worker.on('exit', (code) => lost(new Error(`the file writer thread exited (code ${code})`)));
  }

  attach(stream: ThreadedWriteStream): number {
    const id = this.nextId++;
    if (this.streams.size === 0) this.worker.ref();
    this.streams.set(id, stream);
    return id;
  }

  detach(id: number): void {
    if (this.streams.delete(id) && this.streams.size === 0) this.worker.unref();
  }

  post(m: ToThread): void {
    this.worker.postMessage(m);
  }

  /** `bytes` written at `position` of stream `id`'s file, through `slot` (acquired): handed to the thread. */
  write(id: number, slot: number, bytes: Uint8Array, position: number): void {
    const buffer = this.buffers[slot]!;
    new Uint8Array(buffer, 0, bytes.length).set(bytes);
    this.worker.postMessage({ t: 'write', id, slot, buffer, length: bytes.length, position } satisfies ToThread, [buffer]);
  }

  /** A free slot of the pool, in the order asked. */
  acquire(): Promise<number> {
    if (this.lostWith) return Promise.reject(this.lostWith);
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** A slot back to the pool: to the first waiting for one, if any. */
  release(slot: number): void {
    const next = this.waiting.shift();
    if (next) next.resolve(slot);
    else this.free.push(slot);
  }
}

function fromThreadError(e: ThreadError): NodeJS.ErrnoException {
  return Object.assign(new Error(e.message), { code: e.code, errno: e.errno, syscall: e.syscall, path: e.path });
}

class ThreadedWriteStream extends Writable {
  private thread: WriterThread | undefined;
  private id = 0;
  private position: number;
  /** Writes posted and not yet answered. */
  private inFlight = 0;
  private failure: Error | undefined;
  /** Waiting for the thread: a reply (open, a write, close). */
  private waiting: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private closedByThread = false;

  constructor(
    private readonly file: string,
    start: number,
    private readonly flags: 'w' | 'r+',
    private readonly mode: number,
  ) {
    super({ highWaterMark: SLOT_BYTES });
    this.position = start;
  }

  /** Replies from the thread. */
  fromThread(m: FromThread): void {
    if (m.err && !this.failure) this.failure = fromThreadError(m.err);
    if (m.t === 'wrote') this.inFlight--;
    if (m.t === 'closed') this.closedByThread = true;
    for (const w of this.waiting.splice(0)) w.resolve();
  }

  threadLost(err: Error): void {
    this.failure ??= err;
    this.closedByThread = true;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  private reply(): Promise<void> {
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  override _construct(callback: (err?: Error | null) => void): void {
    this.thread = WriterThread.get();
    this.id = this.thread.attach(this);
    // Never through a link: each file written here is one the caller made or owns under that name.
    const flags = (this.flags === 'w' ? fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC : fsc.O_RDWR) | fsc.O_NOFOLLOW;
    this.thread.post({ t: 'open', id: this.id, path: this.file, flags, mode: this.mode });
    this.reply().then(
      () => {
        if (this.failure) this.detach();
        callback(this.failure);
      },
      (err: Error) => callback(err),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.put(chunk).then(() => callback(), callback);
  }

  private async put(chunk: Buffer): Promise<void> {
    const thread = this.thread!;
    for (let at = 0; at < chunk.length; ) {
      while (this.inFlight >= STREAM_SLOTS && !this.failure) await this.reply();
      if (this.failure) throw this.failure;
      this.inFlight++;
      const slot = await thread.acquire().catch((err: Error) => {
        this.unreserve();
        throw err;
      });
      // Failed or destroyed while it waited for the pool: the slot goes back unused.
      if (this.failure || this.destroyed || this.closedByThread) {
        thread.release(slot);
        this.unreserve();
        throw this.failure ?? new Error('the stream was closed before it took everything');
      }
      const length = Math.min(SLOT_BYTES, chunk.length - at);
      thread.write(this.id, slot, chunk.subarray(at, at + length), this.position);
      this.position += length;
      at += length;
    }
  }

  /** A place in flight given up before its write was posted: whoever waits for the writes to land is told. */
  private unreserve(): void {
    this.inFlight--;
    for (const w of this.waiting.splice(0)) w.resolve();
  }

  /** Every write landed (or one failed), then the thread closes the file. */
  private async settle(): Promise<void> {
    while (this.inFlight > 0 && !this.closedByThread) await this.reply();
    if (this.closedByThread) return;
    this.thread!.post({ t: 'close', id: this.id });
    while (!this.closedByThread) await this.reply();
  }

  private detach(): void {
    this.thread?.detach(this.id);
    this.closedByThread = true;
  }

  /** Settles and lets go of the thread, however the settling went. */
  private closeFile(): Promise<void> {
    return this.settle().finally(() => this.detach());
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.closeFile().then(() => callback(this.failure), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // Not opened (construct failed or never ran), or already closed: nothing is in flight.
    const closing = this.thread && !this.closedByThread ? this.closeFile().catch(() => undefined) : Promise.resolve(this.detach());
    void closing.then(() => callback(err));
  }
}

/**
 * Destroys a file stream and waits until it has closed: for a {@link threadedWriteStream}, until
 * its thread has closed the file, so that a file removed next is not written (or made) again.
 */
export async function closeWriteStream(out: Writable): Promise<void> {
  if (out.closed) return;
  await new Promise((resolve) => out.destroy().once('close', resolve));
}
