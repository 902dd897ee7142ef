/**
 * TLS for both services. The coordinator serves with its certificate and key; given a CA it also
 * asks every peer for a client certificate and verifies it against that CA, without requiring one,
 * so workers can be held to mutual TLS (see coordinator/auth.ts) while clients need only a token.
 * Workers and clients trust the CA (or the system roots) and may present a certificate of their own.
 */
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { createRequire } from 'node:module';
import type * as Grpc from '@grpc/grpc-js';
import { SWITCH_VALUES, parseSwitch } from './config.js';
import { TesseraError } from './errors.js';
import { status } from './grpc-status.js';

/** grpc-js, loaded when credentials are made: the CLI checks TLS flags (naming files, say) without it. */
const require = createRequire(import.meta.url);
const grpcJs = (): typeof Grpc => require('@grpc/grpc-js') as typeof Grpc;

/** Certificate files of a server. */
export interface ServerTlsFiles {
  cert: string;
  key: string;
  /** CA that client certificates must chain to; without it no client certificate is asked for. */
  ca?: string | undefined;
}

/** Certificate files of a client (worker or CLI). */
export interface ClientTlsFiles {
  /** CA to trust; without it, the system roots. */
  ca?: string | undefined;
  /** Client certificate and key, for mutual TLS. */
  cert?: string | undefined;
  key?: string | undefined;
}

/** A certificate provider with fixed contents (grpc-js only takes optional client certificates through providers). */
class StaticCertificateProvider implements Grpc.experimental.CertificateProvider {
  constructor(
    private readonly ca: Buffer | null,
    private readonly identity: { certificate: Buffer; privateKey: Buffer } | null,
  ) {}
  // Listeners are called on a later tick: grpc-js registers the server's watcher only after adding
  // these listeners, so a synchronous update would be lost and every connection dropped.
  addCaCertificateListener(l: Grpc.experimental.CaCertificateUpdateListener): void {
    setImmediate(() => l(this.ca ? { caCertificate: this.ca } : null));
  }
  removeCaCertificateListener(): void {}
  addIdentityCertificateListener(l: Grpc.experimental.IdentityCertificateUpdateListener): void {
    setImmediate(() => l(this.identity));
  }
  removeIdentityCertificateListener(): void {}
}

/** Server credentials: TLS with `files`, client certificates requested (and verified) when a CA is given. */
export function serverCredentials(files: ServerTlsFiles): Grpc.ServerCredentials {
  const certificate = readFileSync(files.cert);
  const privateKey = readFileSync(files.key);
  if (!files.ca) return grpcJs().ServerCredentials.createSsl(null, [{ cert_chain: certificate, private_key: privateKey }], false);
  const identity = new StaticCertificateProvider(null, { certificate, privateKey });
  const ca = new StaticCertificateProvider(readFileSync(files.ca), null);
  // Positional: identity provider, then CA provider; `false` = ask for a certificate but do not require one.
  return grpcJs().experimental.createCertificateProviderServerCredentials(identity, ca, false);
}

/** Channel credentials for a worker or client; TLS when any file is given or `tls` is true. */
export function channelCredentials(files: ClientTlsFiles, tls = false): Grpc.ChannelCredentials {
  if (!tls && !files.ca && !files.cert && !files.key) return grpcJs().credentials.createInsecure();
  if (Boolean(files.cert) !== Boolean(files.key)) throw new Error('a client certificate needs both --tls-cert and --tls-key');
  const read = (f: string | undefined): Buffer | null => (f ? readFileSync(f) : null);
  return grpcJs().credentials.createSsl(read(files.ca), read(files.key), read(files.cert));
}

/** Client TLS settings from the environment (TESSERA_TLS_CA, TESSERA_TLS_CERT, TESSERA_TLS_KEY, TESSERA_TLS=1 or another yes). */
export function clientTlsFromEnv(env: NodeJS.ProcessEnv = process.env): { files: ClientTlsFiles; tls: boolean } {
  const files = { ca: env['TESSERA_TLS_CA'] || undefined, cert: env['TESSERA_TLS_CERT'] || undefined, key: env['TESSERA_TLS_KEY'] || undefined };
  const raw = env['TESSERA_TLS'];
  const tls = raw ? parseSwitch(raw) : false;
  // Read as the worker reads it: a value that is neither a yes nor a no is refused, not taken for no.
  if (tls === undefined) throw new TesseraError(status.INVALID_ARGUMENT, `TESSERA_TLS=${raw}: expected ${SWITCH_VALUES}`);
  return { files, tls };
}

/** The host of a `host:port` listen address, without IPv6 brackets. */
export function listenHost(listen: string): string {
  const i = listen.lastIndexOf(':');
  const host = i >= 0 ? listen.slice(0, i) : listen;
  return host.replace(/^\[|\]$/g, '');
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}

/**
 * Refuses to serve plaintext on an address other machines can reach, unless the operator said
 * `--insecure`. The message says how to fix it.
 */
export function assertSecureListen(listen: string, tls: boolean, insecure: boolean): void {
  if (tls || insecure || isLoopbackHost(listenHost(listen))) return;
  throw new Error(
    `refusing to listen on ${listen} without TLS: other machines could read and submit jobs in plaintext. ` +
      'Give --tls-cert and --tls-key (and --tls-ca for client certificates), listen on 127.0.0.1, ' +
      'or pass --insecure if the network is trusted.',
  );
}

