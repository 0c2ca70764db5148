import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../../server/protocol/frame.js';
import { decodeMessage, encodeMessage, type HelloMessage } from '../../../server/protocol/messages.js';
import { ProtocolError } from '../../../server/errors.js';

const ID = 'ab'.repeat(32);
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeBytes(bytes: Buffer) {
  const frames = new FrameDecoder().push(bytes);
  expect(frames).toHaveLength(1);
  return decodeMessage(frames[0]!);
}

function frame(type: number, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 0);
  head[4] = type;
  return Buffer.concat([head, body]);
}

function decodeCode(bytes: Buffer): string {
  try {
    decodeBytes(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return (err as ProtocolError).code;
  }
  throw new Error('expected a ProtocolError');
}

describe('messages', () => {
  it('round-trips HELLO', () => {
    const hello: HelloMessage = { type: 'hello', version: 1, id: ID, port: 7000, agent: 'meshdrop/0.1.0', features: [] };
    const bytes = encodeMessage(hello);
    expect(bytes[4]).toBe(0x01);
    expect(JSON.parse(bytes.subarray(5).toString())).toEqual({ version: 1, id: ID, port: 7000, agent: 'meshdrop/0.1.0', features: [] });
    expect(decodeBytes(bytes)).toEqual(hello);
  });

  it('encodes PING and PONG as 8-byte big-endian nonces', () => {
    expect(encodeMessage({ type: 'ping', nonce: 0x0102030405060708n }).toString('hex')).toBe('00000008' + '02' + '0102030405060708');
    expect(decodeBytes(hex('00000008 03 ffffffffffffffff'))).toEqual({ type: 'pong', nonce: 0xffffffffffffffffn });
  });

  it('decodes CLOSE and ignores unknown JSON fields', () => {
    expect(decodeBytes(frame(0x04, '{"code":"shutdown","message":"bye","extra":1}'))).toEqual({ type: 'close', code: 'shutdown', message: 'bye' });
    expect(decodeBytes(frame(0x04, '{"code":"peer_removed"}'))).toEqual({ type: 'close', code: 'peer_removed', message: '' });
  });

  it('truncates a long CLOSE message so the frame stays under its cap', () => {
    const bytes = encodeMessage({ type: 'close', code: 'shutdown', message: '\u0001'.repeat(5000) });
    expect(bytes.length).toBeLessThanOrEqual(5 + 4096);
  });

  it('accepts a HELLO from a later version with fields it does not know', () => {
    const msg = decodeBytes(frame(0x01, JSON.stringify({ version: 7, id: ID, port: 1, agent: 'x', features: ['resume'], future: { a: 1 } })));
    expect(msg).toMatchObject({ type: 'hello', version: 7, features: ['resume'] });
  });

  it.each([
    ['not JSON', 'hello'],
    ['a JSON array', '[]'],
    ['a JSON string', '"x"'],
    ['an empty payload', ''],
    ['version 0', JSON.stringify({ version: 0, id: ID, port: 1 })],
    ['a fractional version', JSON.stringify({ version: 1.5, id: ID, port: 1 })],
    ['an upper-case id', JSON.stringify({ version: 1, id: ID.toUpperCase(), port: 1 })],
    ['a short id', JSON.stringify({ version: 1, id: 'abcd', port: 1 })],
    ['port -1', JSON.stringify({ version: 1, id: ID, port: -1 })],
    ['port 65536', JSON.stringify({ version: 1, id: ID, port: 65536 })],
    ['a string port', JSON.stringify({ version: 1, id: ID, port: '7000' })],
    ['too many features', JSON.stringify({ version: 1, id: ID, port: 1, features: Array(33).fill('f') })],
    ['a non-string feature', JSON.stringify({ version: 1, id: ID, port: 1, features: [1] })],
    ['an overlong agent', JSON.stringify({ version: 1, id: ID, port: 1, agent: 'a'.repeat(129) })],
  ])('refuses a HELLO with %s', (_what, payload) => {
    expect(decodeCode(frame(0x01, payload))).toBe('bad_payload');
  });

  it('accepts port 0 from a peer that only dials', () => {
    expect(decodeBytes(frame(0x01, JSON.stringify({ version: 1, id: ID, port: 0 })))).toMatchObject({ type: 'hello', port: 0 });
  });

  it('refuses invalid UTF-8 rather than replacing it', () => {
    expect(decodeCode(frame(0x01, Buffer.from([0x7b, 0xff, 0x7d])))).toBe('bad_payload');
  });

  it('refuses a PING whose payload is not 8 bytes', () => {
    expect(decodeCode(hex('00000004 02 00000001'))).toBe('bad_payload');
  });

  it.each([
    ['no code', '{"message":"x"}'],
    ['an empty code', '{"code":""}'],
    ['a code with spaces', '{"code":"a b"}'],
    ['a numeric message', '{"code":"x","message":5}'],
  ])('refuses a CLOSE with %s', (_what, payload) => {
    expect(decodeCode(frame(0x04, payload))).toBe('bad_payload');
  });
});
