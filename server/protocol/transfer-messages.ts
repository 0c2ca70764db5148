// File-transfer messages (frame types 0x10-0x17), used only on connections where
// both HELLOs list the feature "transfer/1" (docs/PROTOCOL.md "File transfer").
// JSON payloads except DATA, which is binary so bulk bytes are never re-encoded.

import { ProtocolError } from '../errors.js';
import { encodeFrame, FrameType, type Frame } from './frame.js';

export const TRANSFER_FEATURE = 'transfer/1';
// A receiver tells the sender which chunks it holds durably (SAVED), so a sender that
// keeps a file only in memory as it sends (an upload still arriving) need not write
// those chunks to its own disk first (docs/PROTOCOL.md "Feature saved/1").
export const SAVED_FEATURE = 'saved/1';
export const TRANSFER_ID_BYTES = 16;
/** DATA payload: 16-byte transfer id, uint32 chunk index, then the chunk's bytes. */
export const DATA_HEADER = TRANSFER_ID_BYTES + 4;
export const MIN_CHUNK = 64 * 1024;
export const MAX_CHUNK = 4 * 1024 * 1024;
/** The smallest chunk meshdrop itself sends: below it, per-chunk work shows in throughput. */
export const PREFERRED_CHUNK = 1024 * 1024;
/** Largest file size a peer may offer (2^53 - 1: exact in JSON numbers and JS). */
export const MAX_SIZE = Number.MAX_SAFE_INTEGER;
const MAX_NAME_BYTES = 1024;
const MAX_MIME = 255;
const MAX_RANGES = 4096;
const MAX_WINDOW = 1024;
const ID_PATTERN = /^[0-9a-f]{32}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const CODE_PATTERN = /^[a-z0-9_]{1,64}$/;

export interface OfferMessage {
  type: 'offer';
  id: string;
  /** The sender's file name, untrusted: the receiver makes it safe. */
  name: string;
  size: number;
  mime: string;
  chunkSize: number;
  /** saved/1: the sender holds this file in memory only as it sends; SAVED is wanted often. */
  live?: boolean;
}
/** Chunk index ranges [first, end) the receiver still needs, and how many chunks it allows in flight. */
export interface AcceptMessage {
  type: 'accept';
  id: string;
  need: Array<[number, number]>;
  window: number;
}
export interface RejectMessage {
  type: 'reject';
  id: string;
  code: string;
  message: string;
}
export interface DataMessage {
  type: 'data';
  id: string;
  index: number;
  bytes: Buffer;
}
export interface CreditMessage {
  type: 'credit';
  id: string;
  chunks: number;
}
/** saved/1: chunks [0, chunks) are durable at the receiver; a resume will not ask for them. */
export interface SavedMessage {
  type: 'saved';
  id: string;
  chunks: number;
}
export interface EndMessage {
  type: 'end';
  id: string;
  sha256: string;
}
export interface ResultMessage {
  type: 'result';
  id: string;
  ok: boolean;
  code: string;
  message: string;
}
export interface CancelMessage {
  type: 'cancel';
  id: string;
  code: string;
  message: string;
}

export type TransferMessage =
  | OfferMessage
  | AcceptMessage
  | RejectMessage
  | DataMessage
  | CreditMessage
  | SavedMessage
  | EndMessage
  | ResultMessage
  | CancelMessage;

export const TRANSFER_FRAME_TYPES: readonly number[] = [
  FrameType.OFFER,
  FrameType.ACCEPT,
  FrameType.REJECT,
  FrameType.DATA,
  FrameType.CREDIT,
  FrameType.END,
  FrameType.RESULT,
  FrameType.CANCEL,
];
/** Enabled on top of TRANSFER_FRAME_TYPES when both ends also list SAVED_FEATURE. */
export const SAVED_FRAME_TYPES: readonly number[] = [FrameType.SAVED];

