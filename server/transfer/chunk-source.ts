// Where a sender's chunks come from: the file on disk, or an upload that is still
// arriving (GrowingFile), whose recent blocks are taken straight from memory. Each
// chunk is a whole DATA frame's buffer (room for the headers, then the bytes), so it
// leaves as one write (connection.sendData), and goes back to the pool once the
// socket and the hash thread are both done with it.

import type { FileHandle } from 'node:fs/promises';
import { payloadPool } from '../protocol/buffer-pool.js';
import { chunkCount, DATA_FRAME_PREFIX } from '../protocol/transfer-messages.js';
import { readFully } from './file-io.js';
import type { Cursor, GrowingFile } from './growing-file.js';
import type { HashStream } from './hasher.js';

export interface Chunk {
  /** DATA_FRAME_PREFIX bytes of room for the headers, then `bytes`. */
  frame: Buffer;
  bytes: Buffer;
  /** The socket is done with `frame` (or it was never sent). Idempotent. */
  sent: () => void;
}

export interface ChunkSourceOptions {
  size: number;
  chunkSize: number;
  /** Fed every chunk loaded, in order (a fresh transfer hashes as it reads). */
  hash: HashStream | null;
  growing: GrowingFile | undefined;
  /** The chunks this attempt sends, in order (a GrowingFile's cursor follows them). */
  need: readonly number[];
  halted: () => boolean;
}

export class ChunkSource {
  readonly #fh: FileHandle;
  readonly #opts: ChunkSourceOptions;
  readonly #cursor: Cursor | undefined;
  /** Resolves once the chunk loaded last has been handed to the hash. */
  #hashTurn: Promise<void> = Promise.resolve();

  constructor(fh: FileHandle, opts: ChunkSourceOptions) {
    this.#fh = fh;
    this.#opts = opts;
    if (opts.growing && opts.growing.blockSize !== opts.chunkSize) {
      throw new Error(`upload blocks of ${opts.growing.blockSize} bytes, chunks of ${opts.chunkSize}`);
    }
    this.#cursor = opts.growing?.follow(this.#after(-1));
  }

  /** The k-th chunk this attempt needs (once an upload has it); null when the attempt halted meanwhile. */
  async load(k: number): Promise<Chunk | null> {
    const { size, chunkSize, hash, growing, halted } = this.#opts;
    const index = this.#opts.need[k]!;
    const length = Math.min(chunkSize, size - index * chunkSize);
    while (growing && !growing.ready(index) && !halted()) await growing.changed();
    if (halted()) return null;
    // An upload's recent block is sent as it is; a second target copies it instead.
    const lent = growing?.lend(index) ?? null;
    this.#cursor?.at(this.#after(k));
    if (lent && lent.frame.length === DATA_FRAME_PREFIX + length) {
      return { frame: lent.frame, bytes: lent.frame.subarray(DATA_FRAME_PREFIX), sent: lent.release };
    }
    lent?.release();
    const frame = payloadPool.take(DATA_FRAME_PREFIX + length);
    const bytes = frame.subarray(DATA_FRAME_PREFIX);
    // Reads ahead run at once and may finish in any order; the hash takes them in order.
    const turn = this.#hashTurn;
    let handed!: () => void;
    this.#hashTurn = new Promise<void>((resolve) => (handed = resolve));
    try {
      if (!growing?.copy(index, bytes)) await readFully(this.#fh, bytes, index * chunkSize);
    } catch (err) {
      // The chunks after this one still reach the hash only after the ones before it.
      void turn.then(handed);
      payloadPool.give(frame);
      throw err;
    }
    await turn;
    const hashed = hash?.update(bytes) ?? Promise.resolve(null);
    handed();
    // Awaited only once the chunk is sent; a hash thread that died must not crash the
    // daemon meanwhile (the sender finds out from its digest).
    hashed.catch(() => {});
    let given = false;
    const sent = () => {
      if (given) return;
      given = true;
      void hashed.then(() => payloadPool.give(frame), () => {});
    };
    return { frame, bytes, sent };
  }

  close(): void {
    this.#cursor?.close();
  }

  /** The block this attempt takes after its k-th chunk (past the end of the file once it is done). */
  #after(k: number): number {
    const { need, size, chunkSize } = this.#opts;
    return need[k + 1] ?? chunkCount(size, chunkSize);
  }
}
