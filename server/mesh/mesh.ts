// Hosts many peers in one daemon: creates and restores them, keeps every pair
// of local peers connected (full mesh), keeps remote peers the user dialled
// connected, and turns what happens into events. No HTTP here.

import { ApiError, type Reason } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { ConnectionTimings } from '../peer/connection.js';
import { createIdentity, shortId } from '../peer/identity.js';
import { Peer } from '../peer/peer.js';
import type { PeerRow, Store } from '../store/db.js';
import type { TransferService } from '../transfer/service.js';
import { Redialer, type BackoffOptions } from './redialer.js';
import { connectionView, type ConnectionView, type PeerView } from './views.js';

export interface MeshTimings extends ConnectionTimings {
  retryMinMs: number;
  retryMaxMs: number;
  /** Least time between two connection.updated events for one connection (RTT and byte counters). */
  statsEventIntervalMs: number;
}

export const DEFAULT_TIMINGS: MeshTimings = {
  handshakeTimeoutMs: 10_000,
  heartbeatIntervalMs: 10_000,
  heartbeatTimeoutMs: 30_000,
  retryMinMs: 500,
  retryMaxMs: 30_000,
  // Heartbeats refresh RTT every 10 s on every connection; with hundreds of connections an
  // event per heartbeat would flood the replay ring. Clients wanting fresher figures poll GET.
  statsEventIntervalMs: 60_000,
};

export interface MeshOptions {
  store: Store;
  bus: EventBus;
  /** Address peers' TLS servers bind to. */
  peerHost: string;
  /** Address local peers use to reach each other. */
  loopbackHost?: string;
  timings?: Partial<MeshTimings>;
  /** Ports that belong to the daemon itself (the API), never given to a peer. */
  reservedPorts?: () => number[];
  random?: () => number;
  /** File transfers; each running peer is attached to it. */
  transfers?: TransferService;
}

interface Hosted {
  row: PeerRow;
  peer: Peer | null;
  error: Reason | null;
  /** Redialers by remote id: local mesh partners and remembered remote peers. */
  redialers: Map<string, Redialer>;
}

export class Mesh {
  readonly timings: MeshTimings;
  readonly #opts: MeshOptions;
  readonly #hosted = new Map<number, Hosted>();
  readonly #adding = new Set<number>();
  #closed = false;

  constructor(opts: MeshOptions) {
    this.#opts = opts;
    this.timings = { ...DEFAULT_TIMINGS, ...opts.timings };
  }

  get #backoff(): BackoffOptions {
    return { minMs: this.timings.retryMinMs, maxMs: this.timings.retryMaxMs, random: this.#opts.random };
  }

  /** Restores the stored peers (a peer whose port is now taken comes back in state "error"). */
  async start(): Promise<void> {
    for (const row of this.#opts.store.listPeers()) {
      const hosted: Hosted = { row, peer: null, error: null, redialers: new Map() };
      this.#hosted.set(row.port, hosted);
      try {
        hosted.peer = await this.#startPeer(row);
      } catch (err) {
        hosted.error = { code: err instanceof ApiError ? err.code : 'internal', message: (err as Error).message };
      }
    }
    for (const hosted of this.#hosted.values()) {
      if (!hosted.peer) continue;
      for (const remote of this.#opts.store.listRemotes(hosted.row.port)) {
        this.#keep(hosted, { host: remote.host, port: remote.port, id: remote.remoteId });
      }
    }
    this.#linkLocalPeers();
  }

