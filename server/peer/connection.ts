// One connection between two peers, over any Duplex byte stream (a TLS socket
// today; a link layer that adds latency, caps or cuts can sit in between).
// Closed state machine: handshaking -> open -> closed, changed only by setState().
// Every failure path ends in the one idempotent destroy(reason).

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ProtocolError, type Reason } from '../errors.js';
import { payloadPool } from '../protocol/buffer-pool.js';
import { FrameDecoder } from '../protocol/frame.js';
import { decodeMessage, encodeMessage, SUPPORTED_VERSIONS, type HelloMessage, type Message } from '../protocol/messages.js';
import { fillDataHeader, SAVED_FEATURE, SAVED_FRAME_TYPES, TRANSFER_FEATURE, TRANSFER_FRAME_TYPES, type TransferMessage } from '../protocol/transfer-messages.js';

// After we send CLOSE and end our side, how long the remote gets to end its side.
const CLOSE_GRACE_MS = 1000;
/** Unsent bytes we queue for a remote before deciding it has stopped reading. */
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Bulk senders stop writing above this many queued bytes and wait for 'drain'. */
const BULK_HIGH_WATER = 1024 * 1024;
const AGENT = 'meshdrop/0.1.0';

export type ConnectionState = 'handshaking' | 'open' | 'closed';
export type Direction = 'in' | 'out';

export interface ConnectionTimings {
  /** From transport up to a valid HELLO exchange. */
  handshakeTimeoutMs: number;
  /** How often we PING an open connection. */
  heartbeatIntervalMs: number;
  /** Silence after which an open connection is declared dead. */
  heartbeatTimeoutMs: number;
}

export interface LocalInfo {
  id: string;
  port: number;
}

export interface ConnectionOptions {
  stream: Duplex;
  direction: Direction;
  local: LocalInfo;
  /** Address of the remote end as seen by the transport (for display and redialling). */
  remoteHost: string;
  /** SHA-256 fingerprint of the certificate the remote presented in TLS, or null if none. */
  remoteFingerprint: string | null;
  /** When dialling a known peer: the id we expect to find there. */
  expectedId?: string | undefined;
  timings: ConnectionTimings;
  /** Protocol versions we speak (injectable so tests can exercise negotiation). */
  versions?: readonly number[];
  /** Optional features we announce in HELLO (default: file transfer). */
  features?: readonly string[];
  /** Called once the remote is authenticated; returns a reason to refuse it (e.g. a duplicate). */
  admit: (conn: PeerConnection, hello: HelloMessage) => Reason | null;
}

export interface CloseInfo {
  reason: Reason;
  /** True when the remote told us the reason in a CLOSE frame. */
  byRemote: boolean;
}

export interface PeerConnectionEvents {
  message: [TransferMessage];
  state: [ConnectionState];
  open: [];
  updated: [];
  close: [CloseInfo];
}

