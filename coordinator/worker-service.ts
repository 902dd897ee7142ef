/** WorkerService: registration, heartbeats and assignments on `Connect`; bulk bytes on side streams. */
import { randomUUID } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status } from '../shared/grpc-status.js';
import { TesseraError, dataLoss, hasLocalTroubleCode, inputOfChecksumMismatch, invalidArgument, statusDetails, storageFaultCode } from '../shared/errors.js';
import { asWire, passEncoded, readEncodedChunks } from '../shared/encoded-chunks.js';
import { clientStream, serverStream } from '../shared/grpc-handlers.js';
import { compileDecoder, compileEncoder, withFallback } from '../shared/proto-encoder.js';
import { fieldNumber, loadTesseraProto, loadTesseraRoot } from '../shared/proto.js';
import type { SpoolFile } from '../shared/job-kind.js';
import type { Logger } from '../shared/logger.js';
import { hasControlCharacters, peerText, safeOutputName } from '../shared/names.js';
import type { CoordinatorMessage } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { DataChunk } from '../shared/proto/generated/tessera/v1/DataChunk.js';
import type { SubtaskResult__Output } from '../shared/proto/generated/tessera/v1/SubtaskResult.js';
import type { UploadTaskOutputRequest__Output } from '../shared/proto/generated/tessera/v1/UploadTaskOutputRequest.js';
import type { WorkerMessage__Output } from '../shared/proto/generated/tessera/v1/WorkerMessage.js';
import type { WorkerServiceHandlers } from '../shared/proto/generated/tessera/v1/WorkerService.js';
import { MAX_WORKER_SLOTS, REGISTER_TEXT_BYTES } from '../shared/config.js';
import { sha256, sha256File } from '../shared/streams.js';
import type { SubtaskRecord } from './model.js';
import type { JobManager } from './job-manager.js';
import { storageTrouble, type Spool } from './spool.js';
import { newWorkerSession, type WorkerSession } from './worker-registry.js';
import { steadyNow } from '../shared/clock.js';
import { makeDir } from '../shared/make-dir.js';

export const WORKER_ID_HEADER = 'x-tessera-worker-id';

export interface WorkerServiceOptions {
  heartbeatMs: number;
  ttlMs: number;
  maxOutputBytes: number;
}

/**
 * WorkerService as the coordinator serves it: the control stream's messages (`Connect`: results
 * one way, assignments the other, thousands a second with small subtasks) are decoded and encoded
 * by compiled codecs (shared/proto-encoder.ts), as workers do at their end
 * (`workerServiceClientConstructor`); an assignment the compiled encoder refuses goes out through
 * protobufjs.
 */
export function workerServiceDefinition(): grpc.ServiceDefinition {
  const service = loadTesseraProto().proto.tessera.v1.WorkerService.service;
  const connect = service.Connect;
  const root = loadTesseraRoot();
  return {
    ...service,
    Connect: {
      ...connect,
      requestDeserialize: compileDecoder(root, 'tessera.v1.WorkerMessage'),
      responseSerialize: withFallback(compileEncoder(root, 'tessera.v1.CoordinatorMessage'), connect.responseSerialize),
    },
    FetchTaskInput: { ...service.FetchTaskInput, responseSerialize: passEncoded(service.FetchTaskInput.responseSerialize) },
  };
}

