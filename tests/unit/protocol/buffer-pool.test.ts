// Pooled payload buffers: reused once given back, placed so the chunk after a
// DATA header is page-aligned, and never handed out twice.

import { expect, it } from 'vitest';
import { BufferPool, PAGE, payloadPool } from '../../../server/protocol/buffer-pool.js';
import { FrameDecoder, FrameType, encodeFrame } from '../../../server/protocol/frame.js';
import { TRANSFER_FRAME_TYPES } from '../../../server/protocol/transfer-messages.js';

it('caps the shared memory it hands out; past the cap buffers are ordinary (and still aligned)', () => {
  const pool = new BufferPool(2 * 1024 * 1024);
  const a = pool.take(1024 * 1024);
  const b = pool.take(1024 * 1024);
  expect(pool.liveShared).toBe(2 * 1024 * 1024);
  const c = pool.take(1024 * 1024);
  expect(pool.liveShared).toBe(2 * 1024 * 1024);
  expect(c.buffer).not.toBeInstanceOf(SharedArrayBuffer);
  expect(pool.aligned(c)).toBe(true);
  expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
  pool.give(b);
  expect(pool.take(1024 * 1024).buffer).toBe(b.buffer);
});

it('reuses a buffer given back, and refuses one given back twice', () => {
  const pool = new BufferPool(8 * 1024 * 1024);
  const a = pool.take(1024 * 1024);
  pool.give(a);
  const b = pool.take(1024 * 1024);
  expect(b.buffer).toBe(a.buffer);
  pool.give(b);
  expect(() => pool.give(b)).toThrow(/twice/);
});

it('places a skewed buffer so that byte `skew` starts a page, and leaves small ones alone', () => {
  const pool = new BufferPool(8 * 1024 * 1024);
  const buf = pool.take(256 * 1024 + 20, 20);
  expect(buf.length).toBe(256 * 1024 + 20);
  expect(pool.aligned(buf.subarray(20))).toBe(true);
  expect(pool.aligned(buf)).toBe(false);
  expect(pool.aligned(pool.take(100))).toBe(false);
  expect(pool.aligned(pool.take(100, 0, true))).toBe(true);
  expect(pool.aligned(Buffer.alloc(PAGE * 2))).toBe(false);
});

it('decodes a DATA frame split across reads into a buffer whose chunk is page-aligned', () => {
  const decoder = new FrameDecoder({ pool: payloadPool });
  decoder.enable(TRANSFER_FRAME_TYPES);
  const payload = Buffer.alloc(20 + 128 * 1024, 7);
  const frame = encodeFrame(FrameType.DATA, payload);
  const out = [...decoder.frames(frame.subarray(0, 1000)), ...decoder.frames(frame.subarray(1000))];
  expect(out).toHaveLength(1);
  expect(out[0]!.payload.equals(payload)).toBe(true);
  expect(payloadPool.aligned(out[0]!.payload.subarray(20))).toBe(true);
});

it('copies a large payload into its buffer read by read, keeping none of the reads, and decodes what follows it', () => {
  const decoder = new FrameDecoder({ pool: payloadPool });
  decoder.enable(TRANSFER_FRAME_TYPES);
  const payload = Buffer.alloc(20 + 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
  const ping = encodeFrame(FrameType.PING, Buffer.alloc(8, 1));
  const bytes = Buffer.concat([encodeFrame(FrameType.DATA, payload), ping]);
  const out = [];
  const RECORD = 16 * 1024 + 3; // TLS-record-sized reads that do not line up with anything
  for (let at = 0; at < bytes.length; at += RECORD) {
    const read = Buffer.from(bytes.subarray(at, at + RECORD));
    const before = out.length;
    out.push(...decoder.frames(read));
    // Whatever a read carried of the big payload is already in the payload's buffer: the
    // read itself can be reused (here: scribbled over) without changing the result. (Small
    // frames are views into their read, so the read carrying the PING is left alone.)
    if (at + RECORD <= bytes.length - ping.length) read.fill(0xee);
    if (out.length === before && at + RECORD < bytes.length - ping.length) {
      expect(decoder.buffered).toBe(Math.min(at + RECORD, 5 + payload.length));
    }
  }
  expect(out.map((f) => f.type)).toEqual([FrameType.DATA, FrameType.PING]);
  expect(out[0]!.payload.equals(payload)).toBe(true);
  expect(payloadPool.aligned(out[0]!.payload.subarray(20))).toBe(true);
  expect(out[1]!.payload.equals(Buffer.alloc(8, 1))).toBe(true);
  expect(decoder.buffered).toBe(0);
  expect(decoder.end()).toBeNull();
});

it('reports a stream that ends inside a large payload being copied', () => {
  const decoder = new FrameDecoder({ pool: payloadPool });
  decoder.enable(TRANSFER_FRAME_TYPES);
  const frame = encodeFrame(FrameType.DATA, Buffer.alloc(20 + 256 * 1024, 3));
  expect([...decoder.frames(frame.subarray(0, 100_000))]).toHaveLength(0);
  expect(decoder.buffered).toBe(100_000);
  expect(decoder.end()?.message).toMatch(/100000 bytes left over/);
});
