// A file that is still arriving (an upload whose size was declared up front): the
// sender reads a chunk only once the upload has it, so sending starts while the
// upload is still in flight. The upload's whole-file SHA-256 (hashed as the bytes
// arrived) becomes the one the sender announces.
//
// The upload arrives in blocks of the sender's chunk size, and the last few blocks
// stay in memory: a sender that keeps up sends its chunks from there (the block's
// own frame; a second target copies it) instead of reading back what was just
// written (the upload is written with O_DIRECT, so there is no page cache to read
// it from). A sender says where it is with a Cursor; the
// upload waits a little for a sender that is about to take the oldest block before
// it drops it, but never long, and in all only while the sender keeps within a few
// times the upload's own pace: a slow or stalled sender reads from disk instead, and
// the upload goes on (a user's browser must not wait for a slow link).
//
// A block is written to the outbox only when it leaves memory while some transfer of it
// may still need it: each transfer holds a Claim, and a receiver speaking saved/1 tells
// (SAVED) which chunks it holds durably and will never ask for again. A block every
// receiver has saved is dropped without a write, so an upload the receivers keep up
// with is never written to the sender's disk (on the VMs we measure, the outbox writes
// were what held C back: docs/PERFORMANCE-HISTORY.md). Whatever is still unsaved shortly after
// the upload ends is written before the upload is answered, so a restarted daemon can
// still resume.

import type { Reason } from '../errors.js';
import { copyInto } from '../protocol/buffer-pool.js';
import { chunkSizeFor, DATA_FRAME_PREFIX } from '../protocol/transfer-messages.js';

/** Bytes of recent blocks kept in memory for senders that keep up. */
const KEEP_BYTES = 16 * 1024 * 1024;
// All uploads of a daemon share this much: kept blocks come from the shared payload pool
// (48 MiB, protocol/buffer-pool.ts), and past its cap every block is a fresh buffer that
// only a collection frees, and that the hash thread gets a copy of (three 512 MiB uploads
// at once took the sending daemon to 265 MB). One or two uploads keep 16 MiB or 12 MiB each.
const SHARED_KEEP_BYTES = 24 * 1024 * 1024;
const MIN_KEPT_BLOCKS = 4;
/** How long the upload waits, per block, for a sender about to take the oldest kept block. */
const GRACE_MS = 100;
// In all, the upload waits for senders at most this long plus WAIT_RATIO times the time it
// spent working: a sender within a few times the upload's own pace keeps it company (and
// sends from memory); a much slower one (a remote link) does not slow a user's upload down
// to its pace, and reads what it missed from disk.
const WAIT_FLOOR_MS = 250;
// At the end, a receiver that keeps up still has the last window in flight, the hash check
// and an fsync to do: the upload's answer waits for it at most this long instead of writing
// the last 11-16 blocks to the outbox while it finishes (on loopback the answer now comes
// with the receiver's completion; docs/PERFORMANCE-HISTORY.md).
const END_WAIT_MS = 500;
const WAIT_RATIO = 3;

/** The uploads in progress that share SHARED_KEEP_BYTES (one per daemon; tests make their own). */
export class KeepBudget {
  readonly #uploads = new Set<object>();

  join(upload: object): void {
    this.#uploads.add(upload);
  }

  leave(upload: object): void {
    this.#uploads.delete(upload);
  }

