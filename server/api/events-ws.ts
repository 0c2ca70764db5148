// The event stream: a WebSocket at /api/events. Replays buffered events after
// `since`, then sends live ones, with no gap and no duplicate (docs/API.md "Events").

import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError } from '../errors.js';
import type { EventBus, MeshEvent } from '../events/bus.js';
import { bearerToken, type Guard } from './auth.js';

export const EVENTS_PATH = '/api/events';
// A client this far behind is dropped; it reconnects with `since` and catches up from the ring.
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const MAX_CLIENTS = 256;

export interface EventsDeps {
  server: Server;
  bus: EventBus;
  guard: Guard;
}

export function attachEventStream({ server, bus, guard }: EventsDeps): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node's HTTP server drops its own error listener from an upgraded socket; without
    // one, a client resetting the connection would crash the daemon.
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== EVENTS_PATH) return refuse(socket, 404, 'not_found', 'no WebSocket here');
    try {
      guard.check({
        host: req.headers.host,
        origin: req.headers.origin,
        token: bearerToken(req.headers.authorization) ?? url.searchParams.get('token') ?? undefined,
        remoteAddress: req.socket.remoteAddress ?? '',
      });
    } catch (err) {
      const e = err as ApiError;
      return refuse(socket, e.status, e.code, e.message);
    }
    if (wss.clients.size >= MAX_CLIENTS) return refuse(socket, 503, 'too_many_clients', `at most ${MAX_CLIENTS} event streams at once`);
    const sinceText = url.searchParams.get('since');
    const since = sinceText !== null && /^[0-9]{1,15}$/.test(sinceText) ? Number(sinceText) : null;
    if (sinceText !== null && since === null) return refuse(socket, 400, 'bad_request', 'since must be a non-negative integer');
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, since));
  });

  function serve(ws: WebSocket, since: number | null): void {
    const send = (msg: object) => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        ws.close(4008, 'too slow: reconnect with since');
        return;
      }
      ws.send(JSON.stringify(msg));
    };
    // Subscribe before replaying: the bus is synchronous, so nothing can slip in between.
    let lastSent = since ?? bus.lastSeq;
    const live = (event: MeshEvent) => {
      if (event.seq <= lastSent) return;
      lastSent = event.seq;
      send(event);
    };
    send({ type: 'stream.hello', bootId: bus.bootId, lastSeq: bus.lastSeq });
    if (since !== null) {
      const replay = bus.since(since);
      if (replay.kind === 'reset') {
        send({ type: 'stream.reset', lastSeq: bus.lastSeq });
        lastSent = bus.lastSeq;
      } else {
        if (replay.kind === 'gap') send({ type: 'stream.gap', from: replay.from, to: replay.to });
        for (const event of replay.events) live(event);
      }
    }
    const unsubscribe = bus.subscribe(live);
    ws.on('close', unsubscribe);
    ws.on('error', () => ws.terminate());
    // Clients have nothing to say; ignore messages rather than fail.
    ws.on('message', () => {});
  }

  return {
    close() {
      for (const ws of wss.clients) ws.close(1001, 'daemon shutting down');
      wss.close();
    },
  };
}

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
