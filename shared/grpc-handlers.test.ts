/**
 * The handlers' one error boundary: whatever a handler throws, the call ends with a status, and
 * nothing escapes into the process (an unhandled rejection there stops a coordinator).
 */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { statusDetails } from './errors.js';
import { unary } from './grpc-handlers.js';
import { createLogger } from './logger.js';

const log = createLogger('test', 'silent');

describe('status messages', () => {
  it('are well-formed: a message cut inside an emoji gets U+FFFD for the half, which grpc-js can write', () => {
    const cut = `name "${'\u{1F600}'.repeat(3)}`.slice(0, 9);
    expect(() => encodeURI(cut)).toThrow(URIError);
    expect(statusDetails(cut)).toBe(`name "\u{1F600}\uFFFD`);
    expect(() => encodeURI(statusDetails(cut))).not.toThrow();
    expect(statusDetails('plain')).toBe('plain');
  });

  it('a status grpc-js cannot send still ends the call, as INTERNAL, and the process goes on', async () => {
    const handler = unary(log, async () => {
      throw Object.assign(new Error('refused'), { code: grpc.status.INVALID_ARGUMENT, details: 'refused' });
    });
    const sent: { code: number; details: string }[] = [];
    const callback = (err: { code: number; details: string } | null): void => {
      sent.push(err!);
      // grpc-js throws as it sends the first status (as it did for a lone surrogate).
      if (sent.length === 1) throw new URIError('URI malformed');
    };
    const call = { request: {}, metadata: new grpc.Metadata(), getPeer: () => 'ipv4:127.0.0.1:1', on: () => undefined };
    handler(call as never, callback as never);
    await expect.poll(() => sent.length).toBe(2);
    expect(sent.map((e) => [e.code, e.details])).toEqual([
      [grpc.status.INVALID_ARGUMENT, 'refused'],
      [grpc.status.INTERNAL, 'internal error (see the coordinator log)'],
    ]);
  });
});
