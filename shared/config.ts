/** Defaults shared by the coordinator, workers and clients. */
import { status } from './grpc-status.js';
import { TesseraError } from './errors.js';

export const DEFAULT_COORDINATOR_ADDRESS = '127.0.0.1:7700';

/**
 * Address from `--coordinator`, else TESSERA_COORDINATOR, else the default. A plain HOST:PORT is
 * checked (grpc-js would take a missing port for 443, and fail on a port out of range only when it
 * connects, over and over); a gRPC target with a scheme (`dns:`, `unix:`, `ipv4:`...) is left as it is.
 */
export function coordinatorAddress(flag?: string): string {
  // A flag given empty (`--coordinator "$UNSET"`) is refused, not replaced by the environment or the
  // default: that sent the job to whatever ran on 127.0.0.1. An empty variable counts as unset.
  const address = flag ?? (process.env['TESSERA_COORDINATOR'] || DEFAULT_COORDINATOR_ADDRESS);
  const problem = hostPortProblem(address, { portZero: false });
  if (problem) throw new TesseraError(status.INVALID_ARGUMENT, `coordinator address "${address}" (--coordinator, TESSERA_COORDINATOR): ${problem}`);
  return address;
}

/** A gRPC target with a scheme grpc-js resolves (`dns:///host:port`, `unix:/path`, `ipv4:1.2.3.4:5`): not HOST:PORT. */
export const TARGET_SCHEME = /^(dns|unix|unix-abstract|ipv4|ipv6|xds):/i;

/**
 * What is wrong with `value` as HOST:PORT (a name, an IPv4 address, or an IPv6 one in brackets),
 * or undefined when nothing is. `portZero`: 0 (any free port) is allowed, as for a listen address.
 */
export function hostPortProblem(value: string, o: { portZero: boolean }): string | undefined {
  if (TARGET_SCHEME.test(value)) return undefined;
  if (!value.includes(':')) return 'the port is missing (HOST:PORT, e.g. 127.0.0.1:7700)';
  const m = /^(\[[0-9a-fA-F:.%\w]+\]|[^:\[\]\s/]+):([^:]*)$/.exec(value);
  if (!m) return `not HOST:PORT (e.g. 127.0.0.1:7700; an IPv6 address in brackets: [::1]:7700)`;
  const port = m[2]!;
  if (!/^\d+$/.test(port)) return port === '' ? 'the port is missing (HOST:PORT, e.g. 127.0.0.1:7700)' : `port "${port}" is not a number`;
  const n = Number(port);
  if (n > 65535 || n < (o.portZero ? 0 : 1)) return `port ${n} is outside ${o.portZero ? 0 : 1}..65535`;
  return undefined;
}

/**
 * Why `address` (of option `flag`) could not be listened on, in words: grpc-js says "No address
 * added out of total 1 resolved errors: [listen EADDRINUSE ...]", Node "listen EADDRINUSE".
 */
export function listenFailure(address: string, err: Error, flag: string): Error {
  const text = err.message;
  if (/EADDRINUSE/.test(text)) return new Error(`cannot listen on ${address} (${flag}): the address is in use (another coordinator, or another program, listens there)`);
  if (/EACCES/.test(text)) return new Error(`cannot listen on ${address} (${flag}): permission denied (ports below 1024 need privileges)`);
  if (/EADDRNOTAVAIL/.test(text)) return new Error(`cannot listen on ${address} (${flag}): no network interface of this machine has that address`);
  return new Error(`cannot listen on ${address} (${flag}): ${text}`);
}

/** Bytes per chunk on every bulk stream (DESIGN: 64 KiB..1 MiB). */
export const CHUNK_SIZE = 1024 * 1024;

/** The largest output a watcher can have sent inside its `output` event (WatchJobRequest.inline_outputs_up_to). */
export const INLINE_OUTPUT_MAX_BYTES = 1024 * 1024;

/** Inputs and outputs at most this large ride inline in control messages (one round trip, not three). */
export const INLINE_LIMIT = 64 * 1024;

