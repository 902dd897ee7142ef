/**
 * How long a program holds on after a moment of its choosing: `body` runs as a module in a fresh
 * Node (TesseraClient imported from dist/, `npm run build` first; `file`, a one-byte file, written),
 * calls `mark()`, and the answer is the ms from that mark to the process's exit, or 'still running'
 * if it has not exited within `ms` (then it is killed). What a timer, socket or call left behind
 * costs a script or CLI that uses the client.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const index = fileURLToPath(new URL('../../dist/client/index.js', import.meta.url));

export function exitAfterMark(body: string, ms: number): Promise<number | 'still running'> {
  const code = `
import { writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TesseraClient } from ${JSON.stringify(index)};
const file = path.join(os.tmpdir(), 'tessera-exit-timing-' + process.pid + '.bin');
writeFileSync(file, 'x');
let at = 0;
const mark = () => { at = Date.now(); };
process.on('exit', () => { rmSync(file, { force: true }); process.stdout.write('exited ' + (Date.now() - at)); });
${body}
`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', () => {
      clearTimeout(timer);
      const m = /exited (\d+)/.exec(out);
      resolve(m ? Number(m[1]) : 'still running');
    });
  });
}
