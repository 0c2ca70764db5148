// Framing: bytes <-> frames. No sockets, no file system (see docs/PROTOCOL.md "Framing").
//
//   offset 0  uint32 big-endian  payload length L (not counting this 5-byte header)
//   offset 4  uint8              frame type
//   offset 5  L bytes            payload
//
// The length is checked against the cap for its type before a single payload
// byte is buffered, so a hostile length never makes us allocate.

import { copyInto, type BufferPool } from './buffer-pool.js';
import { ProtocolError } from '../errors.js';

export const HEADER_SIZE = 5;
/** The transfer id and chunk index before a DATA frame's chunk (transfer-messages.ts DATA_HEADER). */
const DATA_HEADER_BYTES = 16 + 4;
// Payloads at least this large are copied into their buffer as they arrive (see #partial).
const STREAM_PAYLOAD_MIN = 64 * 1024;

export const FrameType = {
  HELLO: 0x01,
  PING: 0x02,
  PONG: 0x03,
  CLOSE: 0x04,
  // File transfer (feature "transfer/1"): only after both HELLOs list it.
  OFFER: 0x10,
  ACCEPT: 0x11,
  REJECT: 0x12,
  DATA: 0x13,
  CREDIT: 0x14,
  END: 0x15,
  RESULT: 0x16,
  CANCEL: 0x17,
  // Feature "saved/1" (on top of "transfer/1"): only after both HELLOs list both.
  SAVED: 0x18,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Largest payload accepted for each frame type, in bytes. */
export const MAX_PAYLOAD: Readonly<Record<FrameTypeCode, number>> = {
  [FrameType.HELLO]: 32 * 1024,
  [FrameType.PING]: 8,
  [FrameType.PONG]: 8,
  [FrameType.CLOSE]: 4 * 1024,
  [FrameType.OFFER]: 4 * 1024,
  [FrameType.ACCEPT]: 64 * 1024,
  [FrameType.REJECT]: 4 * 1024,
  [FrameType.DATA]: 4 * 1024 * 1024 + 20, // one chunk of at most 4 MiB plus its 20-byte header
  [FrameType.CREDIT]: 256,
  [FrameType.END]: 256,
  [FrameType.RESULT]: 4 * 1024,
  [FrameType.CANCEL]: 4 * 1024,
  [FrameType.SAVED]: 256,
};

/** The frame types every connection understands from the first byte. */
export const CORE_TYPES: readonly number[] = [FrameType.HELLO, FrameType.PING, FrameType.PONG, FrameType.CLOSE];

/** Absolute cap on any frame's payload, whatever later versions add. */
export const MAX_FRAME_PAYLOAD = 16 * 1024 * 1024;

export interface Frame {
  type: FrameTypeCode;
  payload: Buffer;
}

const KNOWN_TYPES = new Set<number>(Object.values(FrameType));

export function isFrameType(type: number): type is FrameTypeCode {
  return KNOWN_TYPES.has(type);
}

/** Encodes one frame. Throws (our own misuse) when the payload exceeds its cap. */
export function encodeFrame(type: FrameTypeCode, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  if (!isFrameType(type)) throw new TypeError(`unknown frame type ${type}`);
  if (payload.length > MAX_PAYLOAD[type]) {
    throw new RangeError(`payload of ${payload.length} bytes exceeds the cap of ${MAX_PAYLOAD[type]} for type ${type}`);
  }
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt8(type, 4);
  out.set(payload, HEADER_SIZE);
  return out;
}

/**
 * Incremental decoder: push() any slice of the byte stream, get whole frames back.
 * Throws ProtocolError on the first bad header; after that the decoder is dead
 * (the connection must close), so it keeps throwing.
 */
export class FrameDecoder {
  // Chunks are consumed from #head on rather than shift()ed, and a header is parsed
  // once, so a stream of one-byte records costs linear, not quadratic, time.
  #chunks: Buffer[] = [];
  #head = 0;
  #buffered = 0;
  #pending: { type: FrameTypeCode; length: number } | null = null;
  /**
   * A large payload that arrives over many reads is copied into its buffer read by read
   * (STREAM_PAYLOAD_MIN): while the bytes are still in the CPU cache, and so that the
   * socket's buffers die young. Held until the frame completes, each 16 KiB TLS record
   * would outlive a scavenge or two and pile up in the old generation, and V8 then runs
   * full collections for "external memory pressure" (measured: 48 per GiB, 2 CPU-s).
   */
  #partial: { type: FrameTypeCode; out: Buffer; filled: number } | null = null;
  #failed: ProtocolError | null = null;
  /** Types defined on this connection so far; features negotiated in HELLO add more. */
  readonly #types = new Set<number>(CORE_TYPES);
  /** Where large payloads come from, for a consumer that gives them back (see BufferPool). */
  readonly #pool: BufferPool | null;

  constructor(opts: { pool?: BufferPool } = {}) {
    this.#pool = opts.pool ?? null;
  }

  /** Accepts more frame types from now on (after a feature was negotiated). */
  enable(types: readonly number[]): void {
    for (const t of types) if (isFrameType(t)) this.#types.add(t);
  }

  /** Bytes held that do not yet form a whole frame (a parsed header counts). */
  get buffered(): number {
    return this.#buffered + (this.#pending ? HEADER_SIZE : 0) + (this.#partial ? HEADER_SIZE + this.#partial.filled : 0);
  }

  /** Decodes all whole frames in the buffered bytes plus `chunk`. Throws at the first bad header. */
  push(chunk: Uint8Array): Frame[] {
    return [...this.frames(chunk)];
  }

  /**
   * Like push(), but yields frames one by one, so the caller handles every good
   * frame that precedes a bad header before the error is thrown.
   */
  *frames(chunk: Uint8Array): Generator<Frame, void, undefined> {
    if (this.#failed) throw this.#failed;
    if (chunk.length > 0) {
      this.#chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.#buffered += chunk.length;
    }
    for (;;) {
      let frame: Frame | null;
      try {
        frame = this.#next();
      } catch (err) {
        this.#failed = err as ProtocolError;
        this.#partial = null;
        this.#chunks = [];
        this.#head = 0;
        this.#buffered = 0;
        throw err;
      }
      if (!frame) return;
      yield frame;
    }
  }

  /**
   * Called when the stream ends: leftover bytes mean the remote stopped mid-frame.
   * Returns a ProtocolError describing the truncation, or null if the stream ended cleanly.
   */
  end(): ProtocolError | null {
    if (this.#failed || this.buffered === 0) return null;
    return new ProtocolError('bad_payload', `stream ended inside a frame (${this.buffered} bytes left over)`);
  }

  #next(): Frame | null {
    if (this.#partial) {
      const p = this.#partial;
      const n = Math.min(p.out.length - p.filled, this.#buffered);
      if (n > 0) this.#copyOut(p.out, p.filled, n);
      p.filled += n;
      if (p.filled < p.out.length) return null;
      this.#partial = null;
      return { type: p.type, payload: p.out };
    }
    if (!this.#pending) {
      if (this.#buffered < HEADER_SIZE) return null;
      const header = this.#take(HEADER_SIZE);
      const length = header.readUInt32BE(0);
      const type = header.readUInt8(4);
      if (!isFrameType(type) || !this.#types.has(type)) {
        throw new ProtocolError('unknown_frame', `unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
      }
      if (length > MAX_PAYLOAD[type] || length > MAX_FRAME_PAYLOAD) {
        throw new ProtocolError('frame_too_large', `frame type 0x${type.toString(16).padStart(2, '0')} announces ${length} bytes, cap is ${MAX_PAYLOAD[type]}`);
      }
      this.#pending = { type, length };
    }
    const { type, length } = this.#pending;
    // A DATA payload is its 20-byte header, then the chunk: the chunk lands page-aligned.
    const skew = type === FrameType.DATA ? DATA_HEADER_BYTES : 0;
    if (this.#buffered < length) {
      if (!this.#pool || length < STREAM_PAYLOAD_MIN) return null;
      this.#pending = null;
      this.#partial = { type, out: this.#pool.take(length, skew), filled: 0 };
      return this.#next();
    }
    this.#pending = null;
    return { type, payload: this.#take(length, skew) };
  }

  /** Consumes and returns exactly n bytes (n <= buffered); a view when one chunk holds them all. */
  #take(n: number, skew = 0): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[this.#head]!;
    if (first.length >= n) {
      this.#buffered -= n;
      if (first.length === n) this.#advance();
      else this.#chunks[this.#head] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = this.#pool ? this.#pool.take(n, skew) : Buffer.allocUnsafe(n);
    this.#copyOut(out, 0, n);
    return out;
  }

  /** Moves the next n buffered bytes (n <= buffered) into `out` at `offset`. */
  #copyOut(out: Buffer, offset: number, n: number): void {
    this.#buffered -= n;
    const end = offset + n;
    while (offset < end) {
      const chunk = this.#chunks[this.#head]!;
      const want = end - offset;
      if (chunk.length <= want) {
        copyInto(out, chunk, offset);
        offset += chunk.length;
        this.#advance();
      } else {
        copyInto(out, chunk.subarray(0, want), offset);
        this.#chunks[this.#head] = chunk.subarray(want);
        offset += want;
      }
    }
  }

  #advance(): void {
    this.#head++;
    // Drop consumed slots now and then, so the array neither grows nor gets shifted per chunk.
    if (this.#head >= 64 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
