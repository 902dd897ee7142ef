/**
 * One budget, for the whole coordinator, of the output bytes it has handed to gRPC for DownloadOutput
 * and WatchJob readers and not yet seen written out. A stream holds up to two messages on their way
 * (shared/grpc-handlers.ts `serverStream`); a reader that does not read keeps them in the
 * coordinator's memory for as long as its call stays open: 2 MiB per download, and a client may
 * have --max-streams-per-client of them (200 unread downloads took a coordinator from 146 to 533
 * MiB). Past the budget a download goes on in SMALL_MESSAGE_BYTES messages and a watcher gets its
 * outputs' events without their bytes (its client downloads them), so that every reader is still
 * served while the memory held stays near the budget plus a little per stream.
 */

/** A download's message size while the budget is spent: 64 KiB costs about a fifth more CPU per MiB than 1 MiB. */
export const SMALL_MESSAGE_BYTES = 64 * 1024;

export class StreamBuffers {
  /** Bytes of messages held now. */
  held = 0;
  /** Messages sent small, or events sent without their output's bytes, because the budget was spent. */
  refusals = 0;

  constructor(public limit: number) {}

  /** The holds of one stream; `release()` them all when it ends. */
  stream(): StreamHolds {
    return new StreamHolds(this);
  }

  /** @internal */
  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) {
      this.refusals++;
      return false;
    }
    this.held += bytes;
    return true;
  }

  /** @internal */
  give(bytes: number): void {
    this.held -= bytes;
  }
}

/**
 * What one stream holds of the budget, a count per message it yields. A server stream asks its
 * source for message n+1 only once message n-1 is written out (two on their way at most), so
 * whenever the source is asked for more, all it yielded but the last is no longer held.
 */
export class StreamHolds {
  private readonly holds: number[] = [];

  constructor(private readonly budget: StreamBuffers) {}

  /**
   * Call as the source starts on its next message (first thing, and after each `yield`): gives back
   * what all but the last message yielded held, and starts the new one's count at 0.
   */
  next(): void {
    while (this.holds.length > 1) this.budget.give(this.holds.shift()!);
    this.holds.push(0);
  }

  /** Holds `bytes` more for the message being made if the budget has room for them; false if not. */
  take(bytes: number): boolean {
    if (this.holds.length === 0) throw new Error('StreamHolds.take before next()');
    if (!this.budget.take(bytes)) return false;
    this.holds[this.holds.length - 1]! += bytes;
    return true;
  }

  /** The stream ended (done, failed, cancelled): everything it held is given back. */
  release(): void {
    for (const b of this.holds.splice(0)) this.budget.give(b);
  }
}
