/**
 * Integration-test harness: a real coordinator and real worker processes (the built CLI in dist/)
 * on ephemeral loopback ports, plus a way to run the real `tessera` CLI against them.
 */
import { spawn } from 'node:child_process';
import { LocalCluster, CLI_PATH, type LocalClusterOptions } from '../../client/local-cluster.js';

export { LocalCluster, CLI_PATH };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface TestCluster extends LocalCluster {
  runCli(args: string[], opts?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult>;
}

/**
 * Runs the real CLI (`cli`: another build's, a release's); `--coordinator` is not added for you unless
 * a cluster does it. `unprivileged`: under `setpriv` without the capabilities that let root read and
 * write anything (tests run as root), so that file modes hold for it as for any user.
 */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; cli?: string; unprivileged?: boolean } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const argv = [opts.cli ?? CLI_PATH, ...args];
    const [cmd, cmdArgs] = opts.unprivileged ? ['setpriv', ['--bounding-set', '-dac_override,-dac_read_search', process.execPath, ...argv]] : [process.execPath, argv];
    const child = spawn(cmd, cmdArgs, { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd && { cwd: opts.cwd }) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tessera ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a cluster (2 workers x 1 slot by default) and waits until every worker is registered. */
export async function startCluster(opts: LocalClusterOptions = {}): Promise<TestCluster> {
  const cluster = new LocalCluster({ workers: 2, slots: 1, ...opts });
  await cluster.start();
  return Object.assign(cluster, {
    runCli: (args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) => runCli([...args, '--coordinator', cluster.address], o),
  });
}

/**
 * A worker (named `name`, 1 slot) in its own mount namespace, with an empty tmpfs mounted over
 * `folder`: it sees another file system at that path than the coordinator does. Needs root.
 * `stop()` kills it and waits for it.
 */
export function workerWithTmpfsOver(folder: string, coordinator: string, name: string): { stop(): Promise<void> } {
  const worker = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs "$0" && exec "$@"', folder, process.execPath, CLI_PATH, 'worker', '--coordinator', coordinator, '--name', name, '--slots', '1'], {
    env: { ...process.env, TESSERA_LOG_LEVEL: 'error' },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  return {
    async stop() {
      worker.kill('SIGKILL');
      await exited;
    },
  };
}