/**
 * Inline outputs one subtask result carries at most (the rest are uploaded), and the inline bytes
 * one `results` message of a worker carries at most: well below MAX_MESSAGE_BYTES, which a control
 * stream message must never pass (grpc-js ends the whole stream over it).
 */
export const INLINE_RESULT_BYTES = 4 * 1024 * 1024;
export const RESULTS_MESSAGE_BYTES = 8 * 1024 * 1024;

/**
 * HTTP/2 flow-control window per stream and connection, on both sides. Node's 64 KiB stalls every
 * bulk stream each few chunks; but what the window lets a sender queue goes out before a keepalive
 * ping sent after it, and a ping unanswered within the keepalive timeout (20 s) cuts the
 * connection: with 16 MiB, an upload over a 2 Mbit/s uplink held its pings 67 s back and was cut
 * and sent again from its first byte for ever. 2 MiB is 8 s of such a link (with the kernel's own
 * send buffer, about 12 s). The same on loopback: with 16 MiB there (5-8% more on the bulk rows), a
 * client that uploaded and downloaded at once deadlocked its connection, each end's socket full of
 * more than the kernel's buffers hold, and Node's HTTP/2 reading neither while its own write waited
 * (review CLI1: stalled until keepalive cut it, every 30 s).
 */
export const FLOW_CONTROL_WINDOW = 2 * 1024 * 1024;

/** Largest gRPC message either side accepts (a chunk plus headroom, or a batch of inline payloads). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export const HEARTBEAT_MS = 1000;
export const WORKER_TTL_MS = 5000;
export const MAX_ATTEMPTS = 3;
export const SUBTASK_TIMEOUT_MS = 30 * 60 * 1000;
/**
 * The longest timeout a subtask is given (about 24.8 days): Node's timers take at most 2^31 - 1 ms
 * and fire at once past it, and an assignment carries it as a uint32.
 */
export const MAX_SUBTASK_TIMEOUT_MS = 2 ** 31 - 1;
/**
 * A running subtask its worker has reported no progress on for this long gets a speculative copy
 * on an idle worker (the coordinator's --stall-ms): a worker that hangs while its heartbeats go on
 * would otherwise hold it until SUBTASK_TIMEOUT_MS.
 */
export const STALL_MS = 60_000;
/**
 * Lease-ahead: a worker queues this many assignments beyond its slots, and the coordinator uses
 * them for jobs whose subtasks all run shorter than PREFETCH_BELOW_MS (by the kind's estimate, then
 * as measured), so that a freed slot starts its next subtask at once instead of after a round trip
 * to the coordinator.
 */
export const WORKER_PREFETCH = 1;
export const PREFETCH_BELOW_MS = 1000;

/** Deadline of unary client calls. */
export const UNARY_DEADLINE_MS = 15_000;

/**
 * Keepalive: how often a side pings a connection (`timeMs`), and how long it waits for the answer
 * before it takes the connection for dead (`timeoutMs`). Clients (the CLI, the client library,
 * workers) ping the coordinator; the coordinator pings them. A link whose queues hold a ping's
 * answer back for seconds (a congested WAN, no fair queuing) needs a longer timeout.
 */
export interface Keepalive {
  timeMs: number;
  timeoutMs: number;
}

/**
 * 20 s to answer, gRPC's own default: a side's ping waits behind what its connection already
 * queued. A client uploading over a 2 Mbit/s uplink holds about 4 s of its own bytes unsent in its
 * kernel, ahead of its pings and of its answers to the coordinator's: at 5 s each try of a
 * submission longer than ~10 s was cut, and sent again from its start, for ever.
 */
export const DEFAULT_KEEPALIVE: Readonly<Keepalive> = { timeMs: 10_000, timeoutMs: 20_000 };

/**
 * The shortest keepalive interval accepted anywhere, and the server's minimum permitted ping
 * interval: one constant, so that no client may be set to ping more often than the coordinator
 * permits (gRPC servers that enforce it, and proxies, close such connections with `too_many_pings`).
 */
