/** `tessera submit KIND ...`: upload, watch with progress, download, report. */
import path from 'node:path';
import { status } from '../../shared/grpc-status.js';
import { TERMINAL_STATES, TesseraClient, TesseraError, checkInputFiles, type Job, type LeftBehind } from '../client.js';
import type { JobSpec } from '../client.js';
import { ProgressView, exitCodeFor, jobToJson, prepareOutputDir, printJobHuman, reconnectNotes, shortState } from './output.js';
import { UsageError } from './usage-error.js';
import { connectionFlagsGiven, shellWord } from './security-options.js';
import { EXIT } from './exit-codes.js';
import { coordinatorAddress } from '../../shared/config.js';

export interface SubmitFlags {
  coordinator?: string;
  json?: boolean;
  wait?: boolean;
  output?: string;
  progress?: boolean;
  /** Submit the files by reference (under the coordinator's --shared-root) instead of uploading them. */
  shared?: boolean;
  /** Have the cluster write the outputs into this folder on shared storage instead of downloading them. */
  sharedOutput?: string;
  /** Replace files already in the output folder (never the job's inputs). */
  overwrite?: boolean;
  /** How long to keep resending the submission and following the job while the coordinator is away (s, default 120). */
  reconnectFor?: number;
}

export async function runSubmit(spec: JobSpec, files: string[], flags: SubmitFlags): Promise<number> {
  // The library's own check (submit makes it too), first: a usage error, before the other flags.
  const sizes = await checkInputFiles(files, undefined, { readable: !flags.shared }).catch((err: unknown) => {
    throw err instanceof TesseraError ? new UsageError(err.message, err.input) : err;
  });
  const total = sizes.reduce((n, x) => n + x, 0);
  if (flags.sharedOutput && flags.output) throw new UsageError('-o, --output and --shared-output are exclusive: outputs are downloaded or written to shared storage');
  if (flags.wait !== false && !flags.output && !flags.sharedOutput) throw new UsageError('-o, --output DIR or --shared-output DIR is required (or use --no-wait)');
  if (flags.sharedOutput) spec = { ...spec, shared_output_dir: path.resolve(flags.sharedOutput) };
  // The address is checked before anything is made: an empty --coordinator ("$UNSET") is refused,
  // as every other command refuses it, not replaced by TESSERA_COORDINATOR or the default.
  const address = coordinatorAddress(flags.coordinator);
  const outDir = flags.output !== undefined && flags.wait !== false ? await prepareOutputDir(flags.output) : undefined;
  const client = new TesseraClient({ address });
  const view = new ProgressView(process.stderr, !flags.json && flags.progress !== false);
  let onInterrupt: (() => void) | undefined;
  // Ctrl-C before the job is accepted withdraws the submission: the coordinator makes no job of
  // one cut short, and one it made meanwhile (the whole upload in, its answer not yet here) is
  // found and cancelled by the library, which the command waits for (a second Ctrl-C does not).
  const withdraw = new AbortController();
  // The commands that reach this job again, to paste: with the coordinator, token file and TLS
  // files given here.
  const at = [...(flags.coordinator ? ['--coordinator', flags.coordinator] : []), ...connectionFlagsGiven()].map((w) => ` ${w.startsWith('--') ? w : shellWord(w)}`).join('');
  let cleanUp: Promise<LeftBehind> | undefined;
  // The submission has failed and the command waits for the clean-up before it says why: a Ctrl-C
  // then does not wait either.
  let givingUp = false;
  const onSubmitInterrupt = (): void => {
    view.stop();
    if (withdraw.signal.aborted || givingUp) {
      process.stderr.write(`\ntessera: interrupted again; not waiting to learn whether the coordinator made a job of the submission (see: tessera jobs${at})\n`);
      process.exit(EXIT.interrupted);
    }
    withdraw.abort(new TesseraError(status.CANCELLED, 'the submission was interrupted (Ctrl-C)'));
  };
  process.on('SIGINT', onSubmitInterrupt);
  try {
    view.start(flags.shared ? `submitting ${files.length} shared file(s)` : `uploading ${files.length} file(s)`);
    // Bytes of the files already uploaded completely, so the bar spans the whole upload.
    let done = 0;
    const job = await client.submit(spec, files, {
      signal: withdraw.signal,
      onCleanUp: (p) => (cleanUp = p),
      shared: flags.shared === true,
      ...(flags.reconnectFor !== undefined && { retryForMs: flags.reconnectFor * 1000 }),
      onUpload: (p) => {
        view.update(Math.min(1, (done + p.sentBytes) / Math.max(1, total)), `upload ${p.file}`);
        if (p.sentBytes === p.totalBytes) done += p.totalBytes;
      },
      // The coordinator went away mid-upload (a restart): the whole submission goes again, and
      // makes one job (it carries the same request id).
      onRetry: (err, attempt) => {
        done = 0;
        view.note(`submission interrupted (${err.details}); sending it again (try ${attempt})`);
      },
    }).catch(async (err: unknown) => {
      view.stop();
      if (!withdraw.signal.aborted) {
        // Given up after a try that may have made the job (a later page of its answer failed, a
        // retry refused): the library cancels it, waited for here, else the exit cuts it off.
        if (cleanUp) {
          givingUp = true;
          // Up to 5 s where the coordinator does not answer: said, not waited for in silence (review K).
          process.stderr.write('tessera: the submission failed; checking whether the coordinator made a job of it (Ctrl-C not to wait)\n');
          const found = await cleanUp;
          // Whatever it found: a look-up that failed leaves a job that may be running, to look for.
          process.stderr.write(`tessera: ${found.jobId || found.error ? foundLine(found, at) : 'the coordinator has no job of it'}\n`);
        }
        throw err;
      }
      await withdrawn(cleanUp, at, spec.request_id);
      return undefined;
    });
    process.removeListener('SIGINT', onSubmitInterrupt);
    if (!job) return EXIT.interrupted;
    view.stop();
    if (flags.wait === false) {
      process.stdout.write(flags.json ? `${JSON.stringify(jobToJson(job))}\n` : `${job.id}\n`);
      // -o with --no-wait: nothing is downloaded there, and the user may think otherwise.
      if (flags.output !== undefined) process.stderr.write(`tessera: nothing downloaded (--no-wait); fetch the outputs into ${flags.output} with: tessera download ${job.id}${at} -o ${shellWord(flags.output)}\n`);
      return EXIT.ok;
    }
    const fetch = `tessera download ${job.id}${at} -o ${outDir ? shellWord(outDir) : 'DIR'}`;
    // Ctrl-C from here on leaves the job running: say how to get at it (the full id; the bar is
    // taken down so the terminal gets its cursor back).
    onInterrupt = () => {
      view.stop();
      // Into the same folder: the download goes on from the part files this one leaves.
      const get = flags.sharedOutput ? `its outputs go to ${flags.sharedOutput}; follow it with: tessera watch ${job.id}${at}` : `fetch its outputs with: ${fetch}`;
      process.stderr.write(`\ntessera: job ${job.id} goes on without this client; ${get} (cancel it with: tessera cancel ${job.id}${at})\n`);
      process.exit(EXIT.interrupted);
    };
    process.once('SIGINT', onInterrupt);
    view.start(`job ${job.id} (${job.kind})`);
    let finished: Job;
    let paths: Map<string, string>;
    if (flags.sharedOutput) {
      // The cluster writes the outputs into the shared folder: nothing to download.
      finished = await client.wait(job.id, (e) => view.event(e), undefined, reconnectNotes(view, flags.reconnectFor));
      paths = new Map(finished.outputs.map((o) => [o.name, o.shared_path]));
    } else {
      // Outputs are downloaded as they are published, while the rest of the job runs. The inputs
      // are never replaced by an output of the same name (shared ones are still being read).
      const collected = client.collect(job.id, outDir!, {
        onEvent: (e) => view.event(e),
        ...reconnectNotes(view, flags.reconnectFor),
        overwrite: flags.overwrite === true,
        protect: files,
      });
      ({ job: finished, paths } = await collected.catch(async (err: unknown) => {
        // Say how to fetch what the job makes, and whether it goes on without this client: a
        // video's outputs come as it ends, and "goes on" was said of jobs that had succeeded (review ERRUX).
        // Lost the coordinator: into the same folder, going on from what came. Anything else may
        // be this folder's trouble (full, not writable): another folder, maybe.
        const lost = (err as { code?: unknown }).code === status.UNAVAILABLE;
        const now = lost ? undefined : await client.getJob(job.id, { includeSubtasks: false, deadlineMs: 5000 }).catch(() => undefined);
        const state = now && TERMINAL_STATES.has(now.state) ? shortState(now.state) : 'goes on';
        const hint = `\n(job ${job.id} ${state}; its outputs stay on the coordinator: ${lost ? fetch : `tessera download ${job.id}${at} -o DIR`})`;
        const e = err as { message?: unknown; details?: unknown };
        if (typeof e.details === 'string') e.details += hint;
        if (typeof e.message === 'string') e.message += hint;
        throw err;
      }));
    }
    view.stop();
    if (flags.json) process.stdout.write(`${JSON.stringify(jobToJson(finished, paths))}\n`);
    else printJobHuman(finished, paths);
    return exitCodeFor(finished);
  } finally {
    process.removeListener('SIGINT', onSubmitInterrupt);
    if (onInterrupt) process.removeListener('SIGINT', onInterrupt);
    view.stop();
    client.close();
  }
}

