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
  | EventBase<'connection.closed', { port: number; connection: Connection; reason: ApiErrorBody }>;

export type StreamMessage =
  | { type: 'stream.hello'; bootId: string; lastSeq: number }
  | { type: 'stream.gap'; from: number; to: number }
  | { type: 'stream.reset'; lastSeq: number };
