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
/**
 * The protocol's messages a client writes or reads by name: each kind's params (as `submit` takes
 * them in `JobSpec`), and the parts of a job (`Job`'s subtasks, errors, warnings and states).
 */
export type { ImageParams, VideoParams, ThumbnailParams, AudioParams, Trim, WithNumbers } from './client.js';
export type { PassthroughParams } from '../shared/proto/generated/tessera/v1/PassthroughParams.js';
export type { Crop } from '../shared/proto/generated/tessera/v1/Crop.js';
export type { JobState__Output as JobState } from '../shared/proto/generated/tessera/v1/JobState.js';
export type { SubtaskState__Output as SubtaskState } from '../shared/proto/generated/tessera/v1/SubtaskState.js';
export type { SubtaskInfo__Output as SubtaskInfo } from '../shared/proto/generated/tessera/v1/SubtaskInfo.js';
export type { ItemError__Output as ItemError } from '../shared/proto/generated/tessera/v1/ItemError.js';
export type { ItemWarning__Output as ItemWarning } from '../shared/proto/generated/tessera/v1/ItemWarning.js';
/** Keepalive settings (`ClientOptions.keepalive`). */
export type { Keepalive } from '../shared/config.js';
