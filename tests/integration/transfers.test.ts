// File transfers between real peers over TLS on 127.0.0.1, driven through the REST API.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, ftruncateSync, openSync, readdirSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkSizeFor } from '../../server/protocol/transfer-messages.js';
import { startInProcess, tempDir, type InProcessDaemon } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

let d: InProcessDaemon;
let files: ReturnType<typeof tempDir>;
let a: { port: number; id: string };
let b: { port: number; id: string };
let c: { port: number; id: string };

const sha256File = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (x) => h.update(x)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });

function makeFile(name: string, size: number): { path: string; sha256: string } {
  const path = join(files.path, name);
  const data = randomBytes(size);
  writeFileSync(path, data);
  return { path, sha256: createHash('sha256').update(data).digest('hex') };
}

const finished = (id: string): Promise<any> => d.client.transferEnded(id, 60_000);

/** The receiving side's record of a transfer sent from `from` (matched by name and peer). */
async function received(port: number, savedAs: string): Promise<any> {
  return waitFor(`peer ${port} to store ${savedAs}`, async () => {
    const list = (await d.client.get(`/api/peers/${port}/files`)).body.files;
    return list.find((f: any) => f.name === savedAs);
  }, { timeoutMs: 60_000 });
}

beforeAll(async () => {
  // Heartbeats are not under test here, and this process also makes and hashes large test
  // files synchronously, which would starve a 400 ms heartbeat of the in-process daemon.
  d = await startInProcess({ timings: { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 30_000 } });
  files = tempDir('meshdrop-files-');
  const ports = await freePorts(3);
  [a, b, c] = [await d.client.addPeer(ports[0]!), await d.client.addPeer(ports[1]!), await d.client.addPeer(ports[2]!)];
  await d.client.waitForConnections(a.port, [b.port, c.port]);
});

afterAll(async () => {
  await d.close();
  files.remove();
});

