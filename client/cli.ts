#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=134217728 node
/** The `tessera` command: coordinator, worker, job submission and inspection, demo. */
import os from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { status } from '../shared/grpc-status.js';
import { PREFETCH_BELOW_MS, STALL_MS, SUBTASK_TIMEOUT_MS, WORKER_PREFETCH, coordinatorAddress, hostPortProblem } from '../shared/config.js';
import { TesseraError, describeError, errorInput, statusName, tidyGrpcError } from '../shared/errors.js';
import type { TesseraClient } from './client.js';
import { runCoordinator, runHealth, runWorker } from './commands/servers.js';
import { configurable } from './commands/config.js';
import { LOG_FORMATS, LOG_LEVELS } from '../shared/logger.js';
import { audioSpec, cropOption, crfOption, frameRate, imageSpec, int, num, passthroughSpec, thumbnailsSpec, trimOption, videoSpec } from './commands/specs.js';
import { UsageError } from './commands/usage-error.js';
import { EXIT, EXIT_HELP, coordinatorUnreachable, exitCodeForError } from './commands/exit-codes.js';
import { clientSecurityOptions, connectionFlagsGiven, coordinatorSecurityOptions, shellWord, workerSecurityOptions } from './commands/security-options.js';
import { clientKeepaliveOptions, serverKeepaliveOptions } from './commands/keepalive-options.js';
import type { JobSpec } from './client.js';
import { useBulkHeapGrowth } from '../shared/malloc.js';
import { workerSizing } from '../shared/machine.js';
import { LIMIT_SPECS, resolveLimits } from '../shared/limits.js';
import { clientTlsFromEnv, dropIpServerNameWarning, tlsAnswers, tlsTrouble, tlsTroubleHint } from '../shared/tls.js';

useBulkHeapGrowth();
// An empty TESSERA_ variable is an unset one: a compose file's `X: ${X:-}` or an `export X=` meant
// to clear it must neither switch a setting on (TESSERA_INSECURE=) nor make "" a path (the working
// folder as the data dir).
for (const [name, value] of Object.entries(process.env)) if (name.startsWith('TESSERA_') && value === '') delete process.env[name];
// grpc-js names an IP address as the TLS ServerName on every TLS call to one: Node's warning about
// it says nothing an operator can act on.
dropIpServerNameWarning();

const program = new Command('tessera')
  .description('Distributed media processing: a coordinator, workers, and jobs of images, video and audio.')
  .version('0.1.0')
  // Usage errors (a bad option value, an unknown option or command, a missing argument) come back
  // as errors rather than exit(1): they exit 2, as every invalid argument does.
  .exitOverride()
  .addHelpText('after', EXIT_HELP);

const coordinatorOpt = (): Option => new Option('--coordinator <host:port>', 'coordinator address').env('TESSERA_COORDINATOR').default('127.0.0.1:7700');
/** How long a command that follows a job keeps reconnecting to a coordinator it lost (the default is output.ts' RECONNECT_FOR_S). */
const reconnectOpt = (): Option =>
  new Option('--reconnect-for <seconds>', 'how long to keep reconnecting to a coordinator that went away (a restart) before giving up with exit status 4; the job goes on').argParser(int('--reconnect-for', { min: 1, noDefault: true })).default(120);

type Output = typeof import('./commands/output.js');

/**
 * Runs a client command: the client library and the terminal output are loaded here, by the commands
 * that use them, so that a coordinator or worker started by this command never loads them.
 */
async function withClient<T>(cmd: { coordinator?: string }, fn: (c: TesseraClient, out: Output) => Promise<T>): Promise<T> {
  const [{ TesseraClient }, out] = await Promise.all([import('./client.js'), import('./commands/output.js')]);
  const client = new TesseraClient({ address: coordinatorAddress(cmd.coordinator) });
  return fn(client, out).finally(() => client.close());
}

const logOptions = (c: Command): Command =>
  c
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info').env('TESSERA_LOG_LEVEL'))
    .addOption(new Option('--log-format <format>', 'json, pretty, or auto (pretty on a terminal)').choices(LOG_FORMATS).default('auto').env('TESSERA_LOG_FORMAT'));

