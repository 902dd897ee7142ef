/**
 * Thin adapters from grpc-js callback handlers to `async` functions and async generators
 * (in the manner of nice-grpc), so every handler has one error boundary and an AbortSignal.
 */
import * as grpc from '@grpc/grpc-js';
import { TesseraError, toServiceError } from './errors.js';
import type { Logger } from './logger.js';
import { writeWithBackpressure } from './streams.js';

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

/**
 * A server-streaming handler. `headersFirst`: the response headers go out as the call is accepted,
 * not with its first message, so a client knows it is attached to a stream that may stay quiet.
 */
export function serverStream<Req, Res>(
  log: Logger,
  fn: (req: Req, ctx: { signal: AbortSignal; metadata: grpc.Metadata; peer: string }) => AsyncIterable<Res>,
  options: { headersFirst?: boolean } = {},
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const controller = callSignal(call);
    const signal = controller.signal;
    void (async () => {
      try {
        const messages = fn(call.request, { signal, metadata: call.metadata, peer: call.getPeer() });
        // After the handler's own checks (ownership, arguments), which fail the call with a status instead.
        if (options.headersFirst) call.sendMetadata(new grpc.Metadata());
        for await (const msg of messages) {
          if (signal.aborted) return;
          await writeWithBackpressure(call, msg, signal);
        }
        call.end();
      } catch (err) {
        if (signal.aborted) return;
        // grpc-js turns an 'error' event on a server stream into the call's status.
        endWith((e) => call.emit('error', e), err, log);
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