  peers(): PeerView[] {
    return [...this.#hosted.values()].sort((a, b) => a.row.port - b.row.port).map((h) => this.#peerView(h));
  }

  peer(port: number): PeerView {
    return this.#peerView(this.#get(port));
  }

  async addPeer(port: number): Promise<PeerView> {
    if (this.#closed) throw new ApiError('internal', 'the daemon is shutting down');
    if (this.#hosted.has(port) || this.#adding.has(port)) throw new ApiError('port_in_use', `port ${port} is already used by peer ${port}`);
    if (this.#opts.reservedPorts?.().includes(port)) throw new ApiError('port_in_use', `port ${port} is used by the daemon's API`);
    this.#adding.add(port);
    try {
      const identity = await createIdentity(`peer ${port}`);
      const row: PeerRow = { port, id: identity.id, certPem: identity.certPem, keyPem: identity.keyPem, createdAt: new Date().toISOString() };
      const peer = await this.#startPeer(row);
      try {
        this.#opts.store.insertPeer(row);
      } catch (err) {
        await peer.close({ code: 'shutdown', message: 'peer could not be saved' });
        throw err;
      }
      const hosted: Hosted = { row, peer, error: null, redialers: new Map() };
      this.#hosted.set(port, hosted);
      this.#opts.bus.emit('peer.added', { peer: this.#peerView(hosted) });
      this.#linkLocalPeers();
      return this.#peerView(hosted);
    } finally {
      this.#adding.delete(port);
    }
  }

  async removePeer(port: number): Promise<void> {
    const hosted = this.#get(port);
    this.#hosted.delete(port);
    for (const r of hosted.redialers.values()) r.stop();
    for (const other of this.#hosted.values()) {
      other.redialers.get(hosted.row.id)?.stop();
      other.redialers.delete(hosted.row.id);
    }
    this.#opts.store.deletePeer(port);
    this.#opts.transfers?.detach(port);
    await hosted.peer?.close({ code: 'peer_removed', message: `peer ${port} was removed` });
    this.#opts.bus.emit('peer.removed', { port, id: hosted.row.id });
  }

  connections(port: number): ConnectionView[] {
    const peer = this.#get(port).peer;
    return peer ? peer.connections().map((c) => connectionView(c, this.#isLocal(c.remoteId))) : [];
  }

  /** Dials a peer (usually in another daemon), remembers it and keeps it connected. */
  async connect(port: number, host: string, remotePort: number): Promise<ConnectionView> {
    const hosted = this.#get(port);
    if (!hosted.peer) throw new ApiError('peer_not_found', `peer ${port} is not running: ${hosted.error?.message ?? 'stopped'}`);
    const conn = await hosted.peer.dial(host, remotePort);
    const id = conn.remoteId!;
    if (!this.#isLocal(id)) {
      this.#opts.store.upsertRemote({ peerPort: port, remoteId: id, host, port: remotePort });
      this.#keep(hosted, { host, port: remotePort, id });
    }
    return connectionView(conn, this.#isLocal(id));
  }

  /** Closes a connection on the user's request and stops redialling that peer. */
  disconnect(port: number, remoteId: string): void {
    const hosted = this.#get(port);
    const conn = hosted.peer?.connection(remoteId);
    const redialer = hosted.redialers.get(remoteId);
    if (!conn && !redialer) throw new ApiError('connection_not_found', `peer ${port} has no connection to ${remoteId}`);
    redialer?.stop();
    hosted.redialers.delete(remoteId);
    this.#opts.store.deleteRemote(port, remoteId);
    conn?.close({ code: 'closed_by_user', message: 'the connection was closed by the user' });
  }

  /** Closes every peer, telling remotes we are shutting down (they will redial). */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#hosted.values()];
    for (const h of all) for (const r of h.redialers.values()) r.stop();
    await Promise.all(all.map((h) => h.peer?.close({ code: 'shutdown', message: 'the daemon is shutting down' })));
  }

  #get(port: number): Hosted {
    const hosted = this.#hosted.get(port);
    if (!hosted) throw new ApiError('peer_not_found', `no peer on port ${port}`);
    return hosted;
  }

  /** True when `id` is a peer of this daemon. */
  isLocalId(id: string): boolean {
    return this.#isLocal(id);
  }

  #isLocal(id: string | null): boolean {
    if (!id) return false;
    for (const h of this.#hosted.values()) if (h.row.id === id) return true;
    return false;
  }

  async #startPeer(row: PeerRow): Promise<Peer> {
    const peer = new Peer({
      port: row.port,
      identity: { id: row.id, certPem: row.certPem, keyPem: row.keyPem },
      host: this.#opts.peerHost,
      timings: this.timings,
    });
    const view = (c: Parameters<typeof connectionView>[0]) => connectionView(c, this.#isLocal(c.remoteId));
    const redialer = (id: string | null) => (id ? this.#hosted.get(row.port)?.redialers.get(id) : undefined);
    peer.on('connection.opened', (c) => {
      redialer(c.remoteId)?.opened();
      this.#opts.bus.emit('connection.opened', { port: row.port, connection: view(c) });
    });
    const lastStats = new WeakMap<object, number>();
    peer.on('connection.updated', (c) => {
      const now = Date.now();
      const last = lastStats.get(c);
      if (last !== undefined && now - last < this.timings.statsEventIntervalMs) return;
      lastStats.set(c, now);
      this.#opts.bus.emit('connection.updated', { port: row.port, connection: view(c) });
    });
    peer.on('connection.closed', (c, info) => {
      this.#opts.bus.emit('connection.closed', { port: row.port, connection: view(c), reason: info.reason });
      redialer(c.remoteId)?.closed(info);
    });
    // Everything listens before the first connection can arrive: a peer that starts
    // listening first could take a connection (and its first messages) nobody routes.
    await this.#opts.transfers?.attach(row.port, peer);
    try {
      await peer.listen();
    } catch (err) {
      this.#opts.transfers?.release(row.port, peer);
      throw err;
    }
    return peer;
  }

  /** Full mesh among local peers: for each pair, the smaller id keeps a connection to the larger. */
  #linkLocalPeers(): void {
    if (this.#closed) return;
    const running = [...this.#hosted.values()].filter((h) => h.peer);
    for (const a of running) {
      for (const b of running) {
        if (a.row.id < b.row.id) {
          this.#keep(a, { host: this.#localHost(), port: b.row.port, id: b.row.id });
        }
      }
    }
  }

  /** Where local peers reach each other: loopback when peers bind every address, else that address. */
  #localHost(): string {
    if (this.#opts.loopbackHost) return this.#opts.loopbackHost;
    const h = this.#opts.peerHost;
    if (h === '0.0.0.0' || h === '') return '127.0.0.1';
    if (h === '::') return '::1';
    return h;
  }

  #keep(hosted: Hosted, target: { host: string; port: number; id: string }): void {
    const existing = hosted.redialers.get(target.id);
    if (existing && existing.target.host === target.host && existing.target.port === target.port) return;
    existing?.stop();
    const redialer = new Redialer(hosted.peer!, target, this.#backoff, () => {
      hosted.redialers.delete(target.id);
      this.#opts.store.deleteRemote(hosted.row.port, target.id);
    });
    hosted.redialers.set(target.id, redialer);
    redialer.start();
  }

  #peerView(h: Hosted): PeerView {
    return {
      port: h.row.port,
      id: h.row.id,
      shortId: shortId(h.row.id),
      state: h.peer ? 'listening' : 'error',
      error: h.error,
      createdAt: h.row.createdAt,
      connections: h.peer ? h.peer.connections().length : 0,
    };
  }
}
