/**
 * A worker that the coordinator refuses for good (no token, an unknown token, a client's token)
 * says so at error level, with the coordinator's words and what to check, and keeps trying without
 * flooding the log: the first refusal is an error line, the same refusal again within the minute is
 * at debug. Real coordinator and worker processes; the worker's JSON logs are read from its stderr.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { LEVEL, logLinesUntil, type LogLine } from '../helpers/process-logs.js';

const WORKER_TOKEN = 'worker-token-0123456789abcdef';
const ALICE = 'alice-token-0123456789abcdef';

let cluster: TestCluster;

beforeAll(async () => {
  // One worker with the right token: the coordinator takes workers, just not the ones below.
  cluster = await startCluster({
    workers: 1,
    coordinatorArgs: ['--worker-token', WORKER_TOKEN, '--client-tokens', `alice:${ALICE}`],
    workerArgs: ['--worker-token', WORKER_TOKEN],
    clientOptions: { token: ALICE },
  });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

const refusals = (lines: LogLine[]): LogLine[] => lines.filter((l) => /refused this worker/.test(l.msg));

/** A worker's log lines until the coordinator has refused it twice. */
async function refusedTwice(extra: string[], env: NodeJS.ProcessEnv = {}): Promise<LogLine[]> {
  const lines = await logLinesUntil(['worker', '--coordinator', cluster.address, '--slots', '1', ...extra], (l) => refusals(l).length >= 2, { env });
  return refusals(lines);
}

describe('a worker the coordinator refuses', () => {
  it.each([
    ['an unknown token', ['--worker-token', 'not-the-worker-token-0123'], {}, 'UNAUTHENTICATED: unknown worker token'],
    ['no token', [], {}, 'UNAUTHENTICATED: missing worker token (authorization: Bearer <token>)'],
    ["a client's token, from the environment", [], { TESSERA_WORKER_TOKEN: ALICE }, 'PERMISSION_DENIED: a client token cannot be used by a worker'],
  ])('with %s: one error line naming the refusal and the worker token settings, then retries at debug', async (_what, args, env, reason) => {
    const [first, second] = await refusedTwice(args, env);
    expect(first).toMatchObject({ level: LEVEL.error, reason });
    expect(first!['check']).toMatch(/--worker-token, --worker-token-file, TESSERA_WORKER_TOKEN/);
    expect(first!['retryInMs']).toEqual(expect.any(Number));
    // The same refusal again: still retried, not another error line.
    expect(second).toMatchObject({ level: LEVEL.debug, reason });
  });

  it('never logs the token it presents', async () => {
    const token = 'secret-looking-token-0123456789';
    const lines = await logLinesUntil(['worker', '--coordinator', cluster.address, '--slots', '1', '--worker-token', token], (l) => refusals(l).length >= 1);
    expect(JSON.stringify(lines)).not.toContain(token);
    expect(refusals(lines)[0]).toMatchObject({ level: LEVEL.error, reason: 'UNAUTHENTICATED: unknown worker token' });
  });

  it('for what it registers with (a label the coordinator does not take): an error line naming it and what to change, not a lost connection retried at debug', async () => {
    const { Worker } = await import('../../worker/worker.js');
    const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
    const record = (level: string) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, fields, msg });
    const log = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug'), trace: record('trace'), fatal: record('fatal'), child: () => log, level: 'debug' };
    // The CLI refuses such a label at start; a program making its own Worker is told by the coordinator.
    const worker = new Worker({ coordinator: cluster.address, slots: 1, memoryLimitMb: 0, name: 'labelled', token: WORKER_TOKEN, labels: { note: 'rack\t7' }, log: log as never });
    worker.start();
    try {
      await expect.poll(() => lines.find((l) => /refused this worker/.test(l.msg)), { timeout: 15_000, interval: 50 }).toBeDefined();
      const refused = lines.find((l) => /refused this worker/.test(l.msg))!;
      // Before: "disconnected from coordinator; reconnecting" once at warn, then every 5 s at debug, for ever.
      expect(refused).toMatchObject({ level: 'error', fields: { reason: 'INVALID_ARGUMENT: register: label note "rack\\t7" contains control characters', check: expect.stringMatching(/--name and --label/) } });
    } finally {
      await worker.close();
    }
  });
});
