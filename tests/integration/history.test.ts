// A daemon's transfer history over REST once it is longer than what the daemon keeps in
// memory (here 6 ended transfers instead of 1,000): GET /api/transfers lists the recent
// ones only, so it stays small, while every transfer is still answered by id, as it
// ended, with the name a received file got in the inbox.

import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startInProcess, tempDir, type InProcessDaemon } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';

const KEEP = 6;
const FILES = 20;

let d: InProcessDaemon;
let files: { path: string; remove(): void };

beforeAll(async () => {
  d = await startInProcess({ keepEnded: KEEP });
  files = tempDir('meshdrop-history-');
});

afterAll(async () => {
  await d.close();
  files.remove();
});

it('lists the recent transfers and still answers every older one by id', async () => {
  const [pa, pb] = await freePorts(2);
  const [a, b] = [await d.client.addPeer(pa!), await d.client.addPeer(pb!)];
  await d.client.waitForConnections(a.port, [b.port]);
  const sums = new Map<string, string>();
  const paths = Array.from({ length: FILES }, (_, i) => {
    const data = randomBytes(100 + i);
    const path = join(files.path, `h-${i}.txt`);
    writeFileSync(path, data);
    sums.set(`h-${i}.txt`, createHash('sha256').update(data).digest('hex'));
    return path;
  });
  const incoming = new Map<string, string>(); // name -> the receiving side's transfer id
  const stop = d.bus.subscribe((e) => {
    const t = (e.data as any).transfer;
    if (e.type === 'transfer.completed' && t.direction === 'in') incoming.set(t.name, t.id);
  });
  // Sent one at a time, so the oldest have surely left memory when they are asked for.
  const sent = [];
  for (const path of paths) {
    const res = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [String(b.port)], paths: [path] });
    expect(res.status).toBe(202);
    sent.push(await d.client.transferEnded(res.body.transfers[0].id));
  }
  const listed = (await d.client.get('/api/transfers')).body.transfers;
  // Both ends of each file are in this daemon: the last KEEP records, newest file last.
  expect(listed).toHaveLength(KEEP);
  expect(listed.at(-1).name).toBe(`h-${FILES - 1}.txt`);
  expect(listed.every((t: any) => t.state === 'completed')).toBe(true);

  const received = (await d.client.get(`/api/transfers?peer=${b.port}`)).body.transfers;
  expect(received.length).toBeGreaterThan(0);
  expect(received.every((t: any) => t.peer === b.port && t.direction === 'in')).toBe(true);
  for (const [i, t] of sent.entries()) {
    const again = (await d.client.get(`/api/transfers/${t.id}`));
    expect(again.status, `transfer ${i}`).toBe(200);
    expect(again.body).toMatchObject({ id: t.id, state: 'completed', name: `h-${i}.txt`, from: a.id, to: b.id, sha256: sums.get(`h-${i}.txt`), bytesDone: 100 + i });
  }
  stop();
  // The receiving side of the first file left memory long ago; its record still tells
  // where the file went.
  const first = (await d.client.get(`/api/transfers/${incoming.get('h-0.txt')}`)).body;
  expect(first).toMatchObject({ direction: 'in', state: 'completed', peer: b.port, from: a.id, to: b.id, savedAs: 'h-0.txt', sha256: sums.get('h-0.txt') });
  expect(listed.some((t: any) => t.id === first.id)).toBe(false);
  expect((await d.client.get('/api/transfers/no-such-id')).status).toBe(404);
});