describe('sending by path', () => {
  it('moves a 64 MiB file byte-identical, verified, with events along the way', async () => {
    const ev = d.client.events();
    await ev.opened;
    const src = makeFile('big.bin', 64 * 1024 * 1024);
    const res = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(b.port)], paths: [src.path] });
    expect(res.status).toBe(202);
    expect(res.body.transfers).toHaveLength(1);
    const t = res.body.transfers[0];
    expect(t).toMatchObject({ direction: 'out', peer: a.port, from: a.id, to: b.id, name: 'big.bin', size: 64 * 1024 * 1024 });
    const done = await finished(t.id);
    expect(done.state).toBe('completed');
    expect(done.sha256).toBe(src.sha256);
    expect(done.bytesDone).toBe(64 * 1024 * 1024);
    const file = await received(b.port, 'big.bin');
    expect(file).toMatchObject({ size: 64 * 1024 * 1024, sha256: src.sha256, from: a.id });
    expect(await sha256File(join(d.transfers.peerDir(b.port), 'inbox', 'big.bin'))).toBe(src.sha256);
    // Nothing left in partial/.
    expect(readdirSync(join(d.transfers.peerDir(b.port), 'partial'))).toEqual([]);
    // Events: both sides started and completed, with progress in between.
    await ev.waitFor('receiver completed', (m) => m.type === 'transfer.completed' && m.data.transfer.direction === 'in' && m.data.transfer.peer === b.port);
    const types = ev.events.filter((e) => e.type.startsWith('transfer.')).map((e) => `${e.type}:${e.data.transfer.direction}`);
    expect(types).toContain('transfer.started:out');
    expect(types).toContain('transfer.started:in');
    expect(types).toContain('transfer.completed:out');
    expect(types.some((x) => x.startsWith('transfer.progress'))).toBe(true);
    const incoming = (await d.client.get(`/api/transfers?peer=${b.port}&state=completed`)).body.transfers.find((x: any) => x.savedAs === 'big.bin');
    expect(incoming).toMatchObject({ direction: 'in', from: a.id, to: b.id, sha256: src.sha256 });
    ev.close();
  });

  it('downloads a received file whole and by range', async () => {
    const src = makeFile('range.bin', 300_000);
    const t = (await d.client.post(`/api/peers/${a.port}/transfers`, { to: [b.id], paths: [src.path] })).body.transfers[0];
    expect((await finished(t.id)).state).toBe('completed');
    await received(b.port, 'range.bin');
    const url = `${d.base}/api/peers/${b.port}/files/range.bin`;
    const auth = { authorization: `Bearer ${d.token}` };
    const whole = Buffer.from(await (await fetch(url, { headers: auth })).arrayBuffer());
    expect(createHash('sha256').update(whole).digest('hex')).toBe(src.sha256);
    const part = await fetch(url, { headers: { ...auth, range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 1000-1999/300000');
    const bytes = Buffer.from(await part.arrayBuffer());
    expect(bytes.length).toBe(1000);
    expect(bytes.equals(whole.subarray(1000, 2000))).toBe(true);
    const beyond = await fetch(url, { headers: { ...auth, range: 'bytes=400000-' } });
    expect(beyond.status, await beyond.clone().text()).toBe(416);
    expect((await fetch(url)).status).toBe(401);
    expect((await d.client.delete(`/api/peers/${b.port}/files/range.bin`)).status).toBe(204);
    expect(existsSync(join(d.transfers.peerDir(b.port), 'inbox', 'range.bin'))).toBe(false);
    expect((await fetch(url, { headers: auth })).status).toBe(404);
  });

  it('sends one file to two targets at once', async () => {
    const src = makeFile('both.bin', 3 * 1024 * 1024 + 17);
    const res = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(b.port), `127.0.0.1:${c.port}`], paths: [src.path] });
    expect(res.status).toBe(202);
    expect(res.body.transfers.map((t: any) => t.to).sort()).toEqual([b.id, c.id].sort());
    for (const t of res.body.transfers) expect((await finished(t.id)).state).toBe('completed');
    for (const port of [b.port, c.port]) expect((await received(port, 'both.bin')).sha256).toBe(src.sha256);
  });

  it('shares one connection fairly between transfers, and heartbeats keep flowing', async () => {
    const ev = d.client.events();
    await ev.opened;
    const one = makeFile('fair-1.bin', 48 * 1024 * 1024);
    const two = makeFile('fair-2.bin', 48 * 1024 * 1024);
    const res = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(b.port)], paths: [one.path, two.path] });
    const [t1, t2] = res.body.transfers;
    const first = await ev.waitFor('one to complete', (m) => m.type === 'transfer.completed' && [t1.id, t2.id].includes(m.data.transfer.id));
    const other = first.data.transfer.id === t1.id ? t2 : t1;
    // Chunks take turns on the connection: when one file is done, the other is nearly done too.
    const progress = (await d.client.get(`/api/transfers/${other.id}`)).body;
    expect(progress.bytesDone / progress.size).toBeGreaterThan(0.8);
    expect((await finished(other.id)).state).toBe('completed');
    // The link stayed up throughout (PING/PONG are never stuck behind bulk data for long).
    expect(ev.events.filter((e) => e.type === 'connection.closed')).toEqual([]);
    ev.close();
  });

  it('never overwrites: the same name twice becomes "name (1).ext"', async () => {
    const first = makeFile('report.pdf', 1000);
    const one = (await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(c.port)], paths: [first.path] })).body.transfers[0];
    expect((await finished(one.id)).state).toBe('completed');
    const second = makeFile('report.pdf', 2000); // same name, other content
    const two = (await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(c.port)], paths: [second.path] })).body.transfers[0];
    expect((await finished(two.id)).state).toBe('completed');
    expect((await received(c.port, 'report.pdf')).sha256).toBe(first.sha256);
    expect((await received(c.port, 'report (1).pdf')).sha256).toBe(second.sha256);
  });

  it('moves 200 small files, and empty ones', async () => {
    const paths: string[] = [];
    const sums = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      const f = makeFile(`small-${i}.txt`, i === 0 ? 0 : 1 + (i * 37) % 4096);
      paths.push(f.path);
      sums.set(`small-${i}.txt`, f.sha256);
    }
    const res = await d.client.post(`/api/peers/${b.port}/transfers`, { to: [String(c.port)], paths });
    expect(res.body.transfers).toHaveLength(200);
    for (const t of res.body.transfers) expect((await finished(t.id)).state).toBe('completed');
    const stored = (await d.client.get(`/api/peers/${c.port}/files`)).body.files;
    for (const [name, sum] of sums) expect(stored.find((f: any) => f.name === name)?.sha256, name).toBe(sum);
  });
});

