// The one line a daemon process prints when it is ready: its dashboard URL with the
// token. Shared by the tests' spawned daemons and the benchmark's.

import type { ChildProcess } from 'node:child_process';

/**
 * Resolves with the `http://…?token=…` URL `proc` prints on stdout; rejects if it exits
 * first or prints nothing within `timeoutMs`. `stderr()` is quoted in the error.
 */
export function dashboardUrl(proc: ChildProcess, what: string, timeoutMs: number, stderr: () => string): Promise<string> {
  let out = '';
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not print its URL in ${timeoutMs / 1000} s; stderr: ${stderr()}`)), timeoutMs);
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /http:\/\/\S+\?token=\S+/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before printing its URL; stderr: ${stderr()}`));
    });
  });
}
