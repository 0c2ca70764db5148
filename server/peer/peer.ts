// One peer: a TLS 1.3 server on its own port, its identity, and its connections
// (at most one open connection per remote peer). Knows nothing of HTTP or of
// the other peers in the daemon; the mesh decides whom to dial.

import { EventEmitter } from 'node:events';
import tls from 'node:tls';
import { ApiError, type Reason } from '../errors.js';
import type { HelloMessage } from '../protocol/messages.js';
import { PeerConnection, type CloseInfo, type ConnectionTimings } from './connection.js';
import { fingerprint, type Identity } from './identity.js';

export const ALPN = 'meshdrop/1';
// Any certificate can connect, so bound what one remote can pile up (handshaking or open).
const MAX_INBOUND_SOCKETS = 1024;

export interface PeerOptions {
  port: number;
  identity: Identity;
  /** Address the peer's TLS server binds to. */
  host: string;
  timings: ConnectionTimings;
  versions?: readonly number[];
}

export interface PeerEvents {
  'connection.opened': [PeerConnection];
  'connection.updated': [PeerConnection];
  'connection.closed': [PeerConnection, CloseInfo];
}

export interface DialOptions {
  expectedId?: string | undefined;
}

export class Peer extends EventEmitter<PeerEvents> {
  readonly port: number;
  readonly id: string;
  readonly #opts: PeerOptions;
  readonly #server: tls.Server;
  /** Open connections by remote id. */
  readonly #open = new Map<string, PeerConnection>();
  /** Every live connection, handshaking or open, so close() reaches them all. */
  readonly #all = new Set<PeerConnection>();
  #closed = false;
  /** Aborts for dials still in TCP/TLS/HELLO, so close() can cut them short. */
  readonly #dials = new Set<() => void>();