describe('uploading', () => {
  const outbox = () => join(d.transfers.peerDir(a.port), 'outbox');
  async function upload(form: FormData) {
    const res = await fetch(`${d.base}/api/peers/${a.port}/transfers`, { method: 'POST', headers: { authorization: `Bearer ${d.token}` }, body: form });
    return { status: res.status, body: (await res.json()) as any };
  }

  it('streams a multipart upload to two targets, verified, and empties the outbox afterwards', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 3);
    const sum = createHash('sha256').update(data).digest('hex');
    const form = new FormData();
    form.append('to', String(b.port));
    form.append('to', c.id);
    form.append('file', new Blob([data]), 'upload.bin');
    const res = await upload(form);
    expect(res.status).toBe(202);
    expect(res.body.transfers).toHaveLength(2);
    for (const t of res.body.transfers) {
      expect(t).toMatchObject({ name: 'upload.bin', size: data.length, direction: 'out' });
      const done = await finished(t.id);
      expect(done.state).toBe('completed');
      expect(done.sha256).toBe(sum);
    }
    for (const port of [b.port, c.port]) expect((await received(port, 'upload.bin')).sha256).toBe(sum);
    await waitFor('the outbox to empty', () => readdirSync(outbox()).length === 0);
  });

  it('refuses bad uploads and leaves nothing behind', async () => {
    const [nobody] = await freePorts(1);
    const cases: Array<[(f: FormData) => void, number, string]> = [
      [(f) => f.append('file', new Blob(['x']), 'a.txt'), 400, 'bad_request'], // no "to" first
      [(f) => f.append('to', String(b.port)), 400, 'bad_request'], // no file
      [(f) => { f.append('to', String(nobody)); f.append('file', new Blob(['x']), 'a.txt'); }, 409, 'not_connected'],
      [(f) => { f.append('to', String(b.port)); f.append('file', new Blob(['x']), 'a.txt'); f.append('to', String(c.port)); }, 400, 'bad_request'],
      [(f) => { f.append('to', String(b.port)); f.append('file', new Blob(['x']), '..'); }, 400, 'invalid_path'],
      [(f) => { f.append('to', String(b.port)); f.append('other', 'x'); }, 400, 'bad_request'],
    ];
    for (const [fill, status, code] of cases) {
      const form = new FormData();
      fill(form);
      const res = await upload(form);
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
    }
    expect(readdirSync(outbox())).toEqual([]);
  });
});

