import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { ProtoGrpcType as JobsProto } from './proto/generated/jobs.js';
import type { ProtoGrpcType as WorkerProto } from './proto/generated/worker.js';
import { passEncoded } from './encoded-chunks.js';
import { compileDecoder, compileEncoder, withFallback } from './proto-encoder.js';

/**
 * Options for @grpc/proto-loader. They MUST match the flags of the `gen` script in package.json
 * (`--keepCase --longs=String --enums=String --defaults --oneofs`), or the generated types lie.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const PROTO_FILES = ['tessera/v1/jobs.proto', 'tessera/v1/worker.proto', 'tessera/v1/params.proto'];

/** The one place where the loaded package is cast to the generated root type. */
export type TesseraProto = JobsProto & WorkerProto;

let cached: { packageDefinition: protoLoader.PackageDefinition; proto: TesseraProto } | undefined;

export function loadTesseraProto(): { packageDefinition: protoLoader.PackageDefinition; proto: TesseraProto } {
  if (!cached) {
    const packageDefinition = protoLoader.loadSync(PROTO_FILES, { ...PROTO_LOADER_OPTIONS, includeDirs: [resolveProtoDir()] });
    const proto = grpc.loadPackageDefinition(packageDefinition) as unknown as TesseraProto;
    cached = { packageDefinition, proto };
  }
  return cached;
}

let root: protobuf.Root | undefined;

/**
 * The same messages as a protobufjs Root, loaded from the same files with the same options as
 * proto-loader loads them, for the compiled codecs (shared/proto-encoder.ts).
 */
export function loadTesseraRoot(): protobuf.Root {
  if (!root) {
    const dir = resolveProtoDir();
    const loaded = new protobuf.Root();
    loaded.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
    loaded.loadSync(PROTO_FILES, { keepCase: true, alternateCommentMode: true });
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

/** The number of field `field` of message `typeName` (e.g. `tessera.v1.OutputChunk`, `data`), as the proto files give it. */
export function fieldNumber(typeName: string, field: string): number {
  const f = loadTesseraRoot().lookupType(typeName).fields[field];
  if (!f) throw new Error(`${typeName} has no field ${field}`);
  return f.id;
}

/**
 * JobService as clients call it: as loaded, except that watched events are read by a compiled
 * decoder (shared/proto-encoder.ts), which gives the same objects as proto-loader's at a fraction
 * of its cost (a client watching 200 jobs of 100 no-op subtasks spent a quarter of its CPU in
 * protobufjs's decode and toObject), and that uploads send their bytes already encoded
 * (shared/encoded-chunks.ts).
 */
export function jobServiceClientDefinition(): grpc.ServiceDefinition {
  const service = loadTesseraProto().proto.tessera.v1.JobService.service;
  return {
    ...service,
    SubmitJob: { ...service.SubmitJob, requestSerialize: passEncoded(service.SubmitJob.requestSerialize) },
    WatchJob: { ...service.WatchJob, responseDeserialize: compileDecoder(loadTesseraRoot(), 'tessera.v1.JobEvent') },
  };
}

let jobServiceClient: TesseraProto['tessera']['v1']['JobService'] | undefined;

/** The client constructor for {@link jobServiceClientDefinition}, typed as the generated one. */
export function jobServiceClientConstructor(): TesseraProto['tessera']['v1']['JobService'] {
  return (jobServiceClient ??= grpc.makeClientConstructor(jobServiceClientDefinition(), 'tessera.v1.JobService') as unknown as TesseraProto['tessera']['v1']['JobService']);
}

let workerServiceClient: TesseraProto['tessera']['v1']['WorkerService'] | undefined;

/**
 * The client constructor workers connect with: the control stream's messages (`Connect`: results
 * one way, assignments the other, thousands a second with small subtasks) are encoded and decoded by
 * compiled codecs, as the coordinator's end does (coordinator/worker-service.ts); a result the
 * compiled encoder refuses goes out through protobufjs. Outputs are uploaded already encoded
 * (shared/encoded-chunks.ts).
 */
export function workerServiceClientConstructor(): TesseraProto['tessera']['v1']['WorkerService'] {
  if (!workerServiceClient) {
    const service = loadTesseraProto().proto.tessera.v1.WorkerService.service;
    const connect = service.Connect;
    const root = loadTesseraRoot();
    const definition = {
      ...service,
      Connect: {
        ...connect,
        requestSerialize: withFallback(compileEncoder(root, 'tessera.v1.WorkerMessage'), connect.requestSerialize),
        responseDeserialize: compileDecoder(root, 'tessera.v1.CoordinatorMessage'),
      },
      UploadTaskOutput: { ...service.UploadTaskOutput, requestSerialize: passEncoded(service.UploadTaskOutput.requestSerialize) },
    };
    workerServiceClient = grpc.makeClientConstructor(definition, 'tessera.v1.WorkerService') as unknown as TesseraProto['tessera']['v1']['WorkerService'];
  }
  return workerServiceClient;
}

/** Directory holding `tessera/v1/*.proto`. */
export function resolveProtoDir(): string {
  // Compiled code lives in dist/shared, sources in shared/: the proto folder is at the package root.
  // Built (.js, in dist/shared/) or run from the sources (.ts): told by the module itself, not by a
  // `/dist/` in the path (Windows' paths have `\dist\`, and a checkout may lie under a folder named dist).
  const root = import.meta.url.endsWith('.ts') ? new URL('../', import.meta.url) : new URL('../../', import.meta.url);
  return fileURLToPath(new URL('proto', root));
}
