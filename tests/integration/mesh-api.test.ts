// The REST API over a real daemon (in this process, real HTTP and TLS sockets on 127.0.0.1).

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcess, type InProcessDaemon } from '../helpers/daemon.js';
import { freePorts, occupy } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

let d: InProcessDaemon;

beforeAll(async () => {
  d = await startInProcess();
});
afterAll(async () => {
  await d.close();
});

describe('peers', () => {
  it('three peers form a full mesh with one connection per pair', async () => {
    const ports = await freePorts(3);
    const added = [];
    for (const p of ports) added.push(await d.client.addPeer(p));
    for (const p of ports) {
      const conns = await d.client.waitForConnections(p, ports.filter((q) => q !== p));
      for (const c of conns) {
        expect(c).toMatchObject({ host: '127.0.0.1', state: 'open', local: true });
        expect(added.find((a) => a.port === c.port)?.id).toBe(c.id);
        expect(['in', 'out']).toContain(c.direction);
        expect(typeof c.bytesIn).toBe('number');
        expect(new Date(c.connectedAt).getTime()).toBeGreaterThan(0);
      }
    }
    // Each pair is one connection: A's view of B is the mirror of B's view of A.
    const [a, b] = ports;
    const ab = (await d.client.connections(a!)).find((c) => c.port === b)!;
    const ba = (await d.client.connections(b!)).find((c) => c.port === a)!;
    expect(ab.direction === 'out').toBe(ba.direction === 'in');
    // The peer list counts them.
    const list = (await d.client.get('/api/peers')).body.peers;
    for (const p of ports) expect(list.find((x: any) => x.port === p).connections).toBe(2);
    for (const p of ports) expect((await d.client.delete(`/api/peers/${p}`)).status).toBe(204);
  });

  it('meshes a dozen peers without piling listeners on any of them', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const ports = await freePorts(12);
      for (const p of ports) await d.client.addPeer(p);
      for (const p of ports) await d.client.waitForConnections(p, ports.filter((q) => q !== p));
      expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
      for (const p of ports) await d.client.delete(`/api/peers/${p}`);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('meshes local peers bound to a specific address, not only 0.0.0.0', async () => {
    const other = await startInProcess({ peerHost: '127.0.0.2' });
    try {
      const ports = await freePorts(2);
      for (const p of ports) await other.client.addPeer(p);
      const a = await other.client.waitForConnections(ports[0]!, [ports[1]!]);
      const b = await other.client.waitForConnections(ports[1]!, [ports[0]!]);
      // The dialling side shows the address it dialled (the other shows the source address).
      const out = [...a, ...b].find((c) => c.direction === 'out');
      expect(out.host).toBe('127.0.0.2');
    } finally {
      await other.close();
    }
  });

  it('answers 201 with the peer, whose id is its certificate fingerprint', async () => {
    const [port] = await freePorts(1);
    const res = await d.client.post('/api/peers', { port });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ port, state: 'listening', error: null, connections: 0 });
    expect(res.body.id).toMatch(/^[0-9a-f]{64}$/);
    expect(res.body.shortId).toBe(`${res.body.id.slice(0, 4)}-${res.body.id.slice(4, 8)}`.toUpperCase());
    expect((await d.client.get(`/api/peers/${port}`)).body).toEqual(res.body);
    // The fingerprint is what the peer presents in TLS.
    const tls = await import('node:tls');
    const fp = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: port!, rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().fingerprint256.replace(/:/g, '').toLowerCase());
        s.destroy();
      });
      s.on('error', reject);
    });
    expect(fp).toBe(res.body.id);
    await d.client.delete(`/api/peers/${port}`);
  });

  it('a removed peer disappears from the others\' connection lists', async () => {
    const ports = await freePorts(3);
    for (const p of ports) await d.client.addPeer(p);
    await d.client.waitForConnections(ports[0]!, [ports[1]!, ports[2]!]);
    expect((await d.client.delete(`/api/peers/${ports[2]}`)).status).toBe(204);
    await d.client.waitForConnections(ports[0]!, [ports[1]!]);
    await d.client.waitForConnections(ports[1]!, [ports[0]!]);
    expect((await d.client.get(`/api/peers/${ports[2]}`)).status).toBe(404);
    // Its port is free again: nothing is left listening.
    const srv = await occupy(ports[2]!);
    srv.close();
    for (const p of ports.slice(0, 2)) await d.client.delete(`/api/peers/${p}`);
  });

  it('gives 409 for a port used by another program, and nothing half-starts', async () => {
    const [port] = await freePorts(1);
    const srv = await occupy(port!, '127.0.0.1');
    try {
      const res = await d.client.post('/api/peers', { port });
      expect(res.status).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'port_in_use' });
      expect(res.body.error.message).toContain(String(port));
      expect((await d.client.get(`/api/peers/${port}`)).status).toBe(404);
      expect((await d.client.get('/api/peers')).body.peers.some((p: any) => p.port === port)).toBe(false);
    } finally {
      srv.close();
    }
    // Once the program lets go, the same port works.
    expect((await d.client.post('/api/peers', { port })).status).toBe(201);
    await d.client.delete(`/api/peers/${port}`);
  });

  it('gives 409 for a port used by another peer or by the API itself', async () => {
    const [port] = await freePorts(1);
    await d.client.addPeer(port!);
    const again = await d.client.post('/api/peers', { port });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('port_in_use');
    const apiPort = Number(new URL(d.base).port);
    const api = await d.client.post('/api/peers', { port: apiPort });
    expect(api.status).toBe(409);
    expect(api.body.error.message).toMatch(/API/);
    await d.client.delete(`/api/peers/${port}`);
  });

  it('answers concurrent adds of one port with exactly one 201', async () => {
    const [port] = await freePorts(1);
    const results = await Promise.all([1, 2, 3].map(() => d.client.post('/api/peers', { port })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    await d.client.delete(`/api/peers/${port}`);
  });

  it.each([
    [{ port: 0 }, 'invalid_port'],
    [{ port: 65536 }, 'invalid_port'],
    [{ port: -1 }, 'invalid_port'],
    [{ port: 70.5 }, 'invalid_port'],
    [{ port: '7000' }, 'invalid_port'],
    [{ port: null }, 'invalid_port'],
    [{}, 'bad_request'],
    [{ port: 7000, extra: true }, 'bad_request'],
    ['[1,2]', 'bad_request'],
    ['{"port": 70', 'bad_request'],
  ])('gives 400 for %j', async (body, code) => {
    const res = await d.client.post('/api/peers', body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
    expect(typeof res.body.error.message).toBe('string');
  });

  it('gives 400/404 for bad or unknown ports in the URL', async () => {
    expect((await d.client.get('/api/peers/abc')).body.error.code).toBe('invalid_port');
    expect((await d.client.get('/api/peers/1')).status).toBe(404);
    expect((await d.client.get('/api/peers/1')).body.error.code).toBe('peer_not_found');
    expect((await d.client.delete('/api/peers/1')).status).toBe(404);
    expect((await d.client.get('/api/peers/1/connections')).status).toBe(404);
    expect((await d.client.get('/api/nothing')).body.error.code).toBe('not_found');
  });

  it('stores peers in a database file readable by the owner only', () => {
    expect(statSync(join(d.dataDir, 'meshdrop.db')).mode & 0o777).toBe(0o600);
    expect(statSync(join(d.dataDir, 'api-token')).mode & 0o777).toBe(0o600);
  });
});

describe('connections', () => {
  it('dials a peer by host:port, and closing it stops the redial', async () => {
    const other = await startInProcess();
    try {
      const [mine, theirs] = await freePorts(2);
      await d.client.addPeer(mine!);
      const remote = await other.client.addPeer(theirs!);
      const res = await d.client.post(`/api/peers/${mine}/connections`, { host: '127.0.0.1', port: theirs });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ id: remote.id, port: theirs, direction: 'out', state: 'open', local: false });
      const back = await other.client.waitForConnections(theirs!, [mine!]);
      expect(back[0]).toMatchObject({ direction: 'in', local: false });
      expect((await d.client.delete(`/api/peers/${mine}/connections/${remote.id}`)).status).toBe(204);
      await d.client.waitForConnections(mine!, []);
      await other.client.waitForConnections(theirs!, []);
      // Neither side dials again after a user's close.
      await new Promise((r) => setTimeout(r, 300));
      expect(await d.client.connections(mine!)).toEqual([]);
      expect((await d.client.delete(`/api/peers/${mine}/connections/${remote.id}`)).body.error.code).toBe('connection_not_found');
      await d.client.delete(`/api/peers/${mine}`);
    } finally {
      await other.close();
    }
  });

  it('answers 201 with the existing connection when the peers are already connected', async () => {
    const ports = await freePorts(2);
    const [a, b] = [await d.client.addPeer(ports[0]!), await d.client.addPeer(ports[1]!)];
    await d.client.waitForConnections(a.port, [b.port]);
    // Whichever side dialled the mesh link, dialling again from either side is not an error.
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const res = await d.client.post(`/api/peers/${from.port}/connections`, { host: '127.0.0.1', port: to.port });
      expect(res.body).toEqual(expect.objectContaining({ id: to.id }));
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ id: to.id, state: 'open' });
    }
    const conns = await d.client.waitForConnections(a.port, [b.port]);
    expect(conns).toHaveLength(1);
    for (const p of ports) await d.client.delete(`/api/peers/${p}`);
  });

  it('explains dial failures', async () => {
    const [mine, nobody] = await freePorts(2);
    await d.client.addPeer(mine!);
    const refused = await d.client.post(`/api/peers/${mine}/connections`, { host: '127.0.0.1', port: nobody });
    expect(refused.status).toBe(502);
    expect(refused.body.error).toMatchObject({ code: 'dial_failed' });
    expect(refused.body.error.message).toMatch(/refused/);
    const self = await d.client.post(`/api/peers/${mine}/connections`, { host: '127.0.0.1', port: mine });
    expect(self.status).toBe(409);
    expect(self.body.error.code).toBe('self_connection');
    const badHost = await d.client.post(`/api/peers/${mine}/connections`, { host: 'bad host!', port: 1 });
    expect(badHost.body.error.code).toBe('invalid_host');
    const badPort = await d.client.post(`/api/peers/${mine}/connections`, { host: '127.0.0.1', port: 'x' });
    expect(badPort.body.error.code).toBe('invalid_port');
    // A plain TCP server that never speaks TLS: a timeout, not a hang.
    const [silent] = await freePorts(1);
    const net = await import('node:net');
    const srv = net.createServer(() => {});
    await new Promise<void>((r) => srv.listen(silent, '127.0.0.1', () => r()));
    try {
      const res = await d.client.post(`/api/peers/${mine}/connections`, { host: '127.0.0.1', port: silent });
      expect(res.status).toBe(504);
      expect(res.body.error.code).toBe('dial_timeout');
    } finally {
      srv.close();
    }
    await d.client.delete(`/api/peers/${mine}`);
  });
});