describe('hostile names from the wire', () => {
  it('stores every name inside the inbox or refuses it with a reason', async () => {
    const src = makeFile('payload.bin', 100);
    const hostile = [
      '../x', 'sub/../../x', '..', '.', '/etc/passwd', '//tmp/x', 'C:\\x', 'a.txt:stream', 'CON', 'nul.txt.jpg', 'COM0', 'LPT9',
      'trailing.', 'trailing ', 'nul\u0000byte', '\u001b[31mansi', 'evil\u202egpj.exe', 'zero\u200bwidth', 'caf\u00e9', 'cafe\u0301',
      'README', 'readme', 'x'.repeat(300) + '.txt',
    ];
    const conn = d.transfers.resolveTarget(a.port, String(b.port));
    // Straight to the service: the API would already clean the names, a hostile peer would not.
    const views = d.transfers.send(a.port, [conn], hostile.map((name) => ({ path: src.path, name, size: 100, mime: 'application/octet-stream' })));
    const inbox = join(d.transfers.peerDir(b.port), 'inbox');
    const before = new Set(readdirSync(inbox));
    const outcomes = [];
    for (const v of views) outcomes.push(await finished(v.id));
    for (const [i, t] of outcomes.entries()) {
      const name = hostile[i]!;
      if (/^(\.\.|\.|)$|\.\.[\\/]|[\\/]\.\.|^[\\/]|^C:|\u0000/.test(name)) {
        expect(t.state, JSON.stringify(name)).toBe('rejected');
        expect(t.error.code).toBe('invalid_name');
      } else {
        expect(t.state, JSON.stringify(name)).toBe('completed');
      }
    }
    const added = readdirSync(inbox).filter((n) => !before.has(n));
    for (const n of added) {
      expect(n).not.toMatch(/[\\/\u0000-\u001f\u202e\u200b:]/);
      expect(Buffer.byteLength(n)).toBeLessThanOrEqual(255);
    }
    expect(added).toContain('_CON');
    expect(added).toContain('café (1)');
    expect(existsSync(join(d.transfers.peerDir(b.port), 'x'))).toBe(false);
    expect(existsSync('/tmp/x')).toBe(false);
  });
});