export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  readonly direction: Direction;
  readonly remoteHost: string;
  state: ConnectionState = 'handshaking';
  remote: HelloMessage | null = null;
  version = 0;
  connectedAt: Date | null = null;
  bytesIn = 0;
  bytesOut = 0;
  rttMs: number | null = null;
  closeInfo: CloseInfo | null = null;

  /** Resolves when the underlying transport has closed. */
  readonly transportClosed: Promise<void>;
  readonly #opts: ConnectionOptions;
  readonly #stream: Duplex;
  // DATA payloads come from the shared pool; the transfer code gives them back.
  readonly #decoder = new FrameDecoder({ pool: payloadPool });
  readonly #versions: readonly number[];
  readonly #features: readonly string[];
  #lastReceived = Date.now();
  #handshakeTimer: NodeJS.Timeout | null = null;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  /** Nonce of the PING awaiting its PONG (our own clock in ns, so the PONG gives the RTT). */
  #pingNonce: bigint | null = null;

  constructor(opts: ConnectionOptions) {
    super();
    this.#opts = opts;
    this.#stream = opts.stream;
    this.direction = opts.direction;
    this.remoteHost = opts.remoteHost;
    this.#versions = opts.versions ?? SUPPORTED_VERSIONS;
    this.#features = opts.features ?? [TRANSFER_FEATURE, SAVED_FEATURE];
    this.#stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#stream.on('end', () => this.#onEnd());
    this.#stream.on('error', (err: Error) => this.destroy({ code: 'connection_lost', message: err.message }));
    this.transportClosed = new Promise((resolve) => this.#stream.once('close', () => resolve()));
    this.#stream.on('close', () => this.destroy({ code: 'connection_lost', message: 'the transport closed' }));
  }

  /** The remote peer's id once authenticated, else null. */
  get remoteId(): string | null {
    return this.remote?.id ?? null;
  }

  /** Fingerprint of the certificate the remote presented in TLS (its id if it is honest). */
  get remoteFingerprint(): string | null {
    return this.#opts.remoteFingerprint;
  }

  /** Starts the handshake: the dialler speaks first. */
  start(): void {
    this.#handshakeTimer = setTimeout(
      () => this.close({ code: 'handshake_timeout', message: `no handshake within ${this.#opts.timings.handshakeTimeoutMs} ms` }),
      this.#opts.timings.handshakeTimeoutMs,
    );
    this.#handshakeTimer.unref();
    if (this.direction === 'out') this.#sendHello(Math.max(...this.#versions));
  }

  /** Closes telling the remote why (CLOSE frame), then ends the transport. Idempotent. */
  close(reason: Reason): void {
    if (this.state === 'closed') return;
    this.#send({ type: 'close', code: reason.code, message: reason.message });
    this.#stream.end();
    this.#finish({ reason, byRemote: false });
    // A remote that never ends its side must not keep the socket alive.
    setTimeout(() => this.#stream.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Tears down immediately without a CLOSE frame (transport failures). Idempotent. */
  destroy(reason: Reason, byRemote = false): void {
    if (this.state === 'closed') return;
    this.#finish({ reason, byRemote });
    this.#stream.destroy();
  }

  #finish(info: CloseInfo): void {
    this.closeInfo = info;
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    this.#setState('closed');
    this.emit('close', info);
  }

  // A method, so TypeScript does not narrow `state` across calls that change it.
  #isClosed(): boolean {
    return this.state === 'closed';
  }

  #setState(next: ConnectionState): void {
    if (this.state === next) return;
    this.state = next;
    this.emit('state', next);
  }

  #send(msg: Message): void {
    if (!this.#stream.writable) return;
    const bytes = encodeMessage(msg);
    this.bytesOut += bytes.length;
    this.#stream.write(bytes);
    // A remote that sends but does not read (e.g. a PING flood ignoring the PONGs) would
    // grow this queue without bound. Bulk writers wait for 'drain', so only a remote that
    // stopped reading gets here. Pausing our reads instead would deadlock two peers that
    // both send bulk data, so the connection is closed.
    if (msg.type !== 'close' && this.#stream.writableLength > MAX_QUEUED_BYTES && this.state !== 'closed') {
      this.close({ code: 'not_reading', message: `the remote left ${this.#stream.writableLength} bytes unread` });
    }
  }

  /** Bytes written to the transport but not yet flushed to the OS. */
  get queuedBytes(): number {
    return this.#stream.writableLength;
  }

  #sendHello(version: number): void {
    this.#send({ type: 'hello', version, id: this.#opts.local.id, port: this.#opts.local.port, agent: AGENT, features: [...this.#features] });
  }

  #onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.bytesIn += chunk.length;
    this.#lastReceived = Date.now();
    // Replies to the frames of one read (PONGs...) leave as one TLS write, not one each.
    this.#stream.cork();
    try {
      for (const frame of this.#decoder.frames(chunk)) {
        this.#onMessage(decodeMessage(frame));
        if (this.#isClosed()) return;
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.close({ code: err.code, message: err.message });
      } else {
        // Our own bug (e.g. in an event listener), not the remote's fault: say so, and make it visible.
        process.emitWarning(err as Error);
        this.close({ code: 'internal_error', message: 'the peer hit an internal error' });
      }
    } finally {
      this.#stream.uncork();
    }
  }

  #onEnd(): void {
    const truncated = this.#decoder.end();
    this.destroy(truncated ? { code: truncated.code, message: truncated.message } : { code: 'connection_lost', message: 'the remote ended the connection' });
  }

  #onMessage(msg: Message): void {
    if (msg.type === 'close') {
      this.destroy({ code: msg.code, message: msg.message }, true);
      return;
    }
    if (this.state === 'handshaking') {
      if (msg.type !== 'hello') throw new ProtocolError('unexpected_message', `${msg.type} before the handshake finished`);
      this.#onHello(msg);
      return;
    }
    switch (msg.type) {
      case 'hello':
        throw new ProtocolError('unexpected_message', 'HELLO after the handshake');
      case 'ping':
        this.#send({ type: 'pong', nonce: msg.nonce });
        return;
      case 'pong': {
        // Only the answer to our outstanding PING is a round trip; anything else is ignored.
        if (msg.nonce !== this.#pingNonce) return;
        this.#pingNonce = null;
        this.rttMs = Number(process.hrtime.bigint() - msg.nonce) / 1e6;
        this.emit('updated');
        return;
      }
      default:
        // Transfer frames only decode once the feature was negotiated (see #onHello).
        this.emit('message', msg);
    }
  }

  /** Sends a transfer message; false means the transport is full: wait for drained() before more bulk. */
  send(msg: TransferMessage): boolean {
    if (this.state !== 'open') return false;
    this.#send(msg);
    return this.#stream.writableLength < BULK_HIGH_WATER;
  }

  /**
   * Sends one DATA frame: `frame` is DATA_FRAME_PREFIX bytes of room for the headers
   * (filled in here), then the chunk; it goes out as one write, without a copy. Same
   * return as send(). `written` is called once the transport is done with `frame`
   * (or never took it), so the caller may reuse it.
   */
  sendData(id: string, index: number, frame: Buffer, written?: () => void): boolean {
    if (this.state !== 'open' || !this.#stream.writable) {
      written?.();
      return false;
    }
    fillDataHeader(frame, id, index);
    this.bytesOut += frame.length;
    this.#stream.write(frame, written && (() => written()));
    return this.#stream.writableLength < BULK_HIGH_WATER;
  }

  /** Resolves when the transport has flushed below the bulk high-water mark (or closed). */
  drained(): Promise<void> {
    if (this.state !== 'open' || this.#stream.writableLength < BULK_HIGH_WATER) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#stream.off('drain', done);
        this.off('close', done);
        resolve();
      };
      this.#stream.on('drain', done);
      this.once('close', done);
    });
  }

  /** Features both ends announced in their HELLOs. */
  get sharedFeatures(): string[] {
    return this.remote ? this.remote.features.filter((f) => this.#features.includes(f)) : [];
  }

  #onHello(hello: HelloMessage): void {
    const mine = this.#versions;
    // The dialler announces the highest version it speaks; the acceptor answers with the
    // version the connection will use: the lower of the two highest versions.
    const version = Math.min(Math.max(...mine), hello.version);
    if (!mine.includes(version) || (this.direction === 'out' && hello.version > Math.max(...mine))) {
      throw new ProtocolError('unsupported_version', `remote speaks up to version ${hello.version}; this peer speaks ${mine.join(', ')}`);
    }
    if (this.#opts.remoteFingerprint !== hello.id) {
      throw new ProtocolError('identity_mismatch', 'HELLO id does not match the TLS certificate fingerprint');
    }
    if (hello.id === this.#opts.local.id) throw new ProtocolError('self_connection', 'a peer cannot connect to itself');
    if (this.#opts.expectedId && this.#opts.expectedId !== hello.id) {
      throw new ProtocolError('identity_changed', `expected peer ${this.#opts.expectedId.slice(0, 8)}, found ${hello.id.slice(0, 8)}`);
    }
    this.remote = hello;
    this.version = version;
    const refusal = this.#opts.admit(this, hello);
    if (refusal) {
      this.close(refusal);
      return;
    }
    if (this.direction === 'in') this.#sendHello(version);
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    if (this.sharedFeatures.includes(TRANSFER_FEATURE)) {
      this.#decoder.enable(TRANSFER_FRAME_TYPES);
      if (this.sharedFeatures.includes(SAVED_FEATURE)) this.#decoder.enable(SAVED_FRAME_TYPES);
    }
    this.connectedAt = new Date();
    this.#startHeartbeat();
    this.#setState('open');
    this.emit('open');
  }

  #startHeartbeat(): void {
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = this.#opts.timings;
    const ping = () => {
      this.#pingNonce = process.hrtime.bigint();
      this.#send({ type: 'ping', nonce: this.#pingNonce });
    };
    this.#heartbeatTimer = setInterval(() => {
      const silentFor = Date.now() - this.#lastReceived;
      if (silentFor > heartbeatTimeoutMs) {
        this.close({ code: 'heartbeat_timeout', message: `nothing received for ${silentFor} ms` });
        return;
      }
      ping();
    }, heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
    // Measure the round trip at once, so a new connection shows its RTT without waiting an interval.
    ping();
  }
}