export function workerServiceHandlers(jobs: JobManager, spool: Spool, log: Logger, opts: WorkerServiceOptions, authorize: (md: grpc.Metadata) => void): WorkerServiceHandlers {
  const registry = jobs.registry;
  /** DataChunk's fields but `data`, put in front of each chunk's bytes by readEncodedChunks. */
  const encodeDataChunkFields = compileEncoder(loadTesseraRoot(), 'tessera.v1.DataChunk');
  /** Files uploaded per (subtask, attempt), waiting for the result message that names them. */
  const uploaded = new Map<string, { subtaskId: string; attempt: number; workerId: string; files: Map<string, SpoolFile> }>();
  const uploadKey = (subtaskId: string, attempt: number): string => `${subtaskId}#${attempt}`;
  /** Attempts whose output upload the coordinator refused for want of disk: their failure is not the worker's. */
  const refusedForDisk = new Set<string>();
  /**
   * Attempts whose output the coordinator refused as over its limit: the output's fault, not to be
   * run again (a gRPC error carries no "retryable", and the worker would report it as one).
   */
  const refusedForLimit = new Set<string>();
  /**
   * Attempts whose input was gone from the spool (a damaged disk, a hand that removed it): failed
   * as that, naming the input, not run again, and not counted against the worker (it was INTERNAL,
   * retried twice, and quarantined healthy workers).
   */
  const inputGone = new Map<string, { input: string; message: string }>();

  function sessionOf(md: grpc.Metadata): WorkerSession {
    authorize(md);
    const id = String(md.get(WORKER_ID_HEADER)[0] ?? '');
    const w = registry.get(id);
    if (!w || w.state === 'lost') throw new TesseraError(status.UNAUTHENTICATED, 'unknown or expired worker session: reconnect first', { retryable: false });
    return w;
  }

  /**
   * A worker's "checksum mismatch" on a spooled input whose file no longer has the checksum it was
   * uploaded with (rewritten in place, its size kept): the spool's loss, as a cut file is.
   */
  async function damagedInSpool(s: SubtaskRecord, r: SubtaskResult__Output): Promise<{ input: string; message: string } | undefined> {
    const name = r.error_code === 'DATA_LOSS' ? inputOfChecksumMismatch(r.error_message) : undefined;
    const f = name === undefined ? undefined : s.inputs.find((i) => i.name === name && !i.shared && i.sha256);
    if (!f) return undefined;
    const digest = await sha256File(f.path).catch(() => undefined);
    return digest === f.sha256 ? undefined : { input: f.name, message: spoolLossMessage(f.name, 'damaged (its checksum is not the one it was uploaded with)') };
  }

  async function handleResult(w: WorkerSession, r: SubtaskResult__Output): Promise<void> {
    const key = uploadKey(r.subtask_id, r.attempt);
    const files = uploaded.get(key)?.files ?? new Map<string, SpoolFile>();
    uploaded.delete(key);
    const s = jobs.leaseIsCurrent(r.subtask_id, r.attempt, w.id);
    const outputs: SpoolFile[] = [];
    let ok = r.ok;
    // What the worker says is shown to clients as it is: made printable (no escape sequences, no forged lines).
    let error = r.ok ? undefined : { input: '', code: peerText(r.error_code || 'UNKNOWN', 64), message: peerText(r.error_message || 'failed') };
    let retryable = r.retryable && !(!r.ok && refusedForLimit.delete(key));
    let coordinatorFault = !r.ok && refusedForDisk.delete(key);
    // Refused for the coordinator's own disk: retried whatever the worker made of the refusal (a
    // spool that cannot be written answers FAILED_PRECONDITION, which a worker does not retry).
    if (coordinatorFault) retryable = true;
    const gone = r.ok ? undefined : (inputGone.get(key) ?? (s ? await damagedInSpool(s, r) : undefined));
    inputGone.delete(key);
    if (gone) {
      error = { input: gone.input, code: 'DATA_LOSS', message: gone.message };
      retryable = false;
    }
    // What this attempt put in the spool (uploads, inline outputs written below): nobody's if it does not count.
    const spooled = [...files.values()].map((f) => f.path);
    if (s && r.ok) {
      try {
        // One attempt's outputs together keep to --max-job-bytes and to MAX_UPLOADS_PER_ATTEMPT files
        // however they come (uploaded, inline, written in place), checked before anything is
        // written: only uploads were counted, and a worker's inline outputs of 8 MiB passed a
        // limit of 1 (review S). What an output claims is checked against the file below.
        const claimed = [...files.values()].reduce((n, f) => n + f.size, 0) + r.outputs.reduce((n, o) => n + (o.shared_path ? Number(o.size) || 0 : o.inline ? o.inline_data.length : 0), 0);
        if (r.outputs.length > MAX_UPLOADS_PER_ATTEMPT) {
          throw new TesseraError(status.RESOURCE_EXHAUSTED, `subtask ${s.id}: attempt ${r.attempt} gives ${r.outputs.length} outputs, more than the ${MAX_UPLOADS_PER_ATTEMPT} one attempt may`, { retryable: false });
        }
        if (claimed > opts.maxOutputBytes) {
          throw new TesseraError(status.RESOURCE_EXHAUSTED, `the outputs of subtask ${s.id} (attempt ${r.attempt}) come to ${claimed} bytes, larger than the limit of ${opts.maxOutputBytes} bytes for all of one attempt's outputs (the coordinator's --max-job-bytes)`, { retryable: false });
        }
        for (const o of r.outputs) {
          const name = safeOutputName(o.name);
          if (o.shared_path) {
            // Written by the worker itself, into the job's shared folder or the spool: checked where it lies.
            outputs.push(await jobs.workerWrittenOutput(w, s, r.attempt, name, o, opts.maxOutputBytes));
          } else if (o.inline) {
            const data = o.inline_data;
            if (o.sha256 && sha256(data) !== o.sha256) throw dataLoss(`output ${name} of subtask ${s.id}: checksum mismatch`);
            const file = jobs.subtaskOutputPath(s, r.attempt, name);
            await makeDir(path.dirname(file));
            spooled.push(file);
            await writeFile(file, data);
            jobs.outputBytesReceived += data.length;
            outputs.push({ name, path: file, size: data.length, sha256: o.sha256 || sha256(data) });
          } else {
            const f = files.get(name);
            if (!f) throw dataLoss(`output ${name} of subtask ${s.id} was announced but never uploaded`);
            if (o.sha256 && o.sha256 !== f.sha256) throw dataLoss(`output ${name} of subtask ${s.id}: checksum mismatch`);
            outputs.push(f);
          }
        }
      } catch (err) {
        ok = false;
        // The coordinator's own disk (full, out of descriptors, read-only or failing): retried, and
        // not held against the worker.
        coordinatorFault = hasLocalTroubleCode(err) || storageFaultCode(err) !== undefined;
        const e = err instanceof TesseraError ? err : (storageTrouble(err, { what: `the outputs of subtask ${r.subtask_id}` }) ?? dataLoss(String(err)));
        error = { input: '', code: e.codeName, message: e.message };
        retryable = e.retryable;
      }
    }
    // Files a refused or stale attempt wrote into a shared folder, or sent, are nobody's: removed now.
    if (!s || !ok) {
      await jobs.discardSharedOutputs(w, r.subtask_id, r.attempt, r.outputs).catch(() => undefined);
      await Promise.all(spooled.map((f) => rm(f, { force: true })));
    }
    let result: unknown;
    try {
      result = r.result_json ? JSON.parse(r.result_json) : undefined;
    } catch {
      result = undefined;
    }
    jobs.onResult(w, {
      subtaskId: r.subtask_id,
      attempt: r.attempt,
      ok,
      outputs,
      itemErrors: r.item_errors.map((e) => ({ input: peerText(e.input, 1000), code: peerText(e.code, 64), message: peerText(e.message) })),
      ...(error ? { error } : {}),
      retryable,
      result,
      runMs: Number(r.duration_ms),
      coordinatorFault,
      workerTrouble: !r.ok && !coordinatorFault && r.worker_trouble === true,
    });
  }

  return {
    Connect: (call) => {
      let session: WorkerSession | undefined;
      const peer = call.getPeer();
      // Results of this stream still being handled (their outputs written to the spool). What the
      // worker sent after them (a drain, the stream's end) waits for them: a worker stopping
      // gracefully sends its last results, then ends, and those results must count.
      const handling = new Set<Promise<void>>();
      const afterResults = (fn: () => void): void => {
        if (handling.size === 0) fn();
        else void Promise.allSettled([...handling]).then(fn).catch((err: unknown) => log.error({ err, peer }, 'handling a worker stream\'s end failed'));
      };
      const close = (reason: string): void => {
        const w = session;
        if (!w || w.call !== call) return;
        // No new work for it meanwhile; its leases are released once its last results are in.
        if (w.state === 'active' || w.state === 'quarantined') w.state = 'draining';
        afterResults(() => {
          if (w.call === call) jobs.onWorkerLost(w, reason);
        });
      };
      try {
        authorize(call.metadata);
      } catch (err) {
        call.emit('error', { code: (err as TesseraError).code ?? status.UNAUTHENTICATED, details: statusDetails((err as Error).message), metadata: new grpc.Metadata() });
        return;
      }
      call.on('data', (msg: WorkerMessage__Output) => {
        try {
          if (msg.msg === 'register' && msg.register) {
            const r = msg.register;
            if (session) return;
            const problem = registerProblem(r);
            if (problem) throw invalidArgument(`register: ${problem}`);
            const slots = Math.max(1, Math.min(MAX_WORKER_SLOTS, r.slots || 1));
            if ((r.slots || 1) > MAX_WORKER_SLOTS) log.warn({ worker: r.name || peer, asked: r.slots, given: slots }, `a worker asked for more slots than a coordinator gives one worker (${MAX_WORKER_SLOTS}): it gets ${MAX_WORKER_SLOTS}`);
            const prefetch = Math.min(slots * 4, r.prefetch || 0);
            session = newWorkerSession({
              id: randomUUID(),
              name: r.name || peer,
              instanceId: r.instance_id,
              address: peer,
              slots,
              prefetch,
              capabilities: r.capabilities ?? { kinds: [], encoders: [], cpu_count: 0, ffmpeg_version: '', sharp_version: '', libvips_version: '', labels: {}, memory_bytes: '0', features: [] },
              call,
            });
            registry.add(session);
            // The same process on a new stream: it saw its old one break (before this side did) and
            // stopped what it ran there. That session is dead: released now, not given more work
            // until its TTL runs out.
            for (const old of registry.all()) {
              if (old === session || !session.instanceId || old.instanceId !== session.instanceId || old.state === 'lost') continue;
              const stale = old.call;
              jobs.onWorkerLost(old, 'it registered again on a new stream');
              stale?.end();
            }
            const reply: CoordinatorMessage = { registered: { worker_id: session.id, heartbeat_ms: opts.heartbeatMs, ttl_ms: opts.ttlMs } };
            call.write(reply);
            log.info({ worker: session.name, slots, prefetch, kinds: [...session.kinds], address: peer }, 'worker registered');
            if (session.state === 'quarantined') log.warn({ worker: session.name, ms: session.quarantinedUntil - steadyNow(), inARow: session.quarantines }, 'a worker back under the name of a quarantined one: still quarantined');
            const named = session.name;
            const twin = registry.all().find((o) => o !== session && o.name === named && o.state !== 'lost' && o.instanceId !== session!.instanceId);
            if (twin) log.warn({ worker: named, address: peer, other: twin.address }, 'two connected workers share this name: give each its own --name (logs, metrics and `tessera workers` tell workers apart by it)');
            jobs.requestDispatch();
            return;
          }
          if (!session) throw invalidArgument('the first message on Connect must be register');
          if (session.state === 'lost') {
            // A worker back from a pause or a partition: its leases are gone. End the stream so it
            // registers afresh; any late result it still sends on this stream is never looked at.
            call.emit('error', { code: status.UNAVAILABLE, details: 'session expired: register again', metadata: new grpc.Metadata() });
            return;
          }
          session.lastHeartbeat = steadyNow();
          switch (msg.msg) {
            case 'heartbeat':
              session.load = msg.heartbeat?.load ?? 0;
              if (session.stalledSince > 0) jobs.onHeartbeat(session, msg.heartbeat?.running ?? []);
              break;
            case 'progress':
              // A status line, shown to clients: bounded and made printable, as a worker's errors are
              // (two of 9 MiB made every later WatchJob of the job fail: review S).
              if (msg.progress) jobs.onProgress(session, msg.progress.subtask_id, msg.progress.attempt, msg.progress.fraction, peerText(msg.progress.message ?? '', PROGRESS_TEXT_CHARS));
              break;
            case 'result':
            case 'results': {
              const w = session;
              for (const r of msg.result ? [msg.result] : (msg.results?.results ?? [])) {
                const p = handleResult(w, r).catch((err: unknown) => log.error({ err }, 'handling a result failed'));
                handling.add(p);
                void p.finally(() => handling.delete(p));
              }
              break;
            }
            case 'drain': {
              // No new work from now on; what waits in its prefetch queue is taken back only after
              // the results sent before the drain (their slots' prefetched work has started).
              const w = session;
              w.drainRequested = true;
              if (w.state === 'active' || w.state === 'quarantined') w.state = 'draining';
              afterResults(() => {
                jobs.onWorkerDraining(w);
                log.info({ worker: w.name }, 'worker draining');
              });
              break;
            }
            default:
              break;
          }
        } catch (err) {
          const e = err instanceof TesseraError ? err : invalidArgument(String(err));
          call.emit('error', { code: e.code, details: statusDetails(e.message), metadata: new grpc.Metadata() });
        }
      });
      call.on('end', () => {
        close('disconnected');
        call.end();
      });
      call.on('error', (err) => close(`stream error: ${err.message}`));
      call.on('cancelled', () => close('connection cancelled'));
    },

    FetchTaskInput: serverStream(log, async function* (req: { subtask_id: string; attempt: number; name: string; offset: string }, ctx): AsyncGenerator<DataChunk> {
      const w = sessionOf(ctx.metadata);
      const f = jobs.taskInput(req.subtask_id, req.attempt, w.id, req.name);
      const offset = Number(req.offset || 0);
      if (!Number.isSafeInteger(offset) || offset > f.size) throw new TesseraError(status.OUT_OF_RANGE, `offset ${req.offset} is past the end of input ${req.name} (${f.size} bytes)`, { retryable: false });
      // A shared file is read through a descriptor checked to be the file submitted (never by a
      // path a client may have swapped for a symlink since), up to its submitted size, and checked
      // again once read.
      // A spooled input gone or damaged (cut, padded) is the coordinator's loss, not the transfer's:
      // every attempt would read the same file. Its subtask fails at once, not held against the worker.
      const spoolLoss = (why: string): TesseraError => {
        const message = spoolLossMessage(req.name, why);
        inputGone.set(uploadKey(req.subtask_id, req.attempt), { input: req.name, message });
        return new TesseraError(status.DATA_LOSS, message, { retryable: false });
      };
      const fh = f.shared
        ? await jobs.openShared(f)
        : await open(f.path, 'r').catch((err: NodeJS.ErrnoException) => {
            throw err.code === 'ENOENT' ? spoolLoss('gone') : err;
          });
      if (!f.shared) {
        const { size } = await fh.stat();
        if (size !== f.size) {
          await fh.close();
          throw spoolLoss(`damaged (${size} bytes where ${f.size} were uploaded)`);
        }
      }
      try {
        const size = f.shared ? f.size : undefined;
        for await (const chunk of readEncodedChunks(fh, { field: fieldNumber('tessera.v1.DataChunk', 'data'), fields: (at) => encodeDataChunkFields({ offset: String(at) }), offset, size, signal: ctx.signal })) {
          yield asWire<DataChunk>(chunk.message);
          jobs.inputBytesServed += chunk.data.length;
        }
        if (f.shared) await jobs.assertSharedHandle(fh, f);
      } finally {
        await fh.close();
      }
    }),

    UploadTaskOutput: clientStream(log, async (messages: AsyncIterable<UploadTaskOutputRequest__Output>, ctx) => {
      const w = sessionOf(ctx.metadata);
      const iterator = messages[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done || first.value.msg !== 'header' || !first.value.header) throw invalidArgument('the first UploadTaskOutput message must be the header');
      const h = first.value.header;
      const name = safeOutputName(h.name);
      // The lease, checked at the header, at every chunk and at the end: one taken back while its
      // output arrives (its worker lost, a timeout, a copy that won) is not kept.
      const leased = (): NonNullable<ReturnType<typeof jobs.leaseIsCurrent>> => {
        const current = jobs.leaseIsCurrent(h.subtask_id, h.attempt, w.id);
        if (!current) throw new TesseraError(status.FAILED_PRECONDITION, `subtask ${h.subtask_id} attempt ${h.attempt} is no longer leased to this worker`, { retryable: false });
        return current;
      };
      const s = leased();
      let trailer: string | undefined;
      async function* chunks(): AsyncGenerator<Buffer> {
        for (;;) {
          const r = await iterator.next();
          leased();
          if (r.done) break;
          if (r.value.msg === 'data' && r.value.data) yield r.value.data;
          else if (r.value.msg === 'sha256') trailer = r.value.sha256;
        }
        // Without its digest a cut-short upload would pass for whole (as SubmitJob's input_end).
        if (!trailer) throw invalidArgument(`output ${name} of subtask ${h.subtask_id}: the upload ended without its sha256 trailer`);
      }
      const key = uploadKey(s.id, h.attempt);
      // An attempt's uploads together keep to the limit of one file, and to a number of files no
      // kind makes (a buggy or hostile worker's endless uploads under one lease are refused).
      const earlier = [...(uploaded.get(key)?.files.values() ?? [])].filter((f) => f.name !== name);
      const refuse = (message: string): never => {
        if (refusedForLimit.size > 10_000) refusedForLimit.clear();
        refusedForLimit.add(key);
        throw new TesseraError(status.RESOURCE_EXHAUSTED, message, { retryable: false });
      };
      if (earlier.length >= MAX_UPLOADS_PER_ATTEMPT) refuse(`output ${name} of subtask ${s.id}: attempt ${h.attempt} has uploaded ${earlier.length} outputs already, the most one attempt may`);
      const earlierBytes = earlier.reduce((n, f) => n + f.size, 0);
      if (earlierBytes >= opts.maxOutputBytes) refuse(`output ${name} of subtask ${s.id}: attempt ${h.attempt} has uploaded ${earlierBytes} bytes already, the limit for all its outputs (the coordinator's --max-job-bytes)`);
      const file = jobs.subtaskOutputPath(s, h.attempt, name);
      const { size, sha256: digest } = await spool
        .writeAtomic(file, chunks(), {
          maxBytes: opts.maxOutputBytes - earlierBytes,
          ...(earlierBytes > 0 ? { limitName: `what --max-job-bytes leaves once attempt ${h.attempt}'s earlier outputs, ${earlierBytes} bytes, are counted` } : {}),
          expectedSha256: () => trailer,
          what: `output ${name} of subtask ${s.id}`,
          signal: ctx.signal,
        })
        .catch((err: unknown) => {
          // The coordinator's disk is full or cannot be written (retryable; an output over the limit is not).
          if (err instanceof TesseraError && (err.code === status.RESOURCE_EXHAUSTED || storageFaultCode(err))) {
            const refused = err.retryable ? refusedForDisk : refusedForLimit;
            if (refused.size > 10_000) refused.clear();
            refused.add(key);
          }
          throw err;
        });
      try {
        leased();
      } catch (err) {
        await rm(file, { force: true });
        throw err;
      }
      // The worker states the size it read; a file that changed under it arrives cut or padded.
      if (Number(h.size) !== size) {
        await rm(file, { force: true });
        throw new TesseraError(status.DATA_LOSS, `output ${name} of subtask ${s.id}: the header said ${h.size} bytes but ${size} arrived`);
      }
      // Uploads of leases that ended without their result (the worker was lost) wait for nothing.
      for (const [k, u] of uploaded) if (!jobs.leaseIsCurrent(u.subtaskId, u.attempt, u.workerId)) uploaded.delete(k);
      let entry = uploaded.get(key);
      if (!entry) uploaded.set(key, (entry = { subtaskId: s.id, attempt: h.attempt, workerId: w.id, files: new Map() }));
      entry.files.set(name, { name, path: file, size, sha256: digest });
      jobs.outputBytesReceived += size;
      return { size: String(size), sha256: digest };
    }),
  };
}

