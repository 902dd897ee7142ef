import { expect } from 'vitest';

/** Parsed exposition text: `name{labels}` -> value. */
export type Samples = Map<string, number>;

/** Every sample of the coordinator's /metrics (at `httpAddress`), keyed by name and labels as written. */
export async function scrape(cluster: { httpAddress: string }): Promise<Samples> {
  const res = await fetch(`http://${cluster.httpAddress}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const out: Samples = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

export const get = (s: Samples, key: string): number => s.get(key) ?? 0;
export const delta = (a: Samples, b: Samples, key: string): number => get(b, key) - get(a, key);
