// What every scenario gets: the configuration, a scratch directory, and a way to start
// daemons that are stopped (and, when profiling, made to write their profile) at the end.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from './config.js';
import { startDaemon, type Daemon } from './daemon.js';

export interface Context {
  cfg: Config;
  tmp: string;
  log(message: string): void;
  /** A fresh daemon with its own data dir; `role` names its profile directory. */
  daemon(role: string): Promise<Daemon>;
  /** Stops daemons started so far (SIGTERM, so profiles are written). */
  stopDaemons(daemons?: Daemon[]): Promise<void>;
}

export function makeContext(cfg: Config, tmp: string): Context {
  const started: Daemon[] = [];
  let n = 0;
  return {
    cfg,
    tmp,
    log: (message) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`),
    async daemon(role) {
      n++;
      // One directory per daemon: node writes one profile per thread (main and any
      // workers) under its default name there, so no thread's profile overwrites another's.
      const profDir = cfg.profileDir ? join(resolve(cfg.profileDir), `${role}-${n}`) : null;
      const nodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
      if (profDir) mkdirSync(profDir, { recursive: true });
      const d = await startDaemon({ name: role, dataDir: join(tmp, `daemon-${n}-${role}`), nodeArgs });
      started.push(d);
      return d;
    },
    async stopDaemons(daemons = started.slice()) {
      await Promise.all(daemons.map(async (d) => {
        const i = started.indexOf(d);
        if (i >= 0) started.splice(i, 1);
        const code = await d.stop();
        if (code !== 0) console.error(`[bench] daemon ${d.name} exited with ${code}: ${d.stderr().slice(-2000)}`);
      }));
    },
  };
}
