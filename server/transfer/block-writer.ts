// An upload's bytes into its outbox file: gathered into page-aligned blocks of the
// sender's chunk size, each written with O_DIRECT (ChunkFile) while the next one
// fills, several in flight, and hashed in order on the hash thread. Writing
// through the page cache cost this kind of VM 0.5-2.5 CPU-s of system time per
// GiB, and the sender does not need the cache: it takes recent blocks from memory
// (GrowingFile) and reads older ones from disk.

import { finished, type Readable } from 'node:stream';
import { ApiError } from '../errors.js';
import { copyInto, payloadPool } from '../protocol/buffer-pool.js';
import { DATA_FRAME_PREFIX, PREFERRED_CHUNK } from '../protocol/transfer-messages.js';
import type { ChunkFile } from './chunk-file.js';
import type { GrowingFile } from './growing-file.js';
import { hashThread } from './hasher.js';

/** Block writes in flight at once: an O_DIRECT write waits for the device. */
const MAX_WRITES = 4;

export class BlockWriter {
  readonly #file: ChunkFile;
  readonly #source: GrowingFile | undefined;
  readonly #blockSize: number;
  readonly #hash = hashThread.stream();
  #digest: Promise<string> | null = null;
  #block: Buffer | null = null;
  #filled = 0;
  #index = 0;
  /** Bytes accepted so far. */
  #size = 0;
  readonly #writes = new Set<Promise<void>>();
  #failed: Error | null = null;
  /** The upload failed: take no more pieces, start no more blocks. */
  #stopped = false;

  constructor(file: ChunkFile, source?: GrowingFile) {
    this.#file = file;
    this.#source = source;
    this.#blockSize = source?.blockSize ?? PREFERRED_CHUNK;
  }

  /** Bytes accepted so far (all of them, once the stream has finished). */
  get size(): number {
    return this.#size;
  }

  /** The whole-file SHA-256 (hex) once the stream has finished; the hash is gone after. */
  sha256(): Promise<string> {
    return (this.#digest ??= this.#hash.digest());
  }

  /** Forgets the hash (the upload failed). */
  drop(): void {
    this.#hash.drop();
  }

  /**
   * Takes `input` to its end, pausing it while writes and senders catch up; resolves once
   * every block is on disk. A 'data' listener, not a pipe: the pieces are copied at once,
   * so a Writable's buffering would be bookkeeping per 64 KiB piece for nothing.
   */
  async from(input: Readable): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        // A piece still being taken (waiting for a write or a sender) finishes first, so
        // nothing is left half-done when this settles; the first error wins.
        let pending: Promise<void> | null = null;
        let failure: Error | null = null;
        let settled = false;
        const settle = (err: Error | null) => {
          if (err) {
            failure ??= err;
            this.#stopped = true;
          }
          if (settled) return;
          settled = true;
          input.off('data', onData);
          if (failure) input.resume(); // drain what is left; the caller answers the request
          void (pending ?? Promise.resolve()).then(() => (failure ? reject(failure) : resolve()));
        };
        const onData = (piece: Buffer) => {
          let wait: Promise<void> | null;
          try {
            wait = this.#take(piece);
          } catch (err) {
            return settle(err as Error);
          }
          if (!wait) return;
          input.pause();
          pending = wait.then(
            () => {
              pending = null;
              if (!settled) input.resume();
            },
            (err: Error) => {
              pending = null;
              settle(err);
            },
          );
        };
        input.on('data', onData);
        // finished() also reports a stream that broke off before we got to it (a request
        // aborted while the file was being opened), as a premature close.
        finished(input, (err) => settle(err ?? null));
      });
      if (this.#block && this.#filled > 0) await this.#submit();
      // Senders may send their END now; from the answer on the daemon alone has the file:
      // what no receiver has saved by then goes to disk (GrowingFile.end).
      if (!this.#failed && this.#source) await this.#source.end(await this.sha256());
      await Promise.all(this.#writes);
      if (this.#failed) throw this.#failed;
    } catch (err) {
      this.#stopped = true;
      throw err;
    } finally {
      // Writes in flight give their blocks back themselves; wait for them, so the caller
      // may close the file.
      await Promise.allSettled([...this.#writes]);
      if (this.#block) payloadPool.give(this.#block);
      this.#block = null;
    }
  }

  /** Copies `piece` into blocks; a promise when a full block has to be waited for. Throws a lie about the size. */
  #take(piece: Buffer): Promise<void> | null {
    if (this.#failed) throw this.#failed;
    if (this.#source && this.#size + piece.length > this.#source.size) {
      throw new ApiError('size_mismatch', `the file is longer than its declared size of ${this.#source.size} bytes`);
    }
    this.#size += piece.length;
    return this.#fill(piece, 0);
  }

  #fill(piece: Buffer, from: number): Promise<void> | null {
    for (let at = from; at < piece.length && !this.#stopped; ) {
      // A chunk's size with room for DATA frame headers before it, so a sender can send
      // it as it is; the block itself starts a page (O_DIRECT).
      this.#block ??= payloadPool.take(DATA_FRAME_PREFIX + this.#blockSize, DATA_FRAME_PREFIX, true);
      const n = Math.min(piece.length - at, this.#blockSize - this.#filled);
      copyInto(this.#block, piece.subarray(at, at + n), DATA_FRAME_PREFIX + this.#filled);
      this.#filled += n;
      at += n;
      if (this.#filled === this.#blockSize) {
        const rest = at;
        return this.#submit().then(() => this.#fill(piece, rest) ?? undefined);
      }
    }
    return null;
  }

  /**
   * Starts the current block's hash and hands it to the GrowingFile, which has it written
   * only if it leaves memory before every receiver has saved it; without one, writes it
   * at once. Waits for room.
   */
  async #submit(): Promise<void> {
    const block = this.#block!;
    const frame = block.subarray(0, DATA_FRAME_PREFIX + this.#filled);
    const bytes = frame.subarray(DATA_FRAME_PREFIX);
    const index = this.#index++;
    this.#block = null;
    this.#filled = 0;
    const hashed = this.#hash.update(bytes);
    let write: Promise<void> | null = null;
    const persist = () => (write ??= this.#write(bytes, index));
    if (!this.#source) persist();
    let release: () => void = () => {};
    const released = this.#source ? new Promise<void>((r) => (release = r)) : Promise.resolve();
    // The buffer is reused once the hash thread and any sender are done with it, and its
    // write (if it had one: GrowingFile starts it before it lets go) has finished.
    void Promise.allSettled([hashed, released])
      .then(() => write?.catch(() => {}))
      .finally(() => payloadPool.give(block));
    const kept = this.#source?.keep(index, frame, release, persist);
    while (this.#writes.size >= MAX_WRITES) await Promise.race(this.#writes);
    if (this.#failed) throw this.#failed;
    await kept;
  }

  /** One block's write, counted against MAX_WRITES; a failure fails the upload. */
  #write(bytes: Buffer, index: number): Promise<void> {
    const write = this.#file.write(bytes, index * this.#blockSize).then(
      () => {},
      (err: Error) => {
        this.#failed ??= err;
        throw err;
      },
    );
    const tracked = write.catch(() => {});
    this.#writes.add(tracked);
    void tracked.then(() => this.#writes.delete(tracked));
    return write;
  }
}