/** What a job is told of an input whose file in the spool is gone or damaged. */
function spoolLossMessage(input: string, why: string): string {
  return `${input}: its file in the coordinator's spool is ${why}`;
}

/** Most files one attempt may upload (a thumbnails job makes at most 10,000; a batch one per photo). */
const MAX_UPLOADS_PER_ATTEMPT = 100_000;
/** The most characters of a worker's progress message kept (a status line). */
const PROGRESS_TEXT_CHARS = 500;

/** Most entries of a registration's lists (kinds, encoders, features, labels). */
const REGISTER_LIST_ENTRIES = 1024;

/**
 * What is wrong with a registration, or undefined. The coordinator keeps what a worker registers
 * with (a lost one's for minutes), lists it in every ListWorkers answer and logs its name on every
 * line about it: a name of megabytes from any peer that may connect as a worker made ListWorkers
 * fail for every client (its answer past the message limit), and a few hundred of them ran the
 * coordinator out of memory.
 */
function registerProblem(r: NonNullable<WorkerMessage__Output['register']>): string | undefined {
  const text = (what: string, v: string, printable = false): string | undefined => {
    if (Buffer.byteLength(v) > REGISTER_TEXT_BYTES) return `${what} is longer than ${REGISTER_TEXT_BYTES} bytes`;
    if (printable && hasControlCharacters(v)) return `${what} ${JSON.stringify(v)} contains control characters`;
    return undefined;
  };
  const c = r.capabilities;
  const lists: [string, readonly string[]][] = c ? [['capabilities.kinds', c.kinds], ['capabilities.encoders', c.encoders], ['capabilities.features', c.features], ['capabilities.labels', Object.keys(c.labels ?? {})]] : [];
  for (const [what, list] of lists) if (list.length > REGISTER_LIST_ENTRIES) return `${what} has ${list.length} entries, more than ${REGISTER_LIST_ENTRIES}`;
  const checks = [
    text('the worker name', r.name, true),
    text('instance_id', r.instance_id, true),
    ...(c
      ? [
          text('capabilities.ffmpeg_version', c.ffmpeg_version),
          text('capabilities.sharp_version', c.sharp_version),
          text('capabilities.libvips_version', c.libvips_version),
          ...lists.flatMap(([what, list]) => list.map((v) => text(`an entry of ${what}`, v, true))),
          ...Object.entries(c.labels ?? {}).map(([k, v]) => text(`label ${k}`, v, true)),
        ]
      : []),
  ];
  return checks.find((p) => p !== undefined);
}
