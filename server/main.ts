// The daemon process: flags, data directory, listen, graceful shutdown. Nothing else.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.js';
import { isLoopbackAddress, loadOrCreateToken } from './api/auth.js';
import { EventBus } from './events/bus.js';
import { DEFAULT_TIMINGS, Mesh, type MeshTimings } from './mesh/mesh.js';
import { missingTuning } from './node-flags.js';
import { Store } from './store/db.js';
import { DEFAULT_OFFER_TIMEOUT_MS, TransferService } from './transfer/service.js';

const DEFAULT_PORT = 4300;
const SHUTDOWN_DEADLINE_MS = 10_000;
// The package root: server/ when run from source, dist/server/ when built.
const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

const HELP = `meshdrop: peer-to-peer file sharing daemon

Usage: npm start -- [options]

Options:
  --port N              dashboard/API port (default ${DEFAULT_PORT}; 0 picks a free port)
  --host ADDR           dashboard/API address (default 127.0.0.1; anything else
                        turns off the loopback-only Host/Origin checks)
  --data-dir DIR        where peers, identities and the token live
                        (default: ${defaultDataDir()})
  --peer-host ADDR      address the peers' TLS servers bind to (default 0.0.0.0,
                        so peers on other machines can reach them)
  --log-level LEVEL     fatal, error, warn, info, debug (default warn)
  -h, --help            show this help
  -v, --version         show the version

Tuning (milliseconds; defaults suit real networks, tests use small values):
  --handshake-timeout-ms N   TLS + HELLO must finish within N (default ${DEFAULT_TIMINGS.handshakeTimeoutMs})
  --heartbeat-interval-ms N  PING an open connection every N (default ${DEFAULT_TIMINGS.heartbeatIntervalMs})
  --heartbeat-timeout-ms N   declare a silent connection dead after N (default ${DEFAULT_TIMINGS.heartbeatTimeoutMs})
  --retry-min-ms N           first redial delay (default ${DEFAULT_TIMINGS.retryMinMs})
  --retry-max-ms N           largest redial delay (default ${DEFAULT_TIMINGS.retryMaxMs})
  --offer-timeout-ms N       decline a file offer from another daemon nobody answered
                             within N (default ${DEFAULT_OFFER_TIMEOUT_MS})
`;

function defaultDataDir(): string {
  if (process.platform === 'win32') return join(process.env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'meshdrop');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'meshdrop');
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'meshdrop');
}

function fail(message: string): never {
  process.stderr.write(`meshdrop: ${message}\n`);
  process.exit(2);
}

function intFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || n < min || n > max) fail(`--${name} must be an integer in ${min}..${max}, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        'peer-host': { type: 'string' },
        'log-level': { type: 'string' },
        'handshake-timeout-ms': { type: 'string' },
        'heartbeat-interval-ms': { type: 'string' },
        'heartbeat-timeout-ms': { type: 'string' },
        'retry-min-ms': { type: 'string' },
        'retry-max-ms': { type: 'string' },
        'offer-timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    }));
  } catch (err) {
    fail(`${(err as Error).message}\nRun with --help for the options.`);
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.version) {
    process.stdout.write(`${pkg.version}\n`);
    return;
  }

  const port = intFlag('port', values.port, 0, 65535) ?? DEFAULT_PORT;
  const host = values.host ?? '127.0.0.1';
  const peerHost = values['peer-host'] ?? '0.0.0.0';
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  const timings: Partial<MeshTimings> = {};
  const ms = (flag: string, key: keyof MeshTimings) => {
    const v = intFlag(flag, values[flag as keyof typeof values] as string | undefined, 1, 3_600_000);
    if (v !== undefined) timings[key] = v;
  };
  ms('handshake-timeout-ms', 'handshakeTimeoutMs');
  ms('heartbeat-interval-ms', 'heartbeatIntervalMs');
  ms('heartbeat-timeout-ms', 'heartbeatTimeoutMs');
  ms('retry-min-ms', 'retryMinMs');
  ms('retry-max-ms', 'retryMaxMs');
  const interval = timings.heartbeatIntervalMs ?? DEFAULT_TIMINGS.heartbeatIntervalMs;
  const silence = timings.heartbeatTimeoutMs ?? DEFAULT_TIMINGS.heartbeatTimeoutMs;
  if (silence <= interval) fail(`--heartbeat-timeout-ms (${silence}) must be larger than --heartbeat-interval-ms (${interval})`);
  if ((timings.retryMinMs ?? DEFAULT_TIMINGS.retryMinMs) > (timings.retryMaxMs ?? DEFAULT_TIMINGS.retryMaxMs)) {
    fail('--retry-min-ms must not be larger than --retry-max-ms');
  }

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const token = loadOrCreateToken(dataDir);
  const store = new Store(dataDir);
  const bus = new EventBus();
  let apiPort = 0;
  const transfers: TransferService = new TransferService({
    store,
    bus,
    dataDir,
    offerTimeoutMs: intFlag('offer-timeout-ms', values['offer-timeout-ms'], 1, 7 * 24 * 3_600_000),
    isLocal: (id: string): boolean => mesh.isLocalId(id),
  });
  const mesh = new Mesh({ store, bus, peerHost, timings, reservedPorts: () => [apiPort], transfers });
  const app = await buildApp({
    mesh,
    transfers,
    bus,
    token,
    loopbackOnly: isLoopbackAddress(host),
    webRoot: join(ROOT, 'dist', 'web'),
    version: pkg.version,
    peerHost,
    logger: { level: values['log-level'] ?? 'warn' },
  });

  // Peers first, so a request arriving the moment the API listens sees them restored.
  await mesh.start();
  try {
    await app.listen({ port, host });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fail(`port ${port} on ${host} is already in use; choose another with --port (0 picks a free one)`);
    if (code === 'EACCES') fail(`no permission to listen on ${host}:${port}; choose a port above 1023`);
    throw err;
  }
  apiPort = (app.server.address() as AddressInfo).port;

  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  process.stdout.write(`meshdrop ${pkg.version} dashboard: http://${shown}:${apiPort}/?token=${token}\n`);
  const untuned = missingTuning();
  if (untuned.length) process.stderr.write(`meshdrop: started without ${untuned.join(', ')}; transfers will cost more CPU and memory (npm start passes them; see server/node-flags.ts)\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) process.exit(1); // a second signal: the user insists
    stopping = true;
    app.log.info({ signal }, 'shutting down');
    setTimeout(() => {
      process.stderr.write('meshdrop: shutdown took too long; exiting anyway\n');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    await mesh.close();
    await app.close();
    store.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`meshdrop: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
