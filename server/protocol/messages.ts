// Messages: frames <-> typed messages, with every field validated.
// JSON payloads are UTF-8 objects; unknown fields are ignored so later
// versions can add optional ones (docs/PROTOCOL.md "Versions").

import { ProtocolError } from '../errors.js';
import { encodeFrame, FrameType, type Frame } from './frame.js';
import { decodeTransfer, encodeTransfer, type TransferMessage } from './transfer-messages.js';

/** Protocol versions this build speaks, newest last. */
export const SUPPORTED_VERSIONS: readonly number[] = [1];
export const PROTOCOL_VERSION = 1;

const ID_PATTERN = /^[0-9a-f]{64}$/;
const MAX_AGENT = 128;
const MAX_FEATURES = 32;
const MAX_FEATURE = 64;
const MAX_CLOSE_CODE = 64;
// 512 chars stay under the 4 KiB CLOSE cap even if every char is JSON-escaped (6 bytes).
const MAX_CLOSE_MESSAGE = 512;

export interface HelloMessage {
  type: 'hello';
  version: number;
  id: string;
  port: number;
  agent: string;
  features: string[];
}

export interface PingMessage {
  type: 'ping';
  nonce: bigint;
}

export interface PongMessage {
  type: 'pong';
  nonce: bigint;
}

export interface CloseMessage {
  type: 'close';
  code: string;
  message: string;
}

export type Message = HelloMessage | PingMessage | PongMessage | CloseMessage | TransferMessage;

export function encodeMessage(msg: Message): Buffer {
  switch (msg.type) {
    case 'hello':
      return encodeFrame(
        FrameType.HELLO,
        Buffer.from(JSON.stringify({ version: msg.version, id: msg.id, port: msg.port, agent: msg.agent, features: msg.features })),
      );
    case 'ping':
    case 'pong': {
      const payload = Buffer.allocUnsafe(8);
      payload.writeBigUInt64BE(msg.nonce);
      return encodeFrame(msg.type === 'ping' ? FrameType.PING : FrameType.PONG, payload);
    }
    case 'close':
      return encodeFrame(
        FrameType.CLOSE,
        Buffer.from(JSON.stringify({ code: msg.code, message: truncateChars(msg.message, MAX_CLOSE_MESSAGE) })),
      );
    default:
      return encodeTransfer(msg);
  }
}

export function decodeMessage(frame: Frame): Message {
  switch (frame.type) {
    case FrameType.HELLO:
      return decodeHello(frame.payload);
    case FrameType.PING:
    case FrameType.PONG: {
      if (frame.payload.length !== 8) throw new ProtocolError('bad_payload', `ping/pong payload must be 8 bytes, got ${frame.payload.length}`);
      const nonce = frame.payload.readBigUInt64BE(0);
      return frame.type === FrameType.PING ? { type: 'ping', nonce } : { type: 'pong', nonce };
    }
    case FrameType.CLOSE: {
      const obj = parseJsonObject(frame.payload, 'CLOSE');
      const code = obj.code;
      const message = obj.message ?? '';
      if (typeof code !== 'string' || code.length === 0 || code.length > MAX_CLOSE_CODE || !/^[a-z0-9_]+$/.test(code)) {
        throw new ProtocolError('bad_payload', 'CLOSE code must be 1-64 chars of a-z, 0-9 and _');
      }
      if (typeof message !== 'string') throw new ProtocolError('bad_payload', 'CLOSE message must be a string');
      return { type: 'close', code, message: message.slice(0, MAX_CLOSE_MESSAGE) };
    }
    default:
      return decodeTransfer(frame);
  }
}

function decodeHello(payload: Buffer): HelloMessage {
  const obj = parseJsonObject(payload, 'HELLO');
  const { version, id, port } = obj;
  const agent = obj.agent ?? '';
  const features = obj.features ?? [];
  if (!Number.isSafeInteger(version) || (version as number) < 1) throw new ProtocolError('bad_payload', 'HELLO version must be a positive integer');
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw new ProtocolError('bad_payload', 'HELLO id must be 64 lower-case hex characters');
  // 0 says the sender accepts no connections (a peer that only dials); nobody will dial it back.
  if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535) throw new ProtocolError('bad_payload', 'HELLO port must be an integer in 0..65535');
  if (typeof agent !== 'string' || agent.length > MAX_AGENT) throw new ProtocolError('bad_payload', `HELLO agent must be a string of at most ${MAX_AGENT} chars`);
  if (
    !Array.isArray(features) ||
    features.length > MAX_FEATURES ||
    !features.every((f) => typeof f === 'string' && f.length > 0 && f.length <= MAX_FEATURE)
  ) {
    throw new ProtocolError('bad_payload', `HELLO features must be at most ${MAX_FEATURES} strings of 1-${MAX_FEATURE} chars`);
  }
  return { type: 'hello', version: version as number, id, port: port as number, agent, features: features as string[] };
}

function parseJsonObject(payload: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    // fatal: true so invalid UTF-8 is refused instead of silently replaced.
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw new ProtocolError('bad_payload', `${what} payload is not valid UTF-8 JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('bad_payload', `${what} payload must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** At most maxChars code points; never splits a surrogate pair (which JSON would escape as a lone \udXXX). */
function truncateChars(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : Array.from(text).slice(0, maxChars).join('');
}
