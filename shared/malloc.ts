/**
 * Memory settings for the processes that move bulk bytes (coordinator, workers, clients): glibc
 * malloc's thresholds, and V8's heap growing factor ({@link useBulkHeapGrowth}).
 *
 * Every MiB a hop moves is allocated four or five times as 1 MiB blocks: the file read, the
 * protobuf encoding, the gRPC frame, the receiver's reassembly. glibc serves blocks above its
 * (dynamic) mmap threshold with fresh mmap'd pages and returns the top of the heap past its trim
 * threshold, so nearly every block is page-faulted and zeroed by the kernel inside the first
 * memcpy into it, then unmapped after the next GC: in profiles the copies outweighed everything
 * else. Fixed thresholds keep such blocks in the heap for reuse. Measured here: a bare grpc-js hop
 * 5.1-7.5 -> 3.4-3.9 ms of CPU per MiB; a 512 MiB passthrough job end to end 36-41 -> 43-48 MiB/s.
 * Peak memory is unchanged (the same blocks are live at once); up to 128 MiB of freed heap may be
 * kept instead of returned. Processor children do not get them (libvips allocates differently).
 *
 * glibc reads these from the environment when the process starts: the `tessera` command sets them
 * in its `#!` line (run `node dist/client/cli.js` to choose others), LocalCluster for the processes
 * it starts unless the environment has its own, the Docker image in its environment.
 */
import v8 from 'node:v8';

export const BULK_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(128 * 1024 * 1024),
};

/** `env` without the bulk-byte settings where they are ours (for children that should not have them). */
export function withoutBulkMalloc(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [k, v] of Object.entries(BULK_MALLOC_ENV)) if (out[k] === v) delete out[k];
  return out;
}

/**
 * V8's heap growing factor for the processes that move bulk bytes, fixed at 4 (`--heap-growing-percent=300`).
 *
 * Those 1 MiB blocks are external memory to V8, and V8 counts external memory towards the limit
 * that starts a full (mark-compact) collection. With a heap of ~14 MB live, a coordinator moving
 * 512 MiB ran 140 of them (nearly one per 3.6 MiB moved, 0.85 s of pauses plus the marking) and a
 * worker 40-80, while the blocks themselves die young and go with the scavenges. With the limit at
 * 4x the live size: 22-28 and 15-18, and a 512 MiB passthrough job 46-48 -> 53-57 MiB/s; peak RSS
 * coordinator 193 -> 204 MiB, worker 161 -> 186 MiB. A heap with much live state (many large
 * jobs) may now grow to 4x that state before a full collection.
 *
 * Set at run time by the `tessera` command for itself; a `--heap-growing-percent` given to node
 * explicitly wins. Not for libraries or other programs (TesseraClient does not set it).
 */
export function useBulkHeapGrowth(): void {
  if ([...process.execArgv, process.env['NODE_OPTIONS'] ?? ''].some((a) => a.includes('heap-growing-percent'))) return;
  v8.setFlagsFromString('--heap-growing-percent=300');
}
