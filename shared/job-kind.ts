/**
 * The job-kind contract: the extension point of Tessera.
 *
 * A kind is three functions and a validator, split over the two sides:
 *  - coordinator side ({@link CoordinatorKind}): `validate` typed params, `plan` the first phase of
 *    subtasks (cutting the input bytes each one needs), `merge` the results of a phase into the job's
 *    outputs or into the next phase's subtasks;
 *  - worker side ({@link WorkerProcessor}): `process` one subtask, cancellable through an AbortSignal.
 *
 * Adding a kind means one module in `coordinator/kinds/` and one in `worker/processors/`, each added to
 * its registry (`coordinator/kinds/index.ts`, `worker/processors/index.ts`). Nothing else changes.
 */
import type { JobSpec__Output } from './proto/generated/tessera/v1/JobSpec.js';
import type { Logger } from './logger.js';
import type { Limits } from './limits.js';
import { AUDIO_BESIDE_SEGMENT_FEATURE, CHUNK_INPOINT_FEATURE, MOV_CHUNKS_FEATURE, NUT_CHUNKS_FEATURE, VIDEO_10BIT_FEATURE, VIDEO_COLOUR_FEATURE, VIDEO_LOSSLESS_FEATURE, VIDEO_ORIENT_FEATURE, VIDEO_TWO_PASS_FEATURE } from './media/video-plan.js';
import { THUMBNAILS_FRAME_NUMBERS_FEATURE, THUMBNAILS_SEEK_FROM_FEATURE, THUMBNAILS_STREAM_FEATURE } from './media/video-thumbnails.js';
import { AUDIO_CHAPTERS_FEATURE, AUDIO_STREAM_FEATURE, AUDIO_TAGS_FEATURE } from './media/audio-pieces.js';
import { IMAGE_16BIT_FEATURE, IMAGE_BACKGROUND_FEATURE } from './media/tile-plan.js';

/**
 * Features (`Capabilities.features`) a worker of this version advertises: behaviours that older
 * workers lack, so that a coordinator plans for them only where every worker has them.
 * - `video-nut-chunks`: reads the video kind's stream-copied chunks as NUT (older: Matroska only).
 * - `video-audio-beside-segment`: encodes a video's audio track beside a segment, in the same
 *   subtask (older: only as a subtask of its own).
 */
export const WORKER_FEATURES: readonly string[] = [NUT_CHUNKS_FEATURE, AUDIO_BESIDE_SEGMENT_FEATURE, VIDEO_LOSSLESS_FEATURE, VIDEO_10BIT_FEATURE, MOV_CHUNKS_FEATURE, CHUNK_INPOINT_FEATURE, THUMBNAILS_SEEK_FROM_FEATURE, AUDIO_TAGS_FEATURE, VIDEO_COLOUR_FEATURE, AUDIO_CHAPTERS_FEATURE, THUMBNAILS_FRAME_NUMBERS_FEATURE, AUDIO_STREAM_FEATURE, VIDEO_ORIENT_FEATURE, THUMBNAILS_STREAM_FEATURE, IMAGE_16BIT_FEATURE, VIDEO_TWO_PASS_FEATURE, IMAGE_BACKGROUND_FEATURE];

/** What {@link CoordinatorKind.retarget} sees of a subtask. */
export interface RetargetableSubtask {
  state: string;
  plan?: unknown;
  requires?: { encoders?: string[]; features?: string[] };
}

/** Names of the kinds; also the field names of `JobSpec.params`. */
export type KindName = 'image' | 'video' | 'thumbnails' | 'audio' | 'passthrough';

/** A file in the coordinator's spool. */
export interface SpoolFile {
  /** Logical name (the client's file name for job inputs). */
  name: string;
  /** Absolute path on the coordinator. */
  path: string;
  size: number;
  /** Hex digest; "" for an input by reference (checked by its identity, `shared`, instead). */
  sha256: string;
  /**
   * Set for a job input submitted by reference: `path` is on shared storage (under a --shared-root),
   * not in the spool, and must never be written or removed. Its identity when submitted: a file
   * changed or replaced since then is refused rather than read (coordinator/shared-inputs.ts).
   */
  shared?: { mtimeMs: number; ino: number; dev: number };
  /**
   * Set for an output a worker wrote into a job's shared output folder: the file the coordinator
   * checked there (its temporary name is in a folder others may write to). Publishing takes only
   * that file.
   */
  written?: { ino: number; dev: number };
  /**
   * An image input's width, height and EXIF orientation as its header gave them when it was
   * checked at submission (sharp metadata), so that planning need not read every header again.
   */
  dims?: { width: number; height: number; orientation: number };
}