program
  .command('coordinator')
  .description('run the coordinator')
  .option('--listen <host:port>', 'gRPC listen address (non-loopback needs TLS or --insecure)', '127.0.0.1:7700')
  .option('--http <host:port>', "dashboard and /metrics address ('off' for none)", '127.0.0.1:7780')
  .option('--http-host <name...>', 'a host name the dashboard answers to besides localhost and IP addresses (a page elsewhere could point any other name at it: DNS rebinding)')
  .option('--data-dir <dir>', 'job store and spool', '.tessera')
  // Signed where the startup settings have a minimum of their own: below it, 0 or less alike, one message saying it.
  .option('--heartbeat-ms <ms>', 'worker heartbeat interval', int('--heartbeat-ms', { signed: true }), 1000)
  .option('--ttl-ms <ms>', 'a worker silent this long is lost', int('--ttl-ms', { signed: true }), 5000)
  .option('--max-attempts <n>', 'attempts per subtask', int('--max-attempts', { signed: true }), 3)
  .option('--subtask-timeout-ms <ms>', 'an attempt running longer is stopped and retried (kinds may set longer ones: a video segment at least 10 min)', int('--subtask-timeout-ms', { signed: true }), SUBTASK_TIMEOUT_MS)
  .option('--stall-ms <ms>', 'a running subtask its worker has reported no progress on for this long gets a speculative copy on an idle worker (0 = never)', int('--stall-ms'), STALL_MS)
  .option('--quarantine-failures <n>', 'retryable failures in a minute that quarantine a worker for 30 s, twice as long each time again within 10 min (0 = never)', int('--quarantine-failures'), 5)
  .option('--retention-hours <h>', "how long a finished job's outputs, record and events are kept (0 = for ever)", num('--retention-hours'), 24)
  .option('--shared-root <dir...>', 'folders on shared storage whose files clients may submit by reference (submit --shared)')
  .option('--shared-root-allow-hardlinks', 'accept files under --shared-root that have other names too (hard links), which may lie outside it: refused by default')
  .option('--shared-output-root <dir...>', 'folders on shared storage into which jobs may have their outputs written (submit --shared-output); files there may be replaced')
  .option('--prefetch-below-ms <ms>', "jobs whose subtasks all run shorter than this use the workers' prefetch places (0 = never)", int('--prefetch-below-ms'), PREFETCH_BELOW_MS)
  .option('--no-local-reads', "make workers on this machine fetch every input and upload every output over gRPC, instead of reading and writing the spool's files in place")
  .action(async (o, cmd: Command) => runCoordinator(o, cmd));
coordinatorSecurityOptions(program.commands.at(-1)!);
serverKeepaliveOptions(program.commands.at(-1)!, 'coordinator');
// --print-config shows every limit, those left at their defaults too.
configurable(logOptions(program.commands.at(-1)!), (o) => ({ ...resolveLimits(Object.fromEntries(LIMIT_SPECS.map((s) => [s.key, o[s.key] as number | undefined]))) }));

program
  .command('worker')
  .description('run a worker')
  .addOption(coordinatorOpt())
  // Signed: 0 or less gets the startup settings' one message ("must be at least 1"), from a flag, a variable or a config key alike.
  .option('--slots <n>', 'concurrent subtasks (default: one per core)', int('--slots', { signed: true }))
  .option('--threads <n>', 'threads per subtask for ffmpeg and libvips (default: cores / slots)', int('--threads', { signed: true }))
  .option('--prefetch <n>', 'assignments queued beyond the slots, used for short subtasks (0 = none)', int('--prefetch'), WORKER_PREFETCH)
  .option('--name <name>', 'worker name (default: host-pid)')
  .option('--label <key=value...>', 'labels advertised to the coordinator')
  .option('--drain-grace-ms <ms>', 'how long SIGTERM waits for running subtasks', int('--drain-grace-ms'), 30_000)
  .action(async (o, cmd: Command) => runWorker(o, cmd));
workerSecurityOptions(program.commands.at(-1)!);
serverKeepaliveOptions(program.commands.at(-1)!, 'worker');
// --print-config shows what the worker works out from this machine (its container's limits).
configurable(logOptions(program.commands.at(-1)!), (o) => ({
  ...workerSizing({ slots: o['slots'] as number | undefined, threads: o['threads'] as number | undefined, memoryLimitMb: o['memoryLimitMb'] as number | undefined }),
  // The worker's own PID, not this one's: a placeholder.
  name: `${os.hostname()}-<pid>`,
}));

