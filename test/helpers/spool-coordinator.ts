/**
 * A coordinator in this process on 127.0.0.1:0 with a data dir of its own, for tests that look at
 * what it keeps in its spool; and the files under a folder. What it starts is pushed to `cleanups`.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TesseraClient } from '../../client/client.js';
import { Coordinator, type CoordinatorOptions } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';

const log = createLogger('test', 'silent', 'json');

export async function startSpoolCoordinator(cleanups: (() => Promise<void>)[], extra: Partial<CoordinatorOptions> = {}): Promise<{ dir: string; address: string; spoolJobs: string; coordinator: Coordinator; client: TesseraClient }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-spool-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', ...extra });
  const address = await coordinator.start();
  cleanups.push(() => coordinator.close());
  const client = new TesseraClient({ address });
  cleanups.push(async () => client.close());
  return { dir, address, spoolJobs: path.join(dir, 'data', 'spool', 'jobs'), coordinator, client };
}

/** Every file under `root` (relative paths, sorted); none when it does not exist. */
export async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))).sort();
}
