// The receiver enforces the credit window it granted: a sender that sends more
// chunks than the window allows (without waiting for CREDITs) is stopped with
// window_exceeded, and the partial file is removed. Chunks are fed in one
// synchronous burst, so no write can finish (and no CREDIT can be granted) in
// between: the same burst over a socket would race the disk.

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

it('stops a sender that runs past its window, and keeps nothing', async () => {
  const store = new Store(dir);
  const paths = { partialDir: join(dir, 'partial'), inboxDir: join(dir, 'inbox') };
  mkdirSync(paths.partialDir);
  mkdirSync(paths.inboxDir);
  const sent: TransferMessage[] = [];
  // The one thing a receiver does with its connection is send on it.
  const conn = { send: (m: TransferMessage) => (sent.push(m), true) } as unknown as PeerConnection;
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
  for (let index = 0; index < window; index++) receiver.onData({ type: 'data', id: offer.id, index, bytes });
  expect(record.state).toBe('transferring');
  receiver.onData({ type: 'data', id: offer.id, index: window, bytes });
  expect(record.state).toBe('failed');
  expect(record.row.errorCode).toBe('window_exceeded');
  expect(sent.at(-1)).toMatchObject({ type: 'cancel', id: offer.id, code: 'window_exceeded' });
  await waitFor('the partial file to go', () => readdirSync(paths.partialDir).length === 0);
  store.close();
});
