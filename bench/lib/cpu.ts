// CPU time of a process (user + system, all its threads: the main thread, libuv's
// pool doing file I/O, the kernel's work on its sockets), read from /proc so it costs
// the process nothing. Per GiB moved, it tells whether a transfer is CPU-bound on a
// 2-core machine, which a wall-clock figure cannot. Minor page faults beside it: on a
// VM each costs a trap to the hypervisor, and a heap that keeps giving memory back to
// the kernel pays one per 4 KiB it takes again (server/node-flags.ts).

import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux this runs on

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces), or null. */
function statFields(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  } catch {
    return null;
  }
}

export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return fields ? (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND : NaN; // utime, stime
}

/** Minor page faults of the process so far (all threads). */
export function minorFaults(pid: number): number {
  const fields = statFields(pid);
  return fields ? Number(fields[7]) : NaN; // minflt
}

/** Runs `fn` and returns its result with the CPU seconds and minor faults each pid had meanwhile. */
export async function withCpu<T>(pids: readonly number[], fn: () => Promise<T>): Promise<{ result: T; cpu: number[]; faults: number[] }> {
  const before = pids.map(cpuSeconds);
  const faultsBefore = pids.map(minorFaults);
  const result = await fn();
  return { result, cpu: pids.map((pid, i) => cpuSeconds(pid) - before[i]!), faults: pids.map((pid, i) => minorFaults(pid) - faultsBefore[i]!) };
}
