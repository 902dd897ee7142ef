/** Public API of the client library. */
export {
  TesseraClient,
  type CallOptions,
  TesseraError,
  TERMINAL_STATES,
  checkInputFiles,
  checkJobSpec,
  partName,
  type ClientOptions,
  type DownloadOptions,
  type Job,
  type JobEvent,
  type JobSpec,
  type LeftBehind,
  type OutputInfo,
  type SubmitOptions,
  type UploadProgress,
  type WatchOptions,
  type WorkerInfo,
} from './client.js';
/** The gRPC status codes every rejection's `code` is one of. */
export { status } from '@grpc/grpc-js';
/** The type of the coordinator's refusals (grpc-js's, with the input a refusal is about). */
export type { ServiceError } from './client.js';
export { LocalCluster, type LocalClusterOptions, type ManagedProcess } from './local-cluster.js';
/** Keepalive settings (`ClientOptions.keepalive`). */
export type { Keepalive } from '../shared/config.js';
