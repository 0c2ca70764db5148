// The receiver's credit window: a sender that sends more chunks than the window
// allows (without waiting for CREDITs) is stopped with window_exceeded, and the
// partial file is removed. Chunks are fed in one synchronous burst, so no write can
// finish (and no CREDIT can be granted) in between: the same burst over a socket
// would race the disk. Written chunks are credited back half a window at a time.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { EventBus } from '../../../server/events/bus.js';
import type { PeerConnection } from '../../../server/peer/connection.js';
import type { TransferMessage } from '../../../server/protocol/transfer-messages.js';
import { Store } from '../../../server/store/db.js';
import { Receiver } from '../../../server/transfer/receiver.js';
import { TransferRecord } from '../../../server/transfer/record.js';
import { waitFor } from '../../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'receiver-window-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A receiver of a 256-chunk file (64 KiB chunks) on a connection that records what it sends. */
async function started(name: string) {
  const paths = { partialDir: join(dir, name, 'partial'), inboxDir: join(dir, name, 'inbox') };
  mkdirSync(paths.partialDir, { recursive: true });
  mkdirSync(paths.inboxDir);
  const store = new Store(join(dir, name));
  const sent: TransferMessage[] = [];
  // The one thing a receiver does with its connection is send on it.
  // No shared features: a ledger sync (after 500 ms) reads them.
  const conn = { send: (m: TransferMessage) => (sent.push(m), true), sharedFeatures: [] } as unknown as PeerConnection;
  const chunkSize = 64 * 1024;
  const offer = { type: 'offer' as const, id: 'ab'.repeat(16), name: 'flood.bin', size: 256 * chunkSize, mime: 'application/octet-stream', chunkSize };
  const record = new TransferRecord(
    { wireId: offer.id, direction: 'in', peerPort: 1, localId: 'l', remoteId: 'r', name: offer.name, size: offer.size, path: null },
    store,
    new EventBus(),
  );
  const receiver = new Receiver({ record, conn, offer, paths, store, onStored: () => {} });
  await receiver.start(conn);
  const accept = sent.find((m) => m.type === 'accept');
  expect(accept?.type).toBe('accept');
  const window = accept!.type === 'accept' ? accept!.window : 0;
  const bytes = randomBytes(chunkSize);
  const feed = (from: number, to: number) => {
    for (let index = from; index < to; index++) receiver.onData({ type: 'data', id: offer.id, index, bytes });
  };
  const credited = () => sent.reduce((n, m) => n + (m.type === 'credit' ? m.chunks : 0), 0);
  return { store, paths, sent, offer, record, receiver, window, feed, credited };
}

it('stops a sender that runs past its window, and keeps nothing', async () => {
  const { store, paths, sent, offer, record, window, feed } = await started('flood');
  feed(0, window);
  expect(record.state).toBe('transferring');
  feed(window, window + 1);
  expect(record.state).toBe('failed');
  expect(record.row.errorCode).toBe('window_exceeded');
  expect(sent.at(-1)).toMatchObject({ type: 'cancel', id: offer.id, code: 'window_exceeded' });
  await waitFor('the partial file to go', () => readdirSync(paths.partialDir).length === 0);
  store.close();
});

it('credits written chunks back half a window at a time, and takes every chunk it credited', async () => {
  const { store, sent, offer, record, receiver, window, feed, credited } = await started('credits');
  expect(window).toBeGreaterThanOrEqual(4);
  feed(0, window);
  await waitFor('the first window to be credited', () => credited() === window);
  const credits = sent.filter((m) => m.type === 'credit');
  expect(credits.map((m) => (m.type === 'credit' ? m.chunks : 0))).toEqual([window / 2, window / 2]);
  // Exactly what was credited may come next, in one burst, and is taken.
  feed(window, 2 * window);
  expect(record.state).toBe('transferring');
  await waitFor('the second window to be credited', () => credited() === 2 * window);
  // The rest of the file: chunks written after the last one has arrived are not credited
  // (nothing more will come), those before it are.
  const total = offer.size / offer.chunkSize;
  for (let from = 2 * window; from < total; from += window) {
    feed(from, Math.min(total, from + window));
    expect(record.state).toBe('transferring');
    if (from + window < total) await waitFor('that window to be credited', () => credited() === from + window);
  }
  await waitFor('every chunk to be written', () => record.row.bytesDone === offer.size);
  expect(credited()).toBe(total - window);
  receiver.fail({ code: 'canceled_by_user', message: 'test over' }, false, 'canceled');
  store.close();
});
