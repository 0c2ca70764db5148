// Starting daemons for integration tests: in this process (fast, real sockets)
// or as a real child process (restarts, kills, a second daemon).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { DAEMON_NODE_FLAGS, daemonEnv } from '../../server/node-flags.js';
import { dashboardUrl } from './dashboard-url.js';
import { loadOrCreateToken } from '../../server/api/auth.js';
import { EventBus } from '../../server/events/bus.js';
import { Mesh, type MeshTimings } from '../../server/mesh/mesh.js';
import { Store } from '../../server/store/db.js';
import { TransferService } from '../../server/transfer/service.js';
import { Client } from './api.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');

/** Short timings so dead links, redials and handshakes resolve in milliseconds. */
export const FAST: MeshTimings = {
  handshakeTimeoutMs: 2_000,
  heartbeatIntervalMs: 50,
  heartbeatTimeoutMs: 400,
  retryMinMs: 20,
  retryMaxMs: 200,
  statsEventIntervalMs: 1_000,
};

export function tempDir(prefix = 'meshdrop-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface InProcessDaemon {
  app: FastifyInstance;
  mesh: Mesh;
  transfers: TransferService;
  bus: EventBus;
  client: Client;
  base: string;
  token: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function startInProcess(opts: { dataDir?: string; timings?: Partial<MeshTimings>; peerHost?: string; offerTimeoutMs?: number; keepEnded?: number } = {}): Promise<InProcessDaemon> {
  const dir = opts.dataDir ? null : tempDir();
  const dataDir = opts.dataDir ?? dir!.path;
  const token = loadOrCreateToken(dataDir);
  const store = new Store(dataDir);
  const bus = new EventBus();
  let apiPort = 0;
  const transfers: TransferService = new TransferService({ store, bus, dataDir, offerTimeoutMs: opts.offerTimeoutMs, keepEnded: opts.keepEnded, isLocal: (id: string): boolean => mesh.isLocalId(id) });
  const mesh = new Mesh({ store, bus, peerHost: opts.peerHost ?? '127.0.0.1', timings: { ...FAST, ...opts.timings }, reservedPorts: () => [apiPort], transfers });
  const app = await buildApp({ mesh, transfers, bus, token, loopbackOnly: true, webRoot: join(ROOT, 'dist', 'web'), version: 'test', peerHost: '127.0.0.1' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  apiPort = (app.server.address() as AddressInfo).port;
  await mesh.start();
  const base = `http://127.0.0.1:${apiPort}`;
  return {
    app, mesh, transfers, bus, token, base, dataDir,
    client: new Client(base, token),
    async close() {
      await mesh.close();
      await app.close();
      store.close();
      dir?.remove();
    },
  };
}

export interface DaemonProcess {
  proc: ChildProcess;
  url: string;
  base: string;
  token: string;
  client: Client;
  stderr: () => string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

const FAST_FLAGS = [
  '--handshake-timeout-ms', String(FAST.handshakeTimeoutMs),
  '--heartbeat-interval-ms', String(FAST.heartbeatIntervalMs),
  '--heartbeat-timeout-ms', String(FAST.heartbeatTimeoutMs),
  '--retry-min-ms', String(FAST.retryMinMs),
  '--retry-max-ms', String(FAST.retryMaxMs),
];

/**
 * Spawns `node --import tsx server/main.ts` and waits for the dashboard URL line.
 * `fast: false` keeps the daemon's real default timings (as a user would run it).
 */
export async function spawnDaemon(dataDir: string, extra: string[] = [], { fast = true, compiled = false } = {}): Promise<DaemonProcess> {
  const timing = fast ? FAST_FLAGS : [];
  // compiled: the build users run (npm start), as `npm test` builds it first.
  if (compiled && !existsSync(join(ROOT, 'dist', 'server', 'main.js'))) {
    throw new Error('dist/server is not built: run `npm run build` (npm test does) before this test');
  }
  const entry = compiled ? ['dist/server/main.js'] : ['--import', 'tsx', 'server/main.ts'];
  const proc = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...entry, '--port', '0', '--data-dir', dataDir, '--peer-host', '127.0.0.1', ...timing, ...extra], {
    cwd: ROOT,
    env: daemonEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await dashboardUrl(proc, 'daemon', 20_000, () => err);
  const parsed = new URL(url);
  const token = parsed.searchParams.get('token')!;
  const base = `${parsed.protocol}//${parsed.host}`;
  return {
    proc, url, base, token,
    client: new Client(base, token),
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}
