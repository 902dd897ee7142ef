/** A coordinator process without the capabilities that let root read and write anything (tests run as root). */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI_PATH } from './cluster.js';

/**
 * Starts `tessera coordinator ARGS` (with `--listen 127.0.0.1:0`) under `setpriv` without
 * CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that file modes hold for it as for any user;
 * resolves with the process and its address once it listens.
 */
export async function startUnprivilegedCoordinator(args: string[]): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn('setpriv', ['--bounding-set', '-dac_override,-dac_read_search', process.execPath, CLI_PATH, 'coordinator', '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the coordinator did not start')), 20_000);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /listening on (\S+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.resume();
    child.once('exit', (code) => reject(new Error(`coordinator exited with ${code}`)));
  });
  return { child, address };
}

/** Stops a coordinator {@link startUnprivilegedCoordinator} started. */
export async function stopCoordinator(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
