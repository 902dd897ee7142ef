/**
 * The coordinator's observability in one call: per-subtask structured logs always, and the HTTP
 * server (dashboard, /metrics, /healthz) when an address is given.
 */
import type { Logger } from '../../shared/logger.js';
import type { JobManager } from '../job-manager.js';
import type { DashboardAccess } from '../auth.js';
import { CoordinatorHttpServer } from './server.js';
import { SubtaskLogger } from './subtask-log.js';

export { CoordinatorHttpServer } from './server.js';

/** What `startObservability` started. */
export interface Observability {
  /** Bound HTTP address ('' when the HTTP server is off). */
  httpAddress: string;
  close(): Promise<void>;
}

/** `http`: host:port, or '' / 'off' for no HTTP server. */
export async function startObservability(o: { http: string | undefined; hosts?: readonly string[] | undefined; manager: JobManager; log: Logger; serving: () => boolean; dashboardAccess?: ((token: string, peer: string) => DashboardAccess) | undefined }): Promise<Observability> {
  const subtaskLog = new SubtaskLogger(o.manager, o.log);
  const enabled = o.http !== undefined && o.http !== '' && o.http !== 'off';
  const server = enabled ? new CoordinatorHttpServer({ listen: o.http!, manager: o.manager, log: o.log, serving: o.serving, ...(o.hosts ? { hosts: o.hosts } : {}), ...(o.dashboardAccess ? { dashboardAccess: o.dashboardAccess } : {}) }) : undefined;
  try {
    await server?.start();
  } catch (err) {
    subtaskLog.close();
    await server?.close();
    throw err;
  }
  if (server) o.log.info({ address: server.address }, 'dashboard and metrics listening');
  return {
    httpAddress: server?.address ?? '',
    async close() {
      subtaskLog.close();
      await server?.close();
    },
  };
}
