// The JSON shape of a transfer in the API and events (docs/API.md "Transfers").

import type { Reason } from '../errors.js';

export const TRANSFER_STATES = ['queued', 'offered', 'transferring', 'paused', 'completed', 'failed', 'rejected', 'canceled'] as const;
export type TransferState = (typeof TRANSFER_STATES)[number];
export const FINAL_STATES: ReadonlySet<TransferState> = new Set(['completed', 'failed', 'rejected', 'canceled']);

export interface TransferView {
  id: string;
  direction: 'in' | 'out';
  /** The local peer (port) this transfer belongs to. */
  peer: number;
  /** Sender's and receiver's peer ids. */
  from: string;
  to: string;
  name: string;
  size: number;
  bytesDone: number;
  state: TransferState;
  /** Bytes per second over the transfer so far (null before data moves). */
  speed: number | null;
  /** Seconds left at that speed (null when unknown). */
  eta: number | null;
  /** Whole-file SHA-256, once known. */
  sha256: string | null;
  /** For received files: the name it got in the inbox. */
  savedAs: string | null;
  error: Reason | null;
  createdAt: string;
  updatedAt: string;
}
