// Receiving one file: chunks are written into a temporary file in the peer's
// partial/ folder. Chunks arrive in file order and feed the whole-file SHA-256;
// after each chunk the hash thread also answers the SHA-256 of the file so far
// (a prefix digest, almost free), and those go into the ledger once the chunks
// are durable (fdatasync). After a cut, a crash or a restart the receiver
// re-reads what it kept, checks it against those digests, and keeps everything
// up to the first chunk that no longer matches: only the rest is fetched again.
// Only when the whole-file SHA-256 matches the sender's END is the file fsynced
// and linked into the inbox under a name that exists nowhere yet (link() never
// overwrites).

import { link, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Reason } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import { chunkCount, SAVED_FEATURE, type DataMessage, type EndMessage, type OfferMessage } from '../protocol/transfer-messages.js';
import type { Ledger, Store } from '../store/db.js';
import { payloadPool } from '../protocol/buffer-pool.js';
import { ChunkFile } from './chunk-file.js';
import { hashFile, readFully } from './file-io.js';
import { hashThread, type HashStream } from './hasher.js';
import { numbered } from './names.js';
import type { TransferRecord } from './record.js';

// How many bytes of chunks may be in flight towards one receiver (credit window).
const WINDOW_BYTES = 16 * 1024 * 1024;
// Chunks written are credited back half a window at a time, not one by one: each CREDIT
// is a TLS record, a write and a wake-up at both ends. At 1 MiB chunks (window 16) that
// cut A's CPU from 4.84 to 4.35 CPU-s per GiB and raised it from 370 to 407 MiB/s
// (medians of 8 interleaved runs); a quarter window did half as well. Once every chunk
// sent has been written, less than a batch is owed, so the sender holds more than half a
// window of credit: it never waits for a batch with nothing in flight.
const CREDIT_SHARE = 2;
// How often the durable prefix is recorded (whichever comes first): a crash loses at most this much work.
const LEDGER_EVERY_MS = 500;
const LEDGER_EVERY_BYTES = 16 * 1024 * 1024;
// A live sender (saved/1: it holds the file in memory only, an upload still arriving)
// keeps each chunk until we report it durable, or writes it to its own disk: it keeps
// 16 MiB, so we sync well inside that.
const LIVE_LEDGER_EVERY_BYTES = 4 * 1024 * 1024;
const MAX_NAME_ATTEMPTS = 10_000;
const HASH_BYTES = 32;

export interface ReceiverPaths {
  partialDir: string;
  inboxDir: string;
}

export class Receiver {
  readonly record: TransferRecord;
  readonly #store: Store;
  readonly #paths: ReceiverPaths;
  readonly #onStored: (name: string) => void;
  #conn: PeerConnection;
  #offer: OfferMessage;
  readonly #temp: string;
  readonly #total: number;
  /** For each chunk, the SHA-256 of the file up to its end (32 bytes each); valid where #good is set. */
  readonly #hashes: Buffer;
  readonly #good: Uint8Array;
  /** Bytes of the chunks #good marks (a running sum: rescanning per chunk is O(chunks^2)). */
  #goodBytes = 0;
  /** Chunks [0, #durable) are on disk, synced, and in the ledger. */
  #durable = 0;
  /** The whole-file hash (on the hash thread), fed chunks [0, #hashedUpTo) in order. */
  #whole: HashStream | null = null;
  #hashedUpTo = 0;
  /** The chunk indexes still expected, in order. */
  #queue: number[] = [];
  #fh: ChunkFile | null = null;
  #writes: Promise<void> = Promise.resolve();
  #lastLedger = 0;
  /** A ledger sync running beside the chunk writes (see onData). */
  #syncing: Promise<void> | null = null;
  #sinceLedger = 0;
  #active = false;
  #finished = false;
  /** Chunks the sender may still send: the ACCEPT window plus CREDITs, less what arrived. */
  #allowed = 0;
  /** Chunks written and not credited yet, and how many make one CREDIT. */
  #owed = 0;
  #creditBatch = 1;

