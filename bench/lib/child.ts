// Baseline helpers run in child processes of their own (never in the benchmark's
// process, which drives the load), started with tsx and talking in JSON lines.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from './daemon.js';

export interface Child {
  proc: ChildProcess;
  /** The next JSON line the child prints. */
  next<T = any>(): Promise<T>;
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

export function spawnChild(script: string, args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): Child {
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join(ROOT, 'bench', 'lib', script), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-10_000)));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const lines: string[] = [];
  const waiters: Array<{ res: (line: string) => void; rej: (err: Error) => void }> = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const w = waiters.shift();
    if (w) w.res(line);
    else lines.push(line);
  });
  void exited.then((code) => {
    for (const w of waiters.splice(0)) w.rej(new Error(`${script} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`));
  });
  return {
    proc,
    exited,
    async next<T>() {
      const line = lines.shift() ?? (await new Promise<string>((res, rej) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return rej(new Error(`${script} has exited: ${stderr.trim()}`));
        waiters.push({ res, rej });
      }));
      return JSON.parse(line) as T;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
