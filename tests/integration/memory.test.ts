// Flat memory: a 1 GiB file moves between two daemon processes while the peak
// resident memory (VmHWM) of each stays under 200 MB.

import { closeSync, ftruncateSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnDaemon, tempDir, type DaemonProcess } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const GIB = 1024 ** 3;
const LIMIT_MB = 200;
const daemons: DaemonProcess[] = [];
const dirs: ReturnType<typeof tempDir>[] = [];

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.kill()));
  for (const d of dirs) d.remove();
});

/** Peak resident set of a process so far, in MB (Linux). */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe.skipIf(process.platform !== 'linux')('memory', () => {
  it('moves 1 GiB between two daemon processes with each under 200 MB peak RSS', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    dirs.push(dirA, dirB);
    // The built daemon, as `npm start` runs it (npm test builds it before the tests).
    const [a, b] = [await spawnDaemon(dirA.path, [], { compiled: true }), await spawnDaemon(dirB.path, [], { compiled: true })];
    daemons.push(a, b);
    const [pa, pb] = await freePorts(2);
    const peerA = await a.client.addPeer(pa!);
    const peerB = await b.client.addPeer(pb!);
    // Another daemon's offers wait for the user unless the sender is trusted.
    expect((await b.client.request('PUT', `/api/peers/${pb}/trusted/${peerA.id}`)).status).toBe(204);
    expect((await a.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port: pb })).status).toBe(201);
    // A sparse 1 GiB file: every byte is still read, hashed, encrypted, sent and written.
    const path = join(dirA.path, 'one-gib.bin');
    const fd = openSync(path, 'w');
    ftruncateSync(fd, GIB);
    closeSync(fd);
    const res = await a.client.post(`/api/peers/${pa}/transfers`, { to: [peerB.id], paths: [path] });
    expect(res.status).toBe(202);
    const id = res.body.transfers[0].id;
    const done = await waitFor('the 1 GiB transfer', async () => {
      const t = (await a.client.get(`/api/transfers/${id}`)).body;
      return ['completed', 'failed', 'canceled', 'rejected'].includes(t.state) ? t : null;
    }, { timeoutMs: 240_000, intervalMs: 200 });
    expect(done.state).toBe('completed');
    const file = (await b.client.get(`/api/peers/${pb}/files`)).body.files[0];
    // SHA-256 of 1 GiB of zero bytes.
    expect(file).toMatchObject({ name: 'one-gib.bin', size: GIB, sha256: '49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14' });
    const [rssA, rssB] = [peakRssMb(a.proc.pid!), peakRssMb(b.proc.pid!)];
    console.log(`peak RSS: sender ${rssA.toFixed(0)} MB, receiver ${rssB.toFixed(0)} MB`);
    expect(rssA).toBeLessThan(LIMIT_MB);
    expect(rssB).toBeLessThan(LIMIT_MB);
  }, 300_000);
});
