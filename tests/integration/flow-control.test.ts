// Backpressure end to end, against a peer the test drives by hand: a receiver that
// reads slowly holds the sender back (its lead and its memory stay bounded while
// the whole file still arrives intact), but not a user's upload to it. The other direction, a sender that ignores
// its window, is tests/unit/transfer/receiver-window.test.ts (over a socket it
// races the disk).

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Message } from '../../server/protocol/messages.js';
import { chunkCount } from '../../server/protocol/transfer-messages.js';
import { startInProcess, tempDir, type InProcessDaemon } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';
import { connectRawPeer } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
let d: InProcessDaemon;
let files: ReturnType<typeof tempDir>;
let a: { port: number; id: string };

beforeAll(async () => {
  d = await startInProcess({ timings: { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 30_000 } });
  files = tempDir('meshdrop-files-');
  a = await d.client.addPeer((await freePorts(1))[0]!);
});

afterAll(async () => {
  await d.close();
  files.remove();
});

/** A file of distinct random MiBs, written and hashed piece by piece (never whole in memory). */
function makeFile(name: string, mib: number): { path: string; sha256: string } {
  const path = join(files.path, name);
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  for (let i = 0; i < mib; i++) {
    const block = randomBytes(MiB);
    hash.update(block);
    writeSync(fd, block);
  }
  closeSync(fd);
  return { path, sha256: hash.digest('hex') };
}

it('a receiver that reads slowly slows the sender down, with bounded memory, and gets every byte', async () => {
  const src = makeFile('slow.bin', 256);
  const got = createHash('sha256');
  let result: string | null = null;
  const raw = await connectRawPeer(a.port, (msg: Message, peer) => {
    if (msg.type === 'offer') {
      // The largest window the protocol allows (the whole file here): only TCP holds the sender back.
      peer.send({ type: 'accept', id: msg.id, need: [[0, chunkCount(msg.size, msg.chunkSize)]], window: 1024 });
    } else if (msg.type === 'data') {
      got.update(msg.bytes);
    } else if (msg.type === 'end') {
      result = got.digest('hex');
      peer.send({ type: 'result', id: msg.id, ok: result === msg.sha256, code: result === msg.sha256 ? 'stored' : 'hash_mismatch', message: 'slow.bin' });
    }
  });
  await waitFor('the raw peer to be connected', async () => (await d.client.connections(a.port)).some((c) => c.id === raw.identity.id));
  raw.throttle(48 * MiB);
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  const posted = await d.client.post(`/api/peers/${a.port}/transfers`, { to: [raw.identity.id], paths: [src.path] });
  expect(posted.status, JSON.stringify(posted.body)).toBe(202);
  const id = posted.body.transfers[0].id;
  let lead = 0;
  let growth = 0;
  let t: any;
  for (;;) {
    t = (await d.client.get(`/api/transfers/${id}`)).body;
    // How far the sender got ahead of what the receiver has read: only socket buffers
    // (kernel send and receive buffers, TLS, our 1 MiB write high-water mark) sit between.
    lead = Math.max(lead, t.bytesDone - raw.bytesRead);
    growth = Math.max(growth, process.memoryUsage().rss - baseline);
    if (['completed', 'failed', 'canceled', 'rejected'].includes(t.state) || lead >= 48 * MiB) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // Had the sender ignored backpressure, it would have queued most of the 256 MiB file.
  expect(lead).toBeLessThan(48 * MiB);
  expect(t.state, JSON.stringify(t.error)).toBe('completed');
  expect(result).toBe(src.sha256);
  expect(growth).toBeLessThan(96 * MiB);
  expect((await d.client.connections(a.port)).find((c) => c.id === raw.identity.id)?.state).toBe('open');
  raw.close();
});

it('an upload to a slow receiver is not held to its pace: it is stored at once, and sent from disk', async () => {
  const size = 64 * MiB;
  const src = makeFile('slow-upload.bin', 64);
  const got = createHash('sha256');
  let result: string | null = null;
  const raw = await connectRawPeer(a.port, (msg: Message, peer) => {
    if (msg.type === 'offer') peer.send({ type: 'accept', id: msg.id, need: [[0, chunkCount(msg.size, msg.chunkSize)]], window: 1024 });
    else if (msg.type === 'data') got.update(msg.bytes);
    else if (msg.type === 'end') {
      result = got.digest('hex');
      peer.send({ type: 'result', id: msg.id, ok: result === msg.sha256, code: 'stored', message: 'slow-upload.bin' });
    }
  });
  await waitFor('the raw peer to be connected', async () => (await d.client.connections(a.port)).some((c) => c.id === raw.identity.id));
  // About four seconds to receive 64 MiB; the upload itself takes a fraction of a second.
  raw.throttle(16 * MiB);
  const boundary = 'slow-upload-boundary';
  const head = `--${boundary}\r\ncontent-disposition: form-data; name="to"\r\n\r\n${raw.identity.id}\r\n` +
    `--${boundary}\r\ncontent-disposition: form-data; name="size"\r\n\r\n${size}\r\n` +
    `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="slow-upload.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`;
  const answer = await new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = request(`${d.base}/api/peers/${a.port}/transfers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${d.token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.write(head);
    const body = createReadStream(src.path);
    body.on('end', () => req.end(`\r\n--${boundary}--\r\n`));
    body.pipe(req, { end: false });
  });
  // Had the upload waited for the sender (which waits for this receiver), it would only
  // have been answered near the end of the transfer.
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  const readWhenStored = raw.bytesRead;
  expect(readWhenStored).toBeLessThan(size / 2);
  const t = await d.client.transferEnded(answer.body.transfers[0].id, 60_000);
  expect(t.state, JSON.stringify(t.error)).toBe('completed');
  expect(result).toBe(src.sha256);
  raw.close();
});