program
  .command('health')
  .description('check a coordinator through grpc.health.v1 (exit 0 when SERVING, 1 for any other answer, 4 when nothing answers): for Docker and scripts')
  .addOption(coordinatorOpt())
  .option('--http <host:port>', "check its /healthz over HTTP instead (the dashboard address): no TLS or token involved, so it suits a container's own health check")
  .option('--service <name>', "service to check ('' = the whole server)", '')
  .option('--timeout-ms <ms>', 'deadline of the check', int('--timeout-ms', { min: 1 }), 3000)
  .option('--json', 'JSON output')
  .action(async (o, cmd: Command) => {
    if (o.http) {
      // The HTTP check asks the dashboard's /healthz, which has no services nor the gRPC address.
      if (o.service) throw new UsageError('--service applies to the gRPC check: give it without --http');
      if (cmd.getOptionValueSource('coordinator') === 'cli') throw new UsageError('--coordinator and --http: give one (--http checks the dashboard address instead of the gRPC one)');
      const problem = hostPortProblem(o.http, { portZero: false });
      if (problem) throw new UsageError(`--http ${o.http}: ${problem}`);
    }
    process.exitCode = await runHealth(o);
  });

const submit = program.command('submit').description('submit a job, wait for it and download its outputs');

function submitCommand(name: string, description: string, configure: (c: Command) => Command, build: (o: Record<string, unknown>) => JobSpec, args = '<files...>'): void {
  const c = submit.command(`${name} ${args}`).description(description);
  configure(c)
    .addOption(coordinatorOpt())
    .addOption(reconnectOpt())
    .option('-o, --output <dir>', 'folder for the outputs')
    .option('--overwrite', 'replace files already in the output folder (never the job\'s own input files); without it a different file under an output\'s name stops the download')
    .option('--shared-output <dir>', "have the cluster write the outputs into this folder on shared storage (under one of the coordinator's --shared-output-root folders) instead of downloading them")
    .option('--json', 'print the finished job as one JSON object')
    .option('--no-wait', 'print the job id and return at once')
    .option('--no-progress', 'no progress display')
    .option('--label <text>', 'job label')
    .option('--shared', "submit the files by reference, not uploaded: they must lie under one of the coordinator's --shared-root folders")
    .option('--priority <n>', 'higher runs first (default: 0)', int('--priority', { signed: true }))
    .option('--max-attempts <n>', "attempts per subtask (default: the coordinator's --max-attempts, 3 unless set)", int('--max-attempts', { min: 1 }))
    .option('--request-id <id>', 'makes running the same command again safe: a coordinator that already has a job with this id (from this client) answers with it instead of making another (at most 128 printable ASCII bytes, no spaces; default: a new id, with which the submission is resent if the connection to the coordinator drops before it answers)')
    .action(async (files: string | string[], o: Record<string, unknown>) => {
      const { runSubmit } = await import('./commands/submit.js');
      process.exitCode = await runSubmit(build(o), Array.isArray(files) ? files : [files], o);
    });
}

