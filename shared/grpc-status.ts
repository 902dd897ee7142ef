/**
 * gRPC's status codes, without loading grpc-js.
 *
 * Every module that names a status code used to import `status` from `@grpc/grpc-js`, and loading
 * grpc-js costs a process about 70 ms of CPU. A worker's processor children (worker/isolation.ts)
 * never speak gRPC, yet paid it for the codes alone, on every start. The codes are gRPC's own,
 * fixed by its specification; `test/grpc-status.test.ts` checks them against grpc-js's enum,
 * reverse mapping included.
 */
import type * as grpc from '@grpc/grpc-js';

const CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

function codes(): typeof grpc.status {
  const table: Record<string | number, string | number> = {};
  CODES.forEach((name, code) => {
    table[name] = code;
    table[code] = name;
  });
  return Object.freeze(table) as unknown as typeof grpc.status;
}

/** The same values as grpc-js's `status` enum, names to numbers and numbers to names. */
export const status = codes();
export type status = grpc.status;
