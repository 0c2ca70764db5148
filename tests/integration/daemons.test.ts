// Real daemon processes: start, stop, SIGKILL, restart on the same data
// directory, and two daemons connecting to each other over loopback.

import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, spawnDaemon, tempDir, type DaemonProcess } from '../helpers/daemon.js';
import { freePorts, occupy } from '../helpers/ports.js';

const running: DaemonProcess[] = [];
const dirs: ReturnType<typeof tempDir>[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.kill()));
  for (const d of dirs.splice(0)) d.remove();
});

async function daemon(dir: string, extra: string[] = []): Promise<DaemonProcess> {
  const d = await spawnDaemon(dir, extra);
  running.push(d);
  return d;
}

function dataDir(): string {
  const d = tempDir();
  dirs.push(d);
  return d.path;
}

describe('daemon process', () => {
  it('shows its flags with --help', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts', '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(res.status).toBe(0);
    for (const flag of ['--port', '--host', '--data-dir', '--peer-host', '--heartbeat-timeout-ms']) expect(res.stdout).toContain(flag);
  });

  it('refuses unknown flags and bad values with a clear message', () => {
    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts', '--prot', '1'], { cwd: ROOT, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--prot/);
    const port = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', 'x'], { cwd: ROOT, encoding: 'utf8' });
    expect(port.status).toBe(2);
    expect(port.stderr).toMatch(/--port must be an integer/);
    const beat = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts', '--heartbeat-interval-ms', '500', '--heartbeat-timeout-ms', '500'], { cwd: ROOT, encoding: 'utf8' });
    expect(beat.status).toBe(2);
    expect(beat.stderr).toMatch(/must be larger than --heartbeat-interval-ms/);
  });

  it('prints the URL with the token from the data directory, and exits 0 on SIGTERM', async () => {
    const dir = dataDir();
    const d = await daemon(dir);
    const token = readFileSync(join(dir, 'api-token'), 'utf8').trim();
    expect(d.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    expect(d.token).toBe(token);
    expect(statSync(join(dir, 'api-token')).mode & 0o777).toBe(0o600);
    expect((await d.client.get('/api/peers')).status).toBe(200);
    const page = await fetch(d.base + '/');
    expect(page.status).toBe(200);
    // An open event stream (a dashboard) must not hold the shutdown up.
    const events = d.client.events();
    await events.opened;
    const closeCode = new Promise<number>((r) => events.ws.once('close', (code) => r(code)));
    expect(await d.stop()).toBe(0);
    expect(await closeCode).toBe(1001);
  });

  it('exits with a reason instead of hanging when its API port is busy', async () => {
    const [port] = await freePorts(1);
    const srv = await occupy(port!, '127.0.0.1');
    try {
      const res = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', String(port), '--data-dir', dataDir()], {
        cwd: ROOT, encoding: 'utf8', timeout: 20_000,
      });
      expect(res.status).toBe(2);
      expect(res.stderr).toMatch(/already in use/);
    } finally {
      srv.close();
    }
  });

  it('restarted on the same data directory, brings back the same peers, ids and mesh', async () => {
    const dir = dataDir();
    const ports = await freePorts(3);
    const first = await daemon(dir);
    const ids: string[] = [];
    for (const p of ports) ids.push((await first.client.addPeer(p)).id);
    await first.client.waitForConnections(ports[0]!, [ports[1]!, ports[2]!]);
    expect(await first.stop()).toBe(0);

    const second = await daemon(dir);
    expect(second.token).toBe(first.token);
    const peers = (await second.client.get('/api/peers')).body.peers;
    expect(peers.map((p: any) => [p.port, p.id, p.state])).toEqual(ports.map((p, i) => [p, ids[i], 'listening']).sort((a: any, b: any) => a[0] - b[0]));
    for (const p of ports) await second.client.waitForConnections(p, ports.filter((q) => q !== p));
    // A removed peer stays removed after a restart.
    await second.client.delete(`/api/peers/${ports[2]}`);
    expect(await second.stop()).toBe(0);
    const third = await daemon(dir);
    expect((await third.client.get('/api/peers')).body.peers.map((p: any) => p.port)).toEqual(ports.slice(0, 2).sort((a, b) => a - b));
  });

  it('restores a peer whose port was taken meanwhile in state "error", with the reason', async () => {
    const dir = dataDir();
    const [port] = await freePorts(1);
    const first = await daemon(dir);
    await first.client.addPeer(port!);
    await first.stop();
    const srv = await occupy(port!);
    try {
      const second = await daemon(dir);
      const peer = (await second.client.get(`/api/peers/${port}`)).body;
      expect(peer.state).toBe('error');
      expect(peer.error.code).toBe('port_in_use');
    } finally {
      srv.close();
    }
  });
});

