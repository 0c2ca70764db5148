// Keeps one peer connected to one known remote peer: when no connection to it
// is open, dial again after an exponential, jittered backoff. The owner (Mesh)
// routes the peer's connection events to it by remote id, so a peer with many
// redialers has one listener, not one per redialer. Timings and the
// random source are injected so tests run in milliseconds and deterministically.

import type { Reason } from '../errors.js';
import type { CloseInfo } from '../peer/connection.js';
import type { Peer } from '../peer/peer.js';

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  random?: () => number;
}

/** Close codes after which we must not dial again: the remote said it is gone or does not want us. */
const FINAL_CODES = new Set(['peer_removed', 'closed_by_user', 'self_connection']);

export interface Target {
  host: string;
  port: number;
  id: string;
}

/** Delay before attempt n (0-based): min * 2^n capped at max, scaled by a jitter in [0.5, 1). */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const base = Math.min(opts.maxMs, opts.minMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.5 + (opts.random ?? Math.random)() * 0.5));
}

export class Redialer {
  readonly target: Target;
  readonly #peer: Peer;
  readonly #backoff: BackoffOptions;
  readonly #onGone: (reason: Reason) => void;
  #attempt = 0;
  #timer: NodeJS.Timeout | null = null;
  #dialing = false;
  #stopped = false;

  constructor(peer: Peer, target: Target, backoff: BackoffOptions, onGone: (reason: Reason) => void = () => {}) {
    this.#peer = peer;
    this.target = target;
    this.#backoff = backoff;
    this.#onGone = onGone;
  }

  /** Dials now unless already connected. */
  start(): void {
    if (!this.#stopped && !this.#connected()) void this.#dial();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #connected(): boolean {
    return this.#peer.connection(this.target.id) !== undefined;
  }

  /** The owner routes the peer's connection.opened for target.id here. */
  opened(): void {
    this.#attempt = 0;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** The owner routes the peer's connection.closed for target.id here. */
  closed(info: CloseInfo): void {
    if (this.#stopped) return;
    if (info.byRemote && FINAL_CODES.has(info.reason.code)) {
      this.stop();
      this.#onGone(info.reason);
      return;
    }
    // Another connection to the same peer may have replaced this one.
    if (!this.#connected()) this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped || this.#timer || this.#dialing) return;
    const delay = backoffDelay(this.#attempt++, this.#backoff);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#connected()) void this.#dial();
    }, delay);
    this.#timer.unref();
  }

  async #dial(): Promise<void> {
    if (this.#dialing || this.#stopped) return;
    this.#dialing = true;
    try {
      await this.#peer.dial(this.target.host, this.target.port, { expectedId: this.target.id });
    } catch {
      // Refused, unreachable or lost a duplicate race: try again later unless connected meanwhile.
    } finally {
      this.#dialing = false;
    }
    if (!this.#stopped && !this.#connected()) this.#schedule();
  }
}
