// Reusable, page-aligned buffers for large frame payloads (DATA chunks of
// 64 KiB .. 4 MiB). Allocating a fresh buffer per chunk makes V8 collect
// garbage every few dozen MiB received; a receiver that is done with a chunk
// gives its buffer back instead. Page alignment lets the receiver write a chunk
// with O_DIRECT without copying it: the decoder places a DATA payload so that
// the chunk after its header starts on a page boundary.
//
// Pooled buffers are shared memory, so the hash thread reads them in place
// (transfer/hasher.ts). V8 frees shared memory that is not given back only at
// its next full collection, and does not count it towards starting one, so the
// live shared bytes are capped: past the cap, buffers are ordinary (aligned)
// memory that the collector handles as usual.

export const PAGE = 4096;
const MIN_POOLED = 64 * 1024;
const WASM_PAGE = 64 * 1024;

// Node has WebAssembly; this project's TypeScript libs (no DOM) do not declare it.
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => { buffer: ArrayBuffer | SharedArrayBuffer };
};

/**
 * Copies `src` into `dst` at `offset` (dst may be shared memory). Not
 * `dst.set(src)`: into shared memory V8 copies with relaxed atomics, byte by byte
 * whenever source and target are not equally word-aligned, which is the common
 * case for TLS records landing in a chunk (measured 0.82 s per GiB against
 * 0.06 s). Buffer#fill with a buffer of the same length is one native memcpy.
 */
export function copyInto(dst: Buffer, src: Uint8Array, offset: number): void {
  if (src.length === 0) return;
  dst.fill(src, offset, offset + src.length);
}

export class BufferPool {
  readonly #free = new Map<number, ArrayBufferLike[]>();
  /** Every buffer this pool made (all page-aligned); the shared ones are reused. */
  readonly #owned = new WeakSet<ArrayBufferLike>();
  readonly #shared = new WeakSet<ArrayBufferLike>();
  readonly #maxShared: number;
  #liveShared = 0;
  #inUse = 0;
  readonly #collected = new FinalizationRegistry<number>((bytes) => {
    this.#liveShared -= bytes;
  });

  constructor(maxSharedBytes: number) {
    this.#maxShared = maxSharedBytes;
  }

  /**
   * A buffer of exactly `n` bytes (contents undefined). Large ones (or any, with
   * `alwaysAligned`) are page-aligned and placed so that byte `skew` of the result
   * starts a page.
   */
  take(n: number, skew = 0, alwaysAligned = false): Buffer {
    if (n < MIN_POOLED && !alwaysAligned) return Buffer.allocUnsafe(n);
    const offset = (PAGE - (skew % PAGE)) % PAGE;
    const size = Math.ceil((n + offset) / WASM_PAGE) * WASM_PAGE;
    let ab = this.#free.get(size)?.pop();
    if (ab) this.#inUse++;
    else {
      // WebAssembly memories start on a page boundary, which ordinary buffers do not promise.
      const pages = size / WASM_PAGE;
      const shared = this.#liveShared + size <= this.#maxShared;
      ab = new WebAssembly.Memory(shared ? { initial: pages, maximum: pages, shared: true } : { initial: pages }).buffer;
      this.#owned.add(ab);
      if (shared) {
        this.#inUse++;
        this.#shared.add(ab);
        this.#liveShared += size;
        this.#collected.register(ab, size);
      }
    }
    return Buffer.from(ab, offset, n);
  }

  /** True when `buf` starts on a page boundary in memory (so O_DIRECT can write it). */
  aligned(buf: Uint8Array): boolean {
    return this.#owned.has(buf.buffer) && buf.byteOffset % PAGE === 0;
  }

  /** Returns a buffer (or any view into one) from take(); the caller must not touch it again. */
  give(buf: Uint8Array): void {
    const ab = buf.buffer;
    if (!this.#shared.has(ab)) return;
    const list = this.#free.get(ab.byteLength) ?? [];
    if (list.includes(ab)) throw new Error('buffer given back twice');
    list.push(ab);
    this.#inUse--;
    this.#free.set(ab.byteLength, list);
  }

  /** Shared bytes alive (pooled or in use), for tests and diagnostics. */
  get liveShared(): number {
    return this.#liveShared;
  }

  /** Shared buffers taken and not given back yet, for tests and diagnostics. */
  get inUse(): number {
    return this.#inUse;
  }
}

/** Large payloads of every connection of this process: about three credit windows of shared memory. */
export const payloadPool = new BufferPool(48 * 1024 * 1024);
