import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_CHANNEL_OPTIONS,
  DEFAULT_KEEPALIVE,
  MIN_KEEPALIVE_MS,
  SERVER_CHANNEL_OPTIONS,
  clientChannelOptions,
  keepaliveFromEnv,
  keepaliveProblem,
  serverChannelOptions,
} from './config.js';

describe('keepalive settings', () => {
  it('default to a ping every 10 s, answered within 20 s (as gRPC itself defaults), on both sides', () => {
    expect(DEFAULT_KEEPALIVE).toEqual({ timeMs: 10_000, timeoutMs: 20_000 });
    expect(clientChannelOptions()).toEqual(CLIENT_CHANNEL_OPTIONS);
    expect(serverChannelOptions()).toEqual(SERVER_CHANNEL_OPTIONS);
    expect(keepaliveFromEnv({})).toEqual(DEFAULT_KEEPALIVE);
  });

  it('put the values given into the channel options, and leave the rest as they are', () => {
    const client = clientChannelOptions({ timeMs: 20_000, timeoutMs: 8_000 });
    expect(client).toEqual({ ...CLIENT_CHANNEL_OPTIONS, 'grpc.keepalive_time_ms': 20_000, 'grpc.keepalive_timeout_ms': 8_000 });
    const server = serverChannelOptions({ timeMs: 30_000, timeoutMs: 12_000 });
    expect(server).toEqual({ ...SERVER_CHANNEL_OPTIONS, 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 12_000 });
  });

  it("keep the server's minimum ping interval at or below every client keepalive that is accepted, whatever the server's own keepalive", () => {
    for (const serverTime of [MIN_KEEPALIVE_MS, 10_000, 60_000, 3_600_000]) {
      const minPing = serverChannelOptions({ timeMs: serverTime, timeoutMs: 5_000 })['grpc.http2.min_ping_interval_without_data_ms']!;
      expect(minPing).toBe(MIN_KEEPALIVE_MS);
      for (const clientTime of [MIN_KEEPALIVE_MS - 1, MIN_KEEPALIVE_MS, 7_500, 10_000, 120_000]) {
        const accepted = keepaliveProblem({ timeMs: clientTime, timeoutMs: 5_000 }) === undefined;
        // Accepted exactly where the server permits it: a client set lower would be closed with too_many_pings.
        expect(accepted, `client ${clientTime} ms against server ${serverTime} ms`).toBe(clientTime >= minPing);
        if (accepted) expect(clientChannelOptions({ timeMs: clientTime, timeoutMs: 5_000 })['grpc.keepalive_time_ms']).toBeGreaterThanOrEqual(minPing);
      }
    }
  });

  it('come from TESSERA_KEEPALIVE_MS and TESSERA_KEEPALIVE_TIMEOUT_MS, each on its own; a bad value is refused naming its variable', () => {
    expect(keepaliveFromEnv({ TESSERA_KEEPALIVE_MS: '15000' })).toEqual({ timeMs: 15_000, timeoutMs: 20_000 });
    expect(keepaliveFromEnv({ TESSERA_KEEPALIVE_TIMEOUT_MS: '20000' })).toEqual({ timeMs: 10_000, timeoutMs: 20_000 });
    expect(keepaliveFromEnv({ TESSERA_KEEPALIVE_MS: '', TESSERA_KEEPALIVE_TIMEOUT_MS: ' 7000 ' })).toEqual({ timeMs: 10_000, timeoutMs: 7_000 });
    expect(() => keepaliveFromEnv({ TESSERA_KEEPALIVE_MS: '1000' })).toThrow(/^TESSERA_KEEPALIVE_MS=1000: must be a whole number of ms, at least 5000: .*too_many_pings/);
    expect(() => keepaliveFromEnv({ TESSERA_KEEPALIVE_MS: '10s' })).toThrow(/^TESSERA_KEEPALIVE_MS=10s: must be a whole number of ms/);
    expect(() => keepaliveFromEnv({ TESSERA_KEEPALIVE_TIMEOUT_MS: '999' })).toThrow(/^TESSERA_KEEPALIVE_TIMEOUT_MS=999: must be a whole number of ms, at least 1000$/);
    const refusal = ((): unknown => {
      try {
        return keepaliveFromEnv({ TESSERA_KEEPALIVE_TIMEOUT_MS: '0' });
      } catch (err) {
        return err;
      }
    })();
    expect(refusal).toMatchObject({ code: status.INVALID_ARGUMENT });
  });
});

describe('the deadline of a submission', () => {
  it("grows with its inputs, which the coordinator checks before it answers, not with its bytes alone", async () => {
    const { submitDeadlineMs, transferDeadlineMs } = await import('./config.js');
    // 1,700 clips of 100 ms (2.7 MB): the coordinator's checks (35-75 ms each, two at a time, more
    // on a loaded machine) took it past 63 s, the deadline of the bytes alone.
    expect(transferDeadlineMs(2.7 * 1024 * 1024)).toBe(63_000);
    expect(submitDeadlineMs(2.7 * 1024 * 1024, 1700)).toBeGreaterThanOrEqual(63_000 + 1700 * 150);
    // One big file: as a transfer.
    expect(submitDeadlineMs(4 * 1024 ** 3, 1)).toBeGreaterThanOrEqual(transferDeadlineMs(4 * 1024 ** 3));
  });
});
