import { describe, expect, it } from 'vitest';
import { Channel } from '../../shared/channel.js';
import type { SpoolFile, SubtaskOutcome } from '../../shared/job-kind.js';
import { createLogger } from '../../shared/logger.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { validateImageParams } from '../../shared/kinds/image-params.js';
import { planItems } from '../../test/helpers/plans.js';
import { groupBatches, imageKind, outputNames } from './image.js';
import { resolveLimits } from '../../shared/limits.js';

const file = (name: string, size: number): SpoolFile => ({ name, size, path: `/x/${name}`, sha256: '' });

describe('image batch planning', () => {
  it('spreads a small batch so every slot gets work', () => {
    const groups = groupBatches(Array.from({ length: 10 }, (_, i) => file(`f${i}`, 1000)), 4);
    expect(groups).toHaveLength(8);
    expect(groups.flat()).toHaveLength(10);
  });

  it('bounds a large batch by count and balances bytes', () => {
    const files = Array.from({ length: 400 }, (_, i) => file(`f${i}`, 1_000_000 + (i % 7) * 300_000));
    const groups = groupBatches(files, 2);
    expect(groups.length).toBeGreaterThanOrEqual(25);
    expect(Math.max(...groups.map((g) => g.length))).toBeLessThanOrEqual(16);
    const sizes = groups.map((g) => g.reduce((n, f) => n + f.size, 0));
    expect(Math.max(...sizes.slice(0, -4)) / Math.min(...sizes.slice(0, -4))).toBeLessThan(1.2);
  });

  it('ends a large batch with single files, the smallest, two per slot', () => {
    const files = Array.from({ length: 100 }, (_, i) => file(`f${i}`, 1_000_000 + i * 1000));
    const groups = groupBatches(files, 3);
    expect(groups.flat().map((f) => f.name).sort()).toEqual(files.map((f) => f.name).sort());
    const tail = groups.slice(-6);
    expect(tail.every((g) => g.length === 1)).toBe(true);
    expect(tail.map((g) => g[0]!.name).sort()).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5']);
    expect(groups.slice(0, -6).every((g) => g.length > 1)).toBe(true);
    // A small batch is spread as before, with no single-file tail of its own; nor has one slot.
    expect(groupBatches(files.slice(0, 20), 3).filter((g) => g.length === 1)).toHaveLength(0);
    expect(groupBatches(files, 1).filter((g) => g.length === 1)).toHaveLength(0);
  });

  it('gives colliding output names distinct names', () => {
    // The first keeps the short name: a name depends only on the inputs before it.
    const names = outputNames(['a.png', 'a.jpg', 'b.tif'], () => 'webp');
    expect([...names.values()]).toEqual(['a.webp', 'a.jpg.webp', 'b.webp']);
    // Still distinct when an input is named like another's fallback.
    const tricky = outputNames(['a.jpg.webp', 'a.png', 'a.jpg'], () => 'webp');
    expect([...tricky.values()]).toEqual(['a.jpg.webp', 'a.webp', 'a.jpg-2.webp']);
    const same = outputNames(['a.png', 'a.jpg', 'a.jpg.png'], () => 'jpg');
    expect([...same.values()]).toEqual(['a.jpg', 'a.jpg.jpg', 'a.jpg.png.jpg']);
  });

  it('gives names that differ only in case or Unicode form distinct names: one file on macOS and Windows', () => {
    expect([...outputNames(['A.png', 'a.jpg'], () => 'webp').values()]).toEqual(['A.webp', 'a.jpg.webp']);
    // é composed (U+00E9), then as e + combining acute (U+0301).
    expect([...outputNames(['caf\u00e9.png', 'cafe\u0301.jpg'], () => 'webp').values()]).toEqual(['caf\u00e9.webp', 'cafe\u0301.jpg.webp']);
  });

  it('gives no stem ending with a dot or a space, which a pyramid zip would hold as a folder Windows cannot make', () => {
    // libvips names an IIIF pyramid's folder inside the zip after the output's stem: `photo.` from `photo..zip`.
    const names = outputNames(['photo..jpg', 'photo .png', 'photo.jpg'], () => 'zip');
    expect([...names.values()]).toEqual(['photo.zip', 'photo .png.zip', 'photo.jpg.zip']);
    for (const name of names.values()) expect(name.slice(0, -'.zip'.length)).not.toMatch(/[. ]$/);
  });
});

