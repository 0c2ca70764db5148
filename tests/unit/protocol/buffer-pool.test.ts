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
