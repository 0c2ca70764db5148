// The daemon as the browser tests see it: a real process with the default timings
// a user gets, on a throw-away data directory.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT, spawnDaemon, tempDir } from '../helpers/daemon.js';

export { freePorts } from '../helpers/ports.js';
export const repoRoot = ROOT;

export interface RunningDaemon {
  /** The printed dashboard URL, token included. */
  url: string;
  /** `http://127.0.0.1:<port>` */
  origin: string;
  token: string;
  stop(): Promise<void>;
}

export async function startDaemon(): Promise<RunningDaemon> {
  if (!existsSync(path.join(repoRoot, 'dist', 'web', 'index.html'))) {
    throw new Error('dist/web is not built; run `npx vite build` (npm test does) before the e2e tests');
  }
  const dir = tempDir('meshdrop-e2e-');
  try {
    const daemon = await spawnDaemon(dir.path, [], { fast: false });
    return {
      url: daemon.url,
      origin: daemon.base,
      token: daemon.token,
      async stop() {
        await daemon.stop();
        dir.remove();
      },
    };
  } catch (err) {
    dir.remove();
    throw err;
  }
}