submitCommand(
  'image',
  'resize, crop, rotate, filter and re-encode a batch of images',
  (c) =>
    c
      .option('--width <px>', 'target width', int('--width', { min: 1 }))
      .option('--height <px>', 'target height', int('--height', { min: 1 }))
      .addOption(new Option('--fit <fit>', 'how to fit both dimensions (default: cover)').choices(['cover', 'contain', 'fill', 'inside', 'outside']))
      .option('--no-enlarge', 'never upscale')
      .option('--background <colour>', "colour of --fit contain's bars and of --rotate's corners, and in jpeg of what is transparent (CSS: white, '#f0f0f0', '#00000080', transparent; default opaque black)")
      .option('--crop <l,t,w,h>', 'extract a region first', cropOption)
      .option('--rotate <deg>', 'rotate clockwise', int('--rotate', { signed: true }))
      .option('--flip', 'mirror vertically')
      .option('--flop', 'mirror horizontally')
      .option('--blur <sigma>', 'Gaussian blur', num('--blur'))
      .option('--sharpen', 'sharpen')
      .option('--grayscale', 'convert to grayscale')
      .option('--brightness <x>', 'brightness multiplier', num('--brightness', { nonZero: 'give a small value such as 0.01 for near black, or leave it out for unchanged' }))
      .option('--saturation <x>', 'saturation multiplier', num('--saturation', { nonZero: 'use --grayscale for no colour, or leave it out for unchanged' }))
      .option('--hue <deg>', 'hue rotation', int('--hue', { signed: true }))
      .addOption(new Option('--format <fmt>', "output format (default: the input's, where it is one of these or GIF, else jpeg)").choices(['jpeg', 'jpg', 'png', 'webp', 'avif', 'tiff']))
      .option('--quality <q>', 'encoder quality 1-100 of jpeg, webp and avif output (png and tiff are lossless: refused with --format png|tiff, not applied to inputs kept as png or tiff)', int('--quality', { min: 1 }))
      .option('--keep-metadata', 'keep EXIF/ICC metadata')
      .option('--no-auto-orient', 'do not apply EXIF orientation')
      .option('--tile <size>', 'process as tiles of SIZE px (huge images), 64 to 65536', int('--tile', { min: 64, max: 65_536 }))
      .addOption(new Option('--pyramid <kind>', 'tile pyramid (a zip) instead of one image, at any size; tiles jpeg, png or webp').choices(['deepzoom', 'iiif']))
      .option('--iiif-id <url>', "with --pyramid iiif: the image's base URI in info.json (absolute http(s) URL; default https://example.com/iiif)")
      .addOption(new Option('--bit-depth <bits>', 'bits a sample of png and tiff results (default: 16 for a 16-bit RGB or grey source, else 8)').choices(['8', '16'])),
  imageSpec,
);

submitCommand(
  'video',
  'transcode videos across workers (each split at keyframes, encoded in parallel, stitched)',
  (c) =>
    c
      .addOption(new Option('--codec <codec>', 'video codec (default: h264; vp9 in webm)').choices(['h264', 'h265', 'vp9', 'av1']))
      .option('--crf <n>', 'constant quality (1..51 for h264/h265, 1..63 for vp9/av1; default: 23 h264, 28 h265, 31 vp9, 35 av1)', crfOption)
      .option('--lossless', 'mathematically lossless video at 8-bit 4:2:0 (h264, h265, vp9)')
      .option('--bitrate <rate>', 'target bitrate, e.g. 2M')
      .addOption(new Option('--passes <n>', 'with --bitrate: 2 (default) measures each segment first, so that the frames after each join are not starved; 1 takes a quarter to a third less time').choices(['1', '2']))
      .option('--preset <p>', 'encoder speed preset, in x264 names ultrafast..veryslow (default: medium)')
      .option('--width <px>', 'scale to width', int('--width', { min: 1 }))
      .option('--height <px>', 'scale to height', int('--height', { min: 1 }))
      .option('--fps <f>', 'output frame rate, e.g. 25 or 30000/1001 (29.97, 23.976 and 59.94 are the NTSC rates); each frame shows the picture on screen at its time', frameRate)
      .addOption(new Option('--audio-codec <codec>', 'audio codec (default: aac; opus in webm)').choices(['aac', 'opus', 'mp3', 'copy', 'none']))
      .option('--audio-bitrate <rate>', 'audio bitrate, e.g. 96k (default: 128k; opus 96k; more channels get what ffmpeg gives them, 5.1: aac 341k, opus 320k)')
      .addOption(new Option('--container <c>', 'output container (default: mp4)').choices(['mp4', 'mkv', 'webm']))
      .option('--segment-seconds <s>', 'target segment length (default: chosen from the length and the workers)', num('--segment-seconds', { positive: true })),
  videoSpec,
);

submitCommand(
  'thumbnails',
  'extract thumbnails (and optionally sprite sheets with a WebVTT index) from videos',
  (c) =>
    c
      .option('--every <seconds>', 'one thumbnail every N seconds (this or --count is required)', num('--every', { positive: true, noDefault: true }))
      .option('--count <n>', 'N evenly spaced thumbnails', int('--count', { min: 1, noDefault: true }))
      .option('--width <px>', 'thumbnail width, 16..4096 (default: 320)', int('--width', { min: 1 }))
      .addOption(new Option('--format <fmt>', 'image format (default: jpeg)').choices(['jpeg', 'jpg', 'webp']))
      .option('--sprite <COLSxROWS>', 'also build sprite sheets and a WebVTT file'),
  thumbnailsSpec,
);