describe('stopping early', () => {
  /** A sparse file: large on paper, instant to make. */
  function sparse(name: string, size: number): string {
    const path = join(files.path, name);
    const fd = openSync(path, 'w');
    ftruncateSync(fd, size);
    closeSync(fd);
    return path;
  }

  it('cancels a running transfer on both sides and keeps nothing', async () => {
    const ev = d.client.events();
    await ev.opened;
    const path = sparse('cancel-me.bin', 2 * 1024 ** 3);
    const t = (await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(b.port)], paths: [path] })).body.transfers[0];
    await ev.waitFor('progress', (m) => m.type === 'transfer.progress' && m.data.transfer.id === t.id);
    const res = await d.client.post(`/api/transfers/${t.id}/cancel`, {});
    expect(res.status).toBe(200);
    const done = await finished(t.id);
    expect(done.state).toBe('canceled');
    expect(done.error.code).toBe('canceled_by_user');
    const other = await ev.waitFor('the receiver to stop', (m) => m.type.startsWith('transfer.') && m.data.transfer.direction === 'in' && m.data.transfer.name === 'cancel-me.bin' && ['failed', 'canceled'].includes(m.data.transfer.state));
    expect(other.data.transfer.error.code).toBe('canceled_by_user');
    await waitFor('partial/ to empty', () => readdirSync(join(d.transfers.peerDir(b.port), 'partial')).length === 0);
    expect(existsSync(join(d.transfers.peerDir(b.port), 'inbox', 'cancel-me.bin'))).toBe(false);
    ev.close();
  });

  it.each(['sending', 'receiving'])('pauses when the %s side drops the connection, and resumes from the verified chunks when it is back', async (side) => {
    const ev = d.client.events();
    await ev.opened;
    // Real data this time, so the final hash proves every byte landed where it belongs.
    const size = 96 * 1024 * 1024 + 12345;
    const name = `cut-${side}.bin`;
    const src = makeFile(name, size);
    const [cutter, other] = side === 'sending' ? [a, c] : [c, a];
    // Bytes each end has moved on the a-c link so far (earlier tests used it too).
    const link = async (port: number, id: string) => (await d.client.connections(port)).find((x) => x.id === id);
    const before = { in: (await link(c.port, a.id)).bytesIn, out: (await link(a.port, c.id)).bytesOut };
    const posted = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(c.port)], paths: [src.path] });
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    const t = posted.body.transfers[0];
    await d.client.transferPast(t.id, 8 * 1024 * 1024);
    expect((await d.client.delete(`/api/peers/${cutter.port}/connections/${other.id}`)).status).toBe(204);
    const closedAt = (port: number) => ev.waitFor(`peer ${port}'s link to close`, (m) => m.type === 'connection.closed' && m.data.port === port);
    const [cutIn, cutOut] = [(await closedAt(c.port)).data.connection.bytesIn, (await closedAt(a.port)).data.connection.bytesOut];
    const paused = await ev.waitFor('the receiver to pause', (m) => m.type === 'transfer.paused' && m.data.transfer.direction === 'in' && m.data.transfer.name === name);
    expect(paused.data.transfer.error.code).toBe('connection_lost');
    const sender = await waitFor('the sender to pause', async () => {
      const x = (await d.client.get(`/api/transfers/${t.id}`)).body;
      return x.state === 'paused' ? x : null;
    });
    expect(sender.error.code).toBe('connection_lost');
    expect(existsSync(join(d.transfers.peerDir(c.port), 'inbox', name))).toBe(false);
    // The link comes back: the transfer goes on by itself.
    expect((await d.client.post(`/api/peers/${cutter.port}/connections`, { host: '127.0.0.1', port: other.port })).status).toBe(201);
    const restarted = await ev.waitFor('the receiver to start again', (m) => m.type === 'transfer.started' && m.data.transfer.direction === 'in' && m.data.transfer.name === name && m.seq > paused.seq);
    // Everything the receiver had written when the link dropped was kept (a write under way
    // at that moment may finish and add its chunk): nothing verified is sent again.
    expect(restarted.data.transfer.bytesDone).toBeGreaterThanOrEqual(paused.data.transfer.bytesDone);
    expect(restarted.data.transfer.bytesDone).toBeGreaterThan(0);
    const done = await finished(t.id);
    expect(done.state).toBe('completed');
    expect(done.sha256).toBe(src.sha256);
    expect(await sha256File(join(d.transfers.peerDir(c.port), 'inbox', name))).toBe(src.sha256);
    // What crossed the link for this file, both connections together. DATA frames carry whole
    // chunks (1 MiB for this file), so the receiver got every chunk once: what it
    // had received when the link dropped was kept, and only a chunk cut in half (never
    // delivered) came again. Framing and control messages stay well under 64 KiB.
    const chunk = chunkSizeFor(size);
    const received = cutIn - before.in + (await link(c.port, a.id)).bytesIn;
    expect(received).toBeGreaterThanOrEqual(size);
    expect(received - size).toBeLessThan(chunk + 64 * 1024);
    // The sender re-sent only what was in flight when the link dropped: at most the 16 MiB
    // credit window the receiver allows.
    const sent = cutOut - before.out + (await link(a.port, c.id)).bytesOut;
    expect(sent - size).toBeLessThan(16 * 1024 * 1024 + 64 * 1024);
    ev.close();
  });

  it('repairs bytes flipped in a partial file: the chunks before the damage are kept', async () => {
    const ev = d.client.events();
    await ev.opened;
    // Big enough that the pause lands well before the end.
    const size = 256 * 1024 * 1024;
    const src = makeFile('flip-me.bin', size);
    const posted = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(b.port)], paths: [src.path] });
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    const t = posted.body.transfers[0];
    await d.client.transferPast(t.id, 16 * 1024 * 1024);
    expect((await d.client.post(`/api/transfers/${t.id}/pause`, {})).status).toBe(200);
    const paused = await ev.waitFor('the receiver to pause', (m) => m.type === 'transfer.paused' && m.data.transfer.direction === 'in' && m.data.transfer.name === 'flip-me.bin');
    expect(paused.data.transfer.error.code).toBe('paused_by_user');
    // Damage one byte in chunk 8 of the partial file (the pause came after 16 chunks).
    const chunk = chunkSizeFor(size);
    const damaged = 8 * chunk + 70_000;
    const partialDir = join(d.transfers.peerDir(b.port), 'partial');
    const part = await waitFor('the partial file', () => readdirSync(partialDir).find((n) => n.endsWith('.part')));
    const fd = openSync(join(partialDir, part), 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, damaged);
    one[0] = one[0]! ^ 0xff;
    writeSync(fd, one, 0, 1, damaged);
    closeSync(fd);
    expect((await d.client.post(`/api/transfers/${t.id}/resume`, {})).status).toBe(200);
    const restarted = await ev.waitFor('the receiver to start again', (m) => m.type === 'transfer.started' && m.data.transfer.direction === 'in' && m.data.transfer.name === 'flip-me.bin' && m.seq > paused.seq);
    // The ledger's digests cover the file from its start (server/transfer/receiver.ts): the
    // eight chunks before the damage are kept, the damaged one and the rest come again.
    expect(paused.data.transfer.bytesDone).toBeGreaterThan(9 * chunk);
    expect(restarted.data.transfer.bytesDone).toBe(8 * chunk);
    const done = await finished(t.id);
    // Had the flipped byte gone unnoticed, the whole-file hash would not match and this would fail.
    expect(done.state).toBe('completed');
    expect(done.sha256).toBe(src.sha256);
    expect(await sha256File(join(d.transfers.peerDir(b.port), 'inbox', 'flip-me.bin'))).toBe(src.sha256);
    ev.close();
  });
});