/** What the cluster tells a planner about itself. */
export interface ClusterView {
  /** Active workers that can run this kind. */
  workers: number;
  /** Total free + busy slots of those workers. */
  slots: number;
  /** Union of ffmpeg encoders the workers advertise. */
  encoders: ReadonlySet<string>;
  /** Each worker's encoders (a subtask that needs two runs only where one worker has both). */
  encoderSets: readonly ReadonlySet<string>[];
  /**
   * Features (`Capabilities.features`) every one of those workers has; none while there is no
   * worker. A plan that relies on one also `requires` it.
   */
  features: ReadonlySet<string>;
}

/** One piece of work the planner (or a merge that starts a new phase) asks for. */
export interface SubtaskPlan {
  /** Shown in listings and the dashboard, e.g. "images 1-8" or "segment 3 (12.0s-24.0s)". */
  label: string;
  /** Files the worker needs, fetched over FetchTaskInput (or inline when tiny). Names must be unique within the subtask. */
  inputs: SpoolFile[];
  /** Kind-specific description of the piece; must be JSON-serialisable. The worker receives it as `plan`. */
  plan: unknown;
  /** Relative cost (bytes, seconds, pixels): larger subtasks are scheduled first. */
  weight: number;
  /** Job inputs (client file names) this subtask covers: a failure of the subtask is reported against them. */
  items: string[];
  /** Worker capabilities required, e.g. `{ encoders: ['libx264'], features: ['video-nut-chunks'] }`. */
  requires?: { encoders?: string[]; features?: string[] };
  /** Per-attempt timeout in ms (default from config). */
  timeoutMs?: number;
  /**
   * One of `count` subtasks its plan makes for `group`, handed out as they are made (a huge image's
   * strips, as its decode cuts them): the job's progress counts those not made yet, which read as
   * 95% done once the first two strips of nine had finished.
   */
  of?: { group: string; count: number };
}

/** A finished subtask as the merge step sees it. */
export interface SubtaskOutcome {
  index: number;
  phase: number;
  label: string;
  plan: unknown;
  items: string[];
  ok: boolean;
  /** Output files spooled on the coordinator, by name. */
  outputs: SpoolFile[];
  /** Per-input errors the worker reported (other inputs of the subtask succeeded). */
  itemErrors: ItemFailure[];
  /** Error when `ok` is false (after all attempts). */
  error?: ItemFailure;
  /** The kind's small result (parsed JSON), e.g. frame counts or loudness block energies. */
  result: unknown;
  worker: string;
}

/** Something about a job's result its client should know that is not an error (`Job.warnings`). */
export interface ItemWarning {
  /** The job input this is about ("" = the whole job). */
  input: string;
  message: string;
}

export interface ItemFailure {
  /** The job input this is about ("" = the whole job). */
  input: string;
  /** gRPC status name, e.g. "INVALID_ARGUMENT". */
  code: string;
  message: string;
}

export interface PlanContext<P> {
  jobId: string;
  params: P;
  spec: JobSpec__Output;
  inputs: SpoolFile[];
  /**
   * How many inputs were submitted: `inputs` and those refused at submission (the job's errors
   * already), for names that must not depend on which of them were refused. Absent: `inputs.length`.
   */
  submitted?: number;
  cluster: ClusterView;
  /** A private scratch folder of the job on the coordinator (kept until the job's outputs verify). */
  workDir: string;
  signal: AbortSignal;
  log: Logger;
  /**
   * Tells the job's client of something about its result that is not an error (a subtitle track
   * left out): kept on the job (`Job.warnings`, shown by `tessera submit` and `tessera job`) and
   * sent to its watchers as a `log` event. The same warning given again (a merge run again) is kept once.
   */
  warn(input: string, message: string): void;
  /**
   * The coordinator's input limits. The submission check applies them to what a file's header
   * states; a planner that counts (a video's packets) applies them to what it counts, since a
   * header can lie.
   */
  limits: Limits;
  /**
   * Only for `plan`, and only for a job accepted while its upload still runs (its kind's
   * `plansWhileReceiving`): `inputs` then grows as they come, and `take` gives each accepted input
   * once, the first ones included, in submission order, in runs as they pass their checks (refused
   * ones are the job's errors already), waiting up to `waitMs` for one: [] when none came, undefined
   * once the upload has ended and all were taken; it throws (and the job is dropped) when the
   * submission fails. Such a plan returns its subtasks as `later`, which phase 0 waits for.
   */
  arriving?: { take(waitMs?: number): Promise<SpoolFile[] | undefined> };
}

