// Reusable, page-aligned buffers for large frame payloads (DATA chunks of
// 64 KiB .. 4 MiB). Allocating a fresh buffer per chunk makes V8 collect
// garbage every few dozen MiB received; a receiver that is done with a chunk
// gives its buffer back instead (buffers never given back are just collected).
// Page alignment lets the receiver write a chunk with O_DIRECT without copying
// it: the decoder places a DATA payload so that the chunk after its header
// starts on a page boundary.

export const PAGE = 4096;
const MIN_POOLED = 64 * 1024;
const WASM_PAGE = 64 * 1024;

// Node has WebAssembly; this project's TypeScript libs (no DOM) do not declare it.
declare const WebAssembly: { Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer } };

export class BufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  readonly #owned = new WeakSet<ArrayBuffer>();
  readonly #maxKept: number;
  #kept = 0;

  constructor(maxKeptBytes: number) {
    this.#maxKept = maxKeptBytes;
  }

  /**
   * A buffer of exactly `n` bytes (contents undefined). Large ones (or any, with
   * `alwaysAligned`) come from the pool, placed so that byte `skew` of the result
   * is page-aligned.
   */
  take(n: number, skew = 0, alwaysAligned = false): Buffer {
    if (n < MIN_POOLED && !alwaysAligned) return Buffer.allocUnsafe(n);
    const offset = (PAGE - (skew % PAGE)) % PAGE;
    const size = Math.ceil((n + offset) / WASM_PAGE) * WASM_PAGE;
    let ab = this.#free.get(size)?.pop();
    if (ab) {
      this.#kept -= size;
    } else {
      // WebAssembly memories start on a page boundary, which ordinary buffers do not promise.
      ab = new WebAssembly.Memory({ initial: size / WASM_PAGE }).buffer;
      this.#owned.add(ab);
    }
    return Buffer.from(ab, offset, n);
  }

  /** True when `buf` starts on a page boundary in memory (so O_DIRECT can write it). */
  aligned(buf: Uint8Array): boolean {
    return this.#owned.has(buf.buffer as ArrayBuffer) && buf.byteOffset % PAGE === 0;
  }

  /** Returns a buffer (or any view into one) from take(); the caller must not touch it again. */
  give(buf: Uint8Array): void {
    const ab = buf.buffer as ArrayBuffer;
    if (!this.#owned.has(ab) || this.#kept + ab.byteLength > this.#maxKept) return;
    const list = this.#free.get(ab.byteLength) ?? [];
    if (list.includes(ab)) throw new Error('buffer given back twice');
    list.push(ab);
    this.#free.set(ab.byteLength, list);
    this.#kept += ab.byteLength;
  }
}

/** Large payloads of every connection of this process; about two windows' worth is kept. */
export const payloadPool = new BufferPool(48 * 1024 * 1024);
