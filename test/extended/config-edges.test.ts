/**
 * Configuration edges of `tessera coordinator` and `tessera worker`: how empty and garbled
 * environment variables are read, what `--print-config` checks, how a setting is named when it
 * fails, a data dir that cannot be made, and the help. The real CLI from dist/.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientTlsFromEnv } from '../../shared/tls.js';
import { availableCores, defaultMemoryLimitMb } from '../../shared/machine.js';
import { LIMIT_SPECS, resolveLimits } from '../../shared/limits.js';
import { runCli, type CliResult } from '../helpers/cluster.js';
import { cleanEnv } from '../helpers/process-logs.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-config-edges-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string> = {}, cwd?: string): Promise<CliResult> => runCli(args, { env: { ...cleanEnv(), ...env }, timeoutMs: 20_000, ...(cwd && { cwd }) });

/** A coordinator on a free port and its own data dir, with `extra`. */
const coordinator = (...extra: string[]): string[] => ['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data'), ...extra];

const printed = (r: CliResult): { options: Record<string, unknown>; sources: Record<string, string> } => {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { options: Record<string, unknown>; sources: Record<string, string> };
};

describe('empty environment variables', () => {
  // `TESSERA_INSECURE: ${TESSERA_INSECURE:-}` in a compose file, or `export TESSERA_INSECURE=` to
  // "clear" it, leaves the variable set but empty: that must not switch a security setting on.
  it('an empty TESSERA_INSECURE does not allow plaintext on a public address', async () => {
    const r = await cli(['coordinator', '--listen', '0.0.0.0:0', '--http', 'off', '--data-dir', path.join(dir, 'data'), '--print-config'], { TESSERA_INSECURE: '' });
    // Without the variable this is refused (exit 2, "refusing to listen on 0.0.0.0:0 without TLS").
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:0 without TLS/);
  });

  it('empty switch variables leave their switches off (as unset)', async () => {
    const o = printed(await cli(coordinator('--print-config'), { TESSERA_SHARED_ROOT_ALLOW_HARDLINKS: '', TESSERA_INSECURE: '', TESSERA_NO_LOCAL_READS: '' })).options;
    expect(o['sharedRootAllowHardlinks'] ?? false).toBe(false);
    expect(o['insecure'] ?? false).toBe(false);
    expect(o['localReads']).toBe(true);
  });

  it('a worker reads TESSERA_TLS as the clients in the same shell do (empty: unset; yes and on: on)', async () => {
    for (const [value, on] of [['', false], ['yes', true], ['on', true], ['0', false]] as const) {
      const r = await cli(['worker', '--coordinator', '127.0.0.1:1', '--print-config'], { TESSERA_TLS: value });
      expect(printed(r).options['tls'] ?? false, `TESSERA_TLS=${value}`).toBe(on);
      // The client library (and so every client command) reads it alike.
      expect(clientTlsFromEnv({ TESSERA_TLS: value }).tls, `client, TESSERA_TLS=${value}`).toBe(on);
    }
    expect(() => clientTlsFromEnv({ TESSERA_TLS: 'maybe' })).toThrow('TESSERA_TLS=maybe: expected 1, true, yes or on; 0, false, no or off');
  });

  it('a switch variable that is not a yes or a no is refused, not taken for yes', async () => {
    const r = await cli(coordinator('--print-config'), { TESSERA_SHARED_ROOT_ALLOW_HARDLINKS: 'flase' });
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/TESSERA_SHARED_ROOT_ALLOW_HARDLINKS=flase/);
  });

  it('an empty TESSERA_DATA_DIR does not make the working folder the data dir', async () => {
    const cwd = path.join(dir, 'cwd');
    await mkdir(cwd, { recursive: true });
    const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--print-config'], { TESSERA_DATA_DIR: '' }, cwd);
    if (r.code === 0) {
      // Taken as unset: the default .tessera, not the working folder itself.
      const o = printed(r).options;
      expect(path.resolve(cwd, String(o['dataDir']))).toBe(path.join(cwd, '.tessera'));
    } else {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/TESSERA_DATA_DIR/);
    }
    expect(await readdir(cwd)).toEqual([]);
  });
});

