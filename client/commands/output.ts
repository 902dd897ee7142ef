/** How the CLI shows jobs, events and progress: JSON for scripts, a bar or plain lines for people. */
import { constants } from 'node:fs';
import { access, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Job, JobEvent, WorkerInfo } from '../client.js';
import { withInput } from '../../shared/errors.js';
import { peerText } from '../../shared/names.js';
import { AUDIO_ENCODERS, VIDEO_ENCODERS } from '../../shared/kinds/video-params.js';
import { UsageError } from './usage-error.js';
import { EXIT } from './exit-codes.js';

/**
 * The -o folder, absolute, checked now: a path that cannot be one (a file in the way, no
 * permission) is a usage error before anything is uploaded or waited for, not a failure after the
 * whole upload and job. Not made yet (the downloads make it): a command that fails first leaves
 * no empty folder behind.
 */
export async function prepareOutputDir(dir: string): Promise<string> {
  // `-o "$DEST"` with DEST unset: not the current folder (review CUX).
  if (dir.trim() === '') throw new UsageError('-o "": an empty folder name (an unset variable?); give the folder for the outputs');
  const abs = path.resolve(dir);
  // The folder, or the nearest folder above it that is there: the one the downloads write into or make it in.
  let at = abs;
  for (;;) {
    // ENOTDIR: a file above it; the walk up finds it.
    const st = await stat(at).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' || err.code === 'ENOTDIR' ? undefined : err));
    if (st instanceof Error) throw new UsageError(`-o ${dir}: cannot write the outputs there (${st.message})`);
    // A symbolic link to nothing: not a folder still to be made (mkdir would fail on the link).
    if (!st) {
      const target = await readlink(at).catch(() => undefined);
      if (target !== undefined) throw new UsageError(`-o ${dir}: cannot write the outputs there (${at} is a symbolic link to ${target}, which does not exist)`);
    }
    if (st && !st.isDirectory()) throw new UsageError(`-o ${dir}: cannot write the outputs there (${at === abs ? '' : `${at} `}is a file, not a folder)`);
    if (st) break;
    at = path.dirname(at);
  }
  if (!(await access(at, constants.W_OK | constants.X_OK).then(() => true, () => false))) throw new UsageError(`-o ${dir}: cannot write the outputs there (${at} is not writable)`);
  return abs;
}

/** Lower-case state without the enum prefix: JOB_STATE_SUCCEEDED -> succeeded. */
export const shortState = (s: string): string => s.replace(/^(JOB|SUBTASK)_STATE_/, '').toLowerCase();

export interface JobJson {
  id: string;
  kind: string;
  /** The spec's label ("" when none was given). */
  label: string;
  /** The client identity that submitted it (a token's name; "anonymous" where clients need none). */
  owner: string;
  state: string;
  message: string;
  progress: number;
  created_at: string;
  finished_at: string | null;
  /** The lists' sizes (`tessera jobs` lists summaries: counts only, the lists empty). */
  input_count: number;
  output_count: number;
  error_count: number;
  warning_count: number;
  inputs: { name: string; size: number; shared_path?: string }[];
  outputs: { name: string; size: number; sha256: string; source: string; path: string | null }[];
  subtasks: { id: string; label: string; state: string; worker: string; attempt: number; duration_ms: number; error: string }[];
  errors: { input: string; code: string; message: string }[];
  /** What the job's client should know of its result that is not an error (a track left out). */
  warnings: { input: string; message: string }[];
}

export function jobToJson(job: Job, paths?: Map<string, string>): JobJson {
  return {
    id: job.id,
    kind: job.kind,
    label: job.spec?.label ?? '',
    owner: job.owner,
    state: shortState(job.state),
    message: job.message,
    progress: job.progress,
    created_at: new Date(Number(job.created_at_ms)).toISOString(),
    finished_at: Number(job.finished_at_ms) ? new Date(Number(job.finished_at_ms)).toISOString() : null,
    input_count: job.input_count,
    output_count: job.output_count,
    error_count: job.error_count,
    warning_count: job.warning_count,
    inputs: job.inputs.map((i) => ({ name: i.name, size: Number(i.size), ...(i.shared_path ? { shared_path: i.shared_path } : {}) })),
    outputs: job.outputs.map((o) => ({ name: o.name, size: Number(o.size), sha256: o.sha256, source: o.source, path: paths?.get(o.name) ?? null })),
    subtasks: job.subtasks.map((s) => ({ id: s.id, label: s.label, state: shortState(s.state), worker: s.worker, attempt: s.attempt, duration_ms: Number(s.duration_ms), error: s.error })),
    errors: job.errors.map((e) => ({ input: e.input, code: e.code, message: e.message })),
    warnings: job.warnings.map((w) => ({ input: w.input, message: w.message })),
  };
}