/** The dashboard is plain HTTP: off loopback only when the operator said the network is trusted. */
export function assertSecureDashboard(http: string | undefined, insecure: boolean): void {
  if (!http || http === 'off' || insecure || isLoopbackHost(listenHost(http))) return;
  throw new Error(`refusing to serve the dashboard on ${http}: it is plain HTTP. Keep --http on 127.0.0.1, or pass --insecure if the network is trusted.`);
}

/** Channel credentials from the environment (see {@link clientTlsFromEnv}); plaintext when none is set. */
export function clientCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): Grpc.ChannelCredentials {
  const { files, tls } = clientTlsFromEnv(env);
  return channelCredentials(files, tls);
}

/**
 * What the details of a failed connection say of TLS, as grpc-js reports them (checked on grpc-js
 * 1.14): `certificate` when the coordinator's certificate was not accepted ("unable to verify the
 * first certificate", "self-signed certificate", a name not in its altnames); `peer-plaintext` when a
 * TLS client reached a plaintext server ("wrong version number"); `peer-tls` when a plaintext client
 * had its connection closed before HTTP/2 started ("Failed to connect", with no error of its own),
 * as a TLS server does; undefined when nothing points at TLS.
 */
export type TlsTrouble = 'certificate' | 'peer-plaintext' | 'peer-tls';

export function tlsTrouble(details: string, usingTls: boolean): TlsTrouble | undefined {
  if (/wrong version number|packet length too long/i.test(details)) return 'peer-plaintext';
  if (/certificate|self[- ]signed|unable to verify|altnames|\bSSL\b|handshake|\bTLS\b/i.test(details)) return 'certificate';
  // No reason of its own: the socket was closed before the HTTP/2 settings came (a refused or reset
  // connection says so instead).
  if (!usingTls && /Last error: Failed to connect \(/.test(details)) return 'peer-tls';
  return undefined;
}

/**
 * Whether a TLS server answers at `address` (HOST:PORT; a TLS handshake within `timeoutMs`, the
 * certificate not checked). A connection closed before HTTP/2 started is what a TLS coordinator
 * does to a plaintext client, and also what a port forwarder with nothing behind it does (Docker's
 * published port while its coordinator restarts, `ssh -L`, `kubectl port-forward`): only this
 * tells them apart. HOST:PORT or a unix socket (`unix:/path`).
 */
export function tlsAnswers(address: string, timeoutMs = 2000): Promise<boolean> {
  // A unix socket (`unix:/path`, `unix:///path`; `unix-abstract:name` in the abstract namespace).
  const socketPath = /^unix:(?:\/\/)?(\/.*)$/.exec(address)?.[1] ?? (/^unix-abstract:(.+)$/.exec(address)?.[1] !== undefined ? `\0${address.slice('unix-abstract:'.length)}` : undefined);
  const m = /^(?:dns:(?:\/\/\/)?|ipv4:|ipv6:)?\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!socketPath && !m) return Promise.resolve(false);
  const host = m?.[1] ?? 'localhost';
  return new Promise((resolve) => {
    const where = socketPath !== undefined ? { path: socketPath } : { host, port: Number(m![2]), ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) };
    const socket = tlsConnect({ ...where, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (answered: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/**
 * A hint for a {@link tlsTrouble}, naming the settings of the command that failed: `ca` and `tls`
 * are how that command spells them (`--tls-ca / TESSERA_TLS_CA`, `--tls / TESSERA_TLS`).
 */
export function tlsTroubleHint(trouble: TlsTrouble, address: string, flags: { ca: string; tls: string }): string {
  switch (trouble) {
    case 'certificate':
      return `the certificate of the coordinator at ${address} was not accepted: check ${flags.ca} (or ${flags.tls}) against the coordinator's certificate (the CA that signed it, and that it names this host)`;
    case 'peer-plaintext':
      return `the coordinator at ${address} does not serve TLS: drop ${flags.ca} and ${flags.tls}, or start the coordinator with --tls-cert and --tls-key`;
    case 'peer-tls':
      return `the coordinator at ${address} closed the connection before gRPC started, as a TLS coordinator does to a plaintext client: pass ${flags.ca} (or ${flags.tls})`;
  }
}

/** Node's deprecation code for a TLS ServerName that is an IP address (RFC 6066). */
const IP_SERVERNAME_WARNING = 'DEP0123';

/**
 * Drops Node's DEP0123 warning ("Setting the TLS ServerName to an IP address is not permitted by
 * RFC 6066"), which grpc-js causes on every TLS connection to an IP address: the command has no
 * say in it and the operator can do nothing about it. Every other warning is emitted as before.
 * Node's TLS code looks `process.emitWarning` up at each call, so wrapping it is enough.
 */
export function dropIpServerNameWarning(): void {
  const emitWarning = process.emitWarning;
  const wrapped = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    const [typeOrOptions, code] = rest;
    const given = typeof typeOrOptions === 'object' && typeOrOptions !== null ? (typeOrOptions as { code?: unknown }).code : code;
    const ownCode = typeof warning === 'object' ? (warning as { code?: unknown }).code : undefined;
    if (given === IP_SERVERNAME_WARNING || ownCode === IP_SERVERNAME_WARNING) return;
    (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  };
  process.emitWarning = wrapped as typeof process.emitWarning;
}
