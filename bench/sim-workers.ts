/**
 * Simulated workers for the scale benchmark: many worker sessions in one process, each speaking
 * the real WorkerService protocol over real gRPC (register, heartbeat at the coordinator's rate,
 * assignments, results) but doing no work beyond sleeping for the subtask's `work_ms`. Only the
 * diagnostic `passthrough` kind is advertised, and only no-op subtasks (no inputs) are expected.
 *
 * Run as a child process (`node dist/bench/sim-workers.js`), controlled over IPC:
 * parent -> {cmd: 'stats'} -> child replies with SimStats; {cmd: 'stop'} ends the sessions.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { CLIENT_CHANNEL_OPTIONS } from '../shared/config.js';
import { workerServiceClientConstructor } from '../shared/proto.js';
import type { Assignment__Output } from '../shared/proto/generated/tessera/v1/Assignment.js';
import type { CoordinatorMessage__Output } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { WorkerMessage } from '../shared/proto/generated/tessera/v1/WorkerMessage.js';

/** What the simulator reports (times are ms on the simulator's performance clock). */
export interface SimStats {
  registered: number;
  heartbeats: number;
  /** Completed subtasks: [assignedAt, finishedAt] per subtask, per session concatenated. */
  busy: [number, number][];
  /** The subtask id of each `busy` entry (a speculative copy runs a subtask a second time). */
  ran: string[];
  /** Slot idle time between finishing one subtask and starting the next of the same job on that session. */
  dispatchMs: number[];
  /** Coordinator turnaround: a result sent to the next assignment received on that session. */
  refillMs: number[];
  now: number;
}

export interface SimOptions {
  coordinator: string;
  workers: number;
  slots: number;
  /** Sessions per gRPC channel (TCP connection). */
  perChannel: number;
  /** Assignments a session queues beyond its slots, as a real worker's `--prefetch`. */
  prefetch: number;
}

