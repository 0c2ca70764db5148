// The receiver's temporary file. Whole 4 KiB blocks are written with O_DIRECT
// from page-aligned buffers: on the VMs we measured, writing through the page
// cache costs about 1.4 s of system time per GiB (the host takes freed memory
// back and hands it out again), O_DIRECT about 0.2 s (../shared/field-notes.md
// section 5). The tail of a file and filesystems without O_DIRECT (tmpfs) go
// through an ordinary descriptor; reads, fsync and the final link use that one.

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { writeFully } from './file-io.js';

// O_DIRECT wants buffer address, file offset and length aligned to the logical
// block size; 4096 covers every common device.
const ALIGN = 4096;
const WASM_PAGE = 64 * 1024;
// Aligned buffers kept for reuse, so bulk receiving allocates nothing per chunk.
const POOL_KEEP = 8;

const pool: Buffer[] = [];

// Node has WebAssembly; this project's TypeScript libs (no DOM) do not declare it.
declare const WebAssembly: { Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer } };

/**
 * A page-aligned buffer of at least `size` bytes. WebAssembly memories start on a
 * page boundary, which ordinary Buffers do not promise.
 */
function alignedBuffer(size: number): Buffer {
  const i = pool.findIndex((b) => b.length >= size);
  if (i >= 0) return pool.splice(i, 1)[0]!;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(size / WASM_PAGE) });
  return Buffer.from(memory.buffer);
}

function release(buf: Buffer): void {
  if (pool.length < POOL_KEEP) pool.push(buf);
}

export class ChunkFile {
  /** The ordinary descriptor: reads, the unaligned tail, sync. */
  readonly fh: FileHandle;
  #direct: FileHandle | null;

  private constructor(fh: FileHandle, direct: FileHandle | null) {
    this.fh = fh;
    this.#direct = direct;
  }

  /** Opens `path` (created empty when `fresh`), with an O_DIRECT twin where the filesystem has one. */
  static async open(path: string, fresh: boolean): Promise<ChunkFile> {
    const fh = fresh ? await open(path, 'w+', 0o600) : await open(path, 'r+');
    let direct: FileHandle | null = null;
    if (constants.O_DIRECT) {
      direct = await open(path, constants.O_WRONLY | constants.O_DIRECT).catch(() => null);
    }
    return new ChunkFile(fh, direct);
  }

  get direct(): boolean {
    return this.#direct !== null;
  }

  /** Writes `bytes` at `position` (a multiple of the chunk size, so of 4096). */
  async write(bytes: Buffer, position: number): Promise<void> {
    const whole = this.#direct && position % ALIGN === 0 ? bytes.length - (bytes.length % ALIGN) : 0;
    if (whole > 0) {
      const buf = alignedBuffer(whole);
      try {
        bytes.copy(buf, 0, 0, whole);
        await writeFully(this.#direct!, buf.subarray(0, whole), position);
      } catch (err) {
        // Some filesystems accept O_DIRECT at open and refuse the write: stop trying.
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
        await this.#dropDirect();
        await writeFully(this.fh, bytes, position);
        return;
      } finally {
        release(buf);
      }
    }
    if (whole < bytes.length) await writeFully(this.fh, bytes.subarray(whole), position + whole);
  }

  async close(): Promise<void> {
    await this.#dropDirect();
    await this.fh.close();
  }

  async #dropDirect(): Promise<void> {
    const direct = this.#direct;
    this.#direct = null;
    await direct?.close().catch(() => {});
  }
}