describe('image batch split after a failure', () => {
  it('cuts a batch into one subtask per photo, each with its own input and output name; single photos and tiles stay', () => {
    const files = [file('a.jpg', 10), file('b.png', 20)];
    const batch = { label: '2 images (a.jpg, ...)', inputs: files, weight: 30, items: ['a.jpg', 'b.png'], plan: { type: 'batch', items: [{ input: 'a.jpg', output: 'a.webp' }, { input: 'b.png', output: 'b.webp' }] } };
    expect(imageKind.split!(batch)).toEqual([
      { label: 'a.jpg', inputs: [files[0]], weight: 10, items: ['a.jpg'], plan: { type: 'batch', items: [{ input: 'a.jpg', output: 'a.webp' }] } },
      { label: 'b.png', inputs: [files[1]], weight: 20, items: ['b.png'], plan: { type: 'batch', items: [{ input: 'b.png', output: 'b.webp' }] } },
    ]);
    const single = { ...batch, inputs: [files[0]!], items: ['a.jpg'], plan: { type: 'batch', items: [{ input: 'a.jpg', output: 'a.webp' }] } };
    expect(imageKind.split!(single)).toBeUndefined();
    // The photos a worker called bad, for another worker's opinion: those alone, also from a batch of one.
    expect(imageKind.split!(batch, ['b.png'])?.map((p) => p.items)).toEqual([['b.png']]);
    expect(imageKind.split!(single, ['a.jpg'])?.map((p) => p.label)).toEqual(['a.jpg']);
    expect(imageKind.split!({ ...batch, plan: { type: 'tile' } }, ['a.jpg'])).toBeUndefined();
  });
});

describe('image merge', () => {
  it('reads the inputs only to stitch tiles: a batch of resized photos needs no second look at them', () => {
    const outcome = (plan: unknown): SubtaskOutcome => ({ index: 0, phase: 0, label: 'x', plan, items: [], ok: true, outputs: [], itemErrors: [], result: undefined, worker: 'w' });
    const batch = outcome({ type: 'batch', items: [{ input: 'a.jpg', output: 'a.webp' }] });
    expect(imageKind.mergeReadsInputs!([batch, batch])).toBe(false);
    expect(imageKind.mergeReadsInputs!([batch, outcome({ type: 'tile', source: 'huge.jpg' })])).toBe(true);
  });
});

describe('image params checked at submission', () => {
  const refused = (p: Record<string, unknown>): unknown => {
    try {
      imageKind.checkNew!(imageKind.validate(p as never, {} as never), {} as never);
      return undefined;
    } catch (err) {
      return err;
    }
  };

  it('a pyramid takes jpeg, png or webp tiles: an explicit tiff or avif is refused, naming the field and the formats', () => {
    for (const format of ['tiff', 'avif']) {
      expect(refused({ format, tiled_output: 'iiif' })).toMatchObject({ codeName: 'INVALID_ARGUMENT', message: `image.format: a pyramid (tiled_output iiif; CLI: --pyramid) is made of jpeg, png, webp tiles, not ${format} (CLI: --format)` });
    }
    for (const format of ['jpeg', 'png', 'webp', '']) expect(refused({ format, tiled_output: 'deepzoom' })).toBeUndefined();
  });

  it('a pyramid refuses what the tiled path cannot do exactly (an arbitrary rotation) at any size', () => {
    expect(refused({ rotate: 45, tiled_output: 'deepzoom' })).toMatchObject({ codeName: 'INVALID_ARGUMENT', message: expect.stringMatching(/^rotate: /) });
  });

  it('a job accepted before these refusals still validates where it resumes and on workers', () => {
    for (const raw of [{ format: 'png', quality: 80 }, { format: 'tiff', tiled_output: 'deepzoom' }]) {
      expect(() => imageKind.validate(raw as never, {} as never)).not.toThrow();
      expect(() => validateImageParams(raw)).not.toThrow();
    }
  });

  it('quality with a lossless format (png, tiff) is refused, naming the field', () => {
    for (const format of ['png', 'tiff']) {
      expect(refused({ format, quality: 80 })).toMatchObject({ codeName: 'INVALID_ARGUMENT', message: expect.stringMatching(/^image\.quality: .*jpeg, webp, avif/) });
    }
    for (const format of ['jpeg', 'webp', 'avif', '']) expect(refused({ format, quality: 80 })).toBeUndefined();
  });

  it('iiif_id: an absolute http(s) URL of at most 1024 characters, with tiled_output iiif', () => {
    expect(imageKind.validate({ tiled_output: 'iiif', iiif_id: 'https://img.example.org/iiif/' } as never, {} as never)).toMatchObject({ iiifId: 'https://img.example.org/iiif' });
    for (const id of ['ftp://x.org/a', '/relative', 'https://x.org/a?b=1', 'https://u:p@x.org/', 'https://x.org/"a', `https://x.org/${'a'.repeat(1100)}`]) {
      expect(refused({ tiled_output: 'iiif', iiif_id: id })).toMatchObject({ codeName: 'INVALID_ARGUMENT', message: expect.stringMatching(/^image\.iiif_id: /) });
    }
    expect(refused({ tiled_output: 'deepzoom', iiif_id: 'https://x.org/' })).toMatchObject({ message: expect.stringMatching(/^image\.iiif_id: applies only to tiled_output iiif/) });
  });
});