export interface MergeContext<P> extends PlanContext<P> {
  /** The phase that just finished (0 = the planner's subtasks). */
  phase: number;
  /** Outcomes of the phase that just finished, in index order. */
  results: SubtaskOutcome[];
  /** Outcomes of all earlier phases, in phase then index order. */
  history: SubtaskOutcome[];
  /** Folder the merge writes final outputs into; each file written there must be returned in `outputs`. */
  outputDir: string;
}

export interface FinalOutput {
  /** Safe file name (no directories). */
  name: string;
  /** Path of the finished file (inside `outputDir` or in a subtask's spool). */
  path: string;
  /** The job input it was made from ("" for job-wide outputs). */
  source: string;
  contentType?: string;
  /**
   * The subtask output (its path) that `path` is a hard link of, made by the merge: its size and
   * checksum are that output's, taken as they were when it arrived instead of read again.
   */
  linkOf?: string;
}

export interface PlanResult {
  /** Phase 0's subtasks known now; they are dispatched at once. */
  subtasks: SubtaskPlan[];
  errors?: ItemFailure[];
  /**
   * More phase-0 subtasks that become ready after `plan` returns (e.g. strips cut from a source
   * still being decoded): each is dispatched as it comes, and phase 0 is not finished (nor merged)
   * until this ends. An error thrown from it fails the job like a planning error. Stop early when
   * `ctx.signal` aborts. A coordinator restarted mid-way plans the job again from the start. An
   * array is added as one (many subtasks ready at once: one event, one dispatch).
   */
  later?: AsyncIterable<SubtaskPlan | SubtaskPlan[] | PlanErrors>;
}

/** Per-input failures a `later` plan found, as it goes (they become the job's errors). */
export interface PlanErrors {
  errors: ItemFailure[];
}

export const isPlanErrors = (x: SubtaskPlan | SubtaskPlan[] | PlanErrors): x is PlanErrors => !Array.isArray(x) && !('inputs' in x);

export type MergeResult =
  | { outputs: FinalOutput[]; errors?: ItemFailure[]; next?: undefined }
  | { next: SubtaskPlan[]; outputs?: FinalOutput[]; errors?: ItemFailure[] };

/** How many of a job's inputs a kind's `prefetch` sees (planning reads the rest in turn). */
export const PREFETCHED_INPUTS = 2;

