/**
 * The worker's image processor run in this process on one batch subtask, as a worker runs it:
 * `files` (name -> bytes) written into a folder of their own under `dir`, the outputs into
 * `workDir` (a new folder under `dir` when not given).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import type { ProcessContext } from '../../shared/job-kind.js';
import { validateImageParams, type ImageParams } from '../../shared/kinds/image-params.js';
import { imageProcessor } from '../../worker/processors/image.js';

export async function runImageBatch(dir: string, files: Record<string, Buffer>, params: Record<string, unknown>, workDir?: string): Promise<Awaited<ReturnType<typeof imageProcessor.process>>> {
  const inputDir = await mkdtemp(path.join(dir, 'in-'));
  const inputs = await Promise.all(
    Object.entries(files).map(async ([name, bytes]) => {
      const file = path.join(inputDir, name);
      await writeFile(file, bytes);
      return { name, path: file, size: bytes.length };
    }),
  );
  const ctx: ProcessContext<ImageParams> = {
    jobId: 'job',
    subtaskId: 'st',
    attempt: 1,
    phase: 0,
    params: validateImageParams(params),
    spec: {} as ProcessContext<ImageParams>['spec'],
    plan: { type: 'batch', items: inputs.map((i) => ({ input: i.name, output: path.parse(i.name).name })) },
    inputs,
    workDir: workDir ?? (await mkdtemp(path.join(dir, 'work-'))),
    signal: new AbortController().signal,
    progress: () => undefined,
    threads: 1,
    log: pino({ level: 'silent' }),
  };
  return imageProcessor.process(ctx);
}