/** Starts `workers` simulated sessions; returns stats and stop functions. */
export function startSimWorkers(opts: SimOptions): { stats(): SimStats; stop(): void } {
  // The codecs a real worker's connection has.
  const WorkerService = workerServiceClientConstructor();
  const stats: SimStats = { registered: 0, heartbeats: 0, busy: [], ran: [], dispatchMs: [], refillMs: [], now: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const calls: grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output>[] = [];
  const clients: grpc.Client[] = [];
  let client: InstanceType<typeof WorkerService> | undefined;
  for (let i = 0; i < opts.workers; i++) {
    if (i % opts.perChannel === 0) {
      // A distinct channel arg and a local subchannel pool: one TCP connection per group of sessions.
      client = new WorkerService(opts.coordinator, grpc.credentials.createInsecure(), {
        ...CLIENT_CHANNEL_OPTIONS,
        'grpc.use_local_subchannel_pool': 1,
        'tessera.sim-channel': i,
      });
      clients.push(client);
    }
    const call = client!.Connect(new grpc.Metadata());
    calls.push(call);
    let lastFreed = 0;
    let lastJob = '';
    /** When each result not yet answered by a new assignment was sent. */
    const unanswered: number[] = [];
    let lastAssignedJob = '';
    /** Leases this session holds (running or queued), reported in heartbeats like a real worker. */
    const running = new Map<string, number>();
    /** Assignments waiting for a slot (prefetched). */
    const queued: Assignment__Output[] = [];
    let active = 0;
    const send = (msg: WorkerMessage): void => {
      try {
        call.write(msg);
      } catch {
        // The stream is gone: the coordinator has dropped this session.
      }
    };
    call.on('data', (msg: CoordinatorMessage__Output) => {
      if (msg.msg === 'registered' && msg.registered) {
        stats.registered++;
        const every = msg.registered.heartbeat_ms || 1000;
        // Spread the heartbeats over the period, as independent workers would.
        const first = setTimeout(() => {
          timers.delete(first);
          const t = setInterval(() => {
            stats.heartbeats++;
            send({ heartbeat: { slots_used: active, load: 0, rss_bytes: '0', running: [...running].map(([id, attempt]) => ({ subtask_id: id, attempt })) } });
          }, every);
          timers.add(t);
        }, Math.random() * every);
        timers.add(first);
      } else if ((msg.msg === 'assign' && msg.assign) || (msg.msg === 'assign_batch' && msg.assign_batch)) {
        const now = performance.now();
        for (const a of msg.assign ? [msg.assign] : msg.assign_batch!.assignments) {
          // Results of an earlier job are not answered by this job's assignments.
          if (a.job_id !== lastAssignedJob) unanswered.length = 0;
          lastAssignedJob = a.job_id;
          const sentAt = unanswered.shift();
          if (sentAt !== undefined) stats.refillMs.push(now - sentAt);
          running.set(a.subtask_id, a.attempt);
          if (active < opts.slots) run(a);
          else queued.push(a);
        }
      } else if (msg.msg === 'cancel' && msg.cancel) {
        // As a real worker: a queued assignment is dropped; a running one stops, without a result.
        const { subtask_id: id, attempt } = msg.cancel;
        if (running.get(id) !== attempt) return;
        running.delete(id);
        const i = queued.findIndex((a) => a.subtask_id === id && a.attempt === attempt);
        if (i >= 0) queued.splice(i, 1);
        else stopRun(id);
      }
    });
    /** Timers of the subtasks this session runs, by subtask id. */
    const runTimers = new Map<string, NodeJS.Timeout>();
    const stopRun = (id: string): void => {
      const t = runTimers.get(id);
      if (!t) return;
      clearTimeout(t);
      timers.delete(t);
      runTimers.delete(id);
      active--;
      const next = queued.shift();
      if (next) run(next);
    };
    const run = (a: Assignment__Output): void => {
      const assignedAt = performance.now();
      active++;
      // Gaps within one job only: the wait for the next job is not dispatch latency.
      if (lastFreed > 0 && a.job_id === lastJob) stats.dispatchMs.push(assignedAt - lastFreed);
      lastJob = a.job_id;
      const plan = JSON.parse(a.plan_json || '{}') as { workMs?: number };
      const t = setTimeout(() => {
        timers.delete(t);
        runTimers.delete(a.subtask_id);
        const finishedAt = performance.now();
        stats.busy.push([assignedAt, finishedAt]);
        stats.ran.push(a.subtask_id);
        lastFreed = finishedAt;
        running.delete(a.subtask_id);
        active--;
        const next = queued.shift();
        if (next) run(next);
        unanswered.push(performance.now());
        send({ result: { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, outputs: [], item_errors: [], duration_ms: String(Math.round(finishedAt - assignedAt)) } });
      }, plan.workMs ?? 0);
      timers.add(t);
      runTimers.set(a.subtask_id, t);
    };
    call.on('error', () => undefined);
    send({
      register: {
        name: `sim-${i}`,
        slots: opts.slots,
        prefetch: opts.prefetch,
        instance_id: randomUUID(),
        capabilities: { kinds: ['passthrough'], encoders: [], cpu_count: 1, labels: { simulated: 'true' }, memory_bytes: '0' },
      },
    });
  }
  return {
    stats: () => ({ ...stats, now: performance.now() }),
    stop: () => {
      for (const t of timers) clearTimeout(t);
      for (const c of calls) c.end();
      for (const c of clients) c.close();
    },
  };
}

// Entry point when run as a child process.
if (process.send && process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const [coordinator, workers, slots, perChannel, prefetch] = process.argv.slice(2);
  const sim = startSimWorkers({ coordinator: coordinator!, workers: Number(workers), slots: Number(slots), perChannel: Number(perChannel || 50), prefetch: Number(prefetch || 0) });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'stats') process.send!({ stats: sim.stats() });
    else if (m.cmd === 'stop') {
      sim.stop();
      process.disconnect();
      setTimeout(() => process.exit(0), 200).unref();
    }
  });
}