/** Coordinator side of a kind. */
export interface CoordinatorKind<P = unknown> {
  name: KindName;
  /**
   * Checks the typed params (the `JobSpec.params` member for this kind, defaults applied by the proto
   * loader) and returns the normalised params. Throws `invalidArgument('<field>: <why>')` on bad input.
   * Pure: no I/O.
   */
  validate(params: unknown, spec: JobSpec__Output): P;
  /**
   * Optional: refusals added after jobs could be accepted without them. Run on new submissions
   * only (after `validate`), never when a stored job resumes or on workers, so that a job accepted
   * by an earlier version still runs everywhere. Throws like `validate`.
   */
  checkNew?(params: P, spec: JobSpec__Output): void;
  /**
   * Optional: like `checkNew`, but run after a submission is known not to repeat one already
   * accepted (its `request_id`): a client's retry of a job an earlier version took is answered with
   * that job, not refused by a rule added since.
   */
  refuseNew?(params: P, spec: JobSpec__Output): void;
  /**
   * Optional: a job whose pending work no connected worker can run for want of an encoder its plan
   * chose (the cluster had none of the codec's when it was planned, or the one with it left) may be
   * pointed at another encoder of the same output that `encoders` (those of the connected workers of
   * the kind) has. Changes the subtasks given (their `plan` and `requires`) and returns those it
   * changed; only work that has not run with the old choice (the kind's merge joins one encoder's).
   */
  retarget?(params: P, subtasks: RetargetableSubtask[], encoders: ReadonlySet<string>): RetargetableSubtask[];
  /**
   * Optional: starts reading what `plan` will need of an input (its probes) as soon as the input
   * has passed its submission check, so that the reading overlaps the other inputs' checks and the
   * job's first commit. What it reads is kept in memory for `plan` to take (a plan after a restart
   * reads it again); `signal` aborts when the submission fails. Called for a job's first
   * {@link PREFETCHED_INPUTS} inputs to pass only. Must not throw.
   */
  prefetch?(input: SpoolFile, signal: AbortSignal): void;
  /**
   * Optional: true when `plan` can start on a job's first inputs while the rest are still being
   * uploaded (`PlanContext.arriving`), so that the workers start before the upload ends. A
   * submission that fails half-way drops the job with everything it made (its outputs in a shared
   * folder included): its plan must make nothing else outside the spool.
   */
  plansWhileReceiving?(params: P, spec: JobSpec__Output): boolean;
  /** Optional checks of the uploaded inputs before planning (per-input failures go to `errors`). */
  plan(ctx: PlanContext<P>): Promise<PlanResult>;
  /** Called when every subtask of a phase has finished (succeeded or failed for good). */
  merge(ctx: MergeContext<P>): Promise<MergeResult>;
  /**
   * Optional: a subtask's expected run time (ms) before any has finished. Short ones may be queued
   * on workers ahead of a free slot (prefetch) from the first dispatch; without an estimate the
   * coordinator waits for measured run times.
   */
  expectedRunMs?(params: P): number | undefined;
  /**
   * Optional: the outputs of one succeeded subtask that are final as they stand (a resized photo,
   * a passed-through file). They are published the moment the subtask succeeds, so clients can
   * download them while the rest of the job runs: the files are moved into the job's output folder,
   * so `merge` must not read them at their subtask paths (it may list them again: each output is
   * published once, by name). Return only names the plan expects, so that no worker can name
   * another subtask's output. Pure: no I/O.
   */
  finalOutputs?(outcome: SubtaskOutcome, params: P): FinalOutput[];
  /**
   * Optional, with `finalOutputs`: whether a subtask with this plan makes final outputs. When the
   * job writes to a shared folder, such a subtask's worker writes its outputs there itself; the
   * others' (tiles to stitch, segments to join) go through the coordinator's spool. Pure.
   */
  outputsAreFinal?(plan: unknown): boolean;
  /**
   * Optional: the subtask of several items cut into subtasks of one item each; with `only`, of
   * those items alone (also from a subtask of one). Pure. The coordinator runs them:
   * - instead of a subtask of several that fails for good with an error naming none of its items
   *   (its processor crashed, went past its memory ceiling), with fresh attempts, so that only the
   *   item at fault fails (undefined or fewer than two: not split);
   * - for the items one worker called bad input (INVALID_ARGUMENT) in a subtask that otherwise
   *   succeeded, on another worker, before their errors are taken as the inputs' own.
   */
  split?(subtask: SubtaskPlan, only?: readonly string[]): SubtaskPlan[] | undefined;
  /**
   * Optional: false when `plan` and `merge` write no files of their own (they only list the
   * subtasks' files), so the job gets no `workDir` and no merge folder: two folders made and removed
   * per job, which thousands of small jobs feel. Default true: both exist when they are called.
   */
  writesFiles?: boolean;
  /**
   * Optional: false when `merge`, for these results, reads none of the job's inputs (it only lists
   * the subtasks' files). Before a merge that reads them, the coordinator checks again that each
   * shared input is still the file submitted: a few file-system calls per input, 50-100 ms at the
   * end of a batch of 400 photos whose merge reads none. Default true. Pure.
   */
  mergeReadsInputs?(results: SubtaskOutcome[]): boolean;
}

/** A local file handed to a processor. */
export interface LocalFile {
  name: string;
  path: string;
  size: number;
}

export interface ProcessContext<P> {
  jobId: string;
  subtaskId: string;
  attempt: number;
  phase: number;
  params: P;
  spec: JobSpec__Output;
  /** The `plan` the coordinator attached to this subtask. */
  plan: unknown;
  /** Inputs, already fetched and verified, as local files. */
  inputs: LocalFile[];
  /** Private temp folder of this attempt; removed by the worker afterwards. Write outputs here. */
  workDir: string;
  /** Aborted when the coordinator cancels the subtask, the lease is lost or the timeout fires. */
  signal: AbortSignal;
  /** Report progress (0..1); it reaches `tessera watch` and the dashboard. */
  progress(fraction: number, message?: string): void;
  /** Number of threads this subtask may use (cores / slots). */
  threads: number;
  log: Logger;
}

export interface ProcessOutput {
  /** Safe file name, unique within the subtask. */
  name: string;
  path: string;
  /** The job input it belongs to ("" for none). */
  source?: string;
}

export interface ProcessResult {
  outputs: ProcessOutput[];
  /** Inputs that failed while the others succeeded. */
  itemErrors?: ItemFailure[];
  /** Small JSON-serialisable result for the merge step. */
  result?: unknown;
}

/** Worker side of a kind. */
export interface WorkerProcessor<P = unknown> {
  name: KindName;
  /** Converts the typed `JobSpec` params for this kind (already validated by the coordinator). */
  params(spec: JobSpec__Output): P;
  process(ctx: ProcessContext<P>): Promise<ProcessResult>;
}
