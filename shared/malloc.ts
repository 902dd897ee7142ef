/**
 * glibc malloc settings for the processes that move bulk bytes (coordinator, workers, clients).
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
