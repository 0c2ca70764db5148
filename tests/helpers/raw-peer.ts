// A peer driven by the test, speaking frames by hand over a real TLS socket: it
// dials a daemon's peer, says HELLO with the transfer feature, answers PINGs, and
// hands every other message to the test. Its reading can be throttled, to play a
// receiver that is slower than the sender.

import tls from 'node:tls';
import { createIdentity, type Identity } from '../../server/peer/identity.js';
import { ALPN } from '../../server/peer/peer.js';
import { FrameDecoder } from '../../server/protocol/frame.js';
import { decodeMessage, encodeMessage, type Message } from '../../server/protocol/messages.js';
import { TRANSFER_FEATURE, TRANSFER_FRAME_TYPES } from '../../server/protocol/transfer-messages.js';
import { waitFor } from './wait.js';

export interface RawPeer {
  identity: Identity;
  socket: tls.TLSSocket;
  /** Decrypted bytes read from the socket so far. */
  readonly bytesRead: number;
  send(msg: Message): boolean;
  /** Reads at most this many bytes per second from now on (null: as fast as they come). */
  throttle(bytesPerSecond: number | null): void;
  close(): void;
}

export async function connectRawPeer(port: number, onMessage: (msg: Message, peer: RawPeer) => void): Promise<RawPeer> {
  const identity = await createIdentity('raw test peer');
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: 'TLSv1.3',
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    ALPNProtocols: [ALPN],
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  const decoder = new FrameDecoder();
  decoder.enable(TRANSFER_FRAME_TYPES);
  let bytesRead = 0;
  let rate: number | null = null;
  let windowStart = Date.now();
  let windowBytes = 0;
  let helloSeen = false;
  const peer: RawPeer = {
    identity,
    socket,
    get bytesRead() {
      return bytesRead;
    },
    send: (msg) => socket.write(encodeMessage(msg)),
    throttle(bytesPerSecond) {
      rate = bytesPerSecond;
      if (rate === null) socket.resume();
    },
    close: () => socket.destroy(),
  };
  socket.on('data', (chunk: Buffer) => {
    bytesRead += chunk.length;
    for (const frame of decoder.push(chunk)) {
      const msg = decodeMessage(frame);
      if (msg.type === 'hello') helloSeen = true;
      else if (msg.type === 'ping') peer.send({ type: 'pong', nonce: msg.nonce });
      else onMessage(msg, peer);
    }
    if (rate === null) return;
    // Stop reading once this 100 ms slot's budget is spent; the kernel buffers fill up
    // and TCP pushes back on the sender.
    const now = Date.now();
    if (now - windowStart >= 100) {
      windowStart = now;
      windowBytes = 0;
    }
    windowBytes += chunk.length;
    if (windowBytes >= rate / 10) {
      socket.pause();
      setTimeout(() => {
        windowStart = Date.now();
        windowBytes = 0;
        socket.resume();
      }, 100 - (now - windowStart)).unref();
    }
  });
  peer.send({ type: 'hello', version: 1, id: identity.id, port: 0, agent: 'raw-test-peer', features: [TRANSFER_FEATURE] });
  await waitFor('the HELLO reply', () => helloSeen);
  return peer;
}