  /** Bytes each upload in progress may keep. */
  get share(): number {
    return Math.min(KEEP_BYTES, Math.floor(SHARED_KEEP_BYTES / Math.max(1, this.#uploads.size)));
  }
}

export const keepBudget = new KeepBudget();

export interface GrowingFileTimings {
  graceMs: number;
  /** At the end, the longest the upload waits for receivers about to save its last blocks. */
  endMs: number;
  waitFloorMs: number;
  waitRatio: number;
}

/** Thrown to a sender waiting on an upload that failed. */
export class UploadFailed extends Error {
  readonly reason: Reason;
  constructor(reason: Reason) {
    super(reason.message);
    this.reason = reason;
  }
}

/** Where one sender is in a growing file: the next block it will take. */
export interface Cursor {
  at(next: number): void;
  close(): void;
}

interface Kept {
  /** DATA_FRAME_PREFIX bytes of room for a frame's headers, then the block. */
  frame: Buffer;
  bytes: Buffer;
  dropped: () => void;
  /** Writes the block to the outbox: only if it leaves memory before every receiver has saved it. */
  persist: () => Promise<void>;
  persisting: boolean;
  /** A sender is writing `frame` itself to its socket; it is not let go before it gives it back. */
  lent: boolean;
  gone: boolean;
}

/** One transfer of the upload: what its receiver holds durably, and whether it says so as it goes. */
export interface Claim {
  /** The receiver holds chunks [0, chunks) durably (SAVED, or what an ACCEPT did not ask for). */
  saved(chunks: number): void;
  /** The current attempt runs on a connection with saved/1 (waiting for SAVED makes sense). */
  live(on: boolean): void;
  /** The sender has sent every chunk before `next` on this attempt. */
  sent(next: number): void;
  /** The transfer ended: it needs nothing more. */
  done(): void;
}

/** A kept block lent to one sender, to send as it is; release() once the socket is done with it. */
export interface Lent {
  frame: Buffer;
  release: () => void;
}

export class GrowingFile {
  readonly size: number;
  /** Blocks are the sender's chunks (chunkSizeFor), so a kept block is a whole chunk. */
  readonly blockSize: number;
  readonly #budget: KeepBudget;
  readonly #timings: GrowingFileTimings;
  /** When the first block came, and how long the upload has waited for senders since. */
  #started = 0;
  #waited = 0;
  /** Bytes of every block that arrived so far. */
  #received = 0;
  #sha256: string | null = null;
  /** end() is waiting for receivers: memory keeps every block until it is done. */
  #ending = false;
  #failure: Reason | null = null;
  #waiters: Array<() => void> = [];
  /** Recent blocks by index, oldest first (Map keeps insertion order). */
  readonly #kept = new Map<number, Kept>();
  readonly #cursors = new Set<{ next: number }>();
  readonly #claims = new Set<{ saved: number; live: boolean; sent: number }>();
  #claimed = false;
  /** Blocks written through persist() (not a prefix: saved blocks are never written). */
  readonly #stored = new Map<number, number>();
  #storedBytes = 0;
  /** Blocks dropped without a write, because every receiver had saved them. */
  readonly #skipped = new Set<number>();
  readonly #persists = new Set<Promise<void>>();

  constructor(size: number, timings: Partial<GrowingFileTimings> = {}, budget: KeepBudget = keepBudget) {
    this.size = size;
    this.blockSize = chunkSizeFor(size);
    this.#budget = budget;
    this.#timings = { graceMs: GRACE_MS, endMs: END_WAIT_MS, waitFloorMs: WAIT_FLOOR_MS, waitRatio: WAIT_RATIO, ...timings };
  }

  /** Bytes of the upload written to disk so far. */
  get written(): number {
    return this.#storedBytes;
  }

  /** Blocks dropped without ever being written (every receiver had saved them). */
  get skippedBlocks(): number {
    return this.#skipped.size;
  }

  /** True once block `index` can be read: kept in memory (whole), or on disk. Throws if the upload failed. */
  ready(index: number): boolean {
    if (this.#failure) throw new UploadFailed(this.#failure);
    if (this.#skipped.has(index)) {
      // Only a receiver that lost what it said it had saved asks for such a block again.
      throw new UploadFailed({ code: 'source_gone', message: `chunk ${index} of the upload is gone: the receiver had reported it saved, so it was never written here` });
    }
    const length = Math.min(this.size, (index + 1) * this.blockSize) - index * this.blockSize;
    // A short last block (an upload shorter than it said) is not the chunk a sender wants:
    // it waits, and learns of the failure.
    return this.#kept.get(index)?.bytes.length === length || this.#stored.get(index) === length;
  }

  /**
   * Block `index` as a whole DATA frame, if it is still in memory and no other sender
   * has it: the sender writes its headers into the frame and sends it without a copy.
   */
  lend(index: number): Lent | null {
    const kept = this.#kept.get(index);
    if (!kept || kept.lent) return null;
    kept.lent = true;
    let returned = false;
    return {
      frame: kept.frame,
      release: () => {
        if (returned) return;
        returned = true;
        kept.lent = false;
        if (kept.gone) kept.dropped();
      },
    };
  }

  /** Copies block `index` into `into` if it is still in memory; false means: read it from disk. */
  copy(index: number, into: Buffer): boolean {
    const kept = this.#kept.get(index);
    if (!kept || kept.bytes.length !== into.length) return false;
    copyInto(into, kept.bytes, 0);
    return true;
  }

  /** One per transfer of this upload, made before its first block arrives. */
  claim(): Claim {
    const c = { saved: 0, live: false, sent: 0 };
    this.#claims.add(c);
    this.#claimed = true;
    return {
      saved: (chunks: number) => {
        if (chunks <= c.saved) return;
        c.saved = chunks;
        this.poke();
      },
      live: (on: boolean) => {
        c.live = on;
        if (!on) c.sent = 0;
        this.poke();
      },
      sent: (next: number) => {
        c.sent = next;
      },
      done: () => {
        if (this.#claims.delete(c)) this.poke();
      },
    };
  }

  /**
   * The upload has arrived whole, with this SHA-256: senders may send their END now. Kept
   * blocks some receiver still lacks, but is being sent from memory and reports as it
   * saves, get a moment (its receiver typically completes within it, and then they are
   * never written); the others are written at once, the rest at the deadline. Resolves
   * once every block is saved by its receivers or on disk: from the upload's answer on,
   * the daemon alone has the file, so a restarted daemon can still resume.
   */
  async end(sha256: string): Promise<void> {
    if (this.#sha256 || this.#failure) return;
    if (this.#received !== this.size) {
      this.fail({ code: 'size_mismatch', message: `the upload declared ${this.size} bytes but sent ${this.#received}` });
      return;
    }
    this.#ending = true;
    this.#sha256 = sha256;
    this.#budget.leave(this);
    this.poke();
    try {
      const now = performance.now();
      const { waitFloorMs, waitRatio } = this.#timings;
      const budget = waitFloorMs + waitRatio * (now - this.#started - this.#waited) - this.#waited;
      const deadline = now + Math.max(0, Math.min(this.#timings.endMs, budget));
      for (;;) {
        let waiting = false;
        for (const [index, kept] of this.#kept) {
          if (kept.persisting || this.#safe(index)) continue;
          if (this.#comingSoon(index) && performance.now() < deadline) waiting = true;
          else this.#persist(index, kept);
        }
        if (!waiting || this.#failure) break;
        await this.#changedOrTimeout(deadline);
      }
    } finally {
      this.#ending = false;
    }
    this.#trim();
    await Promise.all(this.#persists);
  }

  /** A sender following the upload, starting at block `next`. */
  follow(next: number): Cursor {
    const cursor = { next };
    this.#cursors.add(cursor);
    return {
      at: (n: number) => {
        cursor.next = n;
        this.#trim();
        this.poke();
      },
      close: () => {
        if (!this.#cursors.delete(cursor)) return;
        this.#trim();
        this.poke();
      },
    };
  }

  /**
   * The upload's block `index` (complete, not necessarily on disk yet): `frame` holds
   * DATA_FRAME_PREFIX bytes of room, then the block. Resolves once it is kept and there
   * is room for the next one; `dropped` is called when memory (and any sender) lets go
   * of it, so the upload can reuse the buffer once its write and hash are done too.
   * `persist` writes it to the outbox: called at most once, when it leaves memory before
   * every transfer's receiver has saved it, or when the upload ends (end()).
   */
  async keep(index: number, frame: Buffer, dropped: () => void, persist: () => Promise<void>): Promise<void> {
    if (this.#failure || this.#sha256) {
      dropped();
      return;
    }
    if (!this.#started) {
      this.#started = performance.now();
      this.#budget.join(this);
    }
    this.#kept.set(index, { frame, bytes: frame.subarray(DATA_FRAME_PREFIX), dropped, persist, persisting: false, lent: false, gone: false });
    this.#received += frame.length - DATA_FRAME_PREFIX;
    this.poke();
    while (this.#kept.size > this.#maxKept()) {
      const [oldest] = this.#kept.keys();
      // A sender about to take the oldest block, or a receiver about to report it saved,
      // gets a moment (within the upload's budget); then it is written, and read from disk.
      const { graceMs, waitFloorMs, waitRatio } = this.#timings;
      const now = performance.now();
      const budget = waitFloorMs + waitRatio * (now - this.#started - this.#waited) - this.#waited;
      const deadline = now + Math.min(graceMs, budget);
      while ((this.#wanted(oldest!) || this.#soonSaved(oldest!)) && performance.now() < deadline && this.#kept.has(oldest!)) await this.#changedOrTimeout(deadline);
      this.#waited += performance.now() - now;
      this.#drop(oldest!);
    }
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

  /** The upload has arrived whole: as end(), without waiting (blocks unsaved now are written as they leave memory). */
  finish(sha256: string): void {
    if (this.#sha256 || this.#failure) return;
    if (this.#received !== this.size) {
      this.fail({ code: 'size_mismatch', message: `the upload declared ${this.size} bytes but sent ${this.#received}` });
      return;
    }
    this.#sha256 = sha256;
    this.#budget.leave(this);
    this.#trim();
    this.poke();
  }

  fail(reason: Reason): void {
    if (this.#sha256 || this.#failure) return;
    this.#failure = reason;
    this.#budget.leave(this);
    this.#dropAll();
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

  /** Blocks kept in memory now (for tests and diagnostics). */
  get keptBlocks(): number {
    return this.#kept.size;
  }

  /**
   * Once the upload is over, memory keeps only blocks a sender inside the kept range has
   * still to take (a sender behind it reads from disk for a long while; it does not pin
   * 16 MiB for the length of a slow transfer). While it runs, keep() manages the range.
   */
  #trim(): void {
    if ((!this.#sha256 && !this.#failure) || this.#ending) return;
    const [oldest] = this.#kept.keys();
    if (oldest === undefined) return;
    let low = Infinity;
    for (const c of this.#cursors) if (c.next >= oldest) low = Math.min(low, c.next);
    for (const index of [...this.#kept.keys()]) if (index < low) this.#drop(index);
  }

  /** Blocks this upload may keep now: its share of the daemon's budget, in whole blocks. */
  #maxKept(): number {
    return Math.max(MIN_KEPT_BLOCKS, Math.floor(this.#budget.share / this.blockSize));
  }

  /** No transfer of the upload can still need block `index` from here. */
  #safe(index: number): boolean {
    if (!this.#claimed) return false;
    for (const c of this.#claims) if (c.saved <= index) return false;
    return true;
  }

  /**
   * Unsaved, but every receiver that lacks it has been sent it and reports as it goes: a
   * SAVED is on its way. A target far behind (a slow link) is not waited for: it would
   * hold the upload to its pace; the block is written instead.
   */
  #soonSaved(index: number): boolean {
    if (this.#safe(index) || !this.#claimed) return false;
    for (const c of this.#claims) if (c.saved <= index && !(c.live && c.sent > index)) return false;
    return true;
  }

  /**
   * At the end: every receiver that lacks block `index` reports as it saves and has a
   * sender following from memory (it was sent the block, or is within the kept blocks).
   */
  #comingSoon(index: number): boolean {
    if (!this.#claimed) return false;
    const [oldest] = this.#kept.keys();
    for (const c of this.#claims) if (c.saved <= index && !(c.live && (c.sent > index || c.sent >= oldest!))) return false;
    return true;
  }

  #persist(index: number, kept: Kept): void {
    if (kept.persisting) return;
    kept.persisting = true;
    const length = kept.bytes.length;
    const write = kept.persist().then(() => {
      this.#stored.set(index, length);
      this.#storedBytes += length;
      this.poke();
    });
    // A failed write fails the upload (the BlockWriter sees it); here it only stops counting.
    const tracked = write.catch(() => {});
    this.#persists.add(tracked);
    void tracked.then(() => this.#persists.delete(tracked));
  }

  #wanted(index: number): boolean {
    for (const c of this.#cursors) if (c.next === index) return true;
    return false;
  }

  #changedOrTimeout(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
      timer.unref();
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #drop(index: number): void {
    const kept = this.#kept.get(index);
    if (!kept) return;
    this.#kept.delete(index);
    if (!kept.persisting) {
      if (this.#safe(index) || this.#failure) this.#skipped.add(index);
      else this.#persist(index, kept);
    }
    kept.gone = true;
    if (!kept.lent) kept.dropped();
  }

  #dropAll(): void {
    for (const index of [...this.#kept.keys()]) this.#drop(index);
  }
}
