// Wire types of the daemon API, mirroring docs/API.md. Kept separate from the
// client so state classes and components can import them without pulling fetch code.

export interface ApiErrorBody {
  code: string;
  message: string;
}

export type PeerState = 'listening' | 'error';

export interface Peer {
  port: number;
  id: string;
  shortId: string;
  state: PeerState;
  error: ApiErrorBody | null;
  createdAt: string;
  connections: number;
}

export type ConnectionDirection = 'in' | 'out';

export interface Connection {
  id: string;
  shortId: string;
  host: string;
  port: number;
  direction: ConnectionDirection;
  /** "open" in practice ("handshaking"/"closed" exist server-side); typed loosely so a new state still renders. */
  state: string;
  local: boolean;
  /** The daemon types this as nullable (null before the handshake completes). */
  connectedAt: string | null;
  bytesIn: number;
  bytesOut: number;
  rttMs: number | null;
}

export interface DaemonInfo {
  version: string;
  bootId: string;
  lastSeq: number;
  peerHost: string;
}

export type TransferDirection = 'in' | 'out';

export type TransferState =
  | 'queued'
  | 'offered'
  | 'transferring'
  | 'paused'
  | 'completed'
  | 'failed'
  | 'rejected'
  | 'canceled';

/** One file going one way between two peers. A transfer inside this daemon has two: one per side. */
export interface Transfer {
  id: string;
  direction: TransferDirection;
  /** The local peer (port) this record belongs to. */
  peer: number;
  /** Sender's and receiver's peer ids. */
  from: string;
  to: string;
  name: string;
  size: number;
  bytesDone: number;
  state: TransferState;
  /** Bytes per second while data moves; null before and after. */
  speed: number | null;
  /** Seconds left at that speed, when known. */
  eta: number | null;
  sha256: string | null;
  /** For incoming transfers: the name the file got in the peer's inbox. */
  savedAs: string | null;
  error: ApiErrorBody | null;
  createdAt: string;
  updatedAt: string;
}

/** A file a peer has received, in its inbox. */
export interface ReceivedFile {
  name: string;
  size: number;
  sha256: string;
  /** Sender's peer id. */
  from: string;
  receivedAt: string;
}

interface EventBase<T extends string, D> {
  seq: number;
  type: T;
  time: string;
  data: D;
}

export type DaemonEvent =
  | EventBase<'peer.added', { peer: Peer }>
  | EventBase<'peer.updated', { peer: Peer }>
  | EventBase<'peer.removed', { port: number; id: string }>
  | EventBase<'connection.opened', { port: number; connection: Connection }>
  | EventBase<'connection.updated', { port: number; connection: Connection }>
  | EventBase<'connection.closed', { port: number; connection: Connection; reason: ApiErrorBody }>
  | EventBase<TransferEventType, { transfer: Transfer }>;

export type TransferEventType =
  | 'transfer.offered'
  | 'transfer.started'
  | 'transfer.paused'
  | 'transfer.progress'
  | 'transfer.completed'
  | 'transfer.failed'
  | 'transfer.rejected'
  | 'transfer.canceled';

export type StreamMessage =
  | { type: 'stream.hello'; bootId: string; lastSeq: number }
  | { type: 'stream.gap'; from: number; to: number }
  | { type: 'stream.reset'; lastSeq: number };
