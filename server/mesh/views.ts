// The JSON shapes the API and events expose (docs/API.md "Objects").

import type { Reason } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import { shortId } from '../peer/identity.js';

export interface PeerView {
  port: number;
  id: string;
  shortId: string;
  state: 'listening' | 'error';
  error: Reason | null;
  createdAt: string;
  connections: number;
}

export interface ConnectionView {
  id: string;
  shortId: string;
  host: string;
  port: number;
  direction: 'in' | 'out';
  state: 'handshaking' | 'open' | 'closed';
  local: boolean;
  connectedAt: string | null;
  bytesIn: number;
  bytesOut: number;
  rttMs: number | null;
}

export function connectionView(conn: PeerConnection, local: boolean): ConnectionView {
  const remote = conn.remote;
  if (!remote) throw new Error('connectionView() needs an authenticated connection');
  return {
    id: remote.id,
    shortId: shortId(remote.id),
    host: conn.remoteHost,
    port: remote.port,
    direction: conn.direction,
    state: conn.state,
    local,
    connectedAt: conn.connectedAt?.toISOString() ?? null,
    bytesIn: conn.bytesIn,
    bytesOut: conn.bytesOut,
    rttMs: conn.rttMs === null ? null : Math.round(conn.rttMs * 1000) / 1000,
  };
}