describe('offers from another daemon', () => {
  let other: InProcessDaemon;
  let x: { port: number; id: string };

  beforeAll(async () => {
    other = await startInProcess({ offerTimeoutMs: 1_500, timings: { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 30_000 } });
    const [port] = await freePorts(1);
    x = await other.client.addPeer(port!);
    expect((await d.client.post(`/api/peers/${a.port}/connections`, { host: '127.0.0.1', port: x.port })).status).toBe(201);
  });
  afterAll(async () => {
    await other.close();
  });

  async function offerTo(name: string) {
    const src = makeFile(name, 200_000);
    const res = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [x.id], paths: [src.path] });
    expect(res.status).toBe(202);
    return { src, out: res.body.transfers[0] };
  }

  async function incoming(name: string, state: string): Promise<any> {
    return waitFor(`${name} to be ${state} on the other daemon`, async () =>
      (await other.client.get(`/api/transfers?peer=${x.port}`)).body.transfers.find((t: any) => t.name === name && t.state === state),
    );
  }

  it('wait for the user, who can accept', async () => {
    const ev = other.client.events();
    await ev.opened;
    const { src, out } = await offerTo('ask-me.bin');
    const offered = await ev.waitFor('transfer.offered', (m) => m.type === 'transfer.offered' && m.data.transfer.name === 'ask-me.bin');
    expect(offered.data.transfer).toMatchObject({ direction: 'in', state: 'offered', from: a.id, to: x.id, size: 200_000 });
    expect((await d.client.get(`/api/transfers/${out.id}`)).body.state).toBe('offered');
    const accepted = await other.client.post(`/api/transfers/${offered.data.transfer.id}/accept`, {});
    expect(accepted.status).toBe(200);
    expect((await finished(out.id)).state).toBe('completed');
    expect((await other.client.get(`/api/peers/${x.port}/files`)).body.files.find((f: any) => f.name === 'ask-me.bin').sha256).toBe(src.sha256);
    expect((await other.client.post(`/api/transfers/${offered.data.transfer.id}/accept`, {})).body.error.code).toBe('not_offered');
    ev.close();
  });

  it('or reject, and the sender is told why', async () => {
    const { out } = await offerTo('no-thanks.bin');
    const t = await incoming('no-thanks.bin', 'offered');
    expect((await other.client.post(`/api/transfers/${t.id}/reject`, {})).status).toBe(200);
    const done = await finished(out.id);
    expect(done.state).toBe('rejected');
    expect(done.error.code).toBe('rejected_by_user');
  });

  it('expire when nobody answers', async () => {
    const { out } = await offerTo('too-late.bin');
    const done = await finished(out.id);
    expect(done.state).toBe('rejected');
    expect(done.error.code).toBe('offer_expired');
    expect((await incoming('too-late.bin', 'rejected')).error.code).toBe('offer_expired');
  });

  it('can be taken back by the sender, or canceled by the receiver, while they wait', async () => {
    const first = await offerTo('take-back.bin');
    const waiting = await incoming('take-back.bin', 'offered');
    expect((await d.client.post(`/api/transfers/${first.out.id}/cancel`, {})).status).toBe(200);
    expect((await incoming('take-back.bin', 'canceled')).id).toBe(waiting.id);
    expect((await other.client.post(`/api/transfers/${waiting.id}/accept`, {})).body.error.code).toBe('not_offered');

    const second = await offerTo('never-mind.bin');
    const t = await incoming('never-mind.bin', 'offered');
    expect((await other.client.post(`/api/transfers/${t.id}/cancel`, {})).body.state).toBe('canceled');
    const done = await finished(second.out.id);
    expect(done.state).toBe('rejected');
    expect(done.error.code).toBe('canceled_by_user');
  });

  it('are accepted at once from a trusted peer', async () => {
    expect((await other.client.request('PUT', `/api/peers/${x.port}/trusted/${a.id}`)).status).toBe(204);
    expect((await other.client.get(`/api/peers/${x.port}/trusted`)).body.trusted).toEqual([a.id]);
    const { src, out } = await offerTo('friend.bin');
    const done = await finished(out.id);
    expect(done.state).toBe('completed');
    expect(done.sha256).toBe(src.sha256);
    expect((await other.client.delete(`/api/peers/${x.port}/trusted/${a.id}`)).status).toBe(204);
    expect((await other.client.get(`/api/peers/${x.port}/trusted`)).body.trusted).toEqual([]);
  });
});