export function printJobHuman(job: Job, paths?: Map<string, string>, out = process.stdout): void {
  const created = Number(job.created_at_ms);
  const finished = Number(job.finished_at_ms);
  // A job still running says how long it has run so far, and how far it is.
  const took = !created ? '' : finished ? `  (${((finished - created) / 1000).toFixed(2)} s)` : `  (${Math.round(job.progress * 100)}%, ${((Date.now() - created) / 1000).toFixed(0)} s so far)`;
  out.write(`job ${job.id}  ${job.kind}  ${shortState(job.state)}${took}\n`);
  // What a coordinator (or a worker through it) says is printed as text, never as terminal control.
  if (job.message) out.write(`  ${peerText(job.message)}\n`);
  for (const o of job.outputs) out.write(`  output ${o.name}  ${fmtBytes(Number(o.size))}${paths?.get(o.name) ? `  -> ${paths.get(o.name)}` : ''}\n`);
  const byWorker = new Map<string, number>();
  for (const s of job.subtasks) if (s.worker) byWorker.set(s.worker, (byWorker.get(s.worker) ?? 0) + 1);
  if (byWorker.size > 0) out.write(`  subtasks: ${job.subtasks.length} (${[...byWorker].map(([w, n]) => `${w}: ${n}`).join(', ')})\n`);
  for (const e of job.errors) out.write(`  error ${peerText(e.code, 64)}: ${peerText(withInput(e.input, e.message))}\n`);
  for (const w of job.warnings) out.write(`  warning: ${peerText(withInput(w.input, w.message))}\n`);
}

/**
 * The jobs, a line each. With jobs of more than one client (an admin token lists every client's),
 * an OWNER column says whose each is.
 */
export function printJobsTable(jobs: Job[], out = process.stdout): void {
  const owners = new Set(jobs.map((j) => j.owner));
  const ownerWidth = owners.size > 1 ? Math.max(5, ...[...owners].map((o) => peerText(o, 64).length)) + 2 : 0;
  const owner = (o: string): string => (ownerWidth ? peerText(o, 64).padEnd(ownerWidth) : '');
  out.write(`${'ID'.padEnd(38)}${owner('OWNER')}${'KIND'.padEnd(12)}${'STATE'.padEnd(22)}${'PROGRESS'.padEnd(10)}CREATED\n`);
  for (const j of jobs) {
    out.write(`${j.id.padEnd(38)}${owner(j.owner)}${j.kind.padEnd(12)}${shortState(j.state).padEnd(22)}${`${Math.round(j.progress * 100)}%`.padEnd(10)}${new Date(Number(j.created_at_ms)).toISOString()}\n`);
  }
}

