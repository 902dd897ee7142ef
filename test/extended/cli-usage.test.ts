/**
 * A usage error is one line and where to read the usage of the command it was in, exit 2 (as git,
 * npm and docker do): not the whole help after it. The real CLI from dist/; no cluster needed.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cluster.js';

describe('tessera: usage errors', () => {
  it('print the error and a hint naming the command, not the help', async () => {
    const cases: [string[], RegExp, string][] = [
      [['submit', 'image', '--no-such-flag', 'a.jpg', '-o', 'out'], /^error: unknown option '--no-such-flag'$/, 'tessera submit image'],
      [['submit', 'image', '--width', 'wide', 'a.jpg', '-o', 'out'], /^error: option '--width <px>' argument 'wide' is invalid\. --width must be a whole number, got "wide"$/, 'tessera submit image'],
      [['submit', 'video'], /^error: missing required argument 'files'$/, 'tessera submit video'],
      [['submit', 'video', '--crf', '0', 'a.mp4', '-o', 'out'], /^error: option '--crf <n>' argument '0' is invalid\. --crf must be 1 or more \(for a lossless encode, --lossless\)/, 'tessera submit video'],
      // 0 would reach the coordinator as "unset": --quality 0 was quietly quality 80.
      [['submit', 'image', '--quality', '0', 'a.jpg', '-o', 'out'], /^error: option '--quality <q>' argument '0' is invalid\. --quality must be 1 or more, got 0 \(leave it out for the default\)$/, 'tessera submit image'],
      // --every and --count have no default: one of them is required.
      [['submit', 'thumbnails', '--every', '0', 'a.mp4', '-o', 'out'], /^error: option '--every <seconds>' argument '0' is invalid\. --every must be more than 0, got 0$/, 'tessera submit thumbnails'],
      // The coordinator's own minimum (image.tile_size 64), said by the CLI as it says it (review doc3: "1 or more").
      [['submit', 'image', '--tile', '16', 'a.jpg', '-o', 'out'], /^error: option '--tile <size>' argument '16' is invalid\. --tile must be between 64 and 65536, got 16$/, 'tessera submit image'],
      [['submit', 'thumbnails', '--count', '0', 'a.mp4', '-o', 'out'], /^error: option '--count <n>' argument '0' is invalid\. --count must be 1 or more, got 0$/, 'tessera submit thumbnails'],
      [['jobs', '--limit', '0'], /^error: option '--limit <n>' argument '0' is invalid\. --limit must be 1 or more, got 0 \(leave it out for the default\)$/, 'tessera jobs'],
      [['submit', 'audio', '--channels', '0', 'a.wav', '-o', 'out'], /^error: option '--channels <n>' argument '0' is invalid\. --channels must be 1 or more, got 0/, 'tessera submit audio'],
      // 0 would reach the coordinator as "unset": --true-peak 0 was quietly -1.5, --loudness 0 quietly -16.
      [['submit', 'audio', '--normalize', '--true-peak', '0', 'a.wav', '-o', 'out'], /^error: option '--true-peak <dbtp>' argument '0' is invalid\. --true-peak cannot be 0, which a job reads as unset: give -0\.01/, 'tessera submit audio'],
      [['submit', 'audio', '--loudness', '0', 'a.wav', '-o', 'out'], /^error: option '--loudness <lufs>' argument '0' is invalid\. --loudness cannot be 0, which a job reads as unset: give -70\.\.-5/, 'tessera submit audio'],
      // Likewise --saturation 0 and --brightness 0 came back as the image unchanged.
      [['submit', 'image', '--saturation', '0', 'a.png', '-o', 'out'], /^error: option '--saturation <x>' argument '0' is invalid\. --saturation cannot be 0, which a job reads as unset: use --grayscale for no colour/, 'tessera submit image'],
      [['submit', 'image', '--brightness', '0', 'a.png', '-o', 'out'], /^error: option '--brightness <x>' argument '0' is invalid\. --brightness cannot be 0/, 'tessera submit image'],
      [['submit', 'video', '--fps', '-30', 'a.mp4', '-o', 'out'], /^error: option '--fps <f>' argument '-30' is invalid\. --fps must be more than 0, got -30$/, 'tessera submit video'],
      // A fraction as ffmpeg writes rates is taken (30000/1001), not one over nothing.
      [['submit', 'video', '--fps', '30000/0', 'a.mp4', '-o', 'out'], /^error: option '--fps <f>' argument '30000\/0' is invalid\. --fps must be more than 0, got 30000\/0$/, 'tessera submit video'],
      [['submit', 'hologram', 'a.jpg'], /^error: unknown command 'hologram'$/, 'tessera submit'],
      [['download', 'some-job'], /^error: required option '-o, --output <dir>' not specified$/, 'tessera download'],
      [['workers', '--bogus'], /^error: unknown option '--bogus'$/, 'tessera workers'],
      [['hologram'], /^error: unknown command 'hologram'$/, 'tessera'],
      // Number() read 1e2 as 100 and 0x10 as 16 (review OPS).
      [['worker', '--slots', '1e2'], /^error: option '--slots <n>' argument '1e2' is invalid\. --slots must be a whole number, got "1e2"$/, 'tessera worker'],
      [['worker', '--slots', '0x10'], /--slots must be a whole number, got "0x10"$/, 'tessera worker'],
    ];
    for (const [args, message, command] of cases) {
      const r = await runCli(args, { timeoutMs: 30_000 });
      const what = `tessera ${args.join(' ')}`;
      expect(r.code, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stdout, what).toBe('');
      expect(r.stderr.trimEnd().split('\n'), what).toEqual([expect.stringMatching(message), `(run "${command} --help" for usage)`]);
    }
  });

  it('thumbnails without --every or --count name the flags, before any file is read; download takes --no-progress as submit does', async () => {
    // The coordinator's "every or count: one of them is required" named its fields, not the flags (review VID5).
    const r = await runCli(['submit', 'thumbnails', 'no-such.mp4', '-o', 'out'], { timeoutMs: 30_000 });
    expect([r.code, r.stdout, r.stderr.trimEnd()]).toEqual([2, '', 'tessera: --every SECONDS or --count N is required']);
    // Past the flags: the command goes on to ask the (absent) coordinator, not "unknown option".
    const d = await runCli(['download', 'some-job', '-o', 'out', '--no-progress', '--coordinator', '127.0.0.1:1'], { timeoutMs: 30_000 });
    expect(d.stderr).not.toMatch(/unknown option/);
    expect(d.code).toBe(4);
  });

  it('with --json, are also one JSON object on stdout, as every other error of a --json command', async () => {
    const cases = [
      ['submit', 'passthrough', '--json', '--priority', 'high', 'a.bin', '-o', 'out'],
      ['submit', 'image', '--json', '--width', '0', 'a.png', '-o', 'out'],
      ['jobs', '--json', '--limit', '0'],
    ];
    for (const args of cases) {
      const r = await runCli(args, { timeoutMs: 30_000 });
      expect(r.code, args.join(' ')).toBe(2);
      // Before, stdout was empty: a script's JSON.parse(stdout) broke.
      expect(JSON.parse(r.stdout), args.join(' ')).toEqual({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^option '--\w+ <\w+>' argument '\w+' is invalid/) } });
    }
    // A file named --json after -- is an input, not the flag.
    expect((await runCli(['submit', 'image', '--width', '0', '--', '--json'], { timeoutMs: 30_000 })).stdout).toBe('');
  });

  it('keep a suggestion for a misspelt command, still without the help', async () => {
    const r = await runCli(['jobz'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual(["error: unknown command 'jobz'", '(Did you mean one of job, jobs?)', '(run "tessera --help" for usage)']);
  });

  it('--help still prints the whole help, exit 0', async () => {
    const r = await runCli(['submit', 'image', '--help'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: tessera submit image [options] <files...>');
    expect(r.stdout).toContain('--width <px>');
  });

  it('names the variable of a --no-x switch as the flag is spelt (it said TESSERA_LOCAL_READS, which reads as turning it on)', async () => {
    const r = await runCli(['coordinator', '--help'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const help = r.stdout.replace(/\s+/g, ' ');
    expect(help).toContain('(env: TESSERA_NO_LOCAL_READS=1, or TESSERA_LOCAL_READS=false)');
    expect(help).not.toMatch(/env: TESSERA_LOCAL_READS\)/);
    // Other options keep commander's own mention.
    expect(help).toContain('env: TESSERA_INSECURE)');
  });
});

describe('tessera: commands that only read their flags', () => {
  it('load neither gRPC, protobuf nor the logger: --version, --help and a bad setting answer at once', () => {
    // Which CommonJS modules the real CLI loaded, written as it exits (stderr), in a fresh Node.
    const hook = "process.on('exit', () => require('node:fs').writeSync(2, '\\nLOADED ' + JSON.stringify(Object.keys(require('node:module')._cache)) + '\\n'))";
    const cli = fileURLToPath(new URL('../../dist/client/cli.js', import.meta.url));
    for (const args of [['--version'], ['--help'], ['coordinator', '--listen', 'nowhere'], ['worker', '--slots', '0']]) {
      const r = spawnSync(process.execPath, ['-e', `${hook}; process.argv.splice(1, 0, ${JSON.stringify(cli)}); import(${JSON.stringify(cli)})`, '--', ...args], { encoding: 'utf8', timeout: 30_000 });
      const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED '));
      expect(line, `tessera ${args.join(' ')}: ${r.stderr}`).toBeDefined();
      const loaded = JSON.parse(line!.slice('LOADED '.length)) as string[];
      expect(loaded.some((f) => f.includes('/commander/')), args.join(' ')).toBe(true);
      expect(loaded.filter((f) => /\/(@grpc\/grpc-js|@grpc\/proto-loader|protobufjs|pino)\//.test(f)), args.join(' ')).toEqual([]);
    }
  });
});