export const MIN_KEEPALIVE_MS = 5_000;
/** The shortest keepalive timeout accepted: below it a busy event loop (a GC pause) reads as a dead link. */
export const MIN_KEEPALIVE_TIMEOUT_MS = 1_000;

/** The longest a Node timer waits: one set longer runs after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Environment variables of the keepalive settings, read by the client library (the CLI's flags set them). */
export const KEEPALIVE_ENV = { timeMs: 'TESSERA_KEEPALIVE_MS', timeoutMs: 'TESSERA_KEEPALIVE_TIMEOUT_MS' } as const;

/**
 * What is wrong with keepalive `k`: the setting (`timeMs` or `timeoutMs`) and the rule it breaks,
 * for the caller to name as it was given; undefined when nothing is.
 */
export function keepaliveProblem(k: Keepalive): { key: keyof Keepalive; rule: string } | undefined {
  if (!Number.isInteger(k.timeMs) || k.timeMs < MIN_KEEPALIVE_MS) {
    return { key: 'timeMs', rule: `must be a whole number of ms, at least ${MIN_KEEPALIVE_MS}: the coordinator permits pings no more often, and closes connections that ping more often (too_many_pings)` };
  }
  if (!Number.isInteger(k.timeoutMs) || k.timeoutMs < MIN_KEEPALIVE_TIMEOUT_MS) return { key: 'timeoutMs', rule: `must be a whole number of ms, at least ${MIN_KEEPALIVE_TIMEOUT_MS}` };
  // grpc-js waits for a ping's answer with a plain timer, which Node runs after 1 ms past this:
  // every connection was taken for dead at its first ping.
  for (const key of ['timeMs', 'timeoutMs'] as const) if (k[key] > MAX_TIMER_MS) return { key, rule: `must be at most ${MAX_TIMER_MS} ms (about 24.8 days)` };
  return undefined;
}

/**
 * Keepalive from TESSERA_KEEPALIVE_MS and TESSERA_KEEPALIVE_TIMEOUT_MS, each defaulting to
 * {@link DEFAULT_KEEPALIVE}. INVALID_ARGUMENT naming the variable for a value that is not a whole
 * number of ms in range.
 */
export function keepaliveFromEnv(env: NodeJS.ProcessEnv = process.env): Keepalive {
  const read = (key: keyof Keepalive): number => {
    const raw = env[KEEPALIVE_ENV[key]];
    if (raw === undefined || raw.trim() === '') return DEFAULT_KEEPALIVE[key];
    return /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  };
  const k = { timeMs: read('timeMs'), timeoutMs: read('timeoutMs') };
  const problem = keepaliveProblem(k);
  if (problem) throw new TesseraError(status.INVALID_ARGUMENT, `${KEEPALIVE_ENV[problem.key]}=${env[KEEPALIVE_ENV[problem.key]] ?? ''}: ${problem.rule}`);
  return k;
}

/**
 * How long a client's or worker's channel may stay connecting (TCP, TLS, HTTP/2) before it is made
 * again and the coordinator's name looked up again: 5 s, doubled for each such try in a row, up to
 * 20 s (gRPC core's minimum connect timeout). grpc-js has no connect timeout: a try to an address
 * that no longer answers (a coordinator's container made again elsewhere, its old host gone
 * silent) waited on the system's SYN retries for about two minutes while the name already led to
 * the new address.
 */
export function connectTimeoutMs(triesInARow: number): number {
  return Math.min(20_000, 5_000 * 2 ** triesInARow);
}

/**
 * Channels given up in a row (see connectTimeoutMs) before a worker or client stops giving them up
 * until it is connected again: grpc-js cannot stop the attempt of a channel given up, so each one
 * to a peer that takes connections and never answers (a hung coordinator) stays open as long as
 * that peer holds it. Past this many, an outage waits on the attempt under way, as without a connect
 * timeout: the system's SYN retries (about two minutes), then a new lookup of the name.
 */
export const MAX_CONNECT_TIMEOUTS = 3;