/** A worker labels, `k=v,k2=v2` (sorted by key). */
const labelsText = (w: WorkerInfo): string =>
  Object.entries(w.capabilities?.labels ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

export function printWorkersTable(workers: WorkerInfo[], out = process.stdout): void {
  const kinds = workers.map((w) => w.capabilities?.kinds.join(',') ?? '');
  const width = Math.max(5, ...kinds.map((k) => k.length)) + 2;
  // As wide as the longest name (a pod's or host-pid name can pass 28): a column of its own.
  const nameWidth = Math.max(26, ...workers.map((w) => w.name.length)) + 2;
  out.write(`${'NAME'.padEnd(nameWidth)}${'STATE'.padEnd(13)}${'SLOTS'.padEnd(8)}${'DONE'.padEnd(7)}${'FAILED'.padEnd(8)}${'LOAD'.padEnd(7)}${'KINDS'.padEnd(width)}LABELS\n`);
  workers.forEach((w, i) => {
    out.write(
      `${w.name.padEnd(nameWidth)}${w.state.padEnd(13)}${`${w.slots_used}/${w.slots}`.padEnd(8)}${String(w.subtasks_done).padEnd(7)}${String(w.subtasks_failed).padEnd(8)}${w.load.toFixed(2).padEnd(7)}${kinds[i]!.padEnd(width)}${labelsText(w)}\n`.replace(/ +\n$/, '\n'),
    );
  });
}

/**
 * The encoders the job kinds use (video and audio codecs, thumbnail formats): of a worker's
 * ffmpeg's hundreds, those that decide which jobs it can run.
 */
const KIND_ENCODERS: ReadonlySet<string> = new Set([...Object.values(VIDEO_ENCODERS).flat(), ...Object.values(AUDIO_ENCODERS), 'mjpeg', 'libwebp', 'flac', 'pcm_s16le', 'pcm_s24le']);

/**
 * `tessera workers --json`'s object for a worker: what the coordinator answers, its labels and
 * features among them, and of its encoders (`encoders`, their count) the ones the job kinds use
 * (`kind_encoders`: a job waiting for libsvtav1 can be matched to the worker that has it); the
 * versions (given to admin tokens only) when given.
 */
export function workerToJson(w: WorkerInfo): Record<string, unknown> {
  const c = w.capabilities;
  const versions = c ? { ffmpeg_version: c.ffmpeg_version, sharp_version: c.sharp_version, libvips_version: c.libvips_version } : {};
  return {
    id: w.id,
    name: w.name,
    state: w.state,
    address: w.address,
    slots: w.slots,
    slots_used: w.slots_used,
    subtasks_done: Number(w.subtasks_done),
    subtasks_failed: Number(w.subtasks_failed),
    load: w.load,
    last_heartbeat_ms: Number(w.last_heartbeat_ms),
    kinds: c?.kinds ?? [],
    encoders: c?.encoders.length ?? 0,
    kind_encoders: (c?.encoders ?? []).filter((e) => KIND_ENCODERS.has(e)).sort(),
    labels: c?.labels ?? {},
    features: c?.features ?? [],
    cpu_count: c?.cpu_count ?? 0,
    memory_bytes: Number(c?.memory_bytes ?? 0),
    ...Object.fromEntries(Object.entries(versions).filter(([, v]) => v)),
  };
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** `ms` in words: "2 minutes", "90 s". */
const span = (ms: number): string => (ms >= 120_000 && ms % 60_000 === 0 ? `${ms / 60_000} minutes` : `${Math.round(ms / 1000)} s`);
/** The default of `--reconnect-for`, in seconds. */
export const RECONNECT_FOR_S = 120;
/** What the CLI says while it re-attaches to a job's events. */
export const reconnectingNote = (why: string, forMs = RECONNECT_FOR_S * 1000): string =>
  `tessera: lost the coordinator (${why}); reconnecting for up to ${span(forMs)} (the job goes on; Ctrl-C to stop waiting)`;
/** What the CLI says once it follows the job's events again. */
export const reattachedNote = (lostForMs: number): string => `tessera: reconnected after ${(lostForMs / 1000).toFixed(1)} s; following the job again`;
/** A command's watch options: its notes of a lost and regained coordinator, and how long it tries (`--reconnect-for`, s). */
export const reconnectNotes = (
  view: { note(text: string): void },
  forS = RECONNECT_FOR_S,
): { onReconnect: (why: string) => void; onReattach: (ms: number) => void; reconnectForMs: number } => ({
  onReconnect: (why) => view.note(reconnectingNote(why, forS * 1000)),
  onReattach: (ms) => view.note(reattachedNote(ms)),
  reconnectForMs: forS * 1000,
});

/** Progress display: a bar on a terminal, plain lines otherwise (logs, CI, pipes). */
export class ProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private lastLine = 0;
  private lastPct = -1;
  /** The last message of the job's own shown (see event). */
  private lastJobMessage = '';
  /** Events up to this seq are the job's past, replayed before what happens now (see {@link past}). */
  private pastThrough = 0;
  /** Between start() and stop(): an update after stop() (an upload still reporting after its call failed) shows nothing. */
  private running = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr, private readonly enabled = true) {}

  /**
   * Ctrl-C while the bar shows: the bar hid the terminal's cursor, and a process killed by the
   * signal never shows it again. Taken down here; the command's own handler (if any) says what
   * became of its work and exits, else this one exits as the signal would have.
   */
  private readonly interrupted = (): void => {
    this.stop();
    if (process.listenerCount('SIGINT') === 0) {
      this.stream.write('\n');
      process.exit(EXIT.interrupted);
    }
  };

  private get tty(): boolean {
    return Boolean(this.stream.isTTY) && this.enabled;
  }

  start(label: string): void {
    // A new stage (the job after its upload) starts from nothing, not from the last one's 100%.
    this.lastPct = -1;
    this.lastLine = 0;
    this.running = true;
    if (!this.enabled) return;
    if (this.tty) {
      // Listening before the cursor is hidden: a ^C typed as the bar appears must not kill the
      // process (the default) before it can show the cursor again.
      process.removeListener('SIGINT', this.interrupted);
      process.on('SIGINT', this.interrupted);
      this.bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {percentage}% | {status}`, stream: this.stream, hideCursor: true }, cliProgress.Presets.shades_classic);
      this.bar.start(100, 0, { status: 'starting' });
    } else {
      this.stream.write(`${label}\n`);
    }
  }

  update(fraction: number, status: string, said = false): void {
    if (!this.enabled || !this.running) return;
    const pct = Math.round(fraction * 100);
    if (this.bar) {
      // As much of the status as the terminal's width leaves (the bar and its label take ~60
      // columns): cut at 60 characters, "waiting for a worker that can run it: none of the 1
      // connecte" stopped before what was missing.
      const columns = this.stream.columns || Number(process.env['COLUMNS']) || 80;
      this.bar.update(pct, { status: status.slice(0, Math.max(60, columns - 60)) });
      this.lastPct = pct;
      return;
    }
    // Plain lines: at most one per second, or on a 10% step; and what the job itself says (a job
    // waiting for a worker that can run it stays at 0%, and said so to nobody).
    const now = Date.now();
    if (said || (pct !== this.lastPct && (now - this.lastLine > 1000 || Math.floor(pct / 10) !== Math.floor(this.lastPct / 10)))) {
      this.stream.write(`progress ${pct}% ${status}\n`);
      this.lastLine = now;
      this.lastPct = pct;
    }
  }

  /**
   * The events up to `seq` (a job's `last_event_seq` when the command looked) are its past, which a
   * watch replays first: the bar catches up through them, plain lines skip them (a finished job's
   * download printed its whole history as progress lines).
   */
  past(seq: number | string): void {
    this.pastThrough = Number(seq) || 0;
  }

  event(e: JobEvent): void {
    if (!this.tty && Number(e.seq) <= this.pastThrough) return;
    if (e.type === 'progress' || e.type === 'subtask_state' || e.type === 'job_state') {
      const status = e.subtask ? `${e.subtask.label} ${shortState(e.subtask.state)}${e.subtask.worker ? ` @${e.subtask.worker}` : ''}` : e.message;
      // A new message of the job's own is always shown (a plain line even at the same percentage).
      const said = e.type === 'job_state' && !e.subtask && Boolean(e.message) && e.message !== this.lastJobMessage;
      if (said) this.lastJobMessage = e.message;
      // Events without a progress figure (0: a retry, a state change) keep the last one shown.
      this.update(e.type === 'job_state' && e.final ? 1 : e.progress || Math.max(0, this.lastPct) / 100, status, said);
    }
  }

  /** A line of its own (above the bar on a terminal), shown even when progress is off. */
  note(line: string): void {
    if (this.bar) {
      // The bar redraws itself on its next update.
      this.stream.write(`\r\x1b[2K${line}\n`);
      return;
    }
    this.stream.write(`${line}\n`);
  }

  stop(): void {
    this.running = false;
    this.bar?.stop();
    this.bar = undefined;
    process.removeListener('SIGINT', this.interrupted);
  }
}

/**
 * Exit status of a command that waited for `job` to end: 0 succeeded, 3 partially succeeded, 2
 * failed for invalid arguments or input alone (every error INVALID_ARGUMENT: a request its inputs
 * cannot satisfy, found once the job was planned, as one found at submission exits), 1 failed
 * otherwise or cancelled (errors: see exit-codes.ts).
 */
export function exitCodeFor(job: Job): number {
  const s = shortState(job.state);
  if (s === 'succeeded') return EXIT.ok;
  if (s === 'partially_succeeded') return EXIT.partial;
  if (s === 'failed' && job.errors.length > 0 && job.errors.every((e) => e.code === 'INVALID_ARGUMENT')) return EXIT.usage;
  return EXIT.failed;
}
