// An upload streamed to a peer that reports what it has saved (saved/1) is written to
// the sender's disk only where the receiver lacks it: here the receiving daemon is
// SIGKILLed part-way through the upload, the upload goes on and is answered, then the
// sending daemon is SIGKILLed too. Both start again on their data directories, and the
// file must arrive identical, resumed from what the receiver had saved, although the
// sender's outbox copy never held that part. Real processes, sockets and files.

import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { spawnDaemon, tempDir, type DaemonProcess } from '../helpers/daemon.js';
import { BOUNDARY, openUpload, write } from '../helpers/multipart.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const MIB = 1024 * 1024;
const SIZE = 48 * MIB + 4321;
// The receiver dies once it has all of this. It is no more than the 16 MiB the sending
// daemon keeps in memory, so no block leaves memory (to be written, or not) before the
// kill: what is skipped then depends only on what the receiver had reported saved, not
// on how long its fdatasync took on a loaded machine (a CI run once saw 4 MiB skipped).
const BEFORE_KILL = 16 * MIB;
// The receiver reports after each ledger save; a SIGKILL can fall between one save and
// its report reaching us, so the outbox may hold up to one more save's worth.
const REPORT_SLACK = 4 * MIB;
const PIECE = 256 * 1024;

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

async function kill(d: DaemonProcess): Promise<void> {
  await d.kill();
  running.splice(running.indexOf(d), 1);
}

function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d.path;
}



it('resumes an upload from what the receiver saved after both daemons were killed, though the sender never wrote that part', async () => {
  const [dirA, dirB] = [dir(), dir()];
  const [pa, pb] = await freePorts(2);
  const a = await daemon(dirA);
  let b = await daemon(dirB);
  const peerA = await a.client.addPeer(pa!);
  const peerB = await b.client.addPeer(pb!);
  expect((await b.client.request('PUT', `/api/peers/${pb}/trusted/${peerA.id}`)).status).toBe(204);
  expect((await a.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port: pb })).status).toBe(201);
  await waitFor('the peers to connect', async () => (await a.client.get(`/api/peers/${pa}/connections`)).body.connections.some((c: any) => c.id === peerB.id && c.state === 'open'));

  const hash = createHash('sha256');
  const { req, response } = openUpload(a, pa!);
  await write(req, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="to"\r\n\r\n${peerB.id}\r\n`);
  await write(req, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="size"\r\n\r\n${SIZE}\r\n`);
  await write(req, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="live.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  let sent = 0;
  const sendUpTo = async (end: number) => {
    while (sent < end) {
      const piece = randomBytes(Math.min(PIECE, end - sent));
      hash.update(piece);
      await write(req, piece);
      sent += piece.length;
    }
  };
  await sendUpTo(BEFORE_KILL);
  await waitFor('the receiver to have 16 MiB', async () => {
    const t = (await b.client.get(`/api/transfers?peer=${pb}`)).body.transfers[0];
    return t && t.bytesDone >= BEFORE_KILL;
  }, { intervalMs: 5 });
  // Its last ledger save (every 4 MiB, beside the writes) may still be in flight.
  await new Promise((r) => setTimeout(r, 500));
  await kill(b);

  // The upload goes on without the receiver, and is answered once the daemon alone holds
  // everything the receiver had not saved.
  await sendUpTo(SIZE);
  req.end(`\r\n--${BOUNDARY}--\r\n`);
  const res = await response;
  expect(res.status).toBe(202);
  const id: string = res.body.transfers[0].id;
  const sum = hash.digest('hex');

  const outbox = join(dirA, 'peers', String(pa), 'outbox');
  const [copy] = readdirSync(outbox);
  const allocated = statSync(join(outbox, copy!)).blocks * 512;

  await kill(a);
  // What the receiver holds durably, as its restarted daemon reads it from its ledger
  // (before the sender is back to resume it).
  b = await daemon(dirB);
  const durable: number = (await b.client.get(`/api/transfers?peer=${pb}`)).body.transfers[0].bytesDone;
  expect(durable).toBeGreaterThanOrEqual(4 * MIB);
  // The outbox copy lacks what the receiver had reported saved: those blocks were never written.
  expect(allocated).toBeLessThanOrEqual(SIZE - durable + REPORT_SLACK);
  const a2 = await daemon(dirA);
  const done = await waitFor('the transfer to end', async () => {
    const t = (await a2.client.get(`/api/transfers/${id}`)).body;
    return ['completed', 'failed', 'canceled', 'rejected'].includes(t.state) ? t : null;
  }, { timeoutMs: 60_000, intervalMs: 100 });
  expect(done).toMatchObject({ state: 'completed', sha256: sum });
  const file = (await b.client.get(`/api/peers/${pb}/files`)).body.files[0];
  expect(file).toMatchObject({ name: 'live.bin', size: SIZE, sha256: sum });
  // Sent: the outbox copy is gone.
  await waitFor('the outbox to be emptied', async () => readdirSync(outbox).length === 0);
}, 120_000);

