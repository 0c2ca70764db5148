// The shape of bench/results/*.json and the printed table. Every scenario carries its
// figures (with every run), its ratios (taken pair by pair) and its checks against the
// targets of issue 4. Checks are reported, never asserted: only a wrong result (a
// SHA-256 mismatch) or a crash makes the run exit non-zero.

import { stat, type Stat } from './stats.js';

export type Status = 'PASS' | 'FAIL' | 'SKIP' | 'ERROR';

export interface Figure extends Stat {
  label: string;
}

export interface Check {
  /** Key in figures or ratios. */
  figure: string;
  target: string;
  /** Which summary of the figure is judged (peaks use the worst run). */
  on: 'median' | 'max';
  op: '>=' | '<=';
  limit: number;
  value: number | null;
  status: 'PASS' | 'FAIL' | 'SKIP';
}

export interface Section {
  id: string;
  title: string;
  status: Status;
  figures: Record<string, Figure>;
  ratios: Record<string, Figure>;
  checks: Check[];
  notes: string[];
  error?: string;
}

export function section(id: string, title: string): Section {
  return { id, title, status: 'SKIP', figures: {}, ratios: {}, checks: [], notes: [] };
}

export function figure(label: string, unit: string, runs: readonly number[]): Figure {
  return { label, ...stat(unit, runs) };
}

export function ratio(label: string, r: Stat): Figure {
  return { label, ...r };
}

/** Adds a check on figures[key] or ratios[key]; missing or NaN values are SKIP. */
export function check(s: Section, key: string, op: '>=' | '<=', limit: number, target: string, on: 'median' | 'max' = 'median'): void {
  const f = s.figures[key] ?? s.ratios[key];
  const v = f ? f[on] : NaN;
  const value = Number.isFinite(v) ? v : null;
  const status = value === null ? 'SKIP' : (op === '>=' ? value >= limit : value <= limit) ? 'PASS' : 'FAIL';
  s.checks.push({ figure: key, target, on, op, limit, value, status });
}

/** A section's status from its checks: any FAIL fails it; all SKIP skips it. */
export function settle(s: Section): Section {
  if (s.error) s.status = 'ERROR';
  else if (s.checks.some((c) => c.status === 'FAIL')) s.status = 'FAIL';
  else if (s.checks.some((c) => c.status === 'PASS')) s.status = 'PASS';
  else s.status = 'SKIP';
  return s;
}

function num(v: number): string {
  if (!Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/** A Markdown table (so it can be pasted into docs/PERFORMANCE.md as it is). */
export function table(sections: readonly Section[]): string {
  const rows: string[][] = [['', 'measure', 'unit', 'min', 'median', 'max', 'runs', 'target', 'result']];
  for (const s of sections) {
    const first = rows.length;
    const entries = [...Object.entries(s.figures), ...Object.entries(s.ratios)];
    for (const [key, f] of entries) {
      const checks = s.checks.filter((c) => c.figure === key);
      const target = checks.map((c) => `${c.on === 'max' ? 'max ' : ''}${c.op} ${c.limit}`).join(', ');
      const result = checks.map((c) => c.status).join(', ');
      rows.push(['', f.label, f.unit, num(f.min), num(f.median), num(f.max), String(f.runs.length), target, result]);
    }
    if (s.error) rows.push(['', `ERROR: ${s.error.split('\n')[0]!.slice(0, 100)}`, '', '', '', '', '', '', 'ERROR']);
    if (rows.length === first) rows.push(['', s.notes[0] ?? 'skipped', '', '', '', '', '', '', s.status]);
    rows[first]![0] = `**${s.id}** ${s.status === 'SKIP' && !s.checks.length ? '' : s.status}`.trim();
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.slice(1).map(line)].join('\n');
}