describe('refusals', () => {
  it('answers bad requests with the JSON error shape and starts nothing', async () => {
    const src = makeFile('ok.bin', 10);
    const [nobody] = await freePorts(1);
    const cases: Array<[unknown, number, string]> = [
      [{ to: [], paths: [src.path] }, 400, 'bad_request'],
      [{ to: [String(b.port)], paths: [] }, 400, 'bad_request'],
      [{ to: ['not a target!'], paths: [src.path] }, 400, 'invalid_target'],
      [{ to: [String(nobody)], paths: [src.path] }, 409, 'not_connected'],
      [{ to: ['f'.repeat(64)], paths: [src.path] }, 409, 'not_connected'],
      [{ to: [String(b.port)], paths: ['relative.bin'] }, 400, 'invalid_path'],
      [{ to: [String(b.port)], paths: [join(files.path, 'missing.bin')] }, 404, 'file_not_found'],
      [{ to: [String(b.port)], paths: [files.path] }, 400, 'invalid_path'],
      [{ to: [String(b.port)] }, 400, 'bad_request'],
    ];
    const before = (await d.client.get('/api/transfers')).body.transfers.length;
    for (const [body, status, code] of cases) {
      const res = await d.client.post(`/api/peers/${a.port}/transfers`, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.code, JSON.stringify(body)).toBe(code);
    }
    expect((await d.client.get('/api/transfers')).body.transfers.length).toBe(before);
    expect((await d.client.get('/api/transfers/nope')).status).toBe(404);
    expect((await d.client.get('/api/transfers?state=bogus')).status).toBe(400);
  });
});
