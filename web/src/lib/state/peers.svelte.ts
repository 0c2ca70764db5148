import type { Connection, DaemonEvent, Peer } from '../api/types';
import { connectionLabel, shortId } from '../format';

const SELECTED_KEY = 'meshdrop.selectedPort';

function byPort(a: { port: number }, b: { port: number }): number {
  return a.port - b.port;
}

function readSelected(): number | null {
  try {
    const raw = sessionStorage.getItem(SELECTED_KEY);
    return raw === null ? null : Number(raw);
  } catch {
    return null;
  }
}

/**
 * The daemon's peers and the connections of every peer, kept current by
 * events. Connections are held for all peers (events name the local peer by
 * `port`) so switching the selection never waits for the network.
 *
 * All mutations are idempotent upserts/removals, so replaying an event that a
 * REST snapshot already reflects is harmless; that is what makes the
 * "snapshot, then apply buffered events" resync in SyncState safe.
 */
export class PeersState {
  peers = $state<Peer[]>([]);
  connections = $state<Record<number, Connection[]>>({});
  selectedPort = $state<number | null>(readSelected());

  selected = $derived(this.peers.find((p) => p.port === this.selectedPort) ?? null);
  selectedConnections = $derived(
    this.selectedPort === null ? [] : (this.connections[this.selectedPort] ?? []),
  );

  /** Live count from the connection list; the Peer field is only a snapshot. */
  connectionCount(port: number): number {
    return this.connections[port]?.length ?? this.peers.find((p) => p.port === port)?.connections ?? 0;
  }

  /**
   * How to name a remote peer (by id) to the user of local peer `port`: its
   * port when it is a peer of this daemon, its address when it is a remote
   * connection, else its short id (a peer that has gone away, say).
   */
  remoteLabel(port: number, id: string): string {
    const connection = this.connections[port]?.find((c) => c.id === id);
    if (connection && connection.port > 0) return connectionLabel(connection);
    const local = this.peers.find((p) => p.id === id);
    if (local) return String(local.port);
    return connection?.shortId ?? shortId(id);
  }

  select(port: number | null): void {
    this.selectedPort = port;
    try {
      if (port === null) sessionStorage.removeItem(SELECTED_KEY);
      else sessionStorage.setItem(SELECTED_KEY, String(port));
    } catch {
      // Selection memory is a convenience only.
    }
  }

  /** Replace everything with a REST snapshot. */
  replaceAll(peers: Peer[], connections: Record<number, Connection[]>): void {
    this.peers = [...peers].sort(byPort);
    const next: Record<number, Connection[]> = {};
    for (const peer of this.peers) next[peer.port] = [...(connections[peer.port] ?? [])].sort(byPort);
    this.connections = next;
    this.#fixSelection();
  }

  upsertPeer(peer: Peer): void {
    const index = this.peers.findIndex((p) => p.port === peer.port);
    if (index === -1) {
      this.peers.push(peer);
      this.peers.sort(byPort);
    } else {
      this.peers[index] = peer;
    }
    this.connections[peer.port] ??= [];
    // Adding the first peer should show it straight away rather than an empty pane.
    if (this.selected === null) this.select(peer.port);
  }

  removePeer(port: number): void {
    const index = this.peers.findIndex((p) => p.port === port);
    if (index === -1) return;
    this.peers.splice(index, 1);
    delete this.connections[port];
    if (this.selectedPort === port) {
      // Keep the user's place: select the neighbour that slid into this slot.
      const next = this.peers[index] ?? this.peers[index - 1] ?? null;
      this.select(next?.port ?? null);
    }
  }

  upsertConnection(port: number, connection: Connection): void {
    const list = this.connections[port];
    // A late event for a peer we already dropped must not resurrect it.
    if (!list) return;
    const index = list.findIndex((c) => c.id === connection.id);
    if (index === -1) {
      list.push(connection);
      list.sort(byPort);
    } else {
      list[index] = connection;
    }
  }

  removeConnection(port: number, connectionId: string): void {
    const list = this.connections[port];
    if (!list) return;
    const index = list.findIndex((c) => c.id === connectionId);
    if (index !== -1) list.splice(index, 1);
  }

  apply(event: DaemonEvent): void {
    switch (event.type) {
      case 'peer.added':
      case 'peer.updated':
        this.upsertPeer(event.data.peer);
        break;
      case 'peer.removed':
        this.removePeer(event.data.port);
        break;
      case 'connection.opened':
      case 'connection.updated':
        this.upsertConnection(event.data.port, event.data.connection);
        break;
      case 'connection.closed':
        this.removeConnection(event.data.port, event.data.connection.id);
        break;
      default:
        // Unknown event types come from a newer daemon; ignoring them keeps the UI working.
        break;
    }
  }

  #fixSelection(): void {
    if (this.selectedPort !== null && this.peers.some((p) => p.port === this.selectedPort)) return;
    this.select(this.peers[0]?.port ?? null);
  }
}