submitCommand(
  'audio',
  'transcode, trim, fade and loudness-normalise audio across workers',
  (c) =>
    c
      .addOption(new Option('--codec <codec>', 'output codec (default: aac, in .m4a)').choices(['aac', 'mp3', 'opus', 'flac', 'wav']))
      .option('--bitrate <rate>', 'bitrate of aac, mp3 and opus, e.g. 192k (default: 128k; opus 96k; more channels get what ffmpeg gives them, 5.1: aac 341k, opus 320k)')
      .option('--sample-rate <hz>', "output sample rate (default: the source's, where the codec takes it)", int('--sample-rate', { min: 1 }))
      .option('--channels <n>', "down-mix to N channels (default: the source's)", int('--channels', { min: 1 }))
      .option('--trim <start,end>', 'keep only [start, end) seconds', trimOption)
      .option('--fade-in <s>', 'fade-in seconds', num('--fade-in'))
      .option('--fade-out <s>', 'fade-out seconds', num('--fade-out'))
      .option('--normalize', 'loudness-normalise (default target -16 LUFS)')
      .option('--loudness <lufs>', 'target integrated loudness, -70..-5 (implies --normalize)', num('--loudness', { nonZero: 'give -70..-5, or leave it out for -16' }))
      .option('--true-peak <dbtp>', 'true-peak ceiling, -9..-0.01 (default: -1.5; with --normalize or --loudness)', num('--true-peak', { nonZero: 'give -0.01 for a ceiling at full scale, or leave it out for -1.5' }))
      .option('--waveform', 'also produce a PNG waveform and JSON peaks')
      .option('--segment-seconds <s>', 'split long files into segments of this length (default: 180)', num('--segment-seconds', { positive: true }))
      .option('--track <n>', "encode each file's Nth audio track, 1 = its first (default: its default track, else the one with the most channels)", int('--track', { min: 1 }))
      .option('--language <code>', 'encode the audio track tagged with this language, e.g. fra, en, pt-BR (not with --track)'),
  audioSpec,
);

submitCommand(
  'passthrough',
  'DIAGNOSTIC: send files through the cluster unchanged (with optional no-op subtasks)',
  (c) =>
    c
      .option('--subtasks <n>', 'number of subtasks (default: one per input)', int('--subtasks'))
      .option('--work-ms <ms>', 'simulated work per subtask (default: 0)', int('--work-ms'))
      .option('--fail-first-attempts <n>', 'fail each subtask this many times first (default: 0)', int('--fail-first-attempts')),
  passthroughSpec,
  '[files...]',
);

program
  .command('jobs')
  .description('list recent jobs')
  .addOption(coordinatorOpt())
  .option('--json', 'JSON output')
  .option('--state <state>', 'only jobs in this state: queued, running, succeeded, partially_succeeded, failed, cancelled')
  .option('--limit <n>', 'how many, newest first', int('--limit', { min: 1 }), 50)
  .option('--all', 'every job the coordinator keeps (overrides --limit)')
  .action(async (o) =>
    withClient(o, async (c, out) => {
      const jobs = await c.listJobs({ limit: o.all ? Infinity : o.limit, state: o.state });
      if (o.json) process.stdout.write(`${JSON.stringify(jobs.map((j) => out.jobToJson(j)))}\n`);
      else out.printJobsTable(jobs);
    }),
  );

program
  .command('job <id>')
  .description('show one job')
  .addOption(coordinatorOpt())
  .option('--json', 'JSON output')
  .action(async (id: string, o) =>
    withClient(o, async (c, out) => {
      const job = await c.getJob(id);
      if (o.json) process.stdout.write(`${JSON.stringify(out.jobToJson(job))}\n`);
      else out.printJobHuman(job);
    }),
  );

