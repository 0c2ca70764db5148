// npm start must launch the daemon with the same Node flags as the benchmark and the
// tests' spawned daemons (server/node-flags.ts says why they exist).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS } from '../../server/node-flags.js';

it('npm start passes every daemon Node flag', () => {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8'));
  expect(pkg.scripts.start).toContain(`node ${DAEMON_NODE_FLAGS.join(' ')} dist/server/main.js`);
});
