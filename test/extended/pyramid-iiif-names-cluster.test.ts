/**
 * IIIF pyramids of one job on a real cluster (coordinator + a worker process, CLI): each output's
 * info.json `id` and folder are its own. The output names are unique, but the IIIF name is the
 * output's name with every character a URI path segment cannot hold made `_` (tile-stitch.ts
 * `iiifName`), and that mapping is not one-to-one.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { makeSource } from '../tiles-helpers.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-pyramid-iiif-names-'));
  cluster = await startCluster({ workers: 1, slots: 2 });
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('IIIF pyramids of one job', () => {
  it("'a b.png' and 'a_b.png' get distinct info.json ids and folders (unpacked under --iiif-id, neither overwrites the other)", async () => {
    const a = await makeSource(path.join(dir, 'a b.png'), 300, 200);
    const b = await makeSource(path.join(dir, 'a_b.png'), 320, 100);
    const out = path.join(dir, 'out');
    const r = await cluster.runCli(['submit', 'image', '--pyramid', 'iiif', '--iiif-id', 'https://img.example.org/iiif', a, b, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { outputs: { name: string; path: string }[] };
    // The second one's name is taken once its id is folded (a_b): it keeps its input's whole name.
    expect(job.outputs.map((o) => o.name).sort()).toEqual(['a b.zip', 'a_b.png.zip']);
    const ids: string[] = [];
    const folders: string[] = [];
    for (const o of job.outputs) {
      ids.push(/"id": "([^"]*)"/.exec((await readFile(o.path)).toString('latin1'))![1]!);
      const listing = execFileSync('/usr/bin/python3', ['-c', 'import sys, zipfile; print("\\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))', o.path]).toString();
      folders.push(listing.split('\n').find((f) => f.endsWith('/info.json'))!);
    }
    // Both were https://img.example.org/iiif/a_b with a_b/info.json: the second zip unpacked under
    // the base URI replaced the first's info.json and most of its tiles, and a viewer showed the
    // wrong image (or a mix of both) for "a b".
    expect(new Set(ids).size, ids.join(' ')).toBe(2);
    expect(new Set(folders).size, folders.join(' ')).toBe(2);
  });
});
