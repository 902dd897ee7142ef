/**
 * A fault-injecting TCP proxy on loopback: forwards connections to a target and can simulate a
 * network partition (traffic stops flowing both ways, connections stay open) and heal it, or drop
 * the connections open now.
 */
import net from 'node:net';

export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private partitioned = false;
  private holding = false;
  address = '';

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<string> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      client.pipe(upstream);
      if (!this.holding) upstream.pipe(client);
      if (this.partitioned) this.pausePair(pair);
      const close = (): void => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.address = `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
    return this.address;
  }

  private pausePair([a, b]: [net.Socket, net.Socket]): void {
    // Stop reading on both sides: bytes queue up in the kernel as on a dead link.
    a.unpipe(b);
    b.unpipe(a);
    a.pause();
    b.pause();
  }

  /** Stops all traffic through the proxy (new connections included) without closing anything. */
  partition(): void {
    this.partitioned = true;
    for (const pair of this.pairs) this.pausePair(pair);
  }

  /** Lets traffic flow again; anything sent during the partition is delivered now. */
  heal(): void {
    this.partitioned = false;
    for (const [a, b] of this.pairs) {
      a.pipe(b);
      b.pipe(a);
    }
  }

  /**
   * Holds back what the far side sends (new connections included) while this side's bytes go on:
   * a slow link's answers, late. `releaseAnswers` delivers them.
   */
  holdAnswers(): void {
    this.holding = true;
    for (const [a, b] of this.pairs) {
      b.unpipe(a);
      b.pause();
    }
  }

  releaseAnswers(): void {
    this.holding = false;
    for (const [a, b] of this.pairs) b.pipe(a);
  }

  /** Drops every open connection at once (a link that went down); new connections still go through. */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
  }

  async stop(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