program
  .command('watch <id>')
  .description("follow a job's events until it ends")
  .addOption(coordinatorOpt())
  .addOption(reconnectOpt())
  .option('--json', 'one JSON event per line')
  .option('--after <seq>', 'resume after this event sequence number', int('--after'), 0)
  .action(async (id: string, o) =>
    withClient(o, async (c, out) => {
      const view = new out.ProgressView(process.stderr, !o.json);
      try {
        if (!o.json) {
          view.past((await c.getJob(id, { includeSubtasks: false })).last_event_seq);
          view.start(`job ${id}`);
        }
        try {
          for await (const e of c.watch(id, { afterSeq: o.after, ...out.reconnectNotes(view, o.reconnectFor) })) {
            // output_data is never asked for here: not printed as an empty Buffer on every line.
            if (o.json) process.stdout.write(`${JSON.stringify({ ...e, output_data: undefined })}\n`);
            else view.event(e);
          }
        } catch (err) {
          // The command's mistake (exit 2, naming the flag), not the job's (1: it failed).
          if ((err as { code?: number }).code === status.OUT_OF_RANGE) {
            throw new UsageError(`--after ${o.after}: ${String((err as { details?: string }).details ?? '').replace(/^after_seq \d+ is /, 'is ')}`);
          }
          throw err;
        }
      } finally {
        // Also when the watch ends in an error (the coordinator gone for good): the bar's timer
        // would keep the process up, and the terminal would keep its cursor hidden.
        view.stop();
      }
      const job = await c.getJob(id);
      if (!o.json) out.printJobHuman(job);
      process.exitCode = out.exitCodeFor(job);
    }),
  );

program
  .command('cancel <id>')
  .description('cancel a job')
  .addOption(coordinatorOpt())
  .option('--json', 'JSON output')
  .action(async (id: string, o) =>
    withClient(o, async (c, out) => {
      const job = await c.cancel(id);
      if (o.json) process.stdout.write(`${JSON.stringify(out.jobToJson(job))}\n`);
      else out.printJobHuman(job);
    }),
  );

program
  .command('download <id>')
  .description("download a job's outputs; a running job's as each is published, until it ends")
  .addOption(coordinatorOpt())
  .addOption(reconnectOpt())
  .requiredOption('-o, --output <dir>', 'destination folder')
  .option('--overwrite', 'replace files already in the folder; without it a different file under an output\'s name stops the download')
  // One name a --name: a list (`--name a b`) took the job id after it for another name (review CUX).
  .option('--name <name>', 'only this output (repeat for several; once the job has ended; a name the job has no output of is an error)', (v: string, prev: string[] = []) => [...prev, v])
  // As submit takes it: a script reusing submit's flags for its downloads (review VID5).
  .option('--no-progress', 'no progress display')
  .option('--json', 'JSON output')
  .action(async (id: string, o) =>
    withClient(o, async (c, out) => {
      const names = o.name as string[] | undefined;
      // Absolute, as submit's: the paths printed (and in --json) name the files wherever they are read.
      const dest = await out.prepareOutputDir(o.output as string);
      const view = new out.ProgressView(process.stderr, !o.json && o.progress !== false);
      view.past((await c.getJob(id, { includeSubtasks: false })).last_event_seq);
      view.start(`job ${id}`);
      const watching = out.reconnectNotes(view, o.reconnectFor);
      // Ctrl-C exits (rather than dies of the signal), so that what the downloads in flight got
      // is left as their part files (.NAME.tessera-part), for the next run to resume.
      process.once('SIGINT', () => {
        view.stop();
        process.stderr.write(`\ntessera: download stopped; run the same command again to finish it\n`);
        process.exit(EXIT.interrupted);
      });
      // A finished job's events are replayed: its small outputs come inside them, no call each.
      // Named outputs are looked for once the job has ended: one may still be published while it runs.
      const { job, paths } = names
        ? { job: await c.wait(id, (e) => view.event(e), undefined, watching).finally(() => view.stop()), paths: await c.download(id, dest, { names, overwrite: o.overwrite === true, ...watching }) }
        : await c.collect(id, dest, { overwrite: o.overwrite === true, onEvent: (e) => view.event(e), ...watching }).finally(() => view.stop());
      view.stop();
      if (o.json) process.stdout.write(`${JSON.stringify(out.jobToJson(job, paths))}\n`);
      else out.printJobHuman(job, paths);
      // It waited for the job to end: its status says how, as submit's does.
      process.exitCode = out.exitCodeFor(job);
    }),
  );

program
  .command('workers')
  .description('list workers')
  .addOption(coordinatorOpt())
  .option('--json', 'JSON output')
  .action(async (o) =>
    withClient(o, async (c, out) => {
      const workers = await c.listWorkers();
      if (o.json) process.stdout.write(`${JSON.stringify(workers.map(out.workerToJson))}\n`);
      else out.printWorkersTable(workers);
    }),
  );

