// Resume across process deaths: a receiving or sending daemon SIGKILLed at about 40%
// of a transfer and started again on the same data directory; the file must arrive
// identical, without starting over.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnDaemon, tempDir, type DaemonProcess } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const SIZE = 160 * 1024 * 1024 + 4321;
const running: DaemonProcess[] = [];
const dirs: ReturnType<typeof tempDir>[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.kill()));
  for (const d of dirs.splice(0)) d.remove();
});

async function daemon(dir: string): Promise<DaemonProcess> {
  const d = await spawnDaemon(dir, [], { compiled: true });
  running.push(d);
  return d;
}

function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d.path;
}

/** A file of random bytes, written in pieces so the test process stays small. */
function randomFile(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  for (let done = 0; done < SIZE; ) {
    const piece = randomBytes(Math.min(8 * 1024 * 1024, SIZE - done));
    hash.update(piece);
    writeSync(fd, piece);
    done += piece.length;
  }
  closeSync(fd);
  return hash.digest('hex');
}

const sha256File = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (x) => h.update(x)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });

async function setup() {
  const [dirA, dirB] = [dir(), dir()];
  const [pa, pb] = await freePorts(2);
  const a = await daemon(dirA);
  const b = await daemon(dirB);
  const peerA = await a.client.addPeer(pa!);
  const peerB = await b.client.addPeer(pb!);
  // Another daemon's offers wait for the user unless the sender is trusted.
  expect((await b.client.request('PUT', `/api/peers/${pb}/trusted/${peerA.id}`)).status).toBe(204);
  expect((await a.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port: pb })).status).toBe(201);
  const src = join(dirA, 'payload.bin');
  const sum = randomFile(src);
  const res = await a.client.post(`/api/peers/${pa}/transfers`, { to: [peerB.id], paths: [src] });
  expect(res.status).toBe(202);
  return { a, b, dirA, dirB, pa: pa!, pb: pb!, id: res.body.transfers[0].id as string, sum };
}

async function progressOf(d: DaemonProcess, id: string): Promise<number> {
  const t = (await d.client.get(`/api/transfers/${id}`)).body;
  return t.bytesDone / t.size;
}

describe('resume across restarts', () => {
  it('finishes identical after the receiving daemon is SIGKILLed at about 40% and restarted', async () => {
    const s = await setup();
    await waitFor('40%', async () => (await progressOf(s.a, s.id)) >= 0.4, { intervalMs: 5 });
    await s.b.kill();
    running.splice(running.indexOf(s.b), 1);
    const paused = await waitFor('the sender to pause', async () => {
      const t = (await s.a.client.get(`/api/transfers/${s.id}`)).body;
      return t.state === 'paused' ? t : null;
    });
    expect(paused.error.code).toBe('connection_lost');
    const b2 = await daemon(s.dirB);
    // The restarted receiver has its transfer back from the ledger, paused, with the kept bytes.
    const restored = (await b2.client.get(`/api/transfers?peer=${s.pb}`)).body.transfers[0];
    expect(restored).toMatchObject({ direction: 'in', state: expect.stringMatching(/paused|transferring|completed/) });
    expect(restored.bytesDone).toBeGreaterThan(0);
    const done = await waitFor('the transfer to complete', async () => {
      const t = (await s.a.client.get(`/api/transfers/${s.id}`)).body;
      return ['completed', 'failed', 'canceled', 'rejected'].includes(t.state) ? t : null;
    }, { timeoutMs: 120_000, intervalMs: 100 });
    expect(done.state).toBe('completed');
    const file = (await b2.client.get(`/api/peers/${s.pb}/files`)).body.files[0];
    expect(file).toMatchObject({ name: 'payload.bin', size: SIZE, sha256: s.sum });
    expect(await sha256File(join(s.dirB, 'peers', String(s.pb), 'inbox', 'payload.bin'))).toBe(s.sum);
  }, 180_000);

  it('finishes identical after the sending daemon is SIGKILLed at about 40% and restarted', async () => {
    const s = await setup();
    await waitFor('40%', async () => (await progressOf(s.a, s.id)) >= 0.4, { intervalMs: 5 });
    await s.a.kill();
    running.splice(running.indexOf(s.a), 1);
    const a2 = await daemon(s.dirA);
    const restored = (await a2.client.get(`/api/transfers/${s.id}`)).body;
    expect(restored).toMatchObject({ direction: 'out', name: 'payload.bin' });
    const done = await waitFor('the transfer to complete', async () => {
      const t = (await a2.client.get(`/api/transfers/${s.id}`)).body;
      return ['completed', 'failed', 'canceled', 'rejected'].includes(t.state) ? t : null;
    }, { timeoutMs: 120_000, intervalMs: 100 });
    expect(done.state).toBe('completed');
    expect(done.sha256).toBe(s.sum);
    expect(await sha256File(join(s.dirB, 'peers', String(s.pb), 'inbox', 'payload.bin'))).toBe(s.sum);
  }, 180_000);
});
