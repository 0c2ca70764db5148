// Sending one file over one connection: OFFER, wait for ACCEPT, then stream the
// chunks the receiver needs as its credit allows, hashing as we read (no hashing
// pass before the first byte moves), then END with the whole-file SHA-256 and
// wait for the receiver's verified RESULT.

import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Reason } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import { chunkCount, chunkSizeFor, type TransferMessage } from '../protocol/transfer-messages.js';
import type { TransferRecord } from './record.js';

/** Serialises bulk writes on one connection; FIFO, so transfers sharing it take turns chunk by chunk. */
export class WriteGate {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn);
    this.#tail = next.catch(() => {});
    return next;
  }
}

export class Sender {
  readonly record: TransferRecord;
  readonly #conn: PeerConnection;
  readonly #gate: WriteGate;
  readonly #path: string;
  readonly #mime: string;
  #credits = 0;
  #creditWaiter: (() => void) | null = null;
  #reply: ((msg: TransferMessage) => void) | null = null;
  #stopped: Reason | null = null;

  readonly #expectedSha256: string | undefined;

  constructor(record: TransferRecord, conn: PeerConnection, gate: WriteGate, path: string, mime: string, expectedSha256?: string) {
    this.record = record;
    this.#expectedSha256 = expectedSha256;
    this.#conn = conn;
    this.#gate = gate;
    this.#path = path;
    this.#mime = mime;
  }

  get connection(): PeerConnection {
    return this.#conn;
  }

  /** Messages from the receiver about this transfer. */
  onMessage(msg: TransferMessage): void {
    if (msg.type === 'credit') {
      this.#credits += msg.chunks;
      this.#wakeCredit();
      return;
    }
    if (msg.type === 'cancel') {
      this.stop({ code: msg.code, message: msg.message }, 'failed');
      return;
    }
    this.#reply?.(msg);
  }

  /** Ends the transfer early (user cancel, lost connection, receiver's CANCEL). Idempotent. */
  stop(reason: Reason, state: 'failed' | 'canceled'): void {
    if (this.#stopped) return;
    this.#stopped = reason;
    this.record.setState(state, reason);
    this.#wakeCredit();
    this.#reply?.({ type: 'cancel', id: this.record.row.wireId, code: reason.code, message: reason.message });
  }

  /** Tells the receiver we gave up (user cancel), then stops. */
  cancel(reason: Reason): void {
    if (this.#stopped) return;
    this.#conn.send({ type: 'cancel', id: this.record.row.wireId, code: reason.code, message: reason.message });
    this.stop(reason, 'canceled');
  }

  async run(): Promise<void> {
    const { row } = this.record;
    const chunkSize = chunkSizeFor(row.size);
    const id = row.wireId;
    this.record.setState('offered');
    const answer = this.#await(['accept', 'reject']);
    this.#conn.send({ type: 'offer', id, name: row.name, size: row.size, mime: this.#mime, chunkSize });
    const reply = await answer;
    if (this.#stopped) return;
    if (reply.type === 'reject') {
      this.#stopped = { code: reply.code, message: reply.message };
      this.record.setState('rejected', this.#stopped);
      return;
    }
    if (reply.type !== 'accept') return;
    this.#credits += reply.window;
    this.record.setState('transferring');

    const total = chunkCount(row.size, chunkSize);
    const fh = await open(this.#path, 'r');
    const hash = createHash('sha256');
    try {
      let sent = 0;
      // This version sends a fresh transfer in order: need is [[0, total)] (resume comes later).
      for (let index = 0; index < total; index++) {
        while (this.#credits === 0 && !this.#stopped) await new Promise<void>((r) => (this.#creditWaiter = r));
        if (this.#stopped) return;
        const length = Math.min(chunkSize, row.size - index * chunkSize);
        const bytes = Buffer.allocUnsafe(length);
        await readFully(fh, bytes, index * chunkSize);
        hash.update(bytes);
        this.#credits--;
        await this.#gate.run(async () => {
          if (!this.#stopped && !this.#conn.sendData(id, index, bytes)) await this.#conn.drained();
        });
        sent += length;
        this.record.progress(sent);
      }
      if (this.#stopped) return;
      row.sha256 = hash.digest('hex');
      if (this.#expectedSha256 && row.sha256 !== this.#expectedSha256) {
        this.cancel({ code: 'file_changed', message: 'the file changed on disk after it was uploaded' });
        return;
      }
      const result = this.#await(['result']);
      this.#conn.send({ type: 'end', id, sha256: row.sha256 });
      const r = await result;
      if (this.#stopped || r.type !== 'result') return;
      if (r.ok) this.record.setState('completed');
      else this.record.setState('failed', { code: r.code, message: r.message });
    } finally {
      await fh.close();
    }
  }

  #await(types: Array<TransferMessage['type']>): Promise<TransferMessage> {
    return new Promise((resolve) => {
      this.#reply = (msg) => {
        if (msg.type === 'cancel' || types.includes(msg.type)) {
          this.#reply = null;
          resolve(msg);
        }
      };
    });
  }

  #wakeCredit(): void {
    const wake = this.#creditWaiter;
    this.#creditWaiter = null;
    wake?.();
  }
}

async function readFully(fh: import('node:fs/promises').FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw Object.assign(new Error('the file got shorter while it was being sent'), { code: 'file_changed' });
    done += bytesRead;
  }
}
