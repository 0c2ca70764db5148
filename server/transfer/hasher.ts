// SHA-256 off the main thread. Hashing is the largest single cost of a transfer
// (about 0.7 CPU-s per GiB and pass), and every peer of a daemon shares one event
// loop: a hash thread lets TLS and hashing use both cores. A stream can also
// answer the digest of everything fed so far (a prefix digest) after each chunk:
// finishing a copy of the running hash costs one or two blocks, so a receiver
// gets per-chunk checkpoints for its ledger without a second pass over the data. Chunks are handed over without copying
// when they live in shared memory (the payload pool, protocol/buffer-pool.ts);
// others are copied. One thread takes the requests in order, so a stream's
// whole-file hash sees its chunks in the order they were given.

import { Worker } from 'node:worker_threads';

/**
 * How much nicer than the daemon the hash thread runs (Linux): it yields the core to
 * the event loops. A receiver's event loop carries every byte (TLS, framing, credits)
 * and is the longest chain of a transfer: in a 2.65 s A at 1 GiB it ran 1.4 s and
 * waited 1.0 s for a core (schedstat), mostly held by the two daemons' hash threads,
 * which have a window of chunks of slack. In A, 0 -> 5 gave 351 -> 404 and 356 -> 381
 * MiB/s (medians of 6 interleaved runs); 19 was within noise of 5.
 */
const HASH_NICER = 5;

// Plain JavaScript, run with `eval`, so it needs no build step and works the same
// under tsc output, tsx and the test runner.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
// On Linux, setpriority(0) reaches only the calling thread; elsewhere it would renice
// the whole daemon, so it is left alone.
if (process.platform === 'linux') {
  const os = require('node:os');
  try { os.setPriority(0, Math.min(19, os.getPriority(0) + ${HASH_NICER})); } catch {}
}
const streams = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'chunk') {
    let h = streams.get(m.stream);
    if (!h) streams.set(m.stream, (h = createHash('sha256')));
    h.update(m.data);
    parentPort.postMessage({ id: m.id, digest: m.prefix ? h.copy().digest() : null });
  } else if (m.op === 'end') {
    const h = streams.get(m.stream) || createHash('sha256');
    streams.delete(m.stream);
    parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
  } else if (m.op === 'drop') {
    streams.delete(m.stream);
  }
});
`;

interface Reply {
  id: number;
  digest?: Uint8Array | null;
  hex?: string;
}

class HashThread {
  #worker: Worker | null = null;
  #nextId = 1;
  #nextStream = 1;
  readonly #waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  #busy = 0;

  #get(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.on('message', (r: Reply) => {
      const w = this.#waiting.get(r.id);
      this.#waiting.delete(r.id);
      if (--this.#busy === 0) worker.unref();
      w?.resolve(r);
    });
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', (code) => this.#fail(new Error(`the hash thread exited with code ${code}`)));
    worker.unref();
    this.#worker = worker;
    return worker;
  }

  #fail(err: Error): void {
    this.#worker = null;
    this.#busy = 0;
    for (const w of this.#waiting.values()) w.reject(err);
    this.#waiting.clear();
  }

  #ask(msg: Record<string, unknown>): Promise<Reply> {
    const worker = this.#get();
    const id = this.#nextId++;
    // Keep the process alive only while answers are owed.
    if (this.#busy++ === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ ...msg, id });
    });
  }

  /** A new whole-file hash stream. */
  stream(): HashStream {
    return new HashStream(this, this.#nextStream++);
  }

  /** Feeds `data` to a stream; with `prefix`, answers the digest of all that stream was fed. */
  async chunk(stream: number, data: Uint8Array, prefix: boolean): Promise<Buffer | null> {
    const r = await this.#ask({ op: 'chunk', stream, data, prefix });
    return r.digest ? Buffer.from(r.digest.buffer, r.digest.byteOffset, r.digest.byteLength) : null;
  }

  async end(stream: number): Promise<string> {
    return (await this.#ask({ op: 'end', stream })).hex!;
  }

  drop(stream: number): void {
    this.#worker?.postMessage({ op: 'drop', stream });
  }
}

/** The whole-file SHA-256 of chunks fed in file order, computed on the hash thread. */
export class HashStream {
  readonly #thread: HashThread;
  readonly #id: number;
  #ended = false;

  constructor(thread: HashThread, id: number) {
    this.#thread = thread;
    this.#id = id;
  }

  /**
   * Feeds `data` (the caller keeps it untouched until this resolves); with `prefix`,
   * resolves to the SHA-256 of everything fed so far, this chunk included.
   */
  update(data: Uint8Array, prefix = false): Promise<Buffer | null> {
    // A chunk read ahead can still arrive after the sender dropped the stream: hashing it
    // would only bring the dropped stream back to life on the thread.
    if (this.#ended) return Promise.resolve(null);
    return this.#thread.chunk(this.#id, data, prefix);
  }

  /** The hex digest of everything fed; the stream is done. */
  digest(): Promise<string> {
    this.#ended = true;
    return this.#thread.end(this.#id);
  }

  /** Forgets the stream without a digest (the transfer stopped). */
  drop(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#thread.drop(this.#id);
  }
}

export const hashThread = new HashThread();