/** Chunk size meshdrop sends with: 1 MiB, or the smallest larger power of two giving at most 1,024 chunks, up to 4 MiB (docs/PROTOCOL.md says why). */
export function chunkSizeFor(size: number): number {
  let chunk = PREFERRED_CHUNK;
  while (chunk < MAX_CHUNK && Math.ceil(size / chunk) > 1024) chunk *= 2;
  return chunk;
}

export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

export function encodeTransfer(msg: TransferMessage): Buffer {
  const json = (type: (typeof FrameType)[keyof typeof FrameType], body: object) => encodeFrame(type, Buffer.from(JSON.stringify(body)));
  switch (msg.type) {
    case 'offer':
      return json(FrameType.OFFER, { id: msg.id, name: msg.name, size: msg.size, mime: msg.mime, chunkSize: msg.chunkSize, ...(msg.live ? { live: true } : {}) });
    case 'accept':
      return json(FrameType.ACCEPT, { id: msg.id, need: msg.need, window: msg.window });
    case 'reject':
      return json(FrameType.REJECT, { id: msg.id, code: msg.code, message: msg.message.slice(0, 512) });
    case 'credit':
      return json(FrameType.CREDIT, { id: msg.id, chunks: msg.chunks });
    case 'saved':
      return json(FrameType.SAVED, { id: msg.id, chunks: msg.chunks });
    case 'end':
      return json(FrameType.END, { id: msg.id, sha256: msg.sha256 });
    case 'result':
      return json(FrameType.RESULT, { id: msg.id, ok: msg.ok, code: msg.code, message: msg.message.slice(0, 512) });
    case 'cancel':
      return json(FrameType.CANCEL, { id: msg.id, code: msg.code, message: msg.message.slice(0, 512) });
    case 'data': {
      const payload = Buffer.allocUnsafe(DATA_HEADER + msg.bytes.length);
      payload.write(msg.id, 0, TRANSFER_ID_BYTES, 'hex');
      payload.writeUInt32BE(msg.index, TRANSFER_ID_BYTES);
      payload.set(msg.bytes, DATA_HEADER);
      return encodeFrame(FrameType.DATA, payload);
    }
  }
}

/**
 * The frame header and DATA header of a chunk, without the chunk: the caller writes
 * the chunk's own buffer right after it, so bulk bytes are never copied.
 */
/** Bytes before a DATA frame's chunk on the wire: the frame header (5) and the DATA header (20). */
export const DATA_FRAME_PREFIX = 5 + DATA_HEADER;

/**
 * Turns `frame` into a whole DATA frame by writing both headers into its first
 * DATA_FRAME_PREFIX bytes (the chunk is the rest). A sender reads each chunk into
 * such a buffer so the frame goes out as one write: TLS copies the pieces of a
 * multi-buffer write into one buffer first (1 MiB per chunk).
 */
export function fillDataHeader(frame: Buffer, id: string, index: number): Buffer {
  if (frame.length < DATA_FRAME_PREFIX) throw new RangeError('a DATA frame needs room for its headers');
  frame.writeUInt32BE(frame.length - 5, 0);
  frame.writeUInt8(FrameType.DATA, 4);
  frame.write(id, 5, TRANSFER_ID_BYTES, 'hex');
  frame.writeUInt32BE(index, 5 + TRANSFER_ID_BYTES);
  return frame;
}

