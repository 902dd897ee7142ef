/**
 * Smoke run of the benchmark harness: every scenario (scheduler, transport, images, scale, and the
 * media ones: video, audio, tiles, thumbnails) in its tiny smoke version, through the same harness `npm run
 * bench` uses. No timing is asserted (the machine is shared); the results must be well-formed and
 * their checks must pass.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { formatTable, runScenarios, selectScenarios, type BenchReport } from '../bench/harness.js';
import { scenarios } from '../bench/scenarios/index.js';
import { maxPixelDiff } from '../bench/scenarios/tiles.js';
import type { BenchResult } from '../bench/types.js';

/** What every outcome of a smoke run must hold, whatever its scenario. */
function expectWellFormed(report: BenchReport): void {
  for (const o of report.outcomes) {
    expect(o.error, `${o.name}: ${o.error}`).toBeUndefined();
    const r = o.result!;
    expect(r.scenario).toBe(o.name);
    // A smoke run is reproduced as one.
    expect(o.command).toMatch(/^npm run bench -- \S+ --smoke$/);
    expect(r.inputs.length).toBeGreaterThan(0);
    for (const side of [r.baseline, r.tessera]) {
      expect(side.label.length).toBeGreaterThan(0);
      expect(Number.isFinite(side.seconds) && side.seconds > 0).toBe(true);
    }
    expect(Number.isFinite(r.ratio) && r.ratio > 0, `${o.name}: ratio ${r.ratio}`).toBe(true);
    expect(['lower', 'higher']).toContain(r.target.better);
    expect(Object.keys(r.checks ?? {}).length).toBeGreaterThan(0);
    expect(o.failedChecks, `${o.name} checks`).toEqual([]);
  }
  const table = formatTable(report);
  for (const o of report.outcomes) expect(table).toContain(`| ${o.name} |`);
}

const SMOKED = ['scheduler', 'transport', 'images', 'scale'];

describe('bench harness (smoke)', () => {
  it('runs the scheduler, transport, images and scale scenarios with their baselines and records well-formed results', async () => {
    const selected = selectScenarios(scenarios, SMOKED);
    expect(selected.map((s) => s.name)).toEqual(['scheduler', 'transport', 'images', 'scale']);
    const lines: string[] = [];
    const report = await runScenarios(selected, { smoke: true, log: (l) => lines.push(l) });
    // scheduler, transport and scale record two rows each, images three (one set-up or baseline, several measurements).
    expect(report.outcomes.map((o) => o.name)).toEqual(['scheduler-1job', 'scheduler-200jobs', 'transport', 'transport-remote', 'images', 'images-download', 'images-upload', 'scale-heartbeats', 'scale-slots']);
    expectWellFormed(report);
    // Every cluster side records the coordinator's peak RSS, read from /proc.
    for (const o of report.outcomes) expect(o.result!.tessera.peakRssMiB?.['coordinator']).toBeGreaterThan(0);
    expect(report.hardware['cores']).toBeGreaterThan(0);
    // The JSON record round-trips.
    expect(JSON.parse(JSON.stringify(report)).outcomes).toHaveLength(report.outcomes.length);
  }, 120_000);

  it('runs the video, audio, tiles and thumbnails scenarios with their baselines and records well-formed results', async () => {
    const selected = selectScenarios(scenarios, ['video', 'audio', 'tiles', 'thumbnails']);
    const report = await runScenarios(selected, { smoke: true, log: () => undefined });
    expect(report.outcomes.map((o) => o.name)).toEqual(['video', 'audio', 'tiles', 'thumbnails']);
    expectWellFormed(report);
  }, 240_000);

  it('shows a ratio on the same side of its target as the met cell says (0.8996 against >= 0.9 is no "0.90 | NO")', async () => {
    for (const [ratio, value, better, shown] of [
      [0.8996, 0.9, 'higher', '0.8996'],
      [0.9496, 0.95, 'higher', '0.9496'],
      [9.996, 10, 'higher', '9.996'],
      [1.1004, 1.1, 'lower', '1.1004'],
      [0.913, 0.9, 'higher', '0.91'],
    ] as const) {
      const result: BenchResult = { scenario: 'row', inputs: 'made up', baseline: { label: 'base', seconds: 1 }, tessera: { label: 'cluster', seconds: 1 }, ratio, ratioMeaning: 'made up', target: { value, better } };
      const report = await runScenarios([{ name: 'row', description: 'd', command: 'npm run bench -- row', run: async () => result }], { smoke: false, log: () => undefined });
      const cells = formatTable(report).split('\n')[2]!.split('|').map((c) => c.trim());
      // Before, each of the first four printed the target itself ("0.90", "10.0") beside "NO".
      expect([cells[4], cells[6]], String(ratio)).toEqual([shown, (better === 'higher' ? ratio >= value : ratio <= value) ? 'yes' : 'NO']);
    }
  });

  it('selects scenarios by name or group prefix and rejects unknown names', () => {
    expect(selectScenarios(scenarios, ['transport']).map((s) => s.name)).toEqual(['transport']);
    expect(selectScenarios(scenarios, ['scale', 'scheduler']).map((s) => s.name)).toEqual(['scheduler', 'scale']);
    expect(() => selectScenarios(scenarios, ['nope'])).toThrow(/unknown scenario/);
  });

  it("tiles' pixel check finds the one pixel that differs, and refuses images of other sizes", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-pixdiff-'));
    try {
      // Tall enough that libvips hands the raw pixels over in many pieces, of other sizes on each side.
      const [w, h] = [301, 2400];
      const base = await sharp({ create: { width: w, height: h, channels: 3, background: '#406080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).raw().toBuffer();
      const write = (name: string, pixels: Buffer, width = w, height = h, format: 'png' | 'tiff' = 'png'): Promise<string> => {
        const file = path.join(dir, name);
        const img = sharp(pixels, { raw: { width, height, channels: 3 } });
        // Lossless both: sharp's TIFF is JPEG-compressed by default.
        return (format === 'png' ? img.png() : img.tiff({ compression: 'lzw' })).toFile(file).then(() => file);
      };
      const a = await write('a.png', base);
      const same = await write('same.tiff', base, w, h, 'tiff');
      const changed = Buffer.from(base);
      const at = ((h - 3) * w + 7) * 3 + 1;
      changed[at] = changed[at]! < 128 ? changed[at]! + 40 : changed[at]! - 40;
      const b = await write('b.png', changed);
      const small = await write('small.png', base.subarray(0, w * (h - 1) * 3), w, h - 1);
      expect(await maxPixelDiff(a, same)).toBe(0);
      expect(await maxPixelDiff(a, b)).toBe(40);
      expect(await maxPixelDiff(b, a)).toBe(40);
      expect(await maxPixelDiff(a, small)).toBe(Infinity);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
