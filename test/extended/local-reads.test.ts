/**
 * Workers on the coordinator's machine read the spool's files in place (coordinator/spool.ts,
 * `localFile`): uploaded inputs and the files the coordinator makes for subtasks (a video's
 * chunks) reach them without a FetchTaskInput stream. They also write their outputs into the
 * spool themselves (`localSubtasksDir`) instead of uploading them. A worker that does not see the
 * data dir (another machine; here its own mount namespace) is streamed the bytes and uploads its
 * outputs as before, and so is every worker of a coordinator started with `--no-local-reads`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheck, probeVideoIndex } from '../../shared/media/probe.js';
import { sharedOutputTemp } from '../../shared/shared-output.js';
import { makeVideo } from '../helpers/media.js';
import { runCli, startCluster, workerWithTmpfsOver, type TestCluster } from '../helpers/cluster.js';
import { byHandWorker } from '../helpers/raw-grpc.js';
import { cleanEnv } from '../helpers/process-logs.js';

let dir: string;
const clusters: TestCluster[] = [];

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

/** Bytes of subtask inputs the coordinator has streamed to workers. */
const served = (cluster: TestCluster): Promise<number> => cluster.metric('tessera_task_input_bytes_served_total');
/** Bytes of subtask outputs workers uploaded, and wrote into the spool themselves. */
const received = (cluster: TestCluster): Promise<number> => cluster.metric('tessera_task_output_bytes_received_total');
const inPlace = (cluster: TestCluster): Promise<number> => cluster.metric('tessera_task_output_bytes_in_place_total');

async function cluster(opts: Parameters<typeof startCluster>[0]): Promise<TestCluster> {
  const c = await startCluster(opts);
  clusters.push(c);
  return c;
}