  constructor(opts: {
    record: TransferRecord;
    conn: PeerConnection;
    offer: OfferMessage;
    paths: ReceiverPaths;
    store: Store;
    onStored: (name: string) => void;
    ledger?: Ledger | null;
  }) {
    this.record = opts.record;
    this.#conn = opts.conn;
    this.#offer = opts.offer;
    this.#paths = opts.paths;
    this.#store = opts.store;
    this.#onStored = opts.onStored;
    this.#temp = opts.ledger?.tempPath ?? join(opts.paths.partialDir, `${opts.record.row.id}.part`);
    this.#total = chunkCount(opts.offer.size, opts.offer.chunkSize);
    this.#hashes = Buffer.alloc(this.#total * HASH_BYTES);
    this.#good = new Uint8Array(this.#total);
    if (opts.ledger?.chunkHashes && opts.ledger.chunkSize === opts.offer.chunkSize) {
      const known = Math.min(opts.ledger.verified, this.#total, Math.floor(opts.ledger.chunkHashes.length / HASH_BYTES));
      opts.ledger.chunkHashes.copy(this.#hashes, 0, 0, known * HASH_BYTES);
      this.#good.fill(1, 0, known);
      this.#goodBytes = this.#prefixBytes(known);
      this.#durable = known;
    }
  }

  get connection(): PeerConnection {
    return this.#conn;
  }

  /** True when this receiver can take up a re-OFFER of the same file. */
  matches(offer: OfferMessage): boolean {
    return offer.size === this.#offer.size && offer.chunkSize === this.#offer.chunkSize;
  }

  /** Fresh start, or resume on a new connection: checks what is on disk, then ACCEPTs the rest. */
  async start(conn: PeerConnection = this.#conn, offer?: OfferMessage): Promise<void> {
    // A pause may still be syncing and closing the previous file handle.
    await this.#writes;
    if (this.#finished) return;
    this.#conn = conn;
    // A re-OFFER may come from a sender that is live now, or no longer (it restarted).
    if (offer) this.#offer = { ...this.#offer, live: offer.live };
    this.#active = true;
    const fresh = this.#durable === 0;
    // The whole-file hash is rebuilt from what is on disk, in order.
    this.#whole?.drop();
    this.#whole = hashThread.stream();
    this.#hashedUpTo = 0;
    this.#keepGood(this.#durable);
    const fh = await ChunkFile.open(this.#temp, fresh ? 'fresh' : 'keep');
    if (this.#finished) {
      // Canceled while the file was opening: fail() found no handle to close.
      await fh.close();
      await unlink(this.#temp).catch(() => {});
      return;
    }
    this.#fh = fh;
    if (!fresh) await this.#verifyOnDisk();
    if (this.#finished) return;
    this.#queue = [];
    for (let i = 0; i < this.#total; i++) if (!this.#good[i]) this.#queue.push(i);
    this.#saveLedger();
    this.record.progress(this.#goodBytes);
    this.record.setState('transferring');
    const window = Math.max(2, Math.min(64, Math.floor(WINDOW_BYTES / this.#offer.chunkSize)));
    this.#allowed = window;
    this.#owed = 0;
    this.#creditBatch = Math.max(1, Math.floor(window / CREDIT_SHARE));
    this.#conn.send({ type: 'accept', id: this.#offer.id, need: ranges(this.#queue), window });
  }

  onData(msg: DataMessage): void {
    if (!this.#active) return payloadPool.give(msg.bytes);
    const { chunkSize, size } = this.#offer;
    const expected = Math.min(chunkSize, size - msg.index * chunkSize);
    if (msg.index !== this.#queue[0] || msg.bytes.length !== expected) {
      this.fail({ code: 'bad_chunk', message: `chunk ${msg.index} was not expected (next ${this.#queue[0]}, ${expected} bytes)` }, true);
      return payloadPool.give(msg.bytes);
    }
    if (--this.#allowed < 0) {
      // Chunks queue up in memory until the disk takes them: a sender may not run ahead.
      this.fail({ code: 'window_exceeded', message: 'the sender sent more chunks than the receiver allowed' }, true);
      return payloadPool.give(msg.bytes);
    }
    this.#queue.shift();
    const { index, bytes } = msg;
    // Hashed now, in arrival order; the write starts now too, so several are in flight at
    // once (O_DIRECT writes wait for the device). The bookkeeping below runs in order.
    let hashed: Promise<Buffer | null>;
    if (this.#whole && index === this.#hashedUpTo) {
      hashed = this.#whole.update(bytes, true);
      this.#hashedUpTo++;
    } else {
      // Not the next chunk of the running hash (an attempt that started over under us): the
      // whole file is hashed at the end instead, and this chunk gets no digest, so a resume
      // fetches it again.
      this.#whole?.drop();
      this.#whole = null;
      hashed = Promise.resolve(null);
    }
    const fh = this.#fh;
    const written = fh ? fh.write(bytes, index * chunkSize) : Promise.resolve();
    // The buffer goes back to the pool only once nothing reads it any more.
    void Promise.all([written, hashed]).then(() => payloadPool.give(bytes), () => {});
    this.#writes = this.#writes
      .then(async () => {
        // Chunks already received are still written after a pause (so they are not fetched
        // again); only a transfer that ended for good drops them.
        if (this.#finished || !fh) return;
        await written;
        const digest = await hashed;
        if (digest) digest.copy(this.#hashes, index * HASH_BYTES);
        else this.#hashes.fill(0, index * HASH_BYTES, (index + 1) * HASH_BYTES);
        if (!this.#good[index]) this.#goodBytes += bytes.length;
        this.#good[index] = 1;
        this.record.progress(this.#goodBytes);
        this.#sinceLedger += bytes.length;
        // No CREDIT once every chunk has arrived: nothing more will be sent.
        if (this.#active && ++this.#owed >= this.#creditBatch && this.#queue.length > 0) {
          this.#allowed += this.#owed;
          this.#conn.send({ type: 'credit', id: this.#offer.id, chunks: this.#owed });
          this.#owed = 0;
        }
        // The ledger sync runs beside the chunks, not between them: an fdatasync can take
        // tens of milliseconds, and credits held back that long starve the link.
        if (!this.#syncing && (Date.now() - this.#lastLedger >= LEDGER_EVERY_MS || this.#sinceLedger >= this.#ledgerEveryBytes())) {
          this.#syncing = this.#sync()
            .catch((err: NodeJS.ErrnoException) => this.#writeFailed(err))
            .finally(() => {
              this.#syncing = null;
            });
        }
      })
      .catch((err: NodeJS.ErrnoException) => this.#writeFailed(err));
  }

  onEnd(msg: EndMessage): void {
    this.#writes = this.#writes.then(() => this.#finish(msg)).catch((err: NodeJS.ErrnoException) => this.#writeFailed(err));
  }

  /** The link dropped or the sender paused: keep the verified chunks for a later resume. */
  pause(reason: Reason): void {
    if (!this.#active) return;
    this.#active = false;
    this.record.setState('paused', reason);
    this.#writes = this.#writes.then(async () => {
      await this.#syncing;
      if (this.#fh) await this.#sync().catch(() => {});
      await this.#fh?.close().catch(() => {});
      this.#fh = null;
    });
  }

  /** Gives up for good: tells the sender (unless it told us), removes the temporary file. Idempotent. */
  fail(reason: Reason, tellSender: boolean, state: 'failed' | 'canceled' = 'failed'): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#active = false;
    if (tellSender) this.#conn.send({ type: 'cancel', id: this.#offer.id, code: reason.code, message: reason.message });
    this.record.setState(state, reason);
    this.#whole?.drop();
    this.#whole = null;
    this.#writes = this.#writes.finally(async () => {
      await this.#syncing;
      await this.#fh?.close().catch(() => {});
      this.#fh = null;
      await unlink(this.#temp).catch(() => {});
    });
  }

  /** A full disk keeps the partial file: the transfer can resume once there is room. */
  #writeFailed(err: NodeJS.ErrnoException): void {
    if (err.code === 'ENOSPC' || err.code === 'EDQUOT' || err.code === 'SQLITE_FULL') {
      const reason = { code: 'disk_full', message: 'the receiving disk is full; the transfer resumes when there is room' };
      this.#conn.send({ type: 'cancel', id: this.#offer.id, code: 'disk_full', message: reason.message });
      this.pause(reason);
      return;
    }
    this.fail({ code: 'write_failed', message: `cannot write the file: ${err.code ?? err.message}` }, true);
  }

  /**
   * Re-reads the chunks the ledger calls good, feeding the whole-file hash again, and keeps
   * them up to the first whose prefix digest no longer matches (a damaged disk, an edited
   * file): that one and all after it are fetched again. A prefix digest cannot vouch for a
   * chunk after a bad one; damage is rare, a second hash pass on every transfer is not.
   */
  async #verifyOnDisk(): Promise<void> {
    const { chunkSize, size } = this.#offer;
    const buf = Buffer.allocUnsafe(chunkSize);
    let kept = 0;
    while (kept < this.#durable && this.#whole) {
      const length = Math.min(chunkSize, size - kept * chunkSize);
      const { bytesRead } = await this.#fh!.fh.read(buf, 0, length, kept * chunkSize);
      if (bytesRead !== length) break;
      // Copied as it is handed over (not shared memory), so `buf` can be read into again.
      const digest = await this.#whole.update(buf.subarray(0, bytesRead), true);
      if (!digest!.equals(this.#hashes.subarray(kept * HASH_BYTES, (kept + 1) * HASH_BYTES))) {
        // The stream has taken the bad chunk in: start it again over the good ones.
        this.#whole.drop();
        this.#whole = null;
        break;
      }
      kept++;
    }
    this.#hashedUpTo = kept;
    if (!this.#whole && !this.#finished) await this.#rehash(kept, buf);
    this.#keepGood(kept);
    this.#durable = kept;
  }

  /** A fresh whole-file hash fed chunks [0, count) from disk (all known good). */
  async #rehash(count: number, buf: Buffer): Promise<void> {
    const { chunkSize, size } = this.#offer;
    this.#whole = hashThread.stream();
    for (let i = 0; i < count; i++) {
      const length = Math.min(chunkSize, size - i * chunkSize);
      await readFully(this.#fh!.fh, buf.subarray(0, length), i * chunkSize);
      await this.#whole.update(buf.subarray(0, length));
    }
  }

  async #sync(): Promise<void> {
    if (!this.#fh) return;
    // Only chunks written before the datasync starts are covered by it.
    // A chunk without its prefix digest (it came out of order for the running hash) ends
    // the prefix: a resume could not vouch for it, and fetches it again.
    let d = this.#durable;
    while (d < this.#total && this.#good[d] && this.#hasDigest(d)) d++;
    await this.#fh.fh.datasync();
    const advanced = d > this.#durable;
    if (advanced) this.#durable = d;
    // saved/1: the sender may now forget these chunks (it need not keep them on its own
    // disk). Only once the ledger has them: after a crash we must not ask for them again.
    const saved = this.#saveLedger();
    if (saved && advanced && this.#active && this.#saves()) this.#conn.send({ type: 'saved', id: this.#offer.id, chunks: this.#durable });
  }

  #hasDigest(index: number): boolean {
    for (let i = index * HASH_BYTES; i < (index + 1) * HASH_BYTES; i++) if (this.#hashes[i] !== 0) return true;
    return false;
  }

  #saves(): boolean {
    return this.#conn.sharedFeatures.includes(SAVED_FEATURE);
  }

  #ledgerEveryBytes(): number {
    return this.#offer.live && this.#saves() ? LIVE_LEDGER_EVERY_BYTES : LEDGER_EVERY_BYTES;
  }

  #saveLedger(): boolean {
    this.#lastLedger = Date.now();
    this.#sinceLedger = 0;
    // If the database cannot be written (a full disk), the durable prefix just stays
    // where it was: a resume fetches a little more, nothing is lost.
    return this.#store.saveLedgerSafely(this.record.row.id, {
      chunkSize: this.#offer.chunkSize,
      verified: this.#durable,
      chunkHashes: this.#hashes.subarray(0, this.#durable * HASH_BYTES),
      tempPath: this.#temp,
      mime: this.#offer.mime,
    });
  }

  /** Only chunks [0, count) stay good (each of them is). */
  #keepGood(count: number): void {
    this.#good.fill(0, count);
    this.#goodBytes = this.#prefixBytes(count);
  }

  /** Bytes in chunks [0, count). */
  #prefixBytes(count: number): number {
    return Math.min(count * this.#offer.chunkSize, this.#offer.size);
  }

  async #finish(msg: EndMessage): Promise<void> {
    if (!this.#active || !this.#fh) return;
    if (this.#queue.length > 0) {
      this.fail({ code: 'bad_chunk', message: `END with ${this.#queue.length} chunks still missing` }, true);
      return;
    }
    const sha256 = this.#whole && this.#hashedUpTo === this.#total ? await this.#whole.digest() : await hashFile(this.#fh.fh, this.#offer.size);
    const id = this.#offer.id;
    if (sha256 !== msg.sha256) {
      const reason = { code: 'hash_mismatch', message: `received data hashes to ${sha256.slice(0, 16)}…, sender said ${msg.sha256.slice(0, 16)}…` };
      this.#conn.send({ type: 'result', id, ok: false, ...reason });
      this.fail(reason, false);
      return;
    }
    await this.#syncing;
    await this.#fh.fh.sync();
    await this.#fh.close();
    this.#fh = null;
    const name = await this.#place();
    this.#finished = true;
    this.#active = false;
    this.record.row.sha256 = sha256;
    this.record.savedAs = name;
    this.#onStored(name);
    this.#conn.send({ type: 'result', id, ok: true, code: 'stored', message: name });
    this.record.progress(this.#offer.size);
    this.record.setState('completed');
  }

  /** Links the verified file into the inbox under the first free name: "a.txt", "a (1).txt", ... */
  async #place(): Promise<string> {
    const base = this.record.row.name;
    for (let n = 0; n < MAX_NAME_ATTEMPTS; n++) {
      const candidate = n === 0 ? base : numbered(base, n);
      try {
        await link(this.#temp, join(this.#paths.inboxDir, candidate));
        await unlink(this.#temp);
        return candidate;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    throw Object.assign(new Error(`no free name for ${base} in the inbox`), { code: 'EEXIST' });
  }
}

/** Sorted chunk indexes as [first, end) ranges. */
export function ranges(indexes: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const i of indexes) {
    const last = out[out.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}
