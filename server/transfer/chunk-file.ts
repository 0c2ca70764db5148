// The receiver's temporary file. Whole 4 KiB blocks are written with O_DIRECT
// from page-aligned buffers (chunks arrive in them: protocol/buffer-pool.ts).
// On the VMs we measured, writing through the page cache costs about 1.4 s of
// system time per GiB (the host takes freed memory back and hands it out
// again), O_DIRECT about 0.2 s (../shared/field-notes.md section 5). The tail of a file and filesystems without O_DIRECT (tmpfs) go
// through an ordinary descriptor; reads, fsync and the final link use that one.

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { copyInto, PAGE, payloadPool } from '../protocol/buffer-pool.js';
import { writeFully } from './file-io.js';

// O_DIRECT wants buffer address, file offset and length aligned to the logical
// block size; a page (4096) covers every common device.
const ALIGN = PAGE;

export class ChunkFile {
  /** The ordinary descriptor: reads, the unaligned tail, sync. */
  readonly fh: FileHandle;
  #direct: FileHandle | null;

  private constructor(fh: FileHandle, direct: FileHandle | null) {
    this.fh = fh;
    this.#direct = direct;
  }

  /**
   * Opens `path` with an O_DIRECT twin where the filesystem has one: 'fresh' empties
   * or creates it, 'new' creates it and fails if it exists, 'keep' opens it as it is.
   */
  static async open(path: string, mode: 'fresh' | 'new' | 'keep'): Promise<ChunkFile> {
    const flags = mode === 'new' ? 'wx+' : mode === 'fresh' ? 'w+' : 'r+';
    const fh = await open(path, flags, 0o600);
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
      // A chunk straight from the frame decoder is already aligned; anything else is copied.
      const direct = payloadPool.aligned(bytes);
      const buf = direct ? bytes : payloadPool.take(whole, 0, true);
      try {
        if (!direct) copyInto(buf, bytes.subarray(0, whole), 0);
        await writeFully(this.#direct!, buf.subarray(0, whole), position);
      } catch (err) {
        // Some filesystems accept O_DIRECT at open and refuse the write: stop trying. A write
        // still in flight on the O_DIRECT handle when another one found that out (several
        // run at once) ends with EBADF, and takes the ordinary descriptor too.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EINVAL' && !(code === 'EBADF' && this.#direct === null)) throw err;
        await this.#dropDirect();
        await writeFully(this.fh, bytes, position);
        return;
      } finally {
        if (!direct) payloadPool.give(buf);
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