describe('two daemons', () => {
  it('connect by host:port, see each other on both sides, and reconnect after the remote daemon is killed and restarted', async () => {
    const [pa, pb] = await freePorts(2);
    const dirB = dataDir();
    const a = await daemon(dataDir());
    let b = await daemon(dirB);
    const peerA = await a.client.addPeer(pa!);
    const peerB = await b.client.addPeer(pb!);

    const res = await a.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port: pb });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: peerB.id, port: pb, direction: 'out', local: false });
    const onB = await b.client.waitForConnections(pb!, [pa!]);
    expect(onB[0]).toMatchObject({ id: peerA.id, direction: 'in', host: '127.0.0.1', local: false });

    const events = a.client.events();
    await events.opened;
    await b.kill();
    const closed = await events.waitFor('the link to drop', (m) => m.type === 'connection.closed' && m.data.port === pa);
    expect(['connection_lost', 'heartbeat_timeout']).toContain(closed.data.reason.code);
    await a.client.waitForConnections(pa!, []);

    running.splice(running.indexOf(b), 1);
    b = await daemon(dirB);
    // Daemon A redials on its own, with backoff, and checks it is the same peer.
    await events.waitFor('the link to come back', (m) => m.type === 'connection.opened' && m.data.port === pa && m.data.connection.id === peerB.id);
    await b.client.waitForConnections(pb!, [pa!]);
    events.close();
  });

  it('tells the remote why on a clean shutdown, and redials when the daemon returns', async () => {
    const [pa, pb] = await freePorts(2);
    const dirB = dataDir();
    const a = await daemon(dataDir());
    let b = await daemon(dirB);
    await a.client.addPeer(pa!);
    await b.client.addPeer(pb!);
    expect((await a.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port: pb })).status).toBe(201);
    const events = a.client.events();
    await events.opened;
    expect(await b.stop()).toBe(0);
    const closed = await events.waitFor('the close', (m) => m.type === 'connection.closed');
    expect(closed.data.reason.code).toBe('shutdown');
    running.splice(running.indexOf(b), 1);
    b = await daemon(dirB);
    await a.client.waitForConnections(pa!, [pb!]);
    events.close();
  });

  it('forgets a remote peer that was removed instead of dialling it forever', async () => {
    const [pa, pb] = await freePorts(2);
    const a = await daemon(dataDir());
    const b = await daemon(dataDir());
    await a.client.addPeer(pa!);
    await b.client.addPeer(pb!);
    await a.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port: pb });
    const events = a.client.events();
    await events.opened;
    await b.client.delete(`/api/peers/${pb}`);
    const closed = await events.waitFor('the close', (m) => m.type === 'connection.closed');
    expect(closed.data.reason.code).toBe('peer_removed');
    // Re-adding the port creates a new identity: A must not silently connect to it.
    await b.client.addPeer(pb!);
    await new Promise((r) => setTimeout(r, 500));
    expect(await a.client.connections(pa!)).toEqual([]);
    events.close();
  });
});
