/**
 * A browser opening a job that ended gets its subtasks read back from the store a page per
 * event-loop turn: read at once, a job of 100,000 held the coordinator 0.7 s (every heartbeat and
 * call waited). The first page replaces the mosaic, the others add to it, every subtask once;
 * `GET /api/jobs/ID` writes its list the same way.
 */
import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ workers: 2, slots: 16 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

it('sends an ended job of 25,000 subtasks as pages: the first full, the rest added, every subtask once', async () => {
  const job = await cluster.client.wait((await cluster.client.submit({ passthrough: { subtasks: 25_000, work_ms: 0 } }, [])).id);
  expect(job.state).toBe('JOB_STATE_SUCCEEDED');
  const frames: Array<{ full: boolean; ids: string[] }> = [];
  await new Promise<void>((resolve, reject) => {
    const req = http.get(`http://${cluster.httpAddress}/events?job=${job.id}`, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          if (!block.startsWith('event: subtasks')) continue;
          const data = JSON.parse(block.slice(block.indexOf('data: ') + 6)) as { full: boolean; subtasks: { id: string }[] };
          frames.push({ full: data.full, ids: data.subtasks.map((s) => s.id) });
          if (frames.reduce((n, f) => n + f.ids.length, 0) >= 25_000) {
            req.destroy();
            resolve();
          }
        }
      });
    });
    req.on('error', (err) => (frames.length > 0 ? undefined : reject(err)));
  });
  expect(frames.map((f) => [f.full, f.ids.length])).toEqual([
    [true, 10_000],
    [false, 10_000],
    [false, 5_000],
  ]);
  expect(new Set(frames.flatMap((f) => f.ids)).size).toBe(25_000);
  // GET /api/jobs/ID writes the same list a page per turn: one JSON document all the same.
  const body = (await (await fetch(`http://${cluster.httpAddress}/api/jobs/${job.id}`)).json()) as { id: string; subtaskList: { id: string }[] };
  expect(body.id).toBe(job.id);
  expect(new Set(body.subtaskList.map((st) => st.id)).size).toBe(25_000);
}, 60_000);
