/**
 * Thin adapters from grpc-js callback handlers to `async` functions and async generators
 * (in the manner of nice-grpc), so every handler has one error boundary and an AbortSignal.
 */
import * as grpc from '@grpc/grpc-js';
import { TesseraError, toServiceError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * Ends a call with the status of `err`. Should grpc-js throw as it sends it (a message it cannot
 * write), the call still ends, as INTERNAL: a throw here is in a promise's handler, where it would
 * be an unhandled rejection and stop the whole process.
 */
function endWith(send: (e: ReturnType<typeof toServiceError>) => void, err: unknown, log: Logger): void {
  try {
    send(toServiceError(err, log));
  } catch (sendErr) {
    log.error({ err: sendErr, cause: err }, 'could not send a call\'s status: sent INTERNAL instead');
    try {
      send({ code: grpc.status.INTERNAL, details: 'internal error (see the coordinator log)', metadata: new grpc.Metadata() });
    } catch {
      // The call is beyond answering; the process goes on.
    }
  }
}

/**
 * Writes `msg` to `call` and resolves once grpc-js has written it out (its write callback), or
 * rejects with the stream's error; the caller's `signal` ends the wait.
 */
function writeOut<Res>(call: grpc.ServerWritableStream<unknown, Res>, msg: Res, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (call.errored) return reject(call.errored);
    if (call.destroyed) return reject(new Error('the stream was closed before it took everything'));
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    call.write(msg, (err?: Error | null) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** A per-call AbortController tied to the call's 'cancelled' event. */
function callSignal(call: { on(event: 'cancelled', cb: () => void): unknown; removeListener?: unknown }): AbortController {
  const controller = new AbortController();
  call.on('cancelled', () => controller.abort(new DOMException('call cancelled by the client', 'AbortError')));
  return controller;
}

export function unary<Req, Res>(
  log: Logger,
  fn: (req: Req, ctx: { signal: AbortSignal; metadata: grpc.Metadata; peer: string }) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const controller = callSignal(call);
    fn(call.request, { signal: controller.signal, metadata: call.metadata, peer: call.getPeer() }).then(
      (res) => callback(null, res),
      (err: unknown) => endWith((e) => callback(e), err, log),
    );
  };
}

/** What a server-streaming handler gets besides its request. */
export interface ServerStreamContext {
  signal: AbortSignal;
  metadata: grpc.Metadata;
  peer: string;
  /**
   * Runs `f` once the call has sent everything (its last message written out, not only handed to
   * grpc-js) or ended otherwise (cancelled, failed): a source's generator ends up to two messages
   * before that, so what stays held while those are on their way is let go here.
   */
  onDone(f: () => void): void;
}

/**
 * A server-streaming handler. `headersFirst`: the response headers go out as the call is accepted,
 * not with its first message, so a client knows it is attached to a stream that may stay quiet.
 */
export function serverStream<Req, Res>(
  log: Logger,
  fn: (req: Req, ctx: ServerStreamContext) => AsyncIterable<Res>,
  options: { headersFirst?: boolean } = {},
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const controller = callSignal(call);
    const signal = controller.signal;
    const finished: (() => void)[] = [];
    void (async () => {
      try {
        const messages = fn(call.request, { signal, metadata: call.metadata, peer: call.getPeer(), onDone: (f) => finished.push(f) });
        // After the handler's own checks (ownership, arguments), which fail the call with a status instead.
        if (options.headersFirst) call.sendMetadata(new grpc.Metadata());
        // At most two messages handed to grpc-js and not yet written out: its stream takes 16
        // messages before it says "wait", which for 1 MiB download chunks or 3 MiB runs of inline
        // outputs held 15-50 MiB per stream whose reader was slow or paused (review MEM).
        const written: Promise<void>[] = [];
        for await (const msg of messages) {
          if (signal.aborted) return;
          const w = writeOut(call, msg, signal);
          // (Awaited below, in turn: a failure before then is not an unhandled rejection.)
          w.catch(() => undefined);
          written.push(w);
          if (written.length >= 2) await written.shift();
        }
        for (const w of written) await w;
        call.end();
      } catch (err) {
        if (signal.aborted) return;
        // grpc-js turns an 'error' event on a server stream into the call's status.
        endWith((e) => call.emit('error', e), err, log);
      } finally {
        for (const f of finished.splice(0)) {
          try {
            f();
          } catch (err) {
            log.error({ err }, 'a server stream\'s clean-up failed');
          }
        }
      }
    })();
  };
}

export function clientStream<Req, Res>(
  log: Logger,
  fn: (messages: AsyncIterable<Req>, ctx: { signal: AbortSignal; metadata: grpc.Metadata; peer: string }) => Promise<Res>,
): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    const controller = callSignal(call);
    fn(call as unknown as AsyncIterable<Req>, { signal: controller.signal, metadata: call.metadata, peer: call.getPeer() }).then(
      (res) => callback(null, res),
      (err: unknown) => {
        // Stop reading the rest of an upload we have rejected.
        call.removeAllListeners('data');
        // The peer went away mid-stream (a worker killed while it sent a result, a client while it
        // uploaded): an expected fault, handled as the peer lost, not a bug of this process.
        if (controller.signal.aborted || (err as NodeJS.ErrnoException | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE') {
          log.warn({ peer: call.getPeer() }, 'a stream was cut off by its peer (gone mid-stream)');
          endWith((e) => callback(e), new TesseraError(grpc.status.CANCELLED, 'the stream was cut off'), log);
          return;
        }
        endWith((e) => callback(e), err, log);
      },
    );
  };
}

/** A deadline `ms` from now, for client calls. */
export function deadline(ms: number): Date {
  return new Date(Date.now() + ms);
}
