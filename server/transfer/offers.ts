// Offers from peers of other daemons that wait for the user (transfer.offered):
// each has an expiry timer, and a connection to answer on when its sender is
// connected. They survive a restart: the offer is kept in the ledger, and the
// sender's next OFFER of the same transfer finds it still waiting.

import type { Reason } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import type { OfferMessage } from '../protocol/transfer-messages.js';
import type { TransferRecord } from './record.js';

export interface PendingOffer {
  record: TransferRecord;
  /** Where to answer; null while the sender is away (e.g. restored after a restart). */
  conn: PeerConnection | null;
  offer: OfferMessage;
  /** The user accepted while the sender was away: take its next OFFER without asking. */
  accepted: boolean;
}

interface Entry extends PendingOffer {
  timer: NodeJS.Timeout;
}

export class PendingOffers {
  readonly #entries = new Map<string, Entry>();
  readonly #timeoutMs: number;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** Starts waiting for the user; `waitedMs` is how long the offer already waited (before a restart). */
  add(key: string, offer: PendingOffer, waitedMs = 0): void {
    const left = Math.max(0, this.#timeoutMs - waitedMs);
    const expire = { code: 'offer_expired', message: `nobody accepted the offer within ${Math.round(this.#timeoutMs / 1000)} s` };
    const timer = setTimeout(() => this.decline(key, expire), left);
    timer.unref();
    this.#entries.set(key, { ...offer, timer });
    offer.record.setState('offered');
  }

  get(key: string): PendingOffer | undefined {
    return this.#entries.get(key);
  }

  /** The waiting offer of a transfer record, with its key. */
  find(record: TransferRecord): [string, PendingOffer] | undefined {
    for (const entry of this.#entries) if (entry[1].record === record) return entry;
    return undefined;
  }

  /** Stops waiting (the offer is being accepted, or ended some other way); the caller decides the state. */
  take(key: string): PendingOffer | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    this.#entries.delete(key);
    return entry;
  }

  /** Stops the expiry clock: the user said yes, the sender just is not here to be told. */
  hold(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.accepted = true;
  }

  /** Says no to the sender (when connected) and ends the record: rejected, or canceled by our user. */
  decline(key: string, reason: Reason): void {
    const entry = this.take(key);
    if (!entry) return;
    entry.conn?.send({ type: 'reject', id: entry.offer.id, ...reason });
    entry.record.setState(reason.code === 'canceled_by_user' ? 'canceled' : 'rejected', reason);
  }

  /** Ends every offer waiting on a local peer that is going away. */
  dropPeer(port: number, reason: Reason): void {
    for (const [key, entry] of this.#entries) {
      if (entry.record.row.peerPort === port) {
        this.take(key);
        entry.record.setState('canceled', reason);
      }
    }
  }
}
