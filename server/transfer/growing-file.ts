// A file that is still arriving (an upload whose size was declared up front): the
// sender reads a chunk only once the upload has written it, so sending starts
// while the upload is still in flight. The upload's whole-file SHA-256 (hashed as
// the bytes arrived) becomes the one the sender announces.

import type { Reason } from '../errors.js';

/** Thrown to a sender waiting on an upload that failed. */
export class UploadFailed extends Error {
  readonly reason: Reason;
  constructor(reason: Reason) {
    super(reason.message);
    this.reason = reason;
  }
}

export class GrowingFile {
  readonly size: number;
  #written = 0;
  #sha256: string | null = null;
  #failure: Reason | null = null;
  #waiters: Array<() => void> = [];

  constructor(size: number) {
    this.size = size;
  }

  get written(): number {
    return this.#written;
  }

  /** True once bytes [0, end) are on disk; throws if the upload failed. */
  has(end: number): boolean {
    if (this.#failure) throw new UploadFailed(this.#failure);
    return this.#written >= end;
  }

  /** Resolves at the next change (more bytes, the end, a failure) or poke(). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Wakes waiters so they can look again (e.g. the transfer was paused). */
  poke(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** `bytes` more bytes are written (and readable) at the end of the file. */
  grew(bytes: number): void {
    this.#written += bytes;
    this.poke();
  }

  finish(sha256: string): void {
    if (this.#written !== this.size) {
      this.fail({ code: 'size_mismatch', message: `the upload declared ${this.size} bytes but sent ${this.#written}` });
      return;
    }
    this.#sha256 = sha256;
    this.poke();
  }

  fail(reason: Reason): void {
    if (this.#sha256 || this.#failure) return;
    this.#failure = reason;
    this.poke();
  }

  /** The whole-file SHA-256, once the upload has finished; throws if it failed. */
  async sha256(): Promise<string> {
    for (;;) {
      if (this.#failure) throw new UploadFailed(this.#failure);
      if (this.#sha256) return this.#sha256;
      await this.changed();
    }
  }
}
