/**
 * A one-reader queue between a producer that pushes as things happen and a consumer that takes
 * them in runs: whatever has come since it last looked, or, when nothing has, the first thing to
 * come within a wait it chooses.
 */
export class Channel<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private ended = false;
  private error: { err: unknown } | undefined;
  private wake: (() => void) | undefined;

  /** Adds items; nothing (an empty push) wakes no reader: a wait for the next item goes on. */
  push(...items: T[]): void {
    if (this.ended || this.error || items.length === 0) return;
    this.items.push(...items);
    this.wake?.();
  }

  /** No more items: `take` returns what is left, then undefined. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Stops the channel: the items not taken are dropped, and `take` throws `err`. */
  fail(err: unknown): void {
    this.error ??= { err };
    this.items = [];
    this.wake?.();
  }

  /**
   * Everything pushed and not taken yet. With nothing waiting, waits up to `waitMs` (forever by
   * default) for the next push: [] when the wait runs out, undefined once the channel has ended
   * and everything was taken. Throws the error the channel failed with.
   */
  async take(waitMs = Infinity): Promise<T[] | undefined> {
    if (this.items.length === 0 && !this.ended && !this.error) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (Number.isFinite(waitMs)) timer = setTimeout(resolve, waitMs);
      });
      this.wake = undefined;
      clearTimeout(timer);
    }
    if (this.error) throw this.error.err;
    if (this.items.length > 0) {
      const run = this.items;
      this.items = [];
      return run;
    }
    return this.ended ? undefined : [];
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const run = await this.take();
      if (!run) return;
      yield* run;
    }
  }
}
