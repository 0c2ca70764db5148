// Receiving one file: chunks are written into a temporary file in the peer's
// partial/ folder, hashed in order; only when the whole-file SHA-256 matches the
// sender's END is the file fsynced and linked into the inbox under a name that
// exists nowhere yet (link() never overwrites), so an unverified file never
// appears in the inbox.

import { createHash, type Hash } from 'node:crypto';
import { link, open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Reason } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import { chunkCount, MAX_CHUNK, type DataMessage, type EndMessage, type OfferMessage } from '../protocol/transfer-messages.js';
import { numbered } from './names.js';
import type { TransferRecord } from './record.js';

// How many bytes of chunks may be in flight towards one receiver (credit window).
const WINDOW_BYTES = 16 * 1024 * 1024;
const MAX_NAME_ATTEMPTS = 10_000;

export interface ReceiverPaths {
  partialDir: string;
  inboxDir: string;
}

export class Receiver {
  readonly record: TransferRecord;
  readonly #conn: PeerConnection;
  readonly #offer: OfferMessage;
  readonly #paths: ReceiverPaths;
  readonly #temp: string;
  readonly #total: number;
  readonly #hash: Hash = createHash('sha256');
  #fh: FileHandle | null = null;
  #next = 0;
  #done = 0;
  /** Writes run one after another so the hash sees bytes in file order. */
  #writes: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #onStored: (name: string) => void;

  constructor(record: TransferRecord, conn: PeerConnection, offer: OfferMessage, paths: ReceiverPaths, onStored: (name: string) => void) {
    this.record = record;
    this.#conn = conn;
    this.#offer = offer;
    this.#paths = paths;
    this.#temp = join(paths.partialDir, `${record.row.id}.part`);
    this.#total = chunkCount(offer.size, offer.chunkSize);
    this.#onStored = onStored;
  }

  get connection(): PeerConnection {
    return this.#conn;
  }

  async start(): Promise<void> {
    // 'wx': the temporary name is ours alone; never follow or reuse anything already there.
    this.#fh = await open(this.#temp, 'wx', 0o600);
    const window = Math.max(2, Math.min(64, Math.floor(WINDOW_BYTES / Math.min(this.#offer.chunkSize, MAX_CHUNK))));
    this.record.setState('transferring');
    this.#conn.send({ type: 'accept', id: this.#offer.id, need: this.#total > 0 ? [[0, this.#total]] : [], window });
  }

  onData(msg: DataMessage): void {
    if (this.#stopped) return;
    const { chunkSize, size } = this.#offer;
    const expected = Math.min(chunkSize, size - msg.index * chunkSize);
    if (msg.index !== this.#next || msg.index >= this.#total || msg.bytes.length !== expected) {
      this.fail({ code: 'bad_chunk', message: `chunk ${msg.index} was not expected (next ${this.#next}, ${expected} bytes)` }, true);
      return;
    }
    this.#next++;
    const bytes = msg.bytes;
    this.#writes = this.#writes.then(async () => {
      if (this.#stopped || !this.#fh) return;
      await writeFully(this.#fh, bytes, msg.index * chunkSize);
      this.#hash.update(bytes);
      this.#done += bytes.length;
      this.record.progress(this.#done);
      this.#conn.send({ type: 'credit', id: this.#offer.id, chunks: 1 });
    }).catch((err: NodeJS.ErrnoException) => this.#writeFailed(err));
  }

  onEnd(msg: EndMessage): void {
    this.#writes = this.#writes.then(() => this.#finish(msg)).catch((err: NodeJS.ErrnoException) => this.#writeFailed(err));
  }

  /** Gives up: tells the sender (unless it told us), removes the temporary file. Idempotent. */
  fail(reason: Reason, tellSender: boolean, state: 'failed' | 'canceled' = 'failed'): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (tellSender) this.#conn.send({ type: 'cancel', id: this.#offer.id, code: reason.code, message: reason.message });
    this.record.setState(state, reason);
    // Resume from a kept partial file is not implemented yet, so nothing is kept.
    void this.#writes.finally(async () => {
      await this.#fh?.close().catch(() => {});
      this.#fh = null;
      await unlink(this.#temp).catch(() => {});
    });
  }

  async #finish(msg: EndMessage): Promise<void> {
    if (this.#stopped || !this.#fh) return;
    if (this.#next !== this.#total) {
      this.fail({ code: 'bad_chunk', message: `END after ${this.#next} of ${this.#total} chunks` }, true);
      return;
    }
    const sha256 = this.#hash.digest('hex');
    const id = this.#offer.id;
    if (sha256 !== msg.sha256) {
      const reason = { code: 'hash_mismatch', message: `received data hashes to ${sha256.slice(0, 16)}…, sender said ${msg.sha256.slice(0, 16)}…` };
      this.#conn.send({ type: 'result', id, ok: false, ...reason });
      this.fail(reason, false);
      return;
    }
    await this.#fh.sync();
    await this.#fh.close();
    this.#fh = null;
    const name = await this.#place();
    this.#stopped = true;
    this.record.row.sha256 = sha256;
    this.record.savedAs = name;
    this.#onStored(name);
    this.#conn.send({ type: 'result', id, ok: true, code: 'stored', message: name });
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

  #writeFailed(err: NodeJS.ErrnoException): void {
    const reason =
      err.code === 'ENOSPC' || err.code === 'EDQUOT'
        ? { code: 'disk_full', message: 'the receiving disk is full' }
        : { code: 'write_failed', message: `cannot write the file: ${err.code ?? err.message}` };
    this.fail(reason, true);
  }
}

async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}
