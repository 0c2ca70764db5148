// The one event list: every event gets a global sequence number, is kept in a
// bounded ring for replay (`since`), and fans out to subscribers.
// Modelled on Syncthing's /rest/events?since= semantics.

import { randomUUID } from 'node:crypto';
import type { ConnectionView, PeerView } from '../mesh/views.js';
import type { TransferView } from '../transfer/view.js';
import type { Reason } from '../errors.js';

export const DEFAULT_BUFFER = 10_000;

/** Every event type and its payload, in one place. */
export interface EventMap {
  'peer.added': { peer: PeerView };
  'peer.removed': { port: number; id: string };
  'connection.opened': { port: number; connection: ConnectionView };
  'connection.updated': { port: number; connection: ConnectionView };
  'connection.closed': { port: number; connection: ConnectionView; reason: Reason };
  /** An offer was sent, or (direction "in") one waits for the user's accept or reject. */
  'transfer.offered': { transfer: TransferView };
  'transfer.started': { transfer: TransferView };
  /** At most a few per second per transfer. */
  'transfer.progress': { transfer: TransferView };
  /** Stopped with a reason (lost connection, full disk, the user); resumes from the verified chunks. */
  'transfer.paused': { transfer: TransferView };
  'transfer.completed': { transfer: TransferView };
  'transfer.failed': { transfer: TransferView };
  'transfer.rejected': { transfer: TransferView };
  'transfer.canceled': { transfer: TransferView };
}

export type EventType = keyof EventMap;

export interface MeshEvent<T extends EventType = EventType> {
  seq: number;
  type: T;
  time: string;
  data: EventMap[T];
}

export type Replay =
  | { kind: 'ok'; events: MeshEvent[] }
  /** Events from..to were dropped from the ring; the rest follow. */
  | { kind: 'gap'; from: number; to: number; events: MeshEvent[] }
  /** `since` is ahead of this process (the daemon restarted). */
  | { kind: 'reset' };

export class EventBus {
  readonly bootId = randomUUID();
  readonly #capacity: number;
  readonly #ring: MeshEvent[] = [];
  readonly #subscribers = new Set<(event: MeshEvent) => void>();
  #seq = 0;

  constructor(capacity = DEFAULT_BUFFER) {
    this.#capacity = capacity;
  }

  get lastSeq(): number {
    return this.#seq;
  }

  emit<T extends EventType>(type: T, data: EventMap[T]): MeshEvent<T> {
    const event: MeshEvent<T> = { seq: ++this.#seq, type, time: new Date().toISOString(), data };
    this.#ring.push(event as MeshEvent);
    if (this.#ring.length > this.#capacity) this.#ring.shift();
    for (const fn of this.#subscribers) fn(event as MeshEvent);
    return event;
  }

  /** Events with seq > since, as far as the ring still holds them. */
  since(since: number): Replay {
    if (since > this.#seq) return { kind: 'reset' };
    const oldest = this.#ring[0]?.seq ?? this.#seq + 1;
    // Sequence numbers in the ring are contiguous, so the start index is arithmetic.
    const events = this.#ring.slice(Math.max(0, since + 1 - oldest));
    if (since + 1 < oldest) return { kind: 'gap', from: since + 1, to: oldest - 1, events };
    return { kind: 'ok', events };
  }

  /** Subscribes to live events; returns the unsubscribe function. */
  subscribe(fn: (event: MeshEvent) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }
}
