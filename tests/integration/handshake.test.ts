// The peer handshake and heartbeat over real TLS sockets on 127.0.0.1, with a
// hand-driven client that speaks raw frames, so every refusal path is exercised.

import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIdentity, type Identity } from '../../server/peer/identity.js';
import { Peer, ALPN } from '../../server/peer/peer.js';
import { FrameDecoder } from '../../server/protocol/frame.js';
import { decodeMessage, encodeMessage, type Message } from '../../server/protocol/messages.js';
import type { PeerConnection, CloseInfo } from '../../server/peer/connection.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const TIMINGS = { handshakeTimeoutMs: 500, heartbeatIntervalMs: 30, heartbeatTimeoutMs: 200 };

let ids: Identity[];
const peers: Peer[] = [];
const sockets: tls.TLSSocket[] = [];

beforeAll(async () => {
  ids = await Promise.all([1, 2, 3].map((i) => createIdentity(`test ${i}`)));
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(peers.splice(0).map((p) => p.close({ code: 'shutdown', message: 'test over' })));
});

async function startPeer(identity: Identity, opts: { versions?: number[] } = {}): Promise<Peer> {
  const [port] = await freePorts(1);
  const peer = new Peer({ port: port!, identity, host: '127.0.0.1', timings: TIMINGS, versions: opts.versions });
  await peer.listen();
  peers.push(peer);
  return peer;
}

/** A raw TLS client: sends bytes we choose and records every message and the close. */
async function rawClient(peer: Peer, identity: Identity | null, alpn: string[] = [ALPN]) {
  const socket = tls.connect({
    host: '127.0.0.1',
    port: peer.port,
    ...(identity ? { key: identity.keyPem, cert: identity.certPem } : {}),
    minVersion: 'TLSv1.3',
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    ...(alpn.length ? { ALPNProtocols: alpn } : {}),
  });
  sockets.push(socket);
  const received: Message[] = [];
  const decoder = new FrameDecoder();
  let ended = false;
  socket.on('data', (d) => received.push(...decoder.push(d).map(decodeMessage)));
  socket.on('close', () => (ended = true));
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  return {
    socket,
    received,
    send: (msg: Message) => socket.write(encodeMessage(msg)),
    closed: () => waitFor('socket close', () => ended),
    closeCode: async () => {
      const close = await waitFor('a CLOSE frame', () => received.find((m) => m.type === 'close'));
      return close.type === 'close' ? close.code : '';
    },
  };
}

const hello = (identity: Identity, extra: Partial<Extract<Message, { type: 'hello' }>> = {}): Message => ({
  type: 'hello', version: 1, id: identity.id, port: 1234, agent: 'test', features: [], ...extra,
});

