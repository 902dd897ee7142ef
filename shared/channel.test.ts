import { describe, expect, it } from 'vitest';
import { Channel } from './channel.js';

describe('Channel', () => {
  it('gives everything pushed since the last take as one run, then waits for the next push', async () => {
    const c = new Channel<number>();
    c.push(1, 2);
    c.push(3);
    expect(await c.take()).toEqual([1, 2, 3]);
    const next = c.take();
    setTimeout(() => c.push(4), 10);
    expect(await next).toEqual([4]);
  });

  it('does not wake a waiting take for an empty push (an input refused by its check is not a pause in the upload)', async () => {
    const c = new Channel<number>();
    const started = Date.now();
    const waiting = c.take(100);
    c.push();
    setTimeout(() => c.push(7), 40);
    expect(await waiting).toEqual([7]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(35);
  });

  it('returns [] when a bounded wait runs out, and undefined once ended and emptied', async () => {
    const c = new Channel<string>();
    const started = Date.now();
    expect(await c.take(30)).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    c.push('a');
    c.end();
    c.push('ignored after the end');
    expect(await c.take(30)).toEqual(['a']);
    expect(await c.take()).toBeUndefined();
  });

  it('wakes a waiting take when it ends or fails, and throws the failure from then on, dropping what was left', async () => {
    const ended = new Channel<number>();
    const waiting = ended.take();
    ended.end();
    expect(await waiting).toBeUndefined();

    const failed = new Channel<number>();
    const blocked = failed.take();
    failed.fail(new Error('upload cut'));
    await expect(blocked).rejects.toThrow('upload cut');
    failed.push(1);
    await expect(failed.take()).rejects.toThrow('upload cut');
  });

  it('iterates item by item until it ends', async () => {
    const c = new Channel<number>();
    c.push(1, 2);
    setTimeout(() => {
      c.push(3);
      c.end();
    }, 10);
    const seen: number[] = [];
    for await (const n of c) seen.push(n);
    expect(seen).toEqual([1, 2, 3]);
  });
});