program
  .command('demo')
  .description('start a coordinator and two workers on loopback, process sample images, print a summary')
  .option('-o, --output <dir>', 'where to write the outputs (an earlier demo\'s outputs there are replaced; nothing else is touched)', 'tessera-demo-output')
  .option('--images <n>', 'number of sample images', int('--images', { min: 1 }), 12)
  .action(async (o) => {
    const { runDemo } = await import('./commands/demo.js');
    process.exitCode = await runDemo(o);
  });

// `tessera jobs --json | head -1`: a reader that went away ends the command quietly; a command that
// stops on SIGTERM (the demo, which then removes its cluster's folders; a coordinator) stops so.
// One whose status is a job's outcome (`watch ID --json | head -1`) ends as a process killed by
// SIGPIPE does, 141: 0 said the job had succeeded while it ran on (review CLI4).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  if (process.listenerCount('SIGTERM') > 0) process.kill(process.pid, 'SIGTERM');
  else process.exit(actionCommand && OUTCOME_COMMANDS.has(topCommand(actionCommand).name()) ? EXIT.pipeClosed : EXIT.ok);
});
// Progress and notes go to stderr: a reader of it that went away (`2>&1 | head`) must not end an
// upload or a download, whose outcome the exit status still tells (review CUX).
process.stderr.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

clientSecurityOptions(program);
clientKeepaliveOptions(program);

/**
 * A usage error is its one line and where to read the usage of the command it was in (as git, npm
 * and docker do), not the whole help after it. Set on every command once all exist: commander
 * copies the setting to a subcommand only when it is made, and each names its own command.
 */
function hintUsageAfterError(cmd: Command, name: string): void {
  cmd.showHelpAfterError(`(run "${name} --help" for usage)`);
  for (const sub of cmd.commands) hintUsageAfterError(sub, `${name} ${sub.name()}`);
}
hintUsageAfterError(program, program.name());

// The command that ran, for the hint below: --coordinator is an option of each subcommand, never of the program.
let actionCommand: Command | undefined;
program.hook('preAction', (_program, command) => {
  actionCommand = command;
});
/** Commands that go on running once their action has returned (they exit when they are stopped). */
const SERVER_COMMANDS: ReadonlySet<string> = new Set(['coordinator', 'worker']);
/** Commands whose exit status is a job's outcome (README "Exit status"). */
const OUTCOME_COMMANDS: ReadonlySet<string> = new Set(['submit', 'watch', 'download']);

/** The program's subcommand `command` is, or is under (`submit` for `submit image`). */
function topCommand(command: Command): Command {
  let c = command;
  while (c.parent?.parent) c = c.parent;
  return c;
}

/**
 * Ends the process once a command has ended and what it printed is written. A connection cut on a
 * link that drops packets (no reset) can leave a socket write that never completes (Node's HTTP/2
 * waits for it before it destroys the socket): `submit` printed that it gave up, then stayed alive
 * until the link came back, 15 minutes for a link that never does.
 */
