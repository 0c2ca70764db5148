// The benchmark harness end to end in its tiny --smoke mode: real daemon processes,
// every scenario of docs/PERFORMANCE.md, every received file checked by SHA-256.
// Asserts that it runs and reports numbers, never the performance targets.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/daemon.js';

const SCENARIOS = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'];
const dir = tempDir('meshdrop-bench-smoke-');

afterAll(() => dir.remove());

describe.skipIf(process.platform !== 'linux')('bench --smoke', () => {
  it('runs every scenario, verifies every file and writes numeric figures', async () => {
    expect(existsSync(join(ROOT, 'dist', 'server', 'main.js')), 'run `npm run build` first (npm test does)').toBe(true);
    const out = join(dir.path, 'smoke.json');
    const proc = spawn('npx', ['tsx', 'bench/run.ts', '--smoke', '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d) => (output += d));
    proc.stderr.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect(code, output).toBe(0);

    const result = JSON.parse(readFileSync(out, 'utf8'));
    expect(result.mode).toBe('smoke');
    expect(result.verified).toBe(true);
    expect(result.machine).toMatchObject({ cores: expect.any(Number), node: process.version, kernel: expect.any(String) });
    expect(Object.keys(result.scenarios).sort()).toEqual(SCENARIOS);
    for (const id of SCENARIOS) {
      const s = result.scenarios[id];
      expect(s.error, `${id}: ${s.error}`).toBeUndefined();
      expect(['PASS', 'FAIL', 'SKIP']).toContain(s.status);
      const figures = Object.values(s.figures) as Array<{ runs: number[]; min: number; median: number; max: number }>;
      expect(figures.length, id).toBeGreaterThan(0);
      for (const f of [...figures, ...(Object.values(s.ratios) as typeof figures)]) {
        expect(f.runs.length, id).toBeGreaterThan(0);
        for (const v of [...f.runs, f.min, f.median, f.max]) expect(Number.isFinite(v), `${id}: ${JSON.stringify(f)}`).toBe(true);
      }
    }
    for (const key of ['tcp', 'tls', 'upload']) expect(result.baselines.figures[key].median, key).toBeGreaterThan(0);
    // C's CPU accounting, which its ceiling rows are made of, covers the uploading client too.
    expect(result.scenarios.C.figures.cpuClient.median).toBeGreaterThan(0);
    // Smoke mode writes only where it is told to.
    expect(output).not.toContain('bench/results/latest.json');
  }, 180_000);
});
