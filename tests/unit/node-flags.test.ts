// npm start must launch the daemon with the same Node flags and malloc tunables as the
// benchmark and the tests' spawned daemons (server/node-flags.ts says why they exist).

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { daemonEnv, DAEMON_NODE_FLAGS, MALLOC_TUNABLES, missingTuning } from '../../server/node-flags.js';

const start: string = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')).scripts.start;

describe('daemon launch settings', () => {
  it('npm start passes every daemon Node flag', () => {
    expect(start).toContain(`node ${DAEMON_NODE_FLAGS.join(' ')} dist/server/main.js`);
  });

  it("npm start's shell gives the daemon the malloc tunables, before any of the user's", () => {
    // Run the start script's environment prefix in sh (as npm does) with `node` replaced by `env`.
    const prefix = start.slice(start.indexOf('GLIBC_TUNABLES='), start.indexOf(' node '));
    const run = (env: NodeJS.ProcessEnv) =>
      execFileSync('sh', ['-c', `${prefix} env`], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' })
        .split('\n').find((l) => l.startsWith('GLIBC_TUNABLES='));
    expect(run({})).toBe(`GLIBC_TUNABLES=${MALLOC_TUNABLES}`);
    expect(run({ GLIBC_TUNABLES: 'glibc.malloc.top_pad=0' })).toBe(`GLIBC_TUNABLES=${MALLOC_TUNABLES}:glibc.malloc.top_pad=0`);
  });

  // glibc ignores a tunable it does not know, silently: ask its loader what it understood.
  const loader = '/lib64/ld-linux-x86-64.so.2';
  it.skipIf(!existsSync(loader))('glibc reads the tunables as meant (32 MiB trim threshold, one arena)', () => {
    const listed = execFileSync(loader, ['--list-tunables'], { env: daemonEnv({}), encoding: 'utf8' });
    expect(listed).toMatch(/^glibc\.malloc\.trim_threshold: 0x2000000 /m);
    expect(listed).toMatch(/^glibc\.malloc\.arena_max: 0x1 /m);
  });

  it("daemonEnv adds the tunables and keeps the user's, which win", () => {
    expect(daemonEnv({ PATH: '/bin' })).toEqual({ PATH: '/bin', GLIBC_TUNABLES: MALLOC_TUNABLES });
    expect(daemonEnv({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0' }).GLIBC_TUNABLES).toBe(`${MALLOC_TUNABLES}:glibc.malloc.trim_threshold=0`);
  });

  it('missingTuning names what a launch left out, and nothing when it has it all', () => {
    expect(missingTuning([...DAEMON_NODE_FLAGS], daemonEnv({}))).toEqual([]);
    expect(missingTuning([...DAEMON_NODE_FLAGS], daemonEnv({ GLIBC_TUNABLES: 'glibc.malloc.top_pad=0' }))).toEqual([]);
    expect(missingTuning([], {})).toEqual([...DAEMON_NODE_FLAGS, ...MALLOC_TUNABLES.split(':').map((t) => `GLIBC_TUNABLES=${t}`)]);
    expect(missingTuning([...DAEMON_NODE_FLAGS], { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=33554432' })).toEqual(['GLIBC_TUNABLES=glibc.malloc.arena_max=1']);
  });
});