describe('an image batch planned while its photos arrive', () => {
  const photo = (name: string, size: number): SpoolFile => ({ ...file(name, size), dims: { width: 4000, height: 3000, orientation: 1 } });
  const params = validateImageParams({ width: 800, format: 'webp' });

  async function planArriving(slots: number, cluster = { workers: slots, slots, encoders: new Set<string>(), encoderSets: [], features: new Set<string>() }) {
    const arriving = new Channel<SpoolFile>();
    const { subtasks, later } = await imageKind.plan({
      jobId: 'j',
      params,
      spec: {} as JobSpec__Output,
      inputs: [],
      cluster,
      workDir: '/nonexistent',
      signal: new AbortController().signal,
      log: createLogger('test', 'silent'),
      warn: () => undefined,
      limits: resolveLimits(),
      arriving,
    });
    expect(subtasks).toEqual([]);
    const { plans, next, rest } = planItems(later!);
    return { arriving, plans, next, rest };
  }

  it('sends a full subtask at once, keeps two photos per slot back while more come, and spreads the rest at the end', async () => {
    const { arriving, next, plans, rest: restOf } = await planArriving(2);
    const names = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `p${from + i}.jpg`);
    // 5 MB photos: three fill a subtask (16 MiB); one goes once another three wait beside the four kept back.
    arriving.push(...names(0, 10).map((n) => photo(n, 5_000_000)));
    expect(await next()).toEqual(names(0, 3));
    arriving.push(...names(10, 13).map((n) => photo(n, 5_000_000)));
    expect(await next()).toEqual(names(3, 6));
    arriving.end();
    // The rest (the four kept back and three more) spread over the slots as a batch planned at once.
    const rest = await restOf();
    expect(rest.flat().sort()).toEqual(names(6, 13).sort());
    expect(rest).toHaveLength(4);
    expect((await plans.next()).done).toBe(true);
  });

  it('spreads photos that do not fill a subtask over the slots once no more came for a moment; names outputs as a batch planned at once', async () => {
    const { arriving, plans } = await planArriving(2);
    arriving.push(photo('a.png', 1000), photo('a.jpg', 1000));
    const started = Date.now();
    const first = await plans.next();
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    expect(first.value).toMatchObject({ items: ['a.png'], plan: { type: 'batch', items: [{ input: 'a.png', output: 'a.webp' }] } });
    expect((await plans.next()).value).toMatchObject({ items: ['a.jpg'], plan: { type: 'batch', items: [{ input: 'a.jpg', output: 'a.jpg.webp' }] } });
    expect([...outputNames(['a.png', 'a.jpg'], () => 'webp').values()]).toEqual(['a.webp', 'a.jpg.webp']);
    arriving.end();
    expect((await plans.next()).done).toBe(true);
  });

  it('plans a small batch that is all in within a moment as a whole: spread over the slots, not one full subtask and a tail', async () => {
    const { arriving, rest } = await planArriving(2);
    arriving.push(...Array.from({ length: 12 }, (_, i) => photo(`s${i}.jpg`, 50_000)));
    arriving.end();
    expect((await rest()).map((p) => p.length)).toEqual([3, 3, 3, 3]);
  });

  it('keeps back and spreads for the slots there are when it decides: workers that join during the upload count', async () => {
    const cluster = { workers: 1, slots: 1, encoders: new Set<string>(), encoderSets: [], features: new Set<string>() };
    const { arriving, next, rest } = await planArriving(1, cluster);
    const names = Array.from({ length: 10 }, (_, i) => `j${i}.jpg`);
    // One slot keeps two back: a full subtask (three 5 MB photos) goes at once.
    arriving.push(...names.map((n) => photo(n, 5_000_000)));
    expect(await next()).toEqual(names.slice(0, 3));
    // Three more slots join: eight kept back, so nothing more goes until the end, then the seven
    // left are spread as a batch planned at once on four slots.
    cluster.workers = cluster.slots = 4;
    arriving.end();
    const left = await rest();
    expect(left.flat().sort()).toEqual(names.slice(3).sort());
    expect(left.map((g) => g.length)).toEqual(groupBatches(names.slice(3).map((n) => photo(n, 5_000_000)), 4).map((g) => g.length));
  });

  it('ends with the error the upload failed with', async () => {
    const { arriving, plans } = await planArriving(1);
    const waiting = plans.next();
    arriving.fail(new Error('the client went away'));
    await expect(waiting).rejects.toThrow('the client went away');
  });
});
