// Sending one file: OFFER, wait for ACCEPT (which says which chunks the receiver
// still needs), stream those chunks as its credit allows, then END with the
// whole-file SHA-256 and wait for the receiver's verified RESULT. A fresh
// transfer hashes while it reads (no hashing pass before the first byte moves);
// a resumed one hashes the file in a second pass. An upload was hashed as it
// arrived, so its hash is used as is; one still arriving (a GrowingFile) is read
// chunk by chunk as the upload writes it. When the connection drops the
// transfer pauses, and run() starts again on the next connection to that peer.

import { open } from 'node:fs/promises';
import type { Reason } from '../errors.js';
import type { PeerConnection } from '../peer/connection.js';
import { chunkCount, chunkSizeFor, SAVED_FEATURE, type AcceptMessage, type TransferMessage } from '../protocol/transfer-messages.js';
import { ChunkSource, type Chunk } from './chunk-source.js';
import { hashFile } from './file-io.js';
import { hashThread } from './hasher.js';
import type { Claim, GrowingFile } from './growing-file.js';
import type { TransferRecord } from './record.js';

/** Chunks of a file on disk read (and hashed) ahead of the one being sent. */
const READ_AHEAD = 4;

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
  readonly #path: string;
  readonly #mime: string;
  readonly #knownSha256: string | undefined;
  readonly #growing: GrowingFile | undefined;
  /** What this transfer's receiver holds of an upload still in memory (see GrowingFile). */
  readonly #claim: Claim | null;
  #conn: PeerConnection | null = null;
  #credits = 0;
  #creditWaiter: (() => void) | null = null;
  #reply: ((msg: TransferMessage) => void) | null = null;
  /** Why the current attempt stopped (pause or end); null while it runs. */
  #halt: { reason: Reason; state: 'paused' | 'failed' | 'canceled' } | null = null;
  #running = false;
  #idle: Promise<void> = Promise.resolve();

  constructor(record: TransferRecord, path: string, mime: string, known: { sha256?: string; growing?: GrowingFile } = {}) {
    this.record = record;
    this.#path = path;
    this.#mime = mime;
    this.#knownSha256 = known.sha256;
    this.#growing = known.growing;
    this.#claim = known.growing?.claim() ?? null;
    // Kept with the record, so a restarted daemon resumes an upload without re-reading it (its
    // outbox copy lacks the chunks receivers had saved).
    if (known.sha256) record.noteSha256(known.sha256);
    void known.growing?.sha256().then((h) => record.noteSha256(h), () => {});
  }

  get connection(): PeerConnection | null {
    return this.#conn;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Resolves once no attempt is running (a halted attempt may still be unwinding). */
  whenIdle(): Promise<void> {
    return this.#idle;
  }

  /** Messages from the receiver about this transfer. */
  onMessage(msg: TransferMessage): void {
    if (msg.type === 'credit') {
      this.#credits += msg.chunks;
      this.#wakeCredit();
      return;
    }
    if (msg.type === 'saved') {
      this.#claim?.saved(msg.chunks);
      return;
    }
    if (msg.type === 'cancel') {
      // The receiver ran out of disk: it keeps what it has; try again later.
      this.halt({ code: msg.code, message: msg.message }, msg.code === 'disk_full' ? 'paused' : 'failed');
      return;
    }
    this.#reply?.(msg);
  }

  /** Stops the current attempt: 'paused' can run() again later, the others are final. Idempotent per attempt. */
  halt(reason: Reason, state: 'paused' | 'failed' | 'canceled'): void {
    if (this.record.final) return;
    this.#halt = { reason, state };
    this.record.setState(state, reason);
    if (state === 'paused') this.#claim?.live(false);
    else this.#claim?.done();
    this.#wakeCredit();
    this.#growing?.poke();
    this.#reply?.({ type: 'cancel', id: this.record.row.wireId, code: reason.code, message: reason.message });
  }

  /** Tells the receiver (a pause keeps its partial file, the others remove it), then halts. */
  stop(reason: Reason, state: 'paused' | 'failed' | 'canceled'): void {
    this.#conn?.send({ type: 'cancel', id: this.record.row.wireId, code: reason.code, message: reason.message });
    this.halt(reason, state);
  }

  /** One attempt over `conn`: OFFER (again, on resume) through RESULT. */
  async run(conn: PeerConnection, gate: WriteGate): Promise<void> {
    if (this.#running || this.record.final) return;
    this.#running = true;
    this.#conn = conn;
    this.#halt = null;
    this.#credits = 0;
    const attempt = this.#attempt(conn, gate).finally(() => {
      this.#running = false;
    });
    this.#idle = attempt.then(
      () => {},
      () => {},
    );
    await attempt;
  }

  async #attempt(conn: PeerConnection, gate: WriteGate): Promise<void> {
    const { row } = this.record;
    const chunkSize = chunkSizeFor(row.size);
    const id = row.wireId;
    if (this.record.state !== 'paused') this.record.setState('offered');
    const answer = this.#await(['accept', 'reject']);
    const saves = conn.sharedFeatures.includes(SAVED_FEATURE);
    conn.send({ type: 'offer', id, name: row.name, size: row.size, mime: this.#mime, chunkSize, ...(this.#growing && saves ? { live: true } : {}) });
    const reply = await answer;
    if (this.#halt) return;
    if (reply.type === 'reject') {
      this.record.setState('rejected', { code: reply.code, message: reply.message });
      this.#claim?.done();
      return;
    }
    if (reply.type !== 'accept') return;
    this.#credits += reply.window;
    this.record.setState('transferring');

    const total = chunkCount(row.size, chunkSize);
    const need = indexes(reply, total);
    // Only SAVED says what the receiver holds durably: an ACCEPT may leave out chunks its
    // ledger does not have yet (transfer/1 never promised more).
    this.#claim?.live(saves);
    // A fresh transfer (everything needed, in order) is hashed as it is read, unless the
    // upload already hashed it.
    const inOrder = need.length === total && !this.#knownSha256 && !this.#growing;
    const hash = inOrder ? hashThread.stream() : null;
    const fh = await open(this.#path, 'r');
    let source: ChunkSource | null = null;
    try {
      // Chunks come from the file, or (an upload still arriving) from memory while this keeps up.
      source = new ChunkSource(fh, { size: row.size, chunkSize, hash, growing: this.#growing, need, halted: () => this.#halt !== null });
      let done = row.size - need.reduce((sum, i) => sum + Math.min(chunkSize, row.size - i * chunkSize), 0);
      this.record.progress(done);
      // The next chunks are read and hashed while this one drains into the socket, so the
      // connection does not sit idle between chunks. A file on disk is read further ahead:
      // with one read ahead the loop waited ~0.35 s per GiB for reads that lost the core to
      // TLS and hashing (an upload's chunks arrive one by one; one ahead is all it has).
      const ahead = this.#growing ? 1 : READ_AHEAD;
      const loads: Array<Promise<Chunk | null>> = [];
      let loaded = 0;
      // Only as far as the credit goes (plus the next chunk): a sender waiting for credit
      // holds two chunks, as before, not five.
      const refill = () => {
        while (loaded < need.length && loads.length < Math.min(ahead, this.#credits + 1)) {
          const load = source!.load(loaded++);
          // An attempt that stops early leaves reads behind; their failure is of no interest.
          load.catch(() => {});
          loads.push(load);
        }
      };
      try {
        for (let k = 0; k < need.length; k++) {
          const index = need[k]!;
          refill();
          const chunk = await loads.shift()!;
          refill();
          if (!chunk) return;
          while (this.#credits === 0 && !this.#halt) await new Promise<void>((r) => (this.#creditWaiter = r));
          if (this.#halt) return chunk.sent();
          this.#credits--;
          await gate.run(async () => {
            if (this.#halt) return chunk.sent();
            if (!conn.sendData(id, index, chunk.frame, chunk.sent)) await conn.drained();
          });
          done += chunk.bytes.length;
          this.record.progress(done);
          this.#claim?.sent(index + 1);
        }
      } finally {
        // Chunks read ahead for an attempt that stopped early go back to the pool too.
        for (const load of loads) void load.then((c) => c?.sent(), () => {});
      }
      if (this.#halt) return;
      // The receiver checks this hash against every byte it got: were the outbox copy of an
      // upload changed since, the transfer would fail there with hash_mismatch.
      row.sha256 = this.#knownSha256 ?? (this.#growing ? await this.#growing.sha256() : hash ? await hash.digest() : await hashFile(fh, row.size));
    } finally {
      source?.close();
      hash?.drop();
      await fh.close();
    }
    if (this.#halt) return;
    const result = this.#await(['result']);
    conn.send({ type: 'end', id, sha256: row.sha256 });
    const r = await result;
    if (this.#halt || r.type !== 'result') return;
    if (r.ok) this.record.setState('completed');
    else this.record.setState('failed', { code: r.code, message: r.message });
    this.#claim?.done();
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

/** The chunk indexes an ACCEPT asks for, in order, within the file. */
function indexes(accept: AcceptMessage, total: number): number[] {
  const out: number[] = [];
  for (const [first, end] of accept.need) for (let i = first; i < Math.min(end, total); i++) out.push(i);
  return out;
}