it('fails the transfers of an upload the sending daemon did not live to receive whole, and removes its copy', async () => {
  const [dirA, dirB] = [dir(), dir()];
  const [pa, pb] = await freePorts(2);
  const a = await daemon(dirA);
  const b = await daemon(dirB);
  const peerA = await a.client.addPeer(pa!);
  const peerB = await b.client.addPeer(pb!);
  expect((await b.client.request('PUT', `/api/peers/${pb}/trusted/${peerA.id}`)).status).toBe(204);
  expect((await a.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port: pb })).status).toBe(201);
  await waitFor('the peers to connect', async () => (await a.client.get(`/api/peers/${pa}/connections`)).body.connections.some((c: any) => c.id === peerB.id && c.state === 'open'));
  const { req, response } = openUpload(a, pa!);
  response.catch(() => {}); // the daemon dies under it
  req.on('error', () => {});
  await write(req, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="to"\r\n\r\n${peerB.id}\r\n`);
  await write(req, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="size"\r\n\r\n${SIZE}\r\n`);
  await write(req, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  for (let sent = 0; sent < 24 * MIB; sent += PIECE) await write(req, randomBytes(PIECE));
  const t = await waitFor('the transfer to be under way', async () => (await a.client.get(`/api/transfers?peer=${pa}`)).body.transfers.find((x: any) => x.bytesDone > 0));
  await kill(a);
  req.destroy();
  const a2 = await daemon(dirA);
  const ended = await waitFor('the transfer to end', async () => {
    const x = (await a2.client.get(`/api/transfers/${t.id}`)).body;
    return x.state === 'failed' ? x : null;
  });
  expect(ended.error).toMatchObject({ code: 'interrupted', message: expect.stringMatching(/still being uploaded/) });
  const outbox = join(dirA, 'peers', String(pa), 'outbox');
  await waitFor('the outbox to be emptied', async () => readdirSync(outbox).length === 0);
}, 60_000);

it('keeps an uploaded file for every target after a restart, though one target finishes before another starts', async () => {
  const [dirA, dirB, dirC] = [dir(), dir(), dir()];
  const [pa, pb, pc] = await freePorts(3);
  let a = await daemon(dirA);
  const b = await daemon(dirB);
  const c = await daemon(dirC);
  await a.client.addPeer(pa!);
  const peerB = await b.client.addPeer(pb!);
  const peerC = await c.client.addPeer(pc!);
  const connect = async (d: DaemonProcess, port: number) => {
    expect((await d.client.post(`/api/peers/${pa}/connections`, { host: '127.0.0.1', port })).status).toBe(201);
  };
  const connected = (d: DaemonProcess, id: string) =>
    waitFor(`a connection to ${id.slice(0, 8)}`, async () => (await d.client.get(`/api/peers/${pa}/connections`)).body.connections.some((x: any) => x.id === id && x.state === 'open'));
  await connect(a, pb!);
  await connect(a, pc!);
  await connected(a, peerB.id);
  await connected(a, peerC.id);

  // Neither target trusts the sender, so both offers wait for their users: the upload is
  // stored in the outbox, answered, and both transfers are still unfinished when the
  // sending daemon dies.
  const body = randomBytes(3 * MIB + 17);
  const sum = createHash('sha256').update(body).digest('hex');
  const { req, response } = openUpload(a, pa!);
  req.end(Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="to"\r\n\r\n${peerB.id}\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="to"\r\n\r\n${peerC.id}\r\n`),
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="both.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    body,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]));
  const res = await response;
  expect(res.status).toBe(202);
  const [toB, toC]: string[] = res.body.transfers.map((t: any) => t.id);
  expect(res.body.transfers).toHaveLength(2);
  const offered = (d: DaemonProcess, port: number) =>
    waitFor('the offer to arrive', async () => (await d.client.get(`/api/transfers?peer=${port}`)).body.transfers.find((t: any) => t.state === 'offered'));
  await offered(b, pb!);
  await offered(c, pc!);
  await kill(a);
  a = await daemon(dirA);
  const ended = (id: string) =>
    waitFor('the transfer to end', async () => {
      const t = (await a.client.get(`/api/transfers/${id}`)).body;
      return ['completed', 'failed', 'canceled', 'rejected'].includes(t.state) ? t : null;
    }, { timeoutMs: 30_000, intervalMs: 50 });

  // B takes it first and finishes; only then does C's user accept.
  const atB = await offered(b, pb!);
  expect((await b.client.post(`/api/transfers/${atB.id}/accept`, {})).status).toBeLessThan(300);
  expect(await ended(toB!)).toMatchObject({ state: 'completed', sha256: sum });
  const outbox = join(dirA, 'peers', String(pa), 'outbox');
  expect(readdirSync(outbox)).toHaveLength(1);
  const atC = await offered(c, pc!);
  expect((await c.client.post(`/api/transfers/${atC.id}/accept`, {})).status).toBeLessThan(300);
  expect(await ended(toC!)).toMatchObject({ state: 'completed', sha256: sum });
  expect((await c.client.get(`/api/peers/${pc}/files`)).body.files[0]).toMatchObject({ name: 'both.bin', sha256: sum });
  await waitFor('the outbox to be emptied', async () => readdirSync(outbox).length === 0);
}, 90_000);
