/** Public API of the client library. */
export { TesseraClient, TERMINAL_STATES, type ClientOptions, type Job, type JobEvent, type JobSpec, type UploadProgress, type WorkerInfo } from './client.js';
export { LocalCluster, type LocalClusterOptions } from './local-cluster.js';
