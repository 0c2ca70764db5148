// The event WebSocket (live, replay with since, gap/reset) and access control,
// against a real daemon listening on 127.0.0.1.

import http from 'node:http';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcess, type InProcessDaemon } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';

let d: InProcessDaemon;

beforeAll(async () => {
  d = await startInProcess();
});
afterAll(async () => {
  await d.close();
});

/** A raw HTTP request, so Host and Origin can be set freely (fetch forbids that). */
function raw(path: string, headers: Record<string, string>, method = 'GET'): Promise<{ status: number; body: any; headers: http.IncomingHttpHeaders }> {
  const url = new URL(d.base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method, headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text.startsWith('{') ? JSON.parse(text) : text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket and resolves with the HTTP status it was refused with, or 101. */
function upgradeStatus(query: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(d.base.replace('http', 'ws') + '/api/events' + query, { headers });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
    ws.on('error', () => {});
  });
}

describe('event stream', () => {
  it('sends peer and connection events live, with increasing seq', async () => {
    const ev = d.client.events();
    await ev.opened;
    const hello = await ev.waitFor('stream.hello', (m) => m.type === 'stream.hello');
    expect(hello).toMatchObject({ bootId: d.bus.bootId });
    const [p1, p2] = await freePorts(2);
    const a = await d.client.addPeer(p1!);
    const b = await d.client.addPeer(p2!);
    await ev.waitFor('connection.opened on a', (m) => m.type === 'connection.opened' && m.data.port === p1 && m.data.connection.id === b.id);
    await ev.waitFor('connection.opened on b', (m) => m.type === 'connection.opened' && m.data.port === p2 && m.data.connection.id === a.id);
    await d.client.delete(`/api/peers/${p2}`);
    const closed = await ev.waitFor('connection.closed on a', (m) => m.type === 'connection.closed' && m.data.port === p1);
    expect(closed.data.reason).toEqual({ code: 'peer_removed', message: `peer ${p2} was removed` });
    const removed = await ev.waitFor('peer.removed', (m) => m.type === 'peer.removed');
    expect(removed.data).toEqual({ port: p2, id: b.id });
    const added = ev.events.filter((e) => e.type === 'peer.added').map((e) => e.data.peer.port);
    expect(added).toEqual([p1, p2]);
    const seqs = ev.events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const e of ev.events) expect(typeof e.time).toBe('string');
    ev.close();
    await d.client.delete(`/api/peers/${p1}`);
  });

  it('replays what a client missed with since, without gaps or duplicates', async () => {
    const first = d.client.events();
    await first.opened;
    const [p1] = await freePorts(1);
    await d.client.addPeer(p1!);
    const seen = await first.waitFor('peer.added', (m) => m.type === 'peer.added' && m.data.peer.port === p1);
    first.close();
    // While disconnected: more happens.
    await d.client.delete(`/api/peers/${p1}`);
    const [p2] = await freePorts(1);
    await d.client.addPeer(p2!);
    const again = d.client.events(`?since=${seen.seq}`);
    await again.opened;
    await again.waitFor('the new peer', (m) => m.type === 'peer.added' && m.data.peer.port === p2);
    const seqs = again.events.map((e) => e.seq);
    expect(seqs[0]).toBe(seen.seq + 1);
    expect(seqs).toEqual(seqs.map((_, i) => seen.seq + 1 + i));
    expect(again.events.find((e) => e.type === 'peer.removed')?.data.port).toBe(p1);
    // Live events continue on the same socket after the replay.
    await d.client.delete(`/api/peers/${p2}`);
    await again.waitFor('live removal', (m) => m.type === 'peer.removed' && m.data.port === p2);
    again.close();
  });

  it('tells a client whose since is ahead of the daemon to reload (daemon restarted)', async () => {
    const ev = d.client.events(`?since=${d.bus.lastSeq + 1000}`);
    await ev.opened;
    const reset = await ev.waitFor('stream.reset', (m) => m.type === 'stream.reset');
    expect(reset.lastSeq).toBe(d.bus.lastSeq);
    ev.close();
  });

  it('tells a client when the events it asks for are too old to replay', async () => {
    const small = await startInProcess();
    try {
      // Fill the default 10,000-event ring cheaply through the bus itself.
      for (let i = 0; i < 10_050; i++) small.bus.emit('peer.removed', { port: 1, id: 'x' });
      const ev = small.client.events('?since=10');
      await ev.opened;
      const gap = await ev.waitFor('stream.gap', (m) => m.type === 'stream.gap');
      expect(gap).toMatchObject({ from: 11, to: 50 });
      await ev.waitFor('the rest of the ring', () => ev.events.length === 10_000);
      expect(ev.events[0].seq).toBe(51);
      ev.close();
    } finally {
      await small.close();
    }
  });

  it('refuses a bad since', async () => {
    expect(await upgradeStatus(`?since=abc&token=${d.token}`)).toBe(400);
  });
});

