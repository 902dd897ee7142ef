/**
 * ffmpeg/ffprobe resolution and a runner that every processor uses.
 *
 * Resolution order: FFMPEG_PATH / FFPROBE_PATH, then `ffmpeg` / `ffprobe` on PATH, then the binaries
 * shipped in npm packages (@ffmpeg-installer/ffmpeg, @ffprobe-installer/ffprobe), so `npm install`
 * alone is enough. Every run gets `-nostdin` and `-protocol_whitelist file,pipe` before each input,
 * so a crafted playlist can neither read arbitrary local files over other protocols nor reach the network;
 * an aborted signal kills the process at once.
 *
 * On Linux every run is started through util-linux `setpriv --pdeathsig KILL`, so that ffmpeg dies
 * with the process that started it, even when that one is SIGKILLed or OOM-killed (ffmpeg ignores
 * SIGPIPE: orphaned, it would encode on to the end). Where there is no setpriv, it starts plainly.
 */
import { execFile, execFileSync, spawn, spawnSync, type StdioOptions } from 'node:child_process';
import { accessSync, chmodSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { getSystemErrorMap, promisify } from 'node:util';
import { status } from './grpc-status.js';
import { TesseraError, localTrouble } from './errors.js';
import { ffmpegOutput, nearlyFull } from './disk-space.js';

const require = createRequire(import.meta.url);
const execFileAsync = promisify(execFile);

export interface FfmpegBinaries {
  ffmpeg: string;
  ffprobe: string;
}

let resolved: FfmpegBinaries | undefined;

/** Resolves the ffmpeg and ffprobe binaries once per process. */
export function ffmpegBinaries(): FfmpegBinaries {
  resolved ??= {
    ffmpeg: resolveBinary('ffmpeg', process.env['FFMPEG_PATH'], '@ffmpeg-installer/ffmpeg'),
    ffprobe: resolveBinary('ffprobe', process.env['FFPROBE_PATH'], '@ffprobe-installer/ffprobe'),
  };
  return resolved;
}

function resolveBinary(name: string, fromEnv: string | undefined, npmPackage: string): string {
  if (fromEnv) return fromEnv;
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  let shipped: string;
  try {
    shipped = (require(npmPackage) as { path: string }).path;
  } catch {
    throw new TesseraError(status.FAILED_PRECONDITION, `${name} not found: set ${name.toUpperCase()}_PATH, install ${name}, or run npm install`);
  }
  if (isExecutable(shipped)) return shipped;
  // npm 11 may skip the package's chmod postinstall: make the shipped binary executable ourselves.
  // Only its owner may (a global install made by root, run by a service user): say so then, not
  // "not found", which running npm install again would not fix.
  try {
    chmodSync(shipped, 0o755);
  } catch (err) {
    const st = statSync(shipped, { throwIfNoEntry: false });
    const mode = st ? ` (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${st.uid})` : '';
    throw new TesseraError(
      status.FAILED_PRECONDITION,
      `${name}: the binary npm installed, ${shipped}, is not executable by this user${mode} and cannot be made so (${(err as NodeJS.ErrnoException).code ?? String(err)}): run \`chmod a+x ${shipped}\` as its owner, install ${name} on the PATH, or set ${name.toUpperCase()}_PATH`,
    );
  }
  return shipped;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

export interface FfmpegInfo {
  version: string;
  /** Major version number (4, 5, 6, 7...): of the release, or the one a development build's libraries belong to. */
  major: number;
  /** Minor version number (5.0 and 5.1 differ in their options). */
  minor: number;
  encoders: string[];
}

let info: FfmpegInfo | undefined;

/**
 * Version and encoder list of the resolved ffmpeg (probed once per process). One run answers both:
 * `ffmpeg -encoders` lists the encoders on stdout after its banner, which names the version, on stderr.
 */
export function ffmpegInfo(): FfmpegInfo {
  if (!info) {
    const { ffmpeg } = ffmpegBinaries();
    const r = spawnSync(ffmpeg, ['-encoders'], { encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`${ffmpeg} -encoders exited with ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
    info = parseFfmpegInfo(r.stdout, r.stderr);
  }
  return info;
}

/**
 * {@link ffmpegInfo} without blocking the event loop: a worker probes so before it first connects.
 * A failed probe is not kept: {@link ffmpegInfo} runs it again and throws what it finds.
 */
export async function probeFfmpegInfo(): Promise<FfmpegInfo> {
  if (!info) {
    const { ffmpeg } = ffmpegBinaries();
    const { stdout, stderr } = await execFileAsync(ffmpeg, ['-encoders'], { encoding: 'utf8', maxBuffer: 16 << 20 });
    info ??= parseFfmpegInfo(stdout, stderr);
  }
  return info;
}

/** The version a development build is taken for when its banner names no library versions. */
const DEVELOPMENT_MAJOR = 99;

/**
 * The release a development build's libavutil belongs to: 56 is ffmpeg 4, 57 is 5 (from 57.28,
 * ffmpeg 5.1), 58 is 6, and so on. The npm package's ffmpeg (@ffmpeg-installer) is
 * "N-47683-g0e8eb07980-static" with libavutil 56.24: a build of 2018, not a new one.
 */
function releaseOfLibavutil(banner: string): { major: number; minor: number } | undefined {
  const m = /^\s*libavutil\s+(\d+)\.\s*(\d+)\./m.exec(banner);
  if (!m) return undefined;
  const [avMajor, avMinor] = [Number(m[1]), Number(m[2])];
  if (avMajor === 57) return { major: 5, minor: avMinor >= 28 ? 1 : 0 };
  return { major: avMajor - 52, minor: 0 };
}

function parseFfmpegInfo(encodersText: string, banner: string): FfmpegInfo {
  const version = /ffmpeg version (\S+)/.exec(banner)?.[1] ?? 'unknown';
  // A build of ffmpeg's development tree ("N-120000-g0123456789", "git-2026-01-01-...") is read by
  // its libavutil's version; one whose banner does not name it is taken for the newest (its options
  // are the new ones), not for version 0 (review M).
  const release = /^(N-|git)/i.test(version)
    ? (releaseOfLibavutil(banner) ?? { major: DEVELOPMENT_MAJOR, minor: 0 })
    : { major: Number(/^n?(\d+)/.exec(version)?.[1] ?? 0), minor: Number(/^n?\d+\.(\d+)/.exec(version)?.[1] ?? 0) };
  const encoders = [...encodersText.matchAll(/^\s[VAS][F.][S.][X.][B.][D.]\s+(\S+)/gm)].map((m) => m[1]!).filter((e) => e !== '=');
  return { version, ...release, encoders };
}

/** Whether the resolved ffmpeg is release `major.minor` or later. */
export function ffmpegAtLeast(major: number, minor = 0): boolean {
  const info = ffmpegInfo();
  return info.major > major || (info.major === major && info.minor >= minor);
}

/** {@link ffmpegInfo} if this process has it already (no probe). */
export function knownFfmpegInfo(): FfmpegInfo | undefined {
  return info;
}

/**
 * Takes what another process of the same worker probed (same environment, so the same binary):
 * a processor child would otherwise run `ffmpeg -version` and `-encoders` again, synchronously, at
 * the start of its first video or audio subtask (0.3 s there).
 */
export function adoptFfmpegInfo(known: FfmpegInfo): void {
  info ??= known;
}

/**
 * Most decoder threads asked of ffmpeg (its own advice: "a thread count greater than 16 is not
 * recommended"). A frame-threaded decoder holds a context and frames per thread: a worker's
 * `--threads` of thousands failed every decode ("Cannot allocate memory"), blamed on the input.
 */
export const MAX_DECODER_THREADS = 16;

/** `threads` for a decoder (`-threads` before `-i`): 0 (automatic) as it is, else at most MAX_DECODER_THREADS. */
export function decoderThreads(threads: number): string {
  return String(threads > 0 ? Math.min(threads, MAX_DECODER_THREADS) : 0);
}

/** A decoder's complaint about the stream it reads, as ffmpeg logs it (h264, hevc, mpeg4, vp9...). */
export const DECODE_ERROR = /^.*(?:error while decoding|concealing \d+ [^\n]*errors|Invalid NAL unit|decode_slice_header error|corrupt(?:ed)? (?:input|frame|packet)|Invalid data found when processing input).*$/im;

/** A decoder's complaint without ffmpeg's `[h264 @ 0x...]` prefix. */
export function decoderComplaint(line: string): string {
  return line.replace(/^\[[^\]]*\]\s*/, '').trim();
}

/** Frame-rate mode flag: `-fps_mode` on ffmpeg >= 5.1, `-vsync` before. */
export function fpsModeFlag(): string {
  return ffmpegAtLeast(5, 1) ? '-fps_mode' : '-vsync';
}

export interface RunOptions {
  signal?: AbortSignal | undefined;
  cwd?: string;
  /** Called with the output time in seconds as ffmpeg reports it (`-progress`). */
  onProgress?: (outTimeSeconds: number) => void;
  /** Name of the input, for error messages. */
  input?: string;
  /** Each line of stdout as it comes (instead of collecting it), for listings too long to hold. */
  onStdoutLine?: ((line: string) => void) | undefined;
  /** Collect stdout (for `-f null -` analyses that print there, or raw pipes). */
  captureStdout?: boolean;
  /**
   * Bytes for the process's stdin (`-i pipe:0`). Whatever the process leaves unread when it ends is
   * drained, so that the writer on the other side never waits on it.
   */
  stdin?: Readable | undefined;
  /** Where the process's file descriptor 3 goes (an output `pipe:3`); ended when the process ends. */
  pipe3?: Writable | undefined;
  /** Each line of stderr as it comes, for a log read in full (only its tail is kept for messages). */
  onStderrLine?: ((line: string) => void) | undefined;
}

export interface RunResult {
  stderr: string;
  stdout: string;
  /**
   * With `onProgress`: the frames of the first video output as ffmpeg's last progress report gives
   * them (the frames it sent to the encoder), or undefined where it reported none.
   */
  frames?: number;
}

/**
 * The demuxers ffmpeg may use on an input, and on every file an input names (a concat list's
 * files; ffmpeg hands the list down): the media Tessera accepts (shared/media/sniff.ts) and its own
 * intermediates. Playlists (HLS, DASH), image sequences, devices and the like are never among
 * them: a playlist that reached ffmpeg despite the submission check still opens nothing.
 */
export const MEDIA_DEMUXERS = 'mov,matroska,avi,mpegts,mpeg,flv,ogg,yuv4mpegpipe,wav,mp3,aac,ac3,eac3,flac,aiff,dts,wv,w64,caf,au,tta,asf';

/**
 * Before every `-i`: `-protocol_whitelist file,pipe` (no network), and `-format_whitelist`: the
 * media demuxers, plus the one an explicit `-f` names (a concat list of Tessera's own).
 */
export function hardenArgs(args: readonly string[]): string[] {
  const out: string[] = ['-hide_banner', '-nostdin'];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-i') {
      // Input options given since the previous input (or the start).
      let from = i;
      while (from > 0 && args[from - 1] !== '-i' && !(from >= 2 && args[from - 2] === '-i')) from--;
      const given = args.slice(from, i);
      if (!given.includes('-protocol_whitelist')) out.push('-protocol_whitelist', 'file,pipe');
      if (!given.includes('-format_whitelist')) {
        const f = given.lastIndexOf('-f');
        out.push('-format_whitelist', f >= 0 && given[f + 1] ? `${given[f + 1]},${MEDIA_DEMUXERS}` : MEDIA_DEMUXERS);
      }
    }
    out.push(a);
  }
  return out;
}

/** Runs ffmpeg with hardened arguments; rejects with a TesseraError naming the input on failure. */
export function runFfmpeg(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const full = hardenArgs(args);
  if (options.onProgress) full.splice(2, 0, '-progress', 'pipe:1', '-nostats');
  return runProcess(ffmpegBinaries().ffmpeg, full, options);
}

/** Runs ffprobe (hardened) and parses its JSON output. */
export async function runFfprobe<T = unknown>(args: readonly string[], options: RunOptions = {}): Promise<T> {
  return (await runFfprobeLogged<T>(args, options)).result;
}

/**
 * Runs ffprobe (hardened) printing CSV with section names (`packet,960`), each line handed to
 * `onLine` as it comes: every packet of a two-hour file, which as JSON objects held 140 MB.
 */
export async function runFfprobeLines(args: readonly string[], onLine: (line: string) => void, options: RunOptions = {}): Promise<void> {
  const full = ['-v', 'error', '-of', 'csv', ...hardenArgs(args).slice(2)];
  await runProcess(ffmpegBinaries().ffprobe, ['-hide_banner', ...full], { ...options, onStdoutLine: onLine });
}

/** {@link runFfprobe}, and the errors ffprobe reported on its way (a "partial file" packet, say). */
export async function runFfprobeLogged<T = unknown>(args: readonly string[], options: RunOptions = {}): Promise<{ result: T; stderr: string }> {
  const full = ['-v', 'error', '-of', 'json', ...hardenArgs(args).slice(2)];
  const { stdout, stderr } = await runProcess(ffmpegBinaries().ffprobe, ['-hide_banner', ...full], { ...options, captureStdout: true });
  return { result: JSON.parse(stdout) as T, stderr };
}

let deathWrapper: string | null | undefined;

/**
 * `setpriv` where it can set a parent-death signal (util-linux >= 2.33), probed once per process;
 * undefined elsewhere. A wrapped process is still the process that runs: setpriv execs the binary.
 */
function parentDeathWrapper(): string | undefined {
  if (deathWrapper === undefined) {
    deathWrapper = null;
    if (process.platform === 'linux') {
      for (const dir of ['/usr/bin', '/bin', ...(process.env['PATH'] ?? '').split(path.delimiter)]) {
        const candidate = dir ? path.join(dir, 'setpriv') : '';
        if (!candidate || !isExecutable(candidate)) continue;
        try {
          execFileSync(candidate, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 10_000 });
          deathWrapper = candidate;
        } catch {
          // Too old for --pdeathsig, or not allowed here: start binaries plainly.
        }
        break;
      }
    }
  }
  return deathWrapper ?? undefined;
}

/**
 * This machine could not start `bin` (missing, not executable, out of processes, descriptors or
 * memory): retried elsewhere, and no input is named, since none is to blame.
 */
function cannotStart(bin: string, errno: string): TesseraError {
  return new TesseraError(status.UNAVAILABLE, `cannot start ${path.basename(bin)} (${bin}): ${errno}; this machine's trouble, not the input's`, { retryable: true });
}

/** The errno name of a system error message ("No such file or directory" -> ENOENT), or the message. */
function errnoName(message: string): string {
  const m = message.trim().toLowerCase();
  for (const [name, text] of getSystemErrorMap().values()) if (text.toLowerCase() === m) return name;
  return message.trim();
}

/**
 * The environment for `bin`: the npm packages' binaries are static builds, whose glibc loads this
 * machine's iconv modules (GCONV_PATH's default) and jumps into nothing when it does: the 2023
 * ffprobe crashed (SIGSEGV) on every MPEG-TS file, whose service names it converts. Pointed at no
 * modules, iconv finds none to load and ffprobe reads the file.
 */
function staticBuildEnv(bin: string): NodeJS.ProcessEnv | undefined {
  return /[\\/]@ff(?:mpeg|probe)-installer[\\/]/.test(bin) ? { ...process.env, GCONV_PATH: '/dev/null' } : undefined;
}

function runProcess(bin: string, args: string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(options.signal.reason ?? abortError());
      return;
    }
    // Wrapped only when `bin` is an executable file at an absolute path: anything else fails to
    // start with the system's own error (ENOENT, EACCES), reported below.
    const wrapper = path.isAbsolute(bin) && isExecutable(bin) ? parentDeathWrapper() : undefined;
    const stdio: StdioOptions = [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...(options.pipe3 ? ['pipe' as const] : [])];
    // A process group of its own: a terminal's Ctrl-C (SIGINT to the foreground group) is the
    // worker's to handle (it drains, the running encodes finish), not ffmpeg's, which it stopped at
    // once, failing the subtask and using up an attempt. Killed with its group on abort.
    const env = staticBuildEnv(bin);
    const child = wrapper ? spawn(wrapper, ['--pdeathsig', 'KILL', '--', bin, ...args], { cwd: options.cwd, stdio, detached: true, env }) : spawn(bin, args, { cwd: options.cwd, stdio, detached: true, env });
    if (options.stdin && child.stdin) {
      const { stdin } = options;
      // A process that stops reading (it ended, or failed) must not stall the writer: EPIPE is
      // expected then, and the rest is drained into nothing.
      child.stdin.on('error', () => undefined);
      stdin.pipe(child.stdin);
      const drain = (): void => {
        stdin.unpipe(child.stdin!);
        stdin.resume();
      };
      child.once('close', drain);
      child.once('error', drain);
    }
    const fd3 = child.stdio[3] as Readable | null | undefined;
    if (options.pipe3) {
      // A process that never started ends its pipe at once: the reader on the other side gets EOF.
      if (fd3) fd3.pipe(options.pipe3);
      else options.pipe3.end();
    }
    let stderr = '';
    const stdoutChunks: Buffer[] = [];
    let progressBuf = '';
    let frames: number | undefined;
    child.stderr!.setEncoding('utf8');
    let partial = '';
    child.stderr!.on('data', (d: string) => {
      if (options.onStderrLine) {
        const lines = (partial + d).split(/\r?\n|\r/);
        partial = lines.pop()!;
        for (const line of lines) options.onStderrLine(line);
      }
      // Keep only the tail: ffmpeg can print megabytes of warnings for a broken file.
      stderr = (stderr + d).slice(-16_384);
    });
    child.stdout!.on('data', (d: Buffer) => {
      if (options.onProgress) {
        progressBuf += d.toString('utf8');
        let nl;
        while ((nl = progressBuf.indexOf('\n')) >= 0) {
          const line = progressBuf.slice(0, nl);
          progressBuf = progressBuf.slice(nl + 1);
          const m = /^out_time_us=(\d+)/.exec(line);
          if (m) options.onProgress(Number(m[1]) / 1e6);
          else if (line.startsWith('frame=')) frames = Number(line.slice(6));
        }
      } else if (options.onStdoutLine) {
        progressBuf += d.toString('utf8');
        const lines = progressBuf.split('\n');
        progressBuf = lines.pop() ?? '';
        for (const line of lines) options.onStdoutLine(line);
      } else if (options.captureStdout) {
        stdoutChunks.push(d);
      }
    });
    const onAbort = (): void => {
      try {
        if (child.pid === undefined) throw new Error('not started');
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err: NodeJS.ErrnoException) => {
      options.signal?.removeEventListener('abort', onAbort);
      // ENOENT, EACCES, EAGAIN, EMFILE, ENOMEM: the binary could not be started at all.
      reject(cannotStart(bin, err.code ?? err.message));
    });
    child.on('close', async (code, sig) => {
      // A last line with no newline after it.
      if (options.onStderrLine && partial) options.onStderrLine(partial);
      options.signal?.removeEventListener('abort', onAbort);
      if (options.signal?.aborted) {
        reject(options.signal.reason ?? abortError());
        return;
      }
      // setpriv could not exec the binary (it then exits 126 or 127) or set the signal (1): it says
      // so on the first line, before the binary ever ran.
      const wrapperFailure = wrapper && (code === 1 || code === 126 || code === 127) ? /^setpriv: (.*?)(?:: ([^:\n]*))?\n/.exec(stderr) : null;
      if (wrapperFailure) {
        reject(cannotStart(bin, wrapperFailure[2] ? errnoName(wrapperFailure[2]) : wrapperFailure[1]!));
        return;
      }
      const stdout = Buffer.concat(stdoutChunks).toString('utf8');
      // ffmpeg exits 0 when its trailer or its file cannot be written (a full disk): not a success.
      const told = localTrouble(stderr, args);
      let trouble = told?.code;
      if (code === 0 && !trouble) {
        resolve(frames === undefined ? { stderr, stdout } : { stderr, stdout, frames });
        return;
      }
      const what = options.input ? `${options.input}: ` : '';
      const reason = summariseStderr(stderr) || `exited with ${code ?? sig}`;
      // A write refused for want of room is not always told as such (a trailer "Invalid argument").
      const output = !trouble && !sig ? ffmpegOutput(args) : undefined;
      // Found so by the room left, not by ffmpeg: the folder is what to look at.
      const roomLeft = output && (await nearlyFull(output)) ? `no room left in ${path.dirname(output)}` : undefined;
      if (roomLeft) trouble = 'ENOSPC';
      if (trouble) {
        const why = trouble === 'EMFILE' ? 'too many open files' : trouble === 'EROFS' ? 'its disk is read-only' : 'its disk is full';
        // The line that told it, or the folder: its last lines are often an encoder's statistics,
        // which say nothing of it ("[libx264] kb/s:1370.60").
        const said = roomLeft ?? ((told && summariseStderr(told.line)) || reason);
        // The errno rides along as the cause: the coordinator waits out its own full disk (a merge), not other trouble.
        reject(new TesseraError(status.UNAVAILABLE, `${what}${path.basename(bin)} failed on this machine (${why}), not because of the input: ${said}`, { ...(options.input && { input: options.input }), retryable: true, cause: Object.assign(new Error(said), { code: trouble }) }));
        return;
      }
      // Killed by a signal (a crash, the OOM killer, a kill from outside): said as such, and tried
      // again; the last lines of its log, an encode's statistics, say nothing of it.
      if (sig) {
        reject(new TesseraError(status.INTERNAL, `${what}${path.basename(bin)} crashed (killed by ${sig})`, { input: options.input, retryable: true }));
        return;
      }
      // Stopped by a signal it handles (SIGINT, SIGTERM from outside: "Exiting normally, received
      // signal 2"): this machine's doing, tried again, not a fault of the input. Only ffmpeg's own
      // last line with its exit status for it (255): the log also holds the input's name and tags,
      // which may say anything, and bad input must stay the input's.
      const last = stderr.split(/[\r\n]/).filter((l) => l.trim().length > 0).pop() ?? '';
      const received = code === 255 ? /^Exiting normally, received signal (\d+)\.?$/.exec(last.trim()) : null;
      if (received) {
        reject(new TesseraError(status.UNAVAILABLE, `${what}${path.basename(bin)} was stopped by signal ${received[1]} on this machine, not because of the input`, { ...(options.input && { input: options.input }), retryable: true }));
        return;
      }
      // An encoder this ffmpeg was built without is this machine's lack, not the input's fault: tried
      // again, elsewhere (a plan names the encoders it needs, so this is an ffmpeg that said it had one).
      // ffmpeg's own line only (a line of its own, naming an encoder this run asked for): an input's
      // metadata printed in the log may say anything, and bad input must stay the input's.
      const name = [...stderr.matchAll(/^(?:\[[^\]\n]*\] ?)?Unknown encoder '([^'\n]+)'\s*$/gm)].map((m) => m[1]!).find((e) => args.includes(e));
      if (name) {
        reject(new TesseraError(status.UNAVAILABLE, `${what}${path.basename(bin)} on this machine has no encoder ${name}, not because of the input: ${reason}`, { ...(options.input && { input: options.input }), retryable: true }));
        return;
      }
      // A failing ffmpeg almost always means the input is bad.
      reject(new TesseraError(status.INVALID_ARGUMENT, `${what}${path.basename(bin)} failed: ${reason}`, { input: options.input, retryable: false }));
    });
  });
}

/**
 * Lines ffmpeg prints as the consequence of an error told on the line before (the muxer's or the
 * encoder's own, "[ipod @ 0x...] Could not find tag for codec mp3 ..."): alone they explain nothing.
 */
const CONSEQUENCE = /^(Error initializing output stream|Could not write header for output file|Error opening output files?|Error while opening (en|de)coder|Error initializing complex filters|Error while filtering|Error while processing the decoded data|Nothing was written into output file|Error closing file|Error writing trailer)/i;

/** Lines of a run's log that never explain its failure: its progress, and how it mapped the streams. */
const NOT_TELLING = /^((frame|size)=\s*\S|Stream mapping:|Stream #\d+:\d+ -> #\d+:\d+|Press \[q\] to stop)/;

/**
 * The most telling lines of an ffmpeg error log, without paths or memory addresses: the last two
 * lines, or, where ffmpeg ends with its generic consequences ("Could not write header ...",
 * "Error initializing output stream ..."), the line that explains them and the first of those.
 * A line is never repeated.
 */
export function summariseStderr(stderr: string): string {
  const lines = stderr
    // Progress lines end with a carriage return, and the error may follow one on the same line.
    .split(/[\r\n]/)
    // "[ipod @ 0x5609...]" -> "[ipod]": the address differs from run to run and says nothing.
    .map((l) => l.trim().replace(/^\[([^\]@]+?) @ 0x[0-9a-f]+\]/i, '[$1]'))
    .filter((l) => l.length > 0 && !/^(Conversion failed!|Exiting normally)/.test(l) && !NOT_TELLING.test(l));
  let end = lines.length;
  while (end > 0 && CONSEQUENCE.test(lines[end - 1]!)) end--;
  const picked = end > 0 && end < lines.length ? [lines[end - 1]!, lines[end]!] : lines.slice(-2);
  const unique = picked.filter((l, i) => picked.indexOf(l) === i);
  return unique.join('; ').replace(/\/[^\s:'"]*\//g, '').slice(0, 400);
}

function abortError(): Error {
  const e = new Error('aborted');
  e.name = 'AbortError';
  return e;
}
