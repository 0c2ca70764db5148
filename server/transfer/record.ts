// One transfer as the daemon tracks it (either direction): its ledger row, its
// state changed only through setState() (which persists and emits the event), and
// progress with speed and ETA, with progress events throttled.

import { randomUUID } from 'node:crypto';
import type { Reason } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { Store, TransferRow } from '../store/db.js';
import { FINAL_STATES, type TransferState, type TransferView } from './view.js';

const PROGRESS_EVENT_MS = 250;
// Persist progress now and then, not per chunk: the ledger is for listing and resume.
const PROGRESS_SAVE_MS = 1000;

const STATE_EVENTS: Partial<Record<TransferState, 'transfer.offered' | 'transfer.started' | 'transfer.paused' | 'transfer.completed' | 'transfer.failed' | 'transfer.rejected' | 'transfer.canceled'>> = {
  offered: 'transfer.offered',
  transferring: 'transfer.started',
  paused: 'transfer.paused',
  completed: 'transfer.completed',
  failed: 'transfer.failed',
  rejected: 'transfer.rejected',
  canceled: 'transfer.canceled',
};

export interface NewTransfer {
  wireId: string;
  direction: 'in' | 'out';
  peerPort: number;
  localId: string;
  remoteId: string;
  name: string;
  size: number;
  path: string | null;
}

export class TransferRecord {
  readonly row: TransferRow;
  readonly localId: string;
  savedAs: string | null = null;
  /** Called once when the transfer reaches a final state. */
  onFinal: (() => void) | null = null;
  #startedAt: number | null = null;
  #lastEvent = 0;
  #lastSave = 0;
  #unsaved = false;
  readonly #store: Store;
  readonly #bus: EventBus;

  /** A new transfer, or (with `existing`) one restored from the ledger after a restart. */
  constructor(t: NewTransfer, store: Store, bus: EventBus, existing?: TransferRow) {
    const now = new Date().toISOString();
    this.#store = store;
    this.#bus = bus;
    this.localId = t.localId;
    if (existing) {
      this.row = existing;
      return;
    }
    this.row = {
      id: randomUUID(),
      wireId: t.wireId,
      direction: t.direction,
      peerPort: t.peerPort,
      remoteId: t.remoteId,
      name: t.name,
      size: t.size,
      state: 'queued',
      bytesDone: 0,
      sha256: null,
      path: t.path,
      errorCode: null,
      errorMessage: null,
      createdAt: now,
      updatedAt: now,
    };
    store.saveTransfer(this.row, { localId: this.localId });
  }

  get state(): TransferState {
    return this.row.state as TransferState;
  }

  get final(): boolean {
    return FINAL_STATES.has(this.state);
  }

  /** The one way a transfer changes state: persists, then emits the matching event. */
  setState(next: TransferState, error: Reason | null = null): void {
    if (this.final || (this.state === next && next !== 'paused')) return;
    if (next === 'transferring' && this.#startedAt === null) this.#startedAt = Date.now();
    this.row.state = next;
    this.row.errorCode = error?.code ?? null;
    this.row.errorMessage = error?.message ?? null;
    this.#save();
    const type = STATE_EVENTS[next];
    if (type) this.#bus.emit(type, { transfer: this.view() });
    if (this.final) this.onFinal?.();
  }

  progress(bytesDone: number): void {
    this.row.bytesDone = bytesDone;
    const now = Date.now();
    if (now - this.#lastSave >= PROGRESS_SAVE_MS) this.#save();
    if (now - this.#lastEvent >= PROGRESS_EVENT_MS) {
      this.#lastEvent = now;
      this.#bus.emit('transfer.progress', { transfer: this.view() });
    }
  }

  /** The file's SHA-256 is known (an upload finished): saved now, so a restarted daemon can resume without re-reading the file. */
  noteSha256(sha256: string): void {
    if (this.row.sha256 === sha256) return;
    this.row.sha256 = sha256;
    this.#save();
  }

  /** True while the database lacks this record's latest state (its last save failed). */
  get unsaved(): boolean {
    return this.#unsaved;
  }

  /** Saves the record again if its last save failed; true once the database has it. */
  saveAgain(): boolean {
    if (!this.#unsaved) return true;
    try {
      this.#store.saveTransfer(this.row, { localId: this.localId, savedAs: this.savedAs });
      this.#unsaved = false;
    } catch {
      // Still no room: it stays in memory.
    }
    return !this.#unsaved;
  }

  #save(): void {
    this.#lastSave = Date.now();
    this.row.updatedAt = new Date().toISOString();
    try {
      this.#store.saveTransfer(this.row, { localId: this.localId, savedAs: this.savedAs });
      this.#unsaved = false;
    } catch (err) {
      // A full disk also fills the database: the transfer goes on in memory and the
      // ledger catches up once there is room again.
      this.#unsaved = true;
      process.emitWarning(`could not record transfer ${this.row.id}: ${(err as Error).message}`);
    }
  }

  view(): TransferView {
    const r = this.row;
    const elapsed = this.#startedAt === null ? 0 : (Date.now() - this.#startedAt) / 1000;
    const speed = elapsed > 0 && r.bytesDone > 0 && !this.final ? Math.round(r.bytesDone / elapsed) : null;
    const eta = speed ? Math.ceil((r.size - r.bytesDone) / speed) : null;
    const [from, to] = r.direction === 'out' ? [this.localId, r.remoteId] : [r.remoteId, this.localId];
    return {
      id: r.id,
      direction: r.direction,
      peer: r.peerPort,
      from,
      to,
      name: r.name,
      size: r.size,
      bytesDone: r.bytesDone,
      state: this.state,
      speed,
      eta,
      sha256: r.sha256,
      savedAs: this.savedAs,
      error: r.errorCode ? { code: r.errorCode, message: r.errorMessage ?? '' } : null,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    };
  }
}
