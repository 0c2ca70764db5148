// Summaries of repeated measurements. Machines are noisy, so every figure is kept as
// all its runs plus min/median/max, and ratios are taken run by run (pairs measured
// next to each other in time) before they are summarised, never median over median.

export interface Stat {
  unit: string;
  runs: number[];
  min: number;
  median: number;
  max: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function stat(unit: string, runs: readonly number[]): Stat {
  // Missing runs (NaN: a round where one side of a pair did not run) are left out.
  const finite = runs.filter((v) => Number.isFinite(v));
  return {
    unit,
    runs: finite,
    min: finite.length ? Math.min(...finite) : NaN,
    median: median(finite),
    max: finite.length ? Math.max(...finite) : NaN,
  };
}

/** Pairwise ratios num[i] / den[i] (pairs where either run is missing are left out). */
export function pairRatio(num: readonly number[], den: readonly number[]): Stat {
  const n = Math.min(num.length, den.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(num[i]! / den[i]!);
  return stat('x', ratios);
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(rank, s.length) - 1]!;
}

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

/** MiB/s for `bytes` moved in `ms` milliseconds. */
export function mibPerSec(bytes: number, ms: number): number {
  return bytes / MIB / (ms / 1000);
}

export function formatSize(bytes: number): string {
  if (bytes >= GIB && bytes % GIB === 0) return `${bytes / GIB} GiB`;
  if (bytes >= MIB) return `${+(bytes / MIB).toFixed(1)} MiB`;
  return `${+(bytes / 1024).toFixed(1)} KiB`;
}