/** Channel options of every client of the coordinator (CLI, client library, workers), with the default keepalive. */
export const CLIENT_CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': DEFAULT_KEEPALIVE.timeMs,
  'grpc.keepalive_timeout_ms': DEFAULT_KEEPALIVE.timeoutMs,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // A 64 KiB HTTP/2 window stalls every bulk stream each few chunks; give each stream room.
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2_000,
  // A coordinator back at a new address under the same name (a container made again): grpc-js
  // resolves a name again at most every 30 s by default, and the workers would dial the old one.
  'grpc.dns_min_time_between_resolutions_ms': 1_000,
} as const;

/** Channel options of the coordinator's server, with the default keepalive. */
export const SERVER_CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': DEFAULT_KEEPALIVE.timeMs,
  'grpc.keepalive_timeout_ms': DEFAULT_KEEPALIVE.timeoutMs,
  'grpc.keepalive_permit_without_calls': 1,
  // Fixed, whatever the coordinator's own keepalive: every client may ping as often as MIN_KEEPALIVE_MS.
  'grpc.http2.min_ping_interval_without_data_ms': MIN_KEEPALIVE_MS,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
} as const;

/** {@link CLIENT_CHANNEL_OPTIONS} with keepalive `k`. */
export function clientChannelOptions(k: Keepalive = DEFAULT_KEEPALIVE): Record<string, number> {
  return { ...CLIENT_CHANNEL_OPTIONS, 'grpc.keepalive_time_ms': k.timeMs, 'grpc.keepalive_timeout_ms': k.timeoutMs };
}

/** {@link SERVER_CHANNEL_OPTIONS} with keepalive `k` (the coordinator's pings of its clients). */
export function serverChannelOptions(k: Keepalive = DEFAULT_KEEPALIVE): Record<string, number> {
  return { ...SERVER_CHANNEL_OPTIONS, 'grpc.keepalive_time_ms': k.timeMs, 'grpc.keepalive_timeout_ms': k.timeoutMs };
}

/** Most slots a coordinator gives one worker: a worker asks for no more (its memory and threads per slot are sized on its count). */
export const MAX_WORKER_SLOTS = 256;

/** Most bytes of a worker's name, instance id, a label's key or value, a capability entry. */
export const REGISTER_TEXT_BYTES = 256;

/**
 * A switch's value as an environment variable gives it: true for 1, true, yes, on; false for 0,
 * false, no, off (any case); undefined for anything else, which the caller refuses naming it (a
 * typo such as `flase` is not taken for yes).
 */
export function parseSwitch(raw: string): boolean | undefined {
  if (/^(1|true|yes|on)$/i.test(raw.trim())) return true;
  if (/^(0|false|no|off)$/i.test(raw.trim())) return false;
  return undefined;
}

/** What a switch variable may be set to, for messages. */
export const SWITCH_VALUES = '1, true, yes or on; 0, false, no or off';

/** Reads a positive integer from the environment, else the fallback. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

/**
 * Deadline of a bulk transfer: a minute of slack plus the time the bytes take at a pessimistic
 * 1 MiB/s, so a stalled stream is cut off while a large healthy one is never cut short.
 */
export function transferDeadlineMs(bytes: number): number {
  return 60_000 + Math.ceil(bytes / (1024 * 1024)) * 1000;
}

/**
 * SubmitJob's request metadata asking for its answer's subtasks a page of this many at a time, as
 * GetJob's `subtask_limit` (without it, all of them, as a client from before pages expects).
 */
export const SUBTASK_PAGE_HEADER = 'tessera-subtask-limit';

/**
 * Deadline of a submission: its bytes' transfer, and a quarter of a second for each input, which
 * the coordinator checks before it answers (an ffprobe each, 35-75 ms here, two at a time): 1,700
 * clips of 100 ms (2.7 MB) took it over 63 s, and the call was cut with DEADLINE_EXCEEDED after
 * its last byte was in, the job thrown away.
 */
export function submitDeadlineMs(bytes: number, inputs: number): number {
  return transferDeadlineMs(bytes) + inputs * 250;
}
