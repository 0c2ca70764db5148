// Daemons as separate processes, driven over the REST API and the event WebSocket
// exactly as a user's script would: the built daemon (dist/server/main.js), real
// default timings, and nothing imported from the server at run time.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { DAEMON_NODE_FLAGS, daemonEnv } from '../../server/node-flags.js';
import { dashboardUrl } from '../../tests/helpers/dashboard-url.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const DAEMON_ENTRY = join(ROOT, 'dist', 'server', 'main.js');

export class ApiError extends Error {
  constructor(readonly status: number, readonly body: unknown, what: string) {
    super(`${what}: HTTP ${status} ${JSON.stringify(body)}`);
  }
}

export class Api {
  constructor(readonly base: string, readonly token: string) {}

  async request<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(this.base + path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** A request that must answer `want`; anything else is a crash of the benchmark. */
  async expect<T = any>(want: number, method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request<T>(method, path, body);
    if (res.status !== want) throw new ApiError(res.status, res.body, `${method} ${path}`);
    return res.body;
  }

  addPeer(port: number): Promise<{ port: number; id: string }> {
    return this.expect(201, 'POST', '/api/peers', { port });
  }

  connect(port: number, host: string, remotePort: number): Promise<{ id: string }> {
    return this.expect(201, 'POST', `/api/peers/${port}/connections`, { host, port: remotePort });
  }

  trust(port: number, id: string): Promise<null> {
    return this.expect(204, 'PUT', `/api/peers/${port}/trusted/${id}`);
  }

  async peers(): Promise<Array<{ port: number; id: string; connections: number }>> {
    return (await this.expect<{ peers: Array<{ port: number; id: string; connections: number }> }>(200, 'GET', '/api/peers')).peers;
  }

  async connections(port: number): Promise<Array<{ id: string; port: number; state: string }>> {
    return (await this.expect<{ connections: Array<{ id: string; port: number; state: string }> }>(200, 'GET', `/api/peers/${port}/connections`)).connections;
  }

  async lastSeq(): Promise<number> {
    return (await this.expect<{ lastSeq: number }>(200, 'GET', '/api/daemon')).lastSeq;
  }

  deleteFile(port: number, name: string): Promise<null> {
    return this.expect(204, 'DELETE', `/api/peers/${port}/files/${encodeURIComponent(name)}`);
  }
}

export interface Daemon {
  name: string;
  proc: ChildProcess;
  pid: number;
  base: string;
  token: string;
  dataDir: string;
  api: Api;
  stderr(): string;
  /** SIGTERM (lets --cpu-prof write its profile) and wait for the exit code. */
  stop(): Promise<number | null>;
  events(): Promise<EventStream>;
}

const running = new Set<Daemon>();

// If the benchmark dies half-way, do not leave daemons (and their ports) behind.
process.once('exit', () => {
  for (const d of running) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
});

export interface StartOptions {
  name: string;
  dataDir: string;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
}

export async function startDaemon({ name, dataDir, nodeArgs = [] }: StartOptions): Promise<Daemon> {
  if (!existsSync(DAEMON_ENTRY)) throw new Error(`${DAEMON_ENTRY} is missing: run \`npm run build\` first (npm run bench does)`);
  mkdirSync(dataDir, { recursive: true });
  const proc = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...nodeArgs, DAEMON_ENTRY, '--port', '0', '--data-dir', dataDir, '--peer-host', '127.0.0.1'], {
    cwd: ROOT,
    env: daemonEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d) => (err = (err + d).slice(-20_000)));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const url = await dashboardUrl(proc, `daemon ${name}`, 30_000, () => err);
  // Keep draining stdout so a chatty daemon never blocks on a full pipe.
  proc.stdout!.resume();
  const parsed = new URL(url);
  const token = parsed.searchParams.get('token')!;
  const base = `${parsed.protocol}//${parsed.host}`;
  const daemon: Daemon = {
    name,
    proc,
    pid: proc.pid!,
    base,
    token,
    dataDir,
    api: new Api(base, token),
    stderr: () => err,
    async stop() {
      running.delete(daemon);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async events() {
      const stream = new EventStream(new WebSocket(`${base.replace(/^http/, 'ws')}/api/events`, { headers: { authorization: `Bearer ${token}` } }));
      await stream.ready;
      return stream;
    },
  };
  running.add(daemon);
  return daemon;
}

export interface MeshEvent {
  seq: number;
  type: string;
  data: any;
}

/** One client of /api/events; resolves `ready` once stream.hello has arrived. */
export class EventStream {
  readonly ready: Promise<{ lastSeq: number }>;
  readonly seqs: number[] = [];
  closeCode: number | null = null;
  #listeners = new Set<(e: MeshEvent) => void>();
  #keep: boolean;

  constructor(readonly ws: WebSocket, { keepSeqs = false } = {}) {
    this.#keep = keepSeqs;
    this.ready = new Promise((res, rej) => {
      ws.once('error', rej);
      ws.on('message', (raw) => {
        const msg = JSON.parse(String(raw));
        if (msg.type === 'stream.hello') return res({ lastSeq: msg.lastSeq });
        if (typeof msg.seq !== 'number') return;
        if (this.#keep) this.seqs.push(msg.seq);
        for (const l of this.#listeners) l(msg as MeshEvent);
      });
    });
    ws.on('close', (code) => (this.closeCode = code));
  }

  on(listener: (e: MeshEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.ws.close();
  }
}

/** A stream that records every seq it receives (scenario H). */
export async function recordingStream(d: Daemon): Promise<EventStream> {
  const stream = new EventStream(new WebSocket(`${d.base.replace(/^http/, 'ws')}/api/events`, { headers: { authorization: `Bearer ${d.token}` } }), { keepSeqs: true });
  await stream.ready;
  return stream;
}
