import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, FrameType, MAX_PAYLOAD } from '../../../server/protocol/frame.js';
import { ProtocolError } from '../../../server/errors.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeError(bytes: Buffer): ProtocolError {
  try {
    new FrameDecoder().push(bytes);
  } catch (err) {
    return err as ProtocolError;
  }
  throw new Error('expected the decoder to throw');
}

describe('encodeFrame', () => {
  it('writes a big-endian payload length, the type, then the payload', () => {
    expect(encodeFrame(FrameType.PING, hex('0000000000000001')).toString('hex')).toBe('00000008' + '02' + '0000000000000001');
    expect(encodeFrame(FrameType.HELLO, Buffer.from('{}')).toString('hex')).toBe('00000002' + '01' + '7b7d');
  });

  it('refuses to build a frame over its cap or of an unknown type (our own misuse throws)', () => {
    expect(() => encodeFrame(FrameType.PING, Buffer.alloc(9))).toThrow(RangeError);
    expect(() => encodeFrame(0x7f as never, Buffer.alloc(0))).toThrow(TypeError);
  });
});

describe('FrameDecoder', () => {
  it('decodes two frames delivered in one chunk', () => {
    const frames = new FrameDecoder().push(hex('00000008 02 0000000000000001  00000008 03 00000000000000ff'));
    expect(frames).toEqual([
      { type: 0x02, payload: hex('0000000000000001') },
      { type: 0x03, payload: hex('00000000000000ff') },
    ]);
  });

  it('decodes a frame delivered one byte at a time', () => {
    const bytes = hex('00000002 01 7b7d');
    const decoder = new FrameDecoder();
    const frames = [];
    for (const b of bytes) frames.push(...decoder.push(Buffer.from([b])));
    expect(frames).toEqual([{ type: 0x01, payload: Buffer.from('{}') }]);
    expect(decoder.buffered).toBe(0);
  });

  it('holds a frame split across chunks until it is whole', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(hex('00000008 02 0000'))).toEqual([]);
    expect(decoder.buffered).toBe(7);
    expect(decoder.push(hex('000000000001 00'))).toEqual([{ type: 0x02, payload: hex('0000000000000001') }]);
    expect(decoder.buffered).toBe(1);
  });

  it('reports a stream that ends inside a frame as truncated', () => {
    const decoder = new FrameDecoder();
    decoder.push(hex('00000008 02 00000000'));
    const err = decoder.end();
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err!.code).toBe('bad_payload');
    expect(err!.message).toMatch(/ended inside a frame/);
    expect(new FrameDecoder().end()).toBeNull();
  });

  it('refuses an oversized length from the header alone, before any payload arrives', () => {
    const err = decodeError(hex('ffffffff 02'));
    expect(err.code).toBe('frame_too_large');
    // One byte over the HELLO cap, with no payload sent at all.
    const overHello = Buffer.alloc(5);
    overHello.writeUInt32BE(MAX_PAYLOAD[FrameType.HELLO] + 1, 0);
    overHello[4] = 0x01;
    expect(decodeError(overHello).code).toBe('frame_too_large');
    expect(decodeError(hex('00000009 02')).code).toBe('frame_too_large');
  });

  it('refuses unknown frame types', () => {
    const err = decodeError(hex('00000000 7f'));
    expect(err.code).toBe('unknown_frame');
    expect(err.message).toContain('0x7f');
    expect(decodeError(hex('00000000 00')).code).toBe('unknown_frame');
  });

  it('yields the good frames that precede a bad header before throwing', () => {
    const decoder = new FrameDecoder();
    const seen: number[] = [];
    expect(() => {
      for (const f of decoder.frames(hex('00000008 02 0000000000000001  00000000 7f'))) seen.push(f.type);
    }).toThrow(ProtocolError);
    expect(seen).toEqual([0x02]);
  });

  it('stays failed after an error (the connection must close)', () => {
    const decoder = new FrameDecoder();
    expect(() => decoder.push(hex('00000000 7f'))).toThrow(ProtocolError);
    expect(() => decoder.push(hex('00000008 02 0000000000000001'))).toThrow(ProtocolError);
  });

  it('decodes a largest HELLO delivered one byte per chunk in linear time', () => {
    // One-byte TLS records used to make every push re-join all buffered bytes.
    const payload = Buffer.alloc(MAX_PAYLOAD[FrameType.HELLO], 0x20);
    const bytes = encodeFrame(FrameType.HELLO, payload);
    const decoder = new FrameDecoder();
    let frames = 0;
    const started = process.cpuUsage();
    for (let i = 0; i < bytes.length; i++) frames += decoder.push(bytes.subarray(i, i + 1)).length;
    const cpu = process.cpuUsage(started);
    expect(frames).toBe(1);
    // Not a timing assertion on the machine: the quadratic version needed tens of CPU-seconds.
    expect((cpu.user + cpu.system) / 1e6).toBeLessThan(5);
  });

  it('accepts a frame at exactly its cap', () => {
    const payload = Buffer.alloc(MAX_PAYLOAD[FrameType.CLOSE], 0x20);
    const frames = new FrameDecoder().push(encodeFrame(FrameType.CLOSE, payload));
    expect(frames[0]!.payload.length).toBe(MAX_PAYLOAD[FrameType.CLOSE]);
  });
});
