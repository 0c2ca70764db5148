import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameType } from '../../../server/protocol/frame.js';
import { decodeMessage, encodeMessage } from '../../../server/protocol/messages.js';
import { chunkSizeFor, SAVED_FRAME_TYPES, TRANSFER_FRAME_TYPES, type TransferMessage } from '../../../server/protocol/transfer-messages.js';
import { ProtocolError } from '../../../server/errors.js';

const ID = '00112233445566778899aabbccddeeff';

function roundTrip(msg: TransferMessage) {
  const decoder = new FrameDecoder();
  decoder.enable(TRANSFER_FRAME_TYPES);
  decoder.enable(SAVED_FRAME_TYPES);
  const frames = decoder.push(encodeMessage(msg));
  expect(frames).toHaveLength(1);
  return decodeMessage(frames[0]!);
}

function frame(type: number, body: unknown): Buffer {
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 0);
  head[4] = type;
  return Buffer.concat([head, payload]);
}

function code(bytes: Buffer): string {
  const decoder = new FrameDecoder();
  decoder.enable(TRANSFER_FRAME_TYPES);
  decoder.enable(SAVED_FRAME_TYPES);
  try {
    decodeMessage(decoder.push(bytes)[0]!);
  } catch (err) {
    return (err as ProtocolError).code;
  }
  return 'ok';
}

