// Resident memory of daemon processes, sampled from outside through /proc (Linux), so
// the measurement costs the daemons nothing. VmHWM is the kernel's own high-water mark
// and catches peaks between samples; the ~50 ms VmRSS samples show the shape.

import { readFile } from 'node:fs/promises';

export interface RssPeak {
  /** Largest VmRSS seen by sampling, MB. */
  sampledMb: number;
  /** VmHWM at the end, MB (peak over the process's whole life). */
  hwmMb: number;
  /** max of the two. */
  peakMb: number;
  samples: number;
}

async function status(pid: number): Promise<{ rss: number; hwm: number } | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return null; // the process is gone
  }
}

export function supported(): boolean {
  return process.platform === 'linux';
}

export class RssSampler {
  readonly #peaks = new Map<number, { max: number; n: number }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(readonly pids: readonly number[], readonly intervalMs = 50) {
    for (const pid of pids) this.#peaks.set(pid, { max: 0, n: 0 });
  }

  start(): void {
    const tick = async () => {
      await Promise.all(this.pids.map(async (pid) => {
        const s = await status(pid);
        const p = this.#peaks.get(pid)!;
        if (s && Number.isFinite(s.rss)) {
          p.max = Math.max(p.max, s.rss);
          p.n++;
        }
      }));
      if (this.#timer) this.#timer = setTimeout(tick, this.intervalMs);
    };
    this.#timer = setTimeout(tick, 0);
  }

  async stop(): Promise<Map<number, RssPeak>> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const out = new Map<number, RssPeak>();
    for (const pid of this.pids) {
      const s = await status(pid);
      const p = this.#peaks.get(pid)!;
      const hwm = s?.hwm ?? NaN;
      out.set(pid, { sampledMb: p.max, hwmMb: hwm, peakMb: Math.max(p.max, Number.isFinite(hwm) ? hwm : 0), samples: p.n });
    }
    return out;
  }
}
