/**
 * A client stream cut off by its peer (a worker killed while it sends a result, a client while it
 * uploads) is an expected fault: the coordinator logs it as a warning, not as an "internal error"
 * with a stack at error level, once per cut upload (review L).
 */
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { afterEach, expect, it } from 'vitest';
import { clientStream } from './grpc-handlers.js';
import type { Logger } from './logger.js';

const identity = { path: '/t.T/Up', requestStream: true, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };

let server: grpc.Server | undefined;
afterEach(() => server?.forceShutdown());

it('a peer killed mid-stream is a warning, not an internal error', async () => {
  const lines: Array<{ level: string; msg: string }> = [];
  const record = (level: string) => (a: unknown, b?: unknown): void => void lines.push({ level, msg: String(typeof a === 'string' ? a : b) });
  const log = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') } as unknown as Logger;
  let received = 0;
  const ended = new Promise<void>((resolve) => {
    server = new grpc.Server();
    server.addService({ Up: identity } as grpc.ServiceDefinition, {
      Up: clientStream<Buffer, Buffer>(log, async (messages) => {
        try {
          for await (const m of messages) received += m.length;
          return Buffer.alloc(0);
        } finally {
          setTimeout(resolve, 200);
        }
      }),
    });
  });
  const port = await new Promise<number>((resolve, reject) => server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  // Another process streams to it, and is killed outright half-way (SIGKILL: no cancel is sent).
  const script = `
    const grpc = require('@grpc/grpc-js');
    const c = new grpc.Client('127.0.0.1:${port}', grpc.credentials.createInsecure());
    const call = c.makeClientStreamRequest('/t.T/Up', (b) => b, (b) => b, () => {});
    const chunk = Buffer.alloc(64 * 1024, 1);
    const send = () => { while (call.write(chunk)); };
    call.on('drain', send); send();
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore', cwd: process.cwd() });
  await expect.poll(() => received, { timeout: 10_000 }).toBeGreaterThan(1 << 20);
  child.kill('SIGKILL');
  await ended;
  expect(lines.filter((l) => l.level === 'error'), JSON.stringify(lines)).toEqual([]);
  // The handler sees the cut as an error (then a warning) or as the stream's end (then nothing),
  // as the kill lands: never as an internal error.
  for (const w of lines.filter((l) => l.level === 'warn')) expect(w.msg).toMatch(/cut off by its peer/);
});
