// The transfers a daemon keeps in memory: every one that has not ended, and the most
// recent KEEP_ENDED that have. Older ended transfers live only in the database, where
// GET /api/transfers/:id and a re-offer of a declined file still find them. Keeping
// every record made a daemon grow with its history: 25,000 small files took the sending
// daemon from 168 to 235 MB and the receiving one to 349 MB, each offer scanned every
// record, and GET /api/transfers answered 12.5 MB (docs/PERFORMANCE-HISTORY.md).

import type { Reason } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { Store } from '../store/db.js';
import { TransferRecord } from './record.js';
import { FINAL_STATES, type TransferState, type TransferView } from './view.js';

/** Ended transfers kept in memory (listed by GET /api/transfers, shown by the dashboard). */
export const KEEP_ENDED = 1000;

// Each final state has its event of the same name (record.ts STATE_EVENTS).
const ENDED_EVENTS: ReadonlySet<string> = new Set([...FINAL_STATES].map((state) => `transfer.${state}`));

/** An incoming transfer's key: the local peer, the sending peer and the sender's wire id. */
export const incomingKey = (port: number, remoteId: string, wireId: string): string => `${port}:${remoteId}:${wireId}`;

export class TransferRecords {
  readonly #store: Store;
  readonly #bus: EventBus;
  readonly #keep: number;
  readonly #byId = new Map<string, TransferRecord>();
  readonly #incoming = new Map<string, TransferRecord>();
  /** Ids of the ended records kept in memory, oldest first. */
  readonly #ended = new Set<string>();
  /** Ended records past the limit, until the database has their final state. */
  readonly #held = new Set<string>();

  constructor(store: Store, bus: EventBus, keep = KEEP_ENDED) {
    this.#store = store;
    this.#bus = bus;
    this.#keep = keep;
    // A record ends exactly once (setState ignores changes after a final state), with
    // one of these events.
    bus.subscribe((event) => {
      if (ENDED_EVENTS.has(event.type)) this.#retire((event.data as { transfer: TransferView }).transfer.id);
    });
  }

  /** Records in memory, oldest first. */
  values(): IterableIterator<TransferRecord> {
    return this.#byId.values();
  }

  add(record: TransferRecord): TransferRecord {
    this.#byId.set(record.row.id, record);
    const r = record.row;
    if (r.direction === 'in') this.#incoming.set(incomingKey(r.peerPort, r.remoteId, r.wireId), record);
    if (record.final) this.#retire(r.id);
    return record;
  }

  /** A record in memory: one that can still change, or ended recently. */
  get(id: string): TransferRecord | undefined {
    return this.#byId.get(id);
  }

  /**
   * Any transfer this daemon has a record of: from memory, or one ended long ago read back
   * from the database (a detached copy: it has ended, so nothing changes it).
   */
  find(id: string): TransferRecord | null {
    const live = this.#byId.get(id);
    if (live) return live;
    const row = this.#store.transfer(id);
    // A row that had not ended belongs to no transfer of this run (every unfinished one is
    // in memory): its state is not to be believed.
    if (!row || !FINAL_STATES.has(row.state as TransferState)) return null;
    const { localId, savedAs, ...stored } = row;
    const record = new TransferRecord({ ...stored, localId: localId ?? '' }, this.#store, this.#bus, stored);
    record.savedAs = savedAs;
    return record;
  }

  /** Why an incoming offer (by its key) was declined, if it was. */
  declined(port: number, remoteId: string, wireId: string): Reason | null {
    const record = this.#incoming.get(incomingKey(port, remoteId, wireId));
    const row = record ? (record.state === 'rejected' || record.state === 'canceled' ? record.row : null) : this.#store.declinedOffer(port, remoteId, wireId);
    return row ? { code: row.errorCode ?? 'rejected', message: row.errorMessage ?? 'the offer was declined' } : null;
  }

  #retire(id: string): void {
    if (!this.#byId.has(id) || this.#ended.has(id) || this.#held.has(id)) return;
    this.#ended.add(id);
    for (const old of this.#ended) {
      if (this.#ended.size <= this.#keep) break;
      this.#ended.delete(old);
      this.#held.add(old);
    }
    // One whose final state the database could not take (a full disk) stays in memory,
    // where it is right, rather than be read back wrong; it is tried again as others end.
    for (const old of this.#held) {
      const record = this.#byId.get(old);
      if (record && !record.saveAgain()) continue;
      this.#held.delete(old);
      this.#byId.delete(old);
      if (record?.row.direction === 'in') {
        const key = incomingKey(record.row.peerPort, record.row.remoteId, record.row.wireId);
        if (this.#incoming.get(key) === record) this.#incoming.delete(key);
      }
    }
  }
}