/** Says what became of an interrupted submission, once the library's clean-up (if any) has ended. */
async function withdrawn(cleanUp: Promise<LeftBehind> | undefined, at: string, requestId?: string): Promise<void> {
  const say = (line: string): boolean => process.stderr.write(`\ntessera: ${line}\n`);
  // The caller's own request_id: the library neither looks the job up nor cancels it (it may be an
  // earlier run's), so whether one was made is not known here (review R).
  if (!cleanUp && requestId) {
    say(`interrupted; the submission was withdrawn, but if the coordinator had all of it, it may have made a job of it (request id ${requestId}), left running: run the same command again to get it, or look for it with: tessera jobs${at}`);
    return;
  }
  // No clean-up: no try had handed over the whole submission, and the coordinator makes no job of one cut short.
  if (!cleanUp) {
    say('interrupted; the submission was withdrawn, no job was made of it');
    return;
  }
  say('interrupted; checking whether the coordinator made a job of the submission (Ctrl-C again not to wait)');
  say(foundLine(await cleanUp, at));
}

/** What the library's clean-up of a submission found, as a line to print. */
function foundLine(found: LeftBehind, at: string): string {
  // Its look-up's own deadline: grpc-js's wording of it names its internals.
  const why = found.error && (found.error.code === status.DEADLINE_EXCEEDED ? 'the coordinator did not answer within 5 s' : found.error.details || found.error.message);
  if (found.error && found.jobId) return `job ${found.jobId}, made of the submission, could not be cancelled (${why}); cancel it with: tessera cancel ${found.jobId}${at}`;
  if (found.error) return `could not learn whether the coordinator made a job of the submission (${why}); look for it with: tessera jobs${at}`;
  // A coordinator from before the look-up by request_id answers before it has stored a submission
  // it is still receiving: none found is all that is known (review R).
  if (!found.jobId) return 'the submission was withdrawn; the coordinator has no job of it';
  if (found.state === 'JOB_STATE_CANCELLED') return `job ${found.jobId}, made of the submission, was cancelled`;
  return `job ${found.jobId}, made of the submission, had already ended (${shortState(found.state ?? '')}); see it with: tessera job ${found.jobId}${at}`;
}