describe('handshake', () => {
  it('completes with a valid HELLO and answers with the peer\'s own', async () => {
    const peer = await startPeer(ids[0]!);
    const opened = new Promise<PeerConnection>((r) => peer.once('connection.opened', r));
    const c = await rawClient(peer, ids[1]!);
    c.send(hello(ids[1]!));
    const reply = await waitFor('HELLO reply', () => c.received.find((m) => m.type === 'hello'));
    expect(reply).toMatchObject({ type: 'hello', version: 1, id: ids[0]!.id, port: peer.port });
    const conn = await opened;
    expect(conn.remoteId).toBe(ids[1]!.id);
    expect(conn.direction).toBe('in');
    expect(peer.connections()).toHaveLength(1);
  });

  it('closes with identity_mismatch when the HELLO id is not the certificate fingerprint', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, ids[1]!);
    c.send(hello(ids[1]!, { id: ids[2]!.id }));
    expect(await c.closeCode()).toBe('identity_mismatch');
    await c.closed();
    expect(peer.connections()).toHaveLength(0);
  });

  it('closes a client that presents no certificate', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, null);
    c.send(hello(ids[1]!));
    expect(await c.closeCode()).toBe('identity_mismatch');
    await c.closed();
  });

  it('closes a client that does not negotiate the meshdrop ALPN protocol', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, ids[1]!, []);
    expect(await c.closeCode()).toBe('wrong_application');
    await c.closed();
  });

  it('closes with unsupported_version when no version is in common', async () => {
    const peer = await startPeer(ids[0]!, { versions: [2, 3] });
    const c = await rawClient(peer, ids[1]!);
    c.send(hello(ids[1]!, { version: 1 }));
    expect(await c.closeCode()).toBe('unsupported_version');
    const close = c.received.find((m) => m.type === 'close');
    expect(close?.type === 'close' && close.message).toMatch(/speaks 2, 3/);
  });

  it('negotiates down to the lower version when the dialler is newer', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, ids[1]!);
    c.send(hello(ids[1]!, { version: 9 }));
    const reply = await waitFor('HELLO reply', () => c.received.find((m) => m.type === 'hello'));
    expect(reply).toMatchObject({ version: 1 });
  });

  it('treats a message before HELLO as a protocol error', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, ids[1]!);
    c.send({ type: 'ping', nonce: 1n });
    expect(await c.closeCode()).toBe('unexpected_message');
  });

  it('closes on a frame length over the cap without waiting for the payload', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, ids[1]!);
    c.socket.write(Buffer.from('7fffffff01', 'hex'));
    expect(await c.closeCode()).toBe('frame_too_large');
    await c.closed();
  });

  it('closes on an unknown frame type', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, ids[1]!);
    c.socket.write(Buffer.from('0000000042', 'hex'));
    expect(await c.closeCode()).toBe('unknown_frame');
  });

  it('closes with handshake_timeout when no HELLO arrives', async () => {
    const peer = await startPeer(ids[0]!);
    const c = await rawClient(peer, ids[1]!);
    expect(await c.closeCode()).toBe('handshake_timeout');
    await c.closed();
  });

  it('refuses a peer dialling itself', async () => {
    const peer = await startPeer(ids[0]!);
    await expect(peer.dial('127.0.0.1', peer.port)).rejects.toMatchObject({ code: 'self_connection' });
    expect(peer.connections()).toHaveLength(0);
  });

  it('refuses a known address that now presents another identity', async () => {
    const a = await startPeer(ids[0]!);
    const b = await startPeer(ids[1]!);
    await expect(a.dial('127.0.0.1', b.port, { expectedId: ids[2]!.id })).rejects.toMatchObject({ code: 'dial_failed', message: expect.stringContaining('identity_changed') });
  });

  it('reports a refused port as dial_failed', async () => {
    const a = await startPeer(ids[0]!);
    const [unused] = await freePorts(1);
    await expect(a.dial('127.0.0.1', unused!)).rejects.toMatchObject({ code: 'dial_failed', message: expect.stringContaining('refused') });
  });
});

describe('heartbeat', () => {
  it('measures round-trip time on an open connection', async () => {
    const a = await startPeer(ids[0]!);
    const b = await startPeer(ids[1]!);
    const conn = await a.dial('127.0.0.1', b.port);
    await waitFor('an RTT sample', () => conn.rttMs !== null);
    expect(conn.rttMs).toBeGreaterThan(0);
  });

  it('declares a silent connection dead and says why', async () => {
    const peer = await startPeer(ids[0]!);
    const closed = new Promise<CloseInfo>((r) => peer.once('connection.closed', (_c, info) => r(info)));
    const c = await rawClient(peer, ids[1]!);
    c.send(hello(ids[1]!));
    await waitFor('HELLO reply', () => c.received.find((m) => m.type === 'hello'));
    // From here the client never answers a PING.
    const info = await closed;
    expect(info.reason.code).toBe('heartbeat_timeout');
    expect(info.byRemote).toBe(false);
    expect(c.received.some((m) => m.type === 'ping')).toBe(true);
    expect(await c.closeCode()).toBe('heartbeat_timeout');
  });

  it('keeps a connection alive while the remote answers', async () => {
    const a = await startPeer(ids[0]!);
    const b = await startPeer(ids[1]!);
    const conn = await a.dial('127.0.0.1', b.port);
    let pongs = 0;
    conn.on('updated', () => pongs++);
    // Several heartbeat timeouts' worth of pings must pass without a close.
    await waitFor('10 round trips', () => pongs >= 10);
    expect(conn.state).toBe('open');
  });
});