describe('--print-config makes the checks a start makes', () => {
  // README: "a configuration it prints is one whose settings start (what only starting shows, a
  // port in use or a data dir that cannot be made, is not tried)".
  it('a --shared-root that cannot be shared is refused by --print-config, exit 2', async () => {
    const file = path.join(dir, 'a-file');
    await writeFile(file, 'x');
    for (const args of [
      ['--shared-root', path.join(dir, 'nope')],
      ['--shared-root', file],
      ['--shared-root', '/'],
      ['--shared-output-root', path.join(dir, 'nope')],
    ]) {
      const r = await cli(coordinator(...args, '--print-config'));
      expect(r.code, `${args.join(' ')}: ${r.stdout}`).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^tessera: ${args[0]} `));
    }
  });

  it('and the start too exits 2 naming the setting as given (variable, config key)', async () => {
    const missing = path.join(dir, 'missing-root');
    const viaEnv = await cli(coordinator(), { TESSERA_SHARED_ROOT: missing, TESSERA_LOG_LEVEL: 'silent' });
    expect(viaEnv.stderr.trimEnd()).toBe(`tessera: TESSERA_SHARED_ROOT=${missing}: no such folder`);
    expect(viaEnv.code).toBe(2);
    const config = path.join(dir, 'shared-root.yaml');
    await writeFile(config, `shared-root: ${missing}\n`);
    const viaFile = await cli(coordinator('--config', config), { TESSERA_LOG_LEVEL: 'silent' });
    expect(viaFile.stderr.trimEnd()).toBe(`tessera: config key "shared-root" (${missing}): no such folder`);
    expect(viaFile.code).toBe(2);
  });
});

describe('settings are named as given', () => {
  it("a worker's coordinator address from a config file is named as its config key", async () => {
    const config = path.join(dir, 'worker.yaml');
    await writeFile(config, 'coordinator: coordinator.example\n');
    const r = await cli(['worker', '--config', config, '--print-config']);
    expect(r.code).toBe(2);
    // As the coordinator's own `listen: nope` is: `config key "listen" (nope): the port is missing`.
    expect(r.stderr).toMatch(/config key "coordinator" \(coordinator\.example\)/);
  });
});

describe('one setting said twice, two ways', () => {
  it('is refused rather than one taken silently: two keys of a config file, or both spellings of a switch variable that disagree', async () => {
    const config = path.join(dir, 'twice.yaml');
    await writeFile(config, `data-dir: ${path.join(dir, 'a')}\ndataDir: ${path.join(dir, 'b')}\n`);
    const keys = await cli(['coordinator', '--config', config, '--print-config']);
    expect([keys.code, keys.stderr.trimEnd()]).toEqual([2, `tessera: config file ${config}: keys "data-dir" and "dataDir" set --data-dir differently: keep one`]);
    // Two keys that agree are taken, as a flag that decides is.
    await writeFile(config, 'local-reads: false\nno-local-reads: true\n');
    const same = await cli(['coordinator', '--config', config, '--print-config']);
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout).options.localReads).toBe(false);
    const vars = await cli(['coordinator', '--print-config'], { TESSERA_NO_LOCAL_READS: '1', TESSERA_LOCAL_READS: 'true' });
    expect([vars.code, vars.stderr.trimEnd()]).toEqual([2, 'tessera: TESSERA_NO_LOCAL_READS=1 and TESSERA_LOCAL_READS=true say opposite things: keep one']);
    // Not where a flag decides, nor where both say the same.
    const flag = await cli(['coordinator', '--no-local-reads', '--print-config'], { TESSERA_NO_LOCAL_READS: '1', TESSERA_LOCAL_READS: 'true' });
    expect(flag.code, flag.stderr).toBe(0);
    const agree = await cli(['coordinator', '--print-config'], { TESSERA_NO_LOCAL_READS: '1', TESSERA_LOCAL_READS: 'false' });
    expect(agree.code, agree.stderr).toBe(0);
    expect(JSON.parse(agree.stdout).options.localReads).toBe(false);
  });
});

describe('data dir', () => {
  it('a data dir that cannot be made under /proc fails, rather than hanging at full CPU', async () => {
    const r = await runCli(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', '/proc/tessera-review/data'], { env: { ...cleanEnv(), TESSERA_LOG_LEVEL: 'silent' }, timeoutMs: 10_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/data dir \/proc\/tessera-review\/data/);
  });
});

describe('--print-config shows the defaults a start works out', () => {
  it("a worker's slots, threads, memory ceiling and name, from this machine (its container's limits)", async () => {
    const cores = availableCores();
    const p = printed(await cli(['worker', '--print-config']));
    expect(p.options).toMatchObject({ slots: cores, threads: 1, memoryLimitMb: defaultMemoryLimitMb(cores), name: `${os.hostname()}-<pid>` });
    expect(p.sources).toMatchObject({ slots: 'default', threads: 'default', memoryLimitMb: 'default', name: 'default' });
    const given = printed(await cli(['worker', '--print-config', '--slots', '1', '--name', 'w1'], { TESSERA_MEMORY_LIMIT_MB: '2048' }));
    expect(given.options).toMatchObject({ slots: 1, threads: cores, memoryLimitMb: 2048, name: 'w1' });
    expect(given.sources).toMatchObject({ slots: 'cli', threads: 'default', memoryLimitMb: 'env', name: 'cli' });
  });

  it("a coordinator's limits, those left at their defaults too", async () => {
    const p = printed(await cli([...coordinator(), '--print-config'], { TESSERA_MAX_INPUTS: '7' }));
    const defaults = resolveLimits({}, {});
    expect(p.options).toMatchObject({ ...defaults, maxInputs: 7 });
    for (const s of LIMIT_SPECS) expect(p.sources[s.key], s.key).toBe(s.key === 'maxInputs' ? 'env' : 'default');
  });
});

describe('help', () => {
  it('`tessera --help` says what Ctrl-C does as the README does: a submission not yet accepted is withdrawn', async () => {
    const r = await cli(['--help']);
    expect(r.stdout).toContain('130  Ctrl-C: before the job is accepted (its upload), the submission is withdrawn');
  });

  it('`tessera worker --help` shows the default of --memory-limit-mb', async () => {
    const r = await cli(['worker', '--help']);
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\s+/g, ' ');
    const entry = /--memory-limit-mb <mib> (.*?) --keepalive-ms/.exec(text)?.[1] ?? '';
    // README: "default: 80% of RAM over the slots, at least 1 GiB"; every other option shows its default.
    expect(entry).toMatch(/default/);
  });
});

describe('a worker and its coordinator disagreeing on slots', () => {
  it('a worker refuses more slots than a coordinator gives one worker (it sized its memory and threads on them)', async () => {
    const r = await cli(['worker', '--coordinator', '127.0.0.1:1', '--slots', '300', '--print-config']);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd()).toBe('tessera: --slots 300: must be at most 256, the most a coordinator gives one worker');
  });
});