function exitWhenWritten(): void {
  if (actionCommand && SERVER_COMMANDS.has(actionCommand.name())) return;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit();
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

program.parseAsync(process.argv).catch(async (err: unknown) => {
  if (err instanceof CommanderError) {
    // Commander has printed its message (and where to find the usage); --help and --version end with 0.
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    // No command ran to read --json from (commander stopped at the flags): it is on the command line.
    const args = process.argv.slice(2);
    const end = args.indexOf('--');
    const json = args.slice(0, end < 0 ? undefined : end).includes('--json');
    if (err.exitCode !== 0 && json) process.stdout.write(`${errorJson(new UsageError(err.message.replace(/^error: /, '')))}\n`);
    return;
  }
  // With --json a script reads the error on stdout too, as one object where the result would be.
  if (actionCommand?.opts<{ json?: boolean }>().json === true) process.stdout.write(`${errorJson(tidyGrpcError(err))}\n`);
  if (err instanceof UsageError) {
    process.stderr.write(`tessera: ${err.message}\n`);
    process.exitCode = EXIT.usage;
    return;
  }
  const code = (err as { code?: number }).code;
  // Whatever goes wrong in saying more below, the command has failed.
  process.exitCode = exitCodeForError(err, false);
  process.stderr.write(`tessera: ${describeError(tidyGrpcError(err))}\n`);
  const trouble = coordinatorUnreachable(err) ? await unreachableTrouble((err as { details?: string }).details ?? '').catch(() => undefined) : undefined;
  if (trouble) process.stderr.write(`tessera: ${trouble.hint}\n`);
  if (code === status.UNAUTHENTICATED) {
    const details = String((err as { details?: unknown })?.details ?? '');
    process.stderr.write(
      /^unknown client token/.test(details)
        ? 'tessera: the coordinator does not know the client token given: check --token-file FILE (or TESSERA_TOKEN_FILE, or --token / TESSERA_TOKEN)\n'
        : 'tessera: the coordinator wants a client token: give it with --token-file FILE (or TESSERA_TOKEN_FILE, or --token / TESSERA_TOKEN)\n',
    );
  }
  process.exitCode = exitCodeForError(err, trouble?.tls === true);
}).finally(exitWhenWritten);

/**
 * An error as `--json` prints it: `{"error":{"code":"INVALID_ARGUMENT","message":"...","input":"a.jpg"}}`,
 * `code` the gRPC status name (a usage error is INVALID_ARGUMENT, anything without a status UNKNOWN),
 * `input` where the error names one.
 */
function errorJson(err: unknown): string {
  const e = err as { code?: unknown; details?: unknown; message?: unknown; input?: unknown } | undefined;
  const code = err instanceof UsageError ? 'INVALID_ARGUMENT' : typeof e?.code === 'number' ? statusName(e.code) : 'UNKNOWN';
  const message = !(err instanceof TesseraError) && typeof e?.details === 'string' ? e.details : typeof e?.message === 'string' ? e.message : String(err);
  const input = err instanceof UsageError ? err.input : errorInput(err);
  return JSON.stringify({ error: { code, message, ...(input ? { input } : {}) } });
}

/**
 * The hint after the coordinator could not be reached: what the details say of TLS (a mistake of
 * the command's, `tls`), else whether anything is listening.
 */
async function unreachableTrouble(details: string): Promise<{ hint: string; tls: boolean }> {
  const address = coordinatorAddress(actionCommand?.opts<{ coordinator?: string }>().coordinator);
  // The client flags are in the environment by now (see clientSecurityOptions).
  const { files, tls } = clientTlsFromEnv();
  const trouble = tlsTrouble(details, tls || Boolean(files.ca || files.cert));
  // Closed before gRPC started: a TLS coordinator, or a forwarder with nothing behind it (then
  // nothing answered: 4, as when nothing listens, so that a script retries).
  if (trouble === 'peer-tls' && !(await tlsAnswers(address))) {
    return { hint: `the connection to ${address} was closed before gRPC started, and no TLS server answers there either: is a coordinator running behind it (a port forwarder or proxy whose far end is down does this)?`, tls: false };
  }
  if (trouble) return { hint: `TLS: ${tlsTroubleHint(trouble, address, { ca: '--tls-ca / TESSERA_TLS_CA', tls: '--tls / TESSERA_TLS' })}`, tls: true };
  // grpc-js' word for an answer that is not HTTP/2: something else listens there, most often the
  // coordinator's own dashboard (its --http port given for its --listen one).
  if (/Protocol error/.test(details)) {
    return { hint: `something answers at ${address}, but not gRPC (an HTTP server: the coordinator's dashboard, its --http address?): give the coordinator's gRPC address (its --listen, 7700 by default)`, tls: false };
  }
  // `tessera health --http` asked the dashboard's address, not the gRPC one.
  const http = actionCommand?.name() === 'health' ? actionCommand.opts<{ http?: string }>().http : undefined;
  if (http) return { hint: `is a coordinator serving its dashboard (--http) at ${http}?`, tls: false };
  // A job followed (watch, download) goes on without this client: say how to get back to it.
  const followed = actionCommand && ['watch', 'download'].includes(actionCommand.name()) ? actionCommand.args[0] : undefined;
  if (followed) {
    // The command to paste, with the coordinator and connection flags given here (as submit's are).
    const given = actionCommand!.opts<{ coordinator?: string }>().coordinator;
    const again = ['tessera', actionCommand!.name(), followed, ...(given ? ['--coordinator', given] : []), ...connectionFlagsGiven()].map((w) => (w.startsWith('--') ? w : shellWord(w))).join(' ');
    return { hint: `is a coordinator running at ${address}? If job ${followed} runs there, it goes on without this client: run ${again} again once the coordinator is back`, tls: false };
  }
  return { hint: `is a coordinator running at ${address}?`, tls: false };
}
