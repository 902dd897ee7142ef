/**
 * A token bucket per peer host for failed authentications: a few mistakes are free, a stream of
 * guesses is slowed to the refill rate. Buckets of quiet peers are forgotten.
 */
import { isIP } from 'node:net';

/** How many failures a peer may burst, and how fast it earns them back. */
export interface RateLimitOptions {
  burst: number;
  perSecond: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

export class FailureRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly opts: RateLimitOptions = { burst: 10, perSecond: 1 },
    private readonly now: () => number = Date.now,
  ) {}

  private bucket(host: string): Bucket {
    const t = this.now();
    let b = this.buckets.get(host);
    if (!b) {
      b = { tokens: this.opts.burst, updated: t };
      this.buckets.set(host, b);
      if (this.buckets.size > 10_000) this.prune(t);
    }
    b.tokens = Math.min(this.opts.burst, b.tokens + ((t - b.updated) / 1000) * this.opts.perSecond);
    b.updated = t;
    return b;
  }

  /** Milliseconds until `host` may try again, 0 when it may now. */
  retryAfterMs(host: string): number {
    const b = this.bucket(host);
    return b.tokens >= 1 ? 0 : Math.ceil(((1 - b.tokens) / this.opts.perSecond) * 1000);
  }

  /** Records a failure of `host`. */
  fail(host: string): void {
    const b = this.bucket(host);
    b.tokens = Math.max(0, b.tokens - 1);
  }

  private prune(t: number): void {
    const full = (this.opts.burst / this.opts.perSecond) * 1000;
    for (const [k, b] of this.buckets) if (t - b.updated > full) this.buckets.delete(k);
  }
}

/**
 * The host part of a grpc-js peer string ("ipv4:127.0.0.1:5000", "[::1]:5000", "unix:/x"). A
 * grpc-js server gives an IPv6 peer unbracketed, its port after the last colon ("::1:5000",
 * "::ffff:10.0.0.7:40000"): kept with its port, every new connection would be a host of its own,
 * and the failed-authentication limit would hold nobody back.
 */
export function peerHost(peer: string): string {
  const p = peer.replace(/^(ipv4|ipv6|unix):/, '');
  const v6 = /^\[([^\]]+)\]/.exec(p);
  if (v6) return v6[1]!;
  const i = p.lastIndexOf(':');
  if (i <= 0) return p;
  const host = p.slice(0, i);
  return p.indexOf(':') === i || (isIP(host) === 6 && /^\d+$/.test(p.slice(i + 1))) ? host : p;
}
