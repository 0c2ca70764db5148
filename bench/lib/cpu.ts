// CPU time of a process (user + system, all its threads: the main thread, libuv's
// pool doing file I/O, the kernel's work on its sockets), read from /proc so it costs
// the process nothing. Per GiB moved, it tells whether a transfer is CPU-bound on a
// 2-core machine, which a wall-clock figure cannot.

import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux this runs on

export function cpuSeconds(pid: number): number {
  try {
    // Fields after the command name (which may contain spaces, so split after ')').
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
  } catch {
    return NaN;
  }
}

/** Runs `fn` and returns its result with the CPU seconds each pid used meanwhile. */
export async function withCpu<T>(pids: readonly number[], fn: () => Promise<T>): Promise<{ result: T; cpu: number[] }> {
  const before = pids.map(cpuSeconds);
  const result = await fn();
  return { result, cpu: pids.map((pid, i) => cpuSeconds(pid) - before[i]!) };
}
