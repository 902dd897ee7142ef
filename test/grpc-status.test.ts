import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { status } from '../shared/grpc-status.js';

describe('gRPC status codes without grpc-js', () => {
  it('are grpc-js’s own, names to numbers and numbers to names', () => {
    expect({ ...status }).toEqual({ ...grpc.status });
    expect(status.INVALID_ARGUMENT).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status[grpc.status.DATA_LOSS]).toBe('DATA_LOSS');
  });

  it('spare a processor child loading grpc-js: its modules load without it', () => {
    // What a worker's processor child imports (worker/isolation.ts runs itself as the child), in a
    // fresh Node: grpc-js must not be among the CommonJS modules it loaded.
    const entry = fileURLToPath(new URL('../dist/worker/isolation.js', import.meta.url));
    const script = `import(${JSON.stringify(entry)}).then(() => { const loaded = Object.keys(require('node:module')._cache); console.log(JSON.stringify(loaded)); });`;
    const loaded = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as string[];
    expect(loaded.some((f) => f.includes('/sharp/'))).toBe(true);
    expect(loaded.filter((f) => f.includes('@grpc/grpc-js'))).toEqual([]);
  });
});
