/**
 * Calls a TesseraClient still has open on its channel, read from grpc-js's own channelz counters
 * (started minus those that ended with any status, a cancel included): what a caller that stops
 * early must not leave behind.
 */
import * as grpc from '@grpc/grpc-js';
import type { TesseraClient } from '../../client/index.js';

interface ChannelData {
  calls_started: string;
  calls_succeeded: string;
  calls_failed: string;
}

export async function callsInFlight(client: TesseraClient): Promise<number> {
  // The client's gRPC stub is private: this is a look inside for the tests' sake only.
  const channel = (client as unknown as { client: grpc.Client }).client.getChannel();
  const id = channel.getChannelzRef().id;
  const data = await new Promise<ChannelData>((resolve, reject) =>
    grpc.getChannelzHandlers().GetChannel({ request: { channel_id: String(id) } } as never, ((err: Error | null, res?: { channel: { data: ChannelData } }) =>
      err || !res ? reject(err ?? new Error('no channelz answer')) : resolve(res.channel.data)) as never),
  );
  return Number(data.calls_started) - Number(data.calls_succeeded) - Number(data.calls_failed);
}

/** Waits (up to `ms`) for the client's calls to end: a cancel's status arrives on a later tick. */
export async function settledCalls(client: TesseraClient, ms = 2000): Promise<number> {
  const until = Date.now() + ms;
  for (;;) {
    const open = await callsInFlight(client);
    if (open === 0 || Date.now() > until) return open;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