/** Decodes a transfer frame; throws ProtocolError('bad_payload') on any field that breaks its rule. */
export function decodeTransfer(frame: Frame): TransferMessage {
  if (frame.type === FrameType.DATA) {
    if (frame.payload.length < DATA_HEADER) throw bad('DATA shorter than its 20-byte header');
    return {
      type: 'data',
      id: frame.payload.toString('hex', 0, TRANSFER_ID_BYTES),
      index: frame.payload.readUInt32BE(TRANSFER_ID_BYTES),
      bytes: frame.payload.subarray(DATA_HEADER),
    };
  }
  const o = parseObject(frame.payload);
  const id = o.id;
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw bad('transfer id must be 32 lower-case hex characters');
  switch (frame.type) {
    case FrameType.OFFER: {
      const { name, size, mime, chunkSize } = o;
      if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > MAX_NAME_BYTES) throw bad(`OFFER name must be 1-${MAX_NAME_BYTES} bytes`);
      if (!isInt(size, 0, MAX_SIZE)) throw bad('OFFER size must be an integer >= 0');
      if (typeof mime !== 'string' || mime.length > MAX_MIME) throw bad('OFFER mime must be a string');
      if (!isInt(chunkSize, MIN_CHUNK, MAX_CHUNK) || (chunkSize & (chunkSize - 1)) !== 0) throw bad('OFFER chunkSize must be a power of two in 64 KiB..4 MiB');
      if (chunkCount(size, chunkSize) > 2 ** 32 - 1) throw bad('OFFER has more chunks than a DATA index can name');
      // Optional (saved/1); anything but true means "not live".
      return { type: 'offer', id, name, size, mime, chunkSize, ...(o.live === true ? { live: true } : {}) };
    }
    case FrameType.ACCEPT: {
      const { need, window } = o;
      if (!Array.isArray(need) || need.length > MAX_RANGES) throw bad(`ACCEPT need must be at most ${MAX_RANGES} ranges`);
      let last = -1;
      for (const r of need) {
        if (!Array.isArray(r) || r.length !== 2 || !isInt(r[0], 0, 2 ** 32) || !isInt(r[1], 0, 2 ** 32) || r[0] >= r[1] || r[0] <= last) {
          throw bad('ACCEPT need must be sorted, disjoint [first, end) chunk ranges');
        }
        last = r[1];
      }
      if (!isInt(window, 1, MAX_WINDOW)) throw bad(`ACCEPT window must be 1..${MAX_WINDOW}`);
      return { type: 'accept', id, need: need as Array<[number, number]>, window };
    }
    case FrameType.CREDIT:
      if (!isInt(o.chunks, 1, MAX_WINDOW)) throw bad(`CREDIT chunks must be 1..${MAX_WINDOW}`);
      return { type: 'credit', id, chunks: o.chunks };
    case FrameType.SAVED:
      if (!isInt(o.chunks, 0, 2 ** 32 - 1)) throw bad('SAVED chunks must be an integer 0..2^32-1');
      return { type: 'saved', id, chunks: o.chunks };
    case FrameType.END:
      if (typeof o.sha256 !== 'string' || !SHA256_PATTERN.test(o.sha256)) throw bad('END sha256 must be 64 lower-case hex characters');
      return { type: 'end', id, sha256: o.sha256 };
    case FrameType.RESULT: {
      if (typeof o.ok !== 'boolean') throw bad('RESULT ok must be a boolean');
      const { code, message } = reason(o, o.ok ? 'stored' : undefined);
      return { type: 'result', id, ok: o.ok, code, message };
    }
    case FrameType.REJECT:
      return { type: 'reject', id, ...reason(o) };
    case FrameType.CANCEL:
      return { type: 'cancel', id, ...reason(o) };
    default:
      throw bad(`frame type 0x${frame.type.toString(16)} is not a transfer message`);
  }
}

function reason(o: Record<string, unknown>, defaultCode?: string): { code: string; message: string } {
  const code = o.code ?? defaultCode;
  const message = o.message ?? '';
  if (typeof code !== 'string' || !CODE_PATTERN.test(code)) throw bad('code must be 1-64 chars of a-z, 0-9 and _');
  if (typeof message !== 'string') throw bad('message must be a string');
  return { code, message: message.slice(0, 512) };
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

function parseObject(payload: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw bad('payload is not valid UTF-8 JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('payload must be a JSON object');
  return value as Record<string, unknown>;
}

function bad(message: string): ProtocolError {
  return new ProtocolError('bad_payload', message);
}
