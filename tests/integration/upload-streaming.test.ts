// Multipart uploads whose file size is declared ("size" before "file") start sending
// while the upload is still arriving; a broken or lying upload fails its transfers
// with a reason and leaves nothing behind. Real sockets, real files.

import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startInProcess, type InProcessDaemon } from '../helpers/daemon.js';
import { BOUNDARY, field, fileHead, openUpload, TAIL, write } from '../helpers/multipart.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

let d: InProcessDaemon;
let a: { port: number; id: string };
let b: { port: number; id: string };

beforeAll(async () => {
  d = await startInProcess({ timings: { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 30_000 } });
  const [p1, p2] = await freePorts(2);
  a = await d.client.addPeer(p1!);
  b = await d.client.addPeer(p2!);
  await d.client.waitForConnections(a.port, [b.port]);
});

afterAll(async () => {
  await d.close();
});



const outbox = () => join(d.transfers.peerDir(a.port), 'outbox');
const partials = () => readdirSync(join(d.transfers.peerDir(b.port), 'partial'));

async function incoming(name: string): Promise<any> {
  return waitFor(`peer ${b.port} to receive ${name}`, async () =>
    (await d.client.get(`/api/transfers?peer=${b.port}`)).body.transfers.find((t: any) => t.name === name && t.bytesDone > 0),
  );
}

const ended = (id: string): Promise<any> => d.client.transferEnded(id);

it('starts sending while the upload is still arriving, and ends byte-identical', async () => {
  const data = randomBytes(12 * 1024 * 1024 + 17);
  const half = 6 * 1024 * 1024;
  const { req, response } = openUpload(d, a.port);
  await write(req, field('to', String(b.port)) + field('size', String(data.length)) + fileHead('streamed.bin'));
  await write(req, data.subarray(0, half));
  // The upload is only half there, and the receiver already has verified bytes of it.
  const receiving = await incoming('streamed.bin');
  expect(receiving.bytesDone).toBeGreaterThan(0);
  expect(receiving.bytesDone).toBeLessThanOrEqual(half);
  const sending = (await d.client.get(`/api/transfers?peer=${a.port}`)).body.transfers.find((t: any) => t.name === 'streamed.bin');
  expect(sending).toMatchObject({ direction: 'out', size: data.length, state: 'transferring' });
  await write(req, data.subarray(half));
  req.end(TAIL);
  const res = await response;
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(res.body.transfers.map((t: any) => t.id)).toEqual([sending.id]);
  // The answer shows the record as it is now, not as it was when the upload began.
  expect(res.body.transfers[0].bytesDone).toBeGreaterThan(0);
  const done = await ended(sending.id);
  const sum = createHash('sha256').update(data).digest('hex');
  expect(done).toMatchObject({ state: 'completed', sha256: sum });
  expect(createHash('sha256').update(readFileSync(join(d.transfers.peerDir(b.port), 'inbox', 'streamed.bin'))).digest('hex')).toBe(sum);
  await waitFor('the outbox to empty', () => readdirSync(outbox()).length === 0);
});

it('fails the transfer with a reason when the upload breaks off, and keeps nothing', async () => {
  const { req, response } = openUpload(d, a.port);
  response.catch(() => {});
  await write(req, field('to', String(b.port)) + field('size', String(8 * 1024 * 1024)) + fileHead('broken.bin'));
  await write(req, randomBytes(3 * 1024 * 1024));
  const receiving = await incoming('broken.bin');
  req.destroy();
  const sending = (await d.client.get(`/api/transfers?peer=${a.port}`)).body.transfers.find((t: any) => t.name === 'broken.bin');
  const failed = await ended(sending.id);
  expect(failed.state).toBe('failed');
  expect(failed.error.code).toBe('upload_failed');
  const gone = await ended(receiving.id);
  expect(gone.state).toBe('failed');
  expect(gone.error.code).toBe('upload_failed');
  await waitFor('the outbox and the partial files to empty', () => readdirSync(outbox()).length === 0 && partials().length === 0);
  expect(readdirSync(join(d.transfers.peerDir(b.port), 'inbox'))).not.toContain('broken.bin');
});

it('refuses a file longer or shorter than its declared size', async () => {
  for (const [declared, actual] of [[1000, 3000], [300_000, 200_000]] as const) {
    const name = `lying-${declared}.bin`;
    const { req, response } = openUpload(d, a.port);
    await write(req, field('to', String(b.port)) + field('size', String(declared)) + fileHead(name));
    req.end(Buffer.concat([randomBytes(actual), Buffer.from(TAIL)]));
    const res = await response;
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('size_mismatch');
    const sending = (await d.client.get(`/api/transfers?peer=${a.port}`)).body.transfers.find((t: any) => t.name === name);
    expect((await ended(sending.id)).error.code).toBe('upload_failed');
  }
  await waitFor('the outbox and the partial files to empty', () => readdirSync(outbox()).length === 0 && partials().length === 0);
  const inbox = readdirSync(join(d.transfers.peerDir(b.port), 'inbox'));
  expect(inbox.filter((n) => n.startsWith('lying-'))).toEqual([]);
});

it('refuses a bad or dangling "size" field', async () => {
  for (const body of [field('to', String(b.port)) + field('size', '-5') + fileHead('x.bin') + 'x' + TAIL, field('to', String(b.port)) + field('size', '12') + `--${BOUNDARY}--\r\n`]) {
    const { req, response } = openUpload(d, a.port);
    req.end(body);
    const res = await response;
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('bad_request');
  }
  expect(readdirSync(outbox())).toEqual([]);
});
