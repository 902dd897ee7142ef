/**
 * The transport row's `rssMiB.client` is recorded as "peak RSS of every process" (issue 8). It was
 * the bench process's peak since it started: in `npm run bench` the scenarios run one after another
 * in that one process, so the client figure of `transport` was whatever an earlier scenario (or the
 * row before) peaked at, not what the client of this job held. Each row now starts it afresh.
 */
import { describe, expect, it } from 'vitest';
import { runScenarios, type MultiBenchScenario } from '../../bench/harness.js';
import { transportScenario } from '../../bench/scenarios/transport.js';

const HOG_MIB = 600;

/** A scenario before transport that briefly holds a lot of memory, as the scheduler rows' client does. */
const hog: MultiBenchScenario = {
  name: 'hog',
  description: 'holds memory for a moment',
  command: 'npm run bench -- hog',
  async run() {
    let b: Buffer | undefined = Buffer.alloc(HOG_MIB * 1024 * 1024, 1);
    const touched = b[b.length - 1];
    b = undefined;
    return { scenario: 'hog', inputs: String(touched), baseline: { label: 'b', seconds: 1 }, tessera: { label: 't', seconds: 1 }, ratio: 1, ratioMeaning: 'n/a', target: { value: 1, better: 'higher' } };
  },
};

describe('bench transport: the figures and checks it records', () => {
  it("records the client's peak RSS during its own job, not the bench process's lifetime peak", async () => {
    const report = await runScenarios([hog, transportScenario], { smoke: true, log: () => undefined });
    const rows = report.outcomes.filter((o) => o.name.startsWith('transport'));
    expect(rows.map((o) => o.error)).toEqual([undefined, undefined]);
    // The smoke job moves 20 MiB (5 MiB for the remote row): its client holds far less than the hog did.
    for (const o of rows) expect(o.result!.tessera.peakRssMiB!['client'], o.name).toBeLessThan(HOG_MIB);
    // The checks are named for what each row did: transport-remote recorded readInPlace and
    // writtenInPlace true while its worker fetched and uploaded every byte (4 gRPC hops).
    const [local, remote] = [rows.find((o) => o.name === 'transport')!, rows.find((o) => o.name === 'transport-remote')!];
    expect(remote.result!.tessera.figures!['grpcHops']).toBe(4);
    expect(Object.keys(remote.result!.checks!)).not.toContain('readInPlace');
    expect(remote.result!.checks).toMatchObject({ fetchedOverGrpc: true, uploadedOverGrpc: true });
    expect(local.result!.checks).toMatchObject({ readInPlace: true, writtenInPlace: true });
  }, 60_000);
});