/** Submits `file` as a passthrough job and checks the output is the same bytes; returns the bytes streamed and written in place meanwhile. */
async function passthrough(c: TestCluster, file: string, out: string): Promise<{ served: number; received: number; inPlace: number; worker: string }> {
  const before = await Promise.all([served(c), received(c), inPlace(c)]);
  const job = await c.client.submit({ passthrough: {} }, [file]);
  const done = await c.client.wait(job.id);
  expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
  const written = await c.client.download(job.id, path.join(dir, out));
  expect(await sha(written.get(path.basename(file))!)).toBe(await sha(file));
  const after = await Promise.all([served(c), received(c), inPlace(c)]);
  return { served: after[0] - before[0], received: after[1] - before[1], inPlace: after[2] - before[2], worker: done.subtasks[0]!.worker };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-local-reads-'));
});

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe('workers read and write the spool in place on the coordinator machine', () => {
  it('an uploaded input and the chunks the coordinator cuts from a video reach the workers without a byte streamed, and their outputs come back without an upload', async () => {
    const c = await cluster({ workers: 2 });
    const blob = path.join(dir, 'blob.bin');
    await writeFile(blob, randomBytes(3 * 1024 * 1024 + 17));
    expect(await passthrough(c, blob, 'out-blob')).toMatchObject({ served: 0, received: 0, inPlace: 3 * 1024 * 1024 + 17 });

    const src = await makeVideo(dir, 'clip.mkv', { duration: 3, gop: 12, audioChannels: 2 });
    const before = await Promise.all([served(c), received(c), inPlace(c)]);
    const job = await c.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, container: 'mp4' } }, [src]);
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks.filter((s) => s.label.includes('segment')).length).toBeGreaterThanOrEqual(3);
    expect((await served(c)) - before[0]).toBe(0);
    // The encoded chunks the coordinator stitches were written into the spool by the workers.
    expect((await received(c)) - before[1]).toBe(0);
    expect((await inPlace(c)) - before[2]).toBeGreaterThan(0);
    const out = [...(await c.client.download(job.id, path.join(dir, 'out-video'))).values()][0]!;
    const [srcIndex, decoded] = await Promise.all([probeVideoIndex(src), decodeCheck(out)]);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(srcIndex.frameTimes.length);
  });

  it('with --no-local-reads every input is streamed to the worker and every output uploaded', async () => {
    const c = await cluster({ workers: 1, coordinatorArgs: ['--no-local-reads'] });
    const blob = path.join(dir, 'streamed.bin');
    await writeFile(blob, randomBytes(2 * 1024 * 1024 + 5));
    expect(await passthrough(c, blob, 'out-streamed')).toMatchObject({ served: 2 * 1024 * 1024 + 5, received: 2 * 1024 * 1024 + 5, inPlace: 0 });
  });

  it('is turned off by --no-local-reads, TESSERA_LOCAL_READS=false (or TESSERA_NO_LOCAL_READS=1) or local-reads: false (or no-local-reads: true) in a config file', async () => {
    const config = path.join(dir, 'no-local-reads.yaml');
    await writeFile(config, 'local-reads: false\n');
    const localReads = async (args: string[], env: Record<string, string> = {}): Promise<unknown> => {
      const r = await runCli(['coordinator', '--data-dir', path.join(dir, 'settings'), ...args, '--print-config'], { env: { ...cleanEnv(), ...env } });
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { options: { localReads: unknown } }).options.localReads;
    };
    expect(await localReads([])).toBe(true);
    expect(await localReads(['--no-local-reads'])).toBe(false);
    expect(await localReads([], { TESSERA_LOCAL_READS: 'false' })).toBe(false);
    expect(await localReads([], { TESSERA_LOCAL_READS: '0' })).toBe(false);
    expect(await localReads([], { TESSERA_LOCAL_READS: 'true' })).toBe(true);
    expect(await localReads(['--config', config])).toBe(false);
    // As the flag is spelt, too: TESSERA_NO_LOCAL_READS, no-local-reads (both set, they must agree:
    // test/extended/config-edges.test.ts).
    expect(await localReads([], { TESSERA_NO_LOCAL_READS: '1' })).toBe(false);
    expect(await localReads([], { TESSERA_NO_LOCAL_READS: 'false' })).toBe(true);
    expect(await localReads([], { TESSERA_NO_LOCAL_READS: 'false', TESSERA_LOCAL_READS: 'true' })).toBe(true);
    const spelt = path.join(dir, 'spelt.yaml');
    await writeFile(spelt, 'no-local-reads: true\n');
    expect(await localReads(['--config', spelt])).toBe(false);
    // And in camelCase, as every key may be written (it was refused as an unknown option).
    await writeFile(spelt, 'noLocalReads: true\n');
    expect(await localReads(['--config', spelt])).toBe(false);
    // A switch in a config file takes true or false, not a string that would read as on.
    const quoted = path.join(dir, 'quoted.yaml');
    await writeFile(quoted, 'local-reads: "false"\n');
    const r = await runCli(['coordinator', '--data-dir', path.join(dir, 'settings'), '--config', quoted, '--print-config'], { env: cleanEnv() });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`tessera: config file ${quoted}, key "local-reads": expected true or false`);
  });

  it("takes an output from the spool only as a file of the worker's own, and removes a refused one", async () => {
    const c = await cluster({ workers: 0 });
    const bytes = randomBytes(5000);
    const input = path.join(dir, 'by-hand.bin');
    await writeFile(input, bytes);
    // A file the worker must not hand over as its output: a hard link to it has another name.
    const victim = path.join(dir, 'victim.bin');
    await writeFile(victim, bytes);
    const worker = byHandWorker(c.address, async (a) => {
      const temp = sharedOutputTemp(a.shared_output_dir, a.job_id, a.subtask_id, a.shared_output_token, 'by-hand.bin');
      if (a.attempt === 1) await link(victim, temp);
      else await writeFile(temp, bytes);
      const ref = { name: 'by-hand.bin', size: String(bytes.length), sha256: createHash('sha256').update(bytes).digest('hex'), source: 'by-hand.bin', shared_path: temp };
      return { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, item_errors: [], result_json: '', duration_ms: '1', outputs: [ref] };
    });
    try {
      await c.waitForWorkers(1);
      const before = await inPlace(c);
      const job = await c.client.submit({ passthrough: {} }, [input]);
      const events: string[] = [];
      const done = await c.client.wait(job.id, (e) => events.push(JSON.stringify(e)));
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      // Both attempts were given the job's folder in the spool; the first one's link was refused and removed.
      expect(worker.seen.map((a) => a.attempt)).toEqual([1, 2]);
      expect(worker.seen[0]!.shared_output_dir).toBe(path.join(await realpath(c.dataDir), 'spool', 'jobs', job.id, 'st'));
      expect(events.some((e) => e.includes('has other names'))).toBe(true);
      expect((await stat(victim)).nlink).toBe(1);
      expect(await sha(victim)).toBe(await sha(input));
      expect((await inPlace(c)) - before).toBe(bytes.length);
      const out = await c.client.download(job.id, path.join(dir, 'out-by-hand'));
      expect(await sha(out.get('by-hand.bin')!)).toBe(await sha(input));
    } finally {
      worker.stop();
    }
  });

  it('an uploaded input handed back unchanged is linked into the spool, not copied: the output is the file the coordinator received', async () => {
    const c = await cluster({ workers: 1 });
    const blob = path.join(dir, 'handed-back.bin');
    await writeFile(blob, randomBytes(2 * 1024 * 1024 + 11));
    // The subtask sleeps a little: time to keep a name for the spooled input, which goes when the job ends.
    const job = await c.client.submit({ passthrough: { work_ms: 1500 } }, [blob]);
    const jobDir = path.join(c.dataDir, 'spool', 'jobs', job.id);
    const held = path.join(c.dataDir, 'held-input.bin');
    await link(path.join(jobDir, 'in', 'handed-back.bin'), held);
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    // The published output, wherever the spool keeps it, is that inode: nothing was copied.
    const input = await stat(held);
    // (The job's end removes its inputs and its workers' folders meanwhile.)
    const names = (await entriesUnder(jobDir)).filter((n) => n !== 'in' && !n.startsWith(`in${path.sep}`));
    const same = [];
    for (const n of names) if ((await stat(path.join(jobDir, n)).catch(() => undefined))?.ino === input.ino) same.push(n);
    expect(same).toEqual([path.join('out', 'handed-back.bin')]);
    expect(done.outputs[0]!.sha256).toBe(await sha(blob));
    const got = await c.client.download(job.id, path.join(dir, 'out-handed-back'));
    expect(await sha(got.get('handed-back.bin')!)).toBe(await sha(blob));
  });

  it("takes a link only to the subtask's own spooled input, with that input's checksum", async () => {
    const c = await cluster({ workers: 0 });
    const files = ['first.bin', 'second.bin'].map((n) => path.join(dir, n));
    for (const f of files) await writeFile(f, randomBytes(4096));
    // Attempt 1 of the first file's subtask links the other subtask's input; attempt 2 links its
    // own but claims another checksum; attempt 3 (and the second file's) links its own, as a worker does.
    const worker = byHandWorker(c.address, async (a) => {
      const mine = a.inputs[0]!;
      // The other file's spooled input lies beside this one (the second subtask's, uploaded with it).
      const other = path.join(path.dirname(mine.shared_path), 'second.bin');
      const temp = sharedOutputTemp(a.shared_output_dir, a.job_id, a.subtask_id, a.shared_output_token, mine.name);
      const lie = mine.name === 'first.bin' && a.attempt === 2;
      await link(mine.name === 'first.bin' && a.attempt === 1 ? other : mine.shared_path, temp);
      const ref = { name: mine.name, size: mine.size, sha256: lie ? createHash('sha256').update('something else').digest('hex') : mine.sha256, source: mine.name, shared_path: temp };
      return { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, item_errors: [], result_json: '', duration_ms: '1', outputs: [ref] };
    });
    try {
      await c.waitForWorkers(1);
      const job = await c.client.submit({ passthrough: {} }, files);
      const events: string[] = [];
      const done = await c.client.wait(job.id, (e) => events.push(JSON.stringify(e)));
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      // Every input offered in place was marked as the spool's.
      const spool = path.join(await realpath(c.dataDir), 'spool') + path.sep;
      for (const i of worker.seen.flatMap((a) => a.inputs)) expect({ spooled: i.spooled, inSpool: i.shared_path.startsWith(spool) }).toEqual({ spooled: true, inSpool: true });
      expect(worker.seen.filter((a) => a.inputs[0]!.name === 'first.bin').map((a) => a.attempt)).toEqual([1, 2, 3]);
      // Attempts 1 and 2 refused, each for its own file (an event names each more than once).
      const refused = new Set(events.flatMap((e) => [...e.matchAll(/output first\.bin of subtask \S+ (\S+) has other names/g)].map((m) => m[1])));
      expect(refused.size).toBe(2);
      const got = await c.client.download(job.id, path.join(dir, 'out-linked'));
      for (const f of files) expect(await sha(got.get(path.basename(f))!)).toBe(await sha(f));
    } finally {
      worker.stop();
    }
  });

  it('a worker that does not see the data dir is streamed the bytes and uploads its outputs', async () => {
    const c = await cluster({ workers: 0 });
    // Its own mount namespace, with an empty tmpfs over the coordinator's data dir.
    const worker = workerWithTmpfsOver(c.dataDir, c.address, 'elsewhere');
    try {
      await c.waitForWorkers(1);
      const blob = path.join(dir, 'remote.bin');
      await writeFile(blob, randomBytes(1024 * 1024 + 3));
      expect(await passthrough(c, blob, 'out-remote')).toEqual({ served: 1024 * 1024 + 3, received: 1024 * 1024 + 3, inPlace: 0, worker: 'elsewhere' });
    } finally {
      await worker.stop();
    }
  });
});

/**
 * Every entry under `root`, as paths relative to it, leaving out the folders removed while it
 * walks (a recursive readdir fails outright on one).
 */
async function entriesUnder(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(path.join(root, rel), { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const out: string[] = [];
  for (const e of entries) {
    const name = path.join(rel, e.name);
    out.push(name);
    if (e.isDirectory()) out.push(...(await entriesUnder(root, name)));
  }
  return out;
}
