// An offer from another daemon that waits for the user survives a restart of the
// receiving daemon: it is still the same waiting offer afterwards (not asked again
// when the sender offers it anew), it can be accepted, and its expiry clock goes on.

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startInProcess, tempDir, type InProcessDaemon } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const TIMINGS = { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 5_000 };
let sender: InProcessDaemon;
let receiver: InProcessDaemon;
let receiverDir: ReturnType<typeof tempDir>;
let files: ReturnType<typeof tempDir>;
let a: { port: number; id: string };
let x: { port: number; id: string };

beforeAll(async () => {
  files = tempDir('meshdrop-files-');
  receiverDir = tempDir('meshdrop-receiver-');
  sender = await startInProcess({ timings: TIMINGS });
  receiver = await startInProcess({ dataDir: receiverDir.path, timings: TIMINGS });
  const [p1, p2] = await freePorts(2);
  a = await sender.client.addPeer(p1!);
  x = await receiver.client.addPeer(p2!);
  expect((await sender.client.post(`/api/peers/${a.port}/connections`, { host: '127.0.0.1', port: x.port })).status).toBe(201);
});

afterAll(async () => {
  await sender.close();
  await receiver.close();
  receiverDir.remove();
  files.remove();
});

async function offer(name: string): Promise<{ sha256: string; out: any; waiting: any }> {
  const data = randomBytes(300_000);
  writeFileSync(join(files.path, name), data);
  const res = await sender.client.post(`/api/peers/${a.port}/transfers`, { to: [x.id], paths: [join(files.path, name)] });
  expect(res.status).toBe(202);
  const waiting = await waitFor(`${name} offered`, async () =>
    (await receiver.client.get(`/api/transfers?peer=${x.port}`)).body.transfers.find((t: any) => t.name === name && t.state === 'offered'),
  );
  return { sha256: createHash('sha256').update(data).digest('hex'), out: res.body.transfers[0], waiting };
}

async function restartReceiver(offerTimeoutMs?: number): Promise<void> {
  await receiver.close();
  receiver = await startInProcess({ dataDir: receiverDir.path, timings: TIMINGS, offerTimeoutMs });
  // The sender redials the remembered link and offers its paused transfers again.
  await sender.client.waitForConnections(a.port, [x.port], 20_000);
}

const ended = (client: InProcessDaemon['client'], id: string): Promise<any> => client.transferEnded(id);

it('keeps waiting through a restart, is not asked again, and can then be accepted', async () => {
  const { sha256, out, waiting } = await offer('after-restart.bin');
  await restartReceiver();
  // The sender offers again as soon as the link is back; give that OFFER time to arrive.
  // It must find the same waiting record (before the fix it made a second one).
  await new Promise((r) => setTimeout(r, 500));
  const mine = (await receiver.client.get(`/api/transfers?peer=${x.port}`)).body.transfers.filter((t: any) => t.name === 'after-restart.bin');
  expect(mine.map((t: any) => [t.id, t.state])).toEqual([[waiting.id, 'offered']]);
  expect((await receiver.client.post(`/api/transfers/${waiting.id}/accept`, {})).status).toBe(200);
  const done = await ended(sender.client, out.id);
  expect(done.state).toBe('completed');
  expect(done.sha256).toBe(sha256);
  expect(createHash('sha256').update(readFileSync(join(receiverDir.path, 'peers', String(x.port), 'inbox', 'after-restart.bin'))).digest('hex')).toBe(sha256);
});

it('expires on its original clock, and the sender is told when it comes back', async () => {
  const { out, waiting } = await offer('expired-meanwhile.bin');
  await new Promise((r) => setTimeout(r, 300));
  // Restarted with a timeout shorter than the time the offer has already waited.
  await restartReceiver(200);
  expect((await ended(receiver.client, waiting.id)).error.code).toBe('offer_expired');
  const done = await ended(sender.client, out.id);
  expect(done.state).toBe('rejected');
  expect(done.error.code).toBe('offer_expired');
  const mine = (await receiver.client.get(`/api/transfers?peer=${x.port}`)).body.transfers.filter((t: any) => t.name === 'expired-meanwhile.bin');
  expect(mine).toHaveLength(1);
});
