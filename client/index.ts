/** Public API of the client library. */
export {
  TesseraClient,
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
  type OutputInfo,
  type SubmitOptions,
  type UploadProgress,
  type WatchOptions,
  type WorkerInfo,
} from './client.js';
export { LocalCluster, type LocalClusterOptions, type ManagedProcess } from './local-cluster.js';