  constructor(opts: PeerOptions) {
    super();
    this.#opts = opts;
    this.port = opts.port;
    this.id = opts.identity.id;
    this.#server = tls.createServer({
      ...this.#tlsOptions(),
      requestCert: true,
      // We authenticate by fingerprint (checked against HELLO), not by a CA.
      rejectUnauthorized: false,
      handshakeTimeout: opts.timings.handshakeTimeoutMs,
    });
    this.#server.maxConnections = MAX_INBOUND_SOCKETS;
    this.#server.on('secureConnection', (socket) => this.#onSecureConnection(socket));
    // A client that fails TLS never becomes a connection; nothing to clean up.
    this.#server.on('tlsClientError', () => {});
  }

  /** Starts listening; rejects with port_in_use when the port is taken. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.#server.off('listening', onListening);
        if (err.code === 'EADDRINUSE') reject(new ApiError('port_in_use', `port ${this.port} is already in use by another program`));
        else if (err.code === 'EACCES') reject(new ApiError('port_in_use', `port ${this.port} needs privileges this daemon does not have`));
        else reject(err);
      };
      const onListening = () => {
        this.#server.off('error', onError);
        resolve();
      };
      this.#server.once('error', onError);
      this.#server.once('listening', onListening);
      this.#server.listen({ port: this.port, host: this.#opts.host, exclusive: true });
    });
  }

  /** Open connections, oldest first. */
  connections(): PeerConnection[] {
    return [...this.#open.values()];
  }

  connection(remoteId: string): PeerConnection | undefined {
    return this.#open.get(remoteId);
  }

  /** Dials host:port; resolves once the handshake is done (or rejects with dial_failed/dial_timeout/...). */
  dial(host: string, port: number, opts: DialOptions = {}): Promise<PeerConnection> {
    if (this.#closed) return Promise.reject(new ApiError('dial_failed', `peer ${this.port} is stopping`));
    return new Promise((resolve, reject) => {
      const { handshakeTimeoutMs } = this.#opts.timings;
      let conn: PeerConnection | null = null;
      let settled = false;
      const fail = (err: ApiError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#dials.delete(abort);
        reject(err);
      };
      const abort = () => {
        fail(new ApiError('dial_failed', `peer ${this.port} is stopping`));
        if (conn) conn.close({ code: 'shutdown', message: 'peer is stopping' });
        else socket.destroy();
      };
      this.#dials.add(abort);
      const socket = tls.connect({
        ...this.#tlsOptions(),
        host,
        port,
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      const timer = setTimeout(() => {
        const message = `no handshake with ${host}:${port} within ${handshakeTimeoutMs} ms`;
        fail(new ApiError('dial_timeout', message));
        if (conn) conn.close({ code: 'handshake_timeout', message });
        else socket.destroy();
      }, handshakeTimeoutMs);
      timer.unref();
      socket.once('error', (err: NodeJS.ErrnoException) => {
        const why = err.code === 'ECONNREFUSED' ? 'connection refused' : err.message;
        fail(new ApiError('dial_failed', `cannot reach ${host}:${port}: ${why}`));
      });
      socket.once('secureConnect', () => {
        if (this.#closed || settled) {
          socket.destroy();
          return;
        }
        const cert = socket.getPeerCertificate();
        conn = this.#adopt(socket, 'out', host, cert?.raw ? fingerprint(cert.raw) : null, opts.expectedId);
        conn.once('open', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.#dials.delete(abort);
          resolve(conn!);
        });
        conn.once('close', ({ reason }) => {
          // Losing a duplicate race still leaves the two peers connected: that is what the caller wanted.
          // The remote may refuse before sending its HELLO; TLS already told us who it is.
          const remoteId = conn!.remoteId ?? conn!.remoteFingerprint;
          const winner = reason.code === 'duplicate_connection' && remoteId ? this.#open.get(remoteId) : undefined;
          if (winner && winner.state === 'open' && !settled) {
            settled = true;
            clearTimeout(timer);
            this.#dials.delete(abort);
            resolve(winner);
            return;
          }
          const code = reason.code === 'self_connection' ? 'self_connection' : 'dial_failed';
          fail(new ApiError(code, `${host}:${port} refused the connection: ${reason.message} (${reason.code})`));
        });
      });
    });
  }

  /** Closes one connection with a reason sent to the remote. */
  closeConnection(remoteId: string, reason: Reason): boolean {
    const conn = this.#open.get(remoteId);
    if (!conn) return false;
    conn.close(reason);
    return true;
  }

  /**
   * Stops listening, cancels dials in progress and closes every connection telling
   * remotes why; resolves once their transports have closed (at most CLOSE_GRACE_MS
   * after the CLOSE frames, so the frames are flushed before a process exits). Idempotent.
   */
  async close(reason: Reason): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Not awaited: server.close() would also wait for sockets still in the TLS handshake.
    this.#server.close();
    for (const abort of [...this.#dials]) abort();
    const conns = [...this.#all];
    for (const conn of conns) conn.close(reason);
    await Promise.all(conns.map((c) => c.transportClosed));
  }

  #tlsOptions(): tls.TlsOptions & tls.ConnectionOptions {
    return {
      key: this.#opts.identity.keyPem,
      cert: this.#opts.identity.certPem,
      minVersion: 'TLSv1.3',
      ALPNProtocols: [ALPN],
    };
  }

  #onSecureConnection(socket: tls.TLSSocket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const cert = socket.getPeerCertificate();
    const host = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.#adopt(socket, 'in', host, cert?.raw ? fingerprint(cert.raw) : null, undefined);
  }

  #adopt(socket: tls.TLSSocket, direction: 'in' | 'out', host: string, remoteFingerprint: string | null, expectedId: string | undefined): PeerConnection {
    socket.setNoDelay(true);
    const conn = new PeerConnection({
      stream: socket,
      direction,
      local: { id: this.id, port: this.port },
      remoteHost: host,
      remoteFingerprint,
      expectedId,
      timings: this.#opts.timings,
      versions: this.#opts.versions,
      admit: (c, hello) => this.#admit(c, hello),
    });
    this.#all.add(conn);
    // Attach the listeners first so the caller (dial) sees a refusal below as a close.
    queueMicrotask(() => {
      if (conn.state === 'closed') return;
      if (socket.alpnProtocol !== ALPN) {
        conn.close({ code: 'wrong_application', message: `TLS must negotiate ALPN "${ALPN}"` });
      } else {
        conn.start();
      }
    });
    conn.on('open', () => this.emit('connection.opened', conn));
    conn.on('updated', () => this.emit('connection.updated', conn));
    conn.on('close', (info) => {
      this.#all.delete(conn);
      const id = conn.remoteId;
      if (id && this.#open.get(id) === conn) this.#open.delete(id);
      // connectedAt is set only for connections that announced 'open'.
      if (conn.connectedAt) this.emit('connection.closed', conn, info);
    });
    return conn;
  }

  /**
   * At most one open connection per pair of peers, decided the same way on both
   * ends without talking: between connections dialled in opposite directions the
   * one dialled by the smaller id wins; in the same direction the newer wins (the
   * dialler evidently considers the older one dead). See docs/PROTOCOL.md "Duplicates".
   */
  #admit(conn: PeerConnection, hello: HelloMessage): Reason | null {
    if (this.#closed) return { code: 'shutdown', message: 'peer is stopping' };
    const existing = this.#open.get(hello.id);
    if (existing && existing !== conn) {
      const dialler = (c: PeerConnection) => (c.direction === 'out' ? this.id : hello.id);
      const newWins = existing.direction === conn.direction || dialler(conn) < dialler(existing);
      if (!newWins) return { code: 'duplicate_connection', message: 'a connection between these peers already exists' };
      this.#open.set(hello.id, conn);
      existing.close({ code: 'duplicate_connection', message: 'superseded by a newer connection between these peers' });
      return null;
    }
    this.#open.set(hello.id, conn);
    return null;
  }
}
