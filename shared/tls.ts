/**
 * TLS for both services. The coordinator serves with its certificate and key; given a CA it also
 * asks every peer for a client certificate and verifies it against that CA, without requiring one,
 * so workers can be held to mutual TLS (see coordinator/auth.ts) while clients need only a token.
 * Workers and clients trust the CA (or the system roots) and may present a certificate of their own.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

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
class StaticCertificateProvider implements grpc.experimental.CertificateProvider {
  constructor(
    private readonly ca: Buffer | null,
    private readonly identity: { certificate: Buffer; privateKey: Buffer } | null,
  ) {}
  // Listeners are called on a later tick: grpc-js registers the server's watcher only after adding
  // these listeners, so a synchronous update would be lost and every connection dropped.
  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    setImmediate(() => l(this.ca ? { caCertificate: this.ca } : null));
  }
  removeCaCertificateListener(): void {}
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    setImmediate(() => l(this.identity));
  }
  removeIdentityCertificateListener(): void {}
}

/** Server credentials: TLS with `files`, client certificates requested (and verified) when a CA is given. */
export function serverCredentials(files: ServerTlsFiles): grpc.ServerCredentials {
  const certificate = readFileSync(files.cert);
  const privateKey = readFileSync(files.key);
  if (!files.ca) return grpc.ServerCredentials.createSsl(null, [{ cert_chain: certificate, private_key: privateKey }], false);
  const identity = new StaticCertificateProvider(null, { certificate, privateKey });
  const ca = new StaticCertificateProvider(readFileSync(files.ca), null);
  // Positional: identity provider, then CA provider; `false` = ask for a certificate but do not require one.
  return grpc.experimental.createCertificateProviderServerCredentials(identity, ca, false);
}

/** Channel credentials for a worker or client; TLS when any file is given or `tls` is true. */
export function channelCredentials(files: ClientTlsFiles, tls = false): grpc.ChannelCredentials {
  if (!tls && !files.ca && !files.cert && !files.key) return grpc.credentials.createInsecure();
  if (Boolean(files.cert) !== Boolean(files.key)) throw new Error('a client certificate needs both --tls-cert and --tls-key');
  const read = (f: string | undefined): Buffer | null => (f ? readFileSync(f) : null);
  return grpc.credentials.createSsl(read(files.ca), read(files.key), read(files.cert));
}

/** Client TLS settings from the environment (TESSERA_TLS_CA, TESSERA_TLS_CERT, TESSERA_TLS_KEY, TESSERA_TLS=1). */
export function clientTlsFromEnv(env: NodeJS.ProcessEnv = process.env): { files: ClientTlsFiles; tls: boolean } {
  const files = { ca: env['TESSERA_TLS_CA'] || undefined, cert: env['TESSERA_TLS_CERT'] || undefined, key: env['TESSERA_TLS_KEY'] || undefined };
  return { files, tls: env['TESSERA_TLS'] === '1' || env['TESSERA_TLS'] === 'true' };
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

/** Channel credentials from the environment (see {@link clientTlsFromEnv}); plaintext when none is set. */
export function clientCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): grpc.ChannelCredentials {
  const { files, tls } = clientTlsFromEnv(env);
  return channelCredentials(files, tls);
}