describe('transfer messages', () => {
  it('round-trip', () => {
    const msgs: TransferMessage[] = [
      { type: 'offer', id: ID, name: 'a.txt', size: 5, mime: 'text/plain', chunkSize: 65536 },
      { type: 'accept', id: ID, need: [[0, 3], [5, 9]], window: 8 },
      { type: 'reject', id: ID, code: 'invalid_name', message: 'no' },
      { type: 'credit', id: ID, chunks: 1 },
      { type: 'offer', id: ID, name: 'b.bin', size: 9, mime: '', chunkSize: 1048576, live: true },
      { type: 'saved', id: ID, chunks: 0 },
      { type: 'saved', id: ID, chunks: 4096 },
      { type: 'end', id: ID, sha256: 'ab'.repeat(32) },
      { type: 'result', id: ID, ok: true, code: 'stored', message: 'a.txt' },
      { type: 'cancel', id: ID, code: 'canceled_by_user', message: '' },
    ];
    for (const m of msgs) expect(roundTrip(m)).toEqual(m);
  });

  it('lays DATA out as id, big-endian chunk index, bytes', () => {
    const bytes = encodeMessage({ type: 'data', id: ID, index: 258, bytes: Buffer.from('hi') });
    expect(bytes.toString('hex')).toBe('00000016' + '13' + ID + '00000102' + '6869');
    expect(roundTrip({ type: 'data', id: ID, index: 258, bytes: Buffer.from('hi') })).toEqual({ type: 'data', id: ID, index: 258, bytes: Buffer.from('hi') });
  });

  it('lays SAVED out as a small JSON object of type 0x18, and OFFER live as an optional field', () => {
    const saved = encodeMessage({ type: 'saved', id: ID, chunks: 258 });
    const body = `{"id":"${ID}","chunks":258}`;
    expect(saved.toString('hex')).toBe('00000036' + '18' + Buffer.from(body).toString('hex')); // docs/PROTOCOL.md's example
    expect(saved.subarray(5, 16).toString('hex')).toBe('7b226964223a2230303131');
    // A live OFFER is the transfer/1 OFFER plus "live":true; a receiver without saved/1 ignores it.
    const offer = (live?: boolean) => encodeMessage({ type: 'offer', id: ID, name: 'a', size: 1, mime: '', chunkSize: 65536, ...(live ? { live } : {}) }).subarray(5).toString();
    expect(offer()).toBe(`{"id":"${ID}","name":"a","size":1,"mime":"","chunkSize":65536}`);
    expect(offer(true)).toBe(`{"id":"${ID}","name":"a","size":1,"mime":"","chunkSize":65536,"live":true}`);
    // Anything but true is not live.
    expect(roundTrip({ type: 'offer', id: ID, name: 'a', size: 1, mime: '', chunkSize: 65536 })).not.toHaveProperty('live');
    const decoder = new FrameDecoder();
    decoder.enable(TRANSFER_FRAME_TYPES);
    expect(decodeMessage(decoder.push(frame(FrameType.OFFER, { id: ID, name: 'a', size: 1, mime: '', chunkSize: 65536, live: 'yes' }))[0]!)).not.toHaveProperty('live');
  });

  it('knows SAVED only where saved/1 was negotiated too', () => {
    const bytes = encodeMessage({ type: 'saved', id: ID, chunks: 1 });
    const transferOnly = new FrameDecoder();
    transferOnly.enable(TRANSFER_FRAME_TYPES);
    expect(() => transferOnly.push(bytes)).toThrow(expect.objectContaining({ code: 'unknown_frame' }));
  });

  it('is unknown on a connection that did not negotiate transfer/1', () => {
    const bytes = encodeMessage({ type: 'credit', id: ID, chunks: 1 });
    expect(() => new FrameDecoder().push(bytes)).toThrow(expect.objectContaining({ code: 'unknown_frame' }));
  });

  it.each([
    ['an OFFER with a bad id', frame(FrameType.OFFER, { id: 'x', name: 'a', size: 1, mime: '', chunkSize: 65536 })],
    ['an OFFER with an empty name', frame(FrameType.OFFER, { id: ID, name: '', size: 1, mime: '', chunkSize: 65536 })],
    ['an OFFER with a negative size', frame(FrameType.OFFER, { id: ID, name: 'a', size: -1, mime: '', chunkSize: 65536 })],
    ['an OFFER with a chunk size not a power of two', frame(FrameType.OFFER, { id: ID, name: 'a', size: 1, mime: '', chunkSize: 70000 })],
    ['an OFFER with a chunk size over 4 MiB', frame(FrameType.OFFER, { id: ID, name: 'a', size: 1, mime: '', chunkSize: 8388608 })],
    ['an ACCEPT with overlapping ranges', frame(FrameType.ACCEPT, { id: ID, need: [[0, 5], [3, 9]], window: 1 })],
    ['an ACCEPT with an empty range', frame(FrameType.ACCEPT, { id: ID, need: [[4, 4]], window: 1 })],
    ['an ACCEPT with window 0', frame(FrameType.ACCEPT, { id: ID, need: [], window: 0 })],
    ['a CREDIT of 0', frame(FrameType.CREDIT, { id: ID, chunks: 0 })],
    ['a SAVED with a negative count', frame(FrameType.SAVED, { id: ID, chunks: -1 })],
    ['a SAVED with a fractional count', frame(FrameType.SAVED, { id: ID, chunks: 1.5 })],
    ['a SAVED without a count', frame(FrameType.SAVED, { id: ID })],
    ['an END with a short hash', frame(FrameType.END, { id: ID, sha256: 'abc' })],
    ['a RESULT without ok', frame(FrameType.RESULT, { id: ID })],
    ['a CANCEL with a bad code', frame(FrameType.CANCEL, { id: ID, code: 'Bad Code' })],
    ['a DATA shorter than its header', Buffer.from('0000000413' + '00112233', 'hex')],
  ])('refuses %s', (_what, bytes) => {
    expect(code(bytes)).toBe('bad_payload');
  });

  it('caps DATA at one 4 MiB chunk plus header, from the header alone', () => {
    expect(code(Buffer.from('0040001513', 'hex'))).toBe('frame_too_large');
  });

  it('picks chunk sizes that keep chunks few and small', () => {
    expect(chunkSizeFor(0)).toBe(1024 * 1024);
    expect(chunkSizeFor(1024)).toBe(1024 * 1024);
    expect(chunkSizeFor(64 * 1024 * 1024)).toBe(1024 * 1024);
    expect(chunkSizeFor(1024 ** 3)).toBe(1024 * 1024);
    expect(chunkSizeFor(1024 ** 3 + 1)).toBe(2 * 1024 * 1024);
    expect(chunkSizeFor(100 * 1024 ** 3)).toBe(4 * 1024 * 1024);
  });
});