describe('access control', () => {
  const host = () => new URL(d.base).host;

  it('needs the token on every API route (401), header only for REST', async () => {
    expect((await raw('/api/peers', { host: host() })).status).toBe(401);
    const wrong = await raw('/api/peers', { host: host(), authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('unauthorized');
    // A token in the query string does not count for REST: it would let a link or form forge calls.
    expect((await raw(`/api/peers?token=${d.token}`, { host: host() })).status).toBe(401);
    expect((await raw('/api/peers', { host: host(), authorization: `Bearer ${d.token}` })).status).toBe(200);
  });

  it('cannot be walked around with %-escapes or an absolute URL in the request line', async () => {
    for (const path of ['/%61pi/peers', '/ap%69/daemon', '/api/%70eers', `http://${host()}/api/peers`]) {
      const res = await raw(path, { host: host() });
      expect(res.status, path).not.toBe(200);
      if (res.status !== 404) expect(res.body.error.code, path).toBe('unauthorized');
    }
    const [port] = await freePorts(1);
    const post = await raw('/%61pi/peers', { host: host(), 'content-type': 'application/json' }, 'POST');
    expect(post.status).not.toBe(201);
    expect((await d.client.get('/api/peers')).body.peers.some((p: any) => p.port === port)).toBe(false);
  });

  it('survives a refused upgrade whose client resets the connection', async () => {
    const net = await import('node:net');
    const url = new URL(d.base);
    for (const path of ['/api/events', '/elsewhere']) {
      await new Promise<void>((resolve) => {
        const s = net.connect(Number(url.port), url.hostname, () => {
          s.write(`GET ${path} HTTP/1.1\r\nHost: ${host()}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        });
        s.once('data', () => {
          s.resetAndDestroy();
          resolve();
        });
        s.on('error', () => resolve());
      });
    }
    await new Promise((r) => setTimeout(r, 100));
    // Still alive and answering.
    expect((await d.client.get('/api/peers')).status).toBe(200);
  });

  it('refuses foreign Host headers with 403 (DNS rebinding), on the page too', async () => {
    for (const h of ['evil.example:80', 'attacker.localhost.evil.com', '192.168.1.10']) {
      const res = await raw('/api/peers', { host: h, authorization: `Bearer ${d.token}` });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden_host');
    }
    expect((await raw('/', { host: 'evil.example' })).status).toBe(403);
    for (const h of ['localhost', `localhost:${new URL(d.base).port}`, 'meshdrop.localhost', '127.0.0.1']) {
      expect((await raw('/api/peers', { host: h, authorization: `Bearer ${d.token}` })).status).toBe(200);
    }
  });

  it('refuses cross-site requests by Origin even with a token', async () => {
    const res = await raw('/api/peers', { host: host(), origin: 'http://evil.example', authorization: `Bearer ${d.token}` }, 'POST');
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden_origin');
    expect((await raw('/api/peers', { host: host(), origin: `http://${host()}`, authorization: `Bearer ${d.token}` })).status).toBe(200);
  });

  it('guards the WebSocket: token needed, foreign Origin refused', async () => {
    expect(await upgradeStatus('')).toBe(401);
    expect(await upgradeStatus('?token=wrong')).toBe(401);
    expect(await upgradeStatus(`?token=${d.token}`, { origin: 'http://evil.example' })).toBe(403);
    expect(await upgradeStatus(`?token=${d.token}`, { origin: `http://${host()}` })).toBe(101);
    expect(await upgradeStatus('', { authorization: `Bearer ${d.token}` })).toBe(101);
  });

  it('sends security headers', async () => {
    const res = await raw('/api/peers', { host: host(), authorization: `Bearer ${d.token}` });
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
  });

  it('throttles an address that keeps guessing', async () => {
    const other = await startInProcess();
    try {
      const h = new URL(other.base).host;
      const statuses = [];
      for (let i = 0; i < 22; i++) {
        const r = await fetch(other.base + '/api/peers', { headers: { authorization: 'Bearer guess' + i } });
        statuses.push(r.status);
      }
      expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
      expect(statuses.slice(20)).toEqual([429, 429]);
      const good = await fetch(other.base + '/api/peers', { headers: { authorization: `Bearer ${other.token}`, host: h } });
      expect(good.status).toBe(429);
    } finally {
      await other.close();
    }
  });
});