describe('backpressure', () => {
  it('closes a remote that floods PINGs without reading the PONGs', async () => {
    const peer = await startPeer(ids[0]!);
    const opened = new Promise<PeerConnection>((r) => peer.once('connection.opened', r));
    const c = await rawClient(peer, ids[1]!);
    c.send(hello(ids[1]!));
    const conn = await opened;
    c.socket.pause(); // never read again
    const ping = encodeMessage({ type: 'ping', nonce: 1n });
    const burst = Buffer.concat(Array(10_000).fill(ping)); // 130 kB of PINGs per write
    let sent = 0;
    // Write until our own socket pushes back, i.e. the peer has stopped reading us.
    while (sent < 2000 * burst.length && conn.state === 'open') {
      sent += burst.length;
      if (!c.socket.write(burst)) {
        const drained = await Promise.race([
          new Promise<boolean>((r) => c.socket.once('drain', () => r(true))),
          new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
        ]);
        if (!drained) break;
      }
    }
    // The peer gave up on us instead of queueing PONGs without bound.
    await waitFor('the connection to close', () => conn.state === 'closed');
    expect(conn.closeInfo?.reason.code).toBe('not_reading');
    expect(conn.queuedBytes).toBeLessThan(32 * 1024 * 1024);
  });
});

describe('duplicates', () => {
  it('keeps exactly one connection, the same on both ends, when both dial at once', async () => {
    for (let round = 0; round < 5; round++) {
      const a = await startPeer(ids[0]!);
      const b = await startPeer(ids[1]!);
      await Promise.allSettled([a.dial('127.0.0.1', b.port), b.dial('127.0.0.1', a.port)]);
      await waitFor('one connection each', () => a.connections().length === 1 && b.connections().length === 1);
      // Let any loser finish closing, then check nothing else changed.
      await new Promise((r) => setTimeout(r, 50));
      const [ca] = a.connections();
      const [cb] = b.connections();
      expect(a.connections()).toHaveLength(1);
      expect(b.connections()).toHaveLength(1);
      // The survivor is the one dialled by the smaller id, seen from both ends.
      const smallerIsA = ids[0]!.id < ids[1]!.id;
      expect(ca!.direction).toBe(smallerIsA ? 'out' : 'in');
      expect(cb!.direction).toBe(smallerIsA ? 'in' : 'out');
      await Promise.all(peers.splice(0).map((p) => p.close({ code: 'shutdown', message: 'next round' })));
    }
  });

  it('lets a newer connection in the same direction replace an older one', async () => {
    const a = await startPeer(ids[0]!);
    const b = await startPeer(ids[1]!);
    const first = await a.dial('127.0.0.1', b.port);
    const second = await a.dial('127.0.0.1', b.port);
    await waitFor('the first to close', () => first.state === 'closed');
    expect(first.closeInfo?.reason.code).toBe('duplicate_connection');
    expect(a.connections()).toEqual([second]);
    await waitFor('b to keep one', () => b.connections().length === 1);
  });
});

describe('closing', () => {
  it('does not wait for a client stuck in the TLS handshake', async () => {
    const [port] = await freePorts(1);
    const peer = new Peer({ port: port!, identity: ids[0]!, host: '127.0.0.1', timings: { ...TIMINGS, handshakeTimeoutMs: 600_000 } });
    await peer.listen();
    const net = await import('node:net');
    // A TCP client that never sends a ClientHello.
    const stuck = net.connect(peer.port, '127.0.0.1');
    stuck.on('error', () => {});
    await new Promise<void>((r) => stuck.once('connect', () => r()));
    // Let the server accept it (the kernel completes TCP before the accept).
    await new Promise((r) => setTimeout(r, 100));
    peers.splice(peers.indexOf(peer), 1);
    // With a 10-minute handshake timeout, only a close that ignores the stuck client can return.
    await peer.close({ code: 'shutdown', message: 'test' });
    stuck.destroy();
  });

  it('cancels its dials in progress instead of leaving them to time out', async () => {
    const [port, silentPort] = await freePorts(2);
    const peer = new Peer({ port: port!, identity: ids[0]!, host: '127.0.0.1', timings: { ...TIMINGS, handshakeTimeoutMs: 600_000 } });
    await peer.listen();
    const net = await import('node:net');
    const silent = net.createServer(() => {}); // accepts TCP, never speaks TLS
    await new Promise<void>((r) => silent.listen(silentPort, '127.0.0.1', () => r()));
    try {
      const dial = peer.dial('127.0.0.1', silentPort!);
      await new Promise((r) => setTimeout(r, 100));
      await peer.close({ code: 'shutdown', message: 'test' });
      await expect(dial).rejects.toMatchObject({ code: 'dial_failed', message: expect.stringContaining('stopping') });
      await expect(peer.dial('127.0.0.1', silentPort!)).rejects.toMatchObject({ code: 'dial_failed' });
    } finally {
      silent.close();
    }
  });
});
