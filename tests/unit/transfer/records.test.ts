// The transfers a daemon keeps in memory: all that have not ended and the last few that
// have. An older one leaves memory but not the daemon: it is read back from the real
// database (its state, its inbox name, who sent it), and an offer it declined stays
// declined. Without the bound a daemon grew with every transfer it ever made.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { EventBus } from '../../../server/events/bus.js';
import { Store } from '../../../server/store/db.js';
import { TransferRecord } from '../../../server/transfer/record.js';
import { TransferRecords } from '../../../server/transfer/records.js';

const LOCAL = 'a'.repeat(64);
const REMOTE = 'b'.repeat(64);

let dir: string;
let store: Store;
let bus: EventBus;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'records-'));
  store = new Store(dir);
  store.insertPeer({ port: 7000, id: LOCAL, certPem: 'cert', keyPem: 'key', createdAt: new Date().toISOString() });
  bus = new EventBus();
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function incoming(records: TransferRecords, n: number): TransferRecord {
  const wireId = n.toString(16).padStart(32, '0');
  return records.add(
    new TransferRecord({ wireId, direction: 'in', peerPort: 7000, localId: LOCAL, remoteId: REMOTE, name: `f${n}.txt`, size: 10, path: null }, store, bus),
  );
}

it('keeps every unfinished transfer and only the last ended ones in memory', () => {
  const records = new TransferRecords(store, bus, 3);
  const open = incoming(records, 0);
  open.setState('transferring');
  const ended = Array.from({ length: 10 }, (_, i) => incoming(records, i + 1));
  for (const r of ended) r.setState('completed');
  expect([...records.values()].map((r) => r.row.name)).toEqual(['f0.txt', 'f8.txt', 'f9.txt', 'f10.txt']);
  expect(records.get(open.row.id)).toBe(open);
  expect(records.get(ended[0]!.row.id)).toBeUndefined();
  // Ending the unfinished one pushes out the oldest of the kept ones.
  open.setState('failed', { code: 'x', message: 'y' });
  expect([...records.values()].map((r) => r.row.name)).toEqual(['f0.txt', 'f9.txt', 'f10.txt']);
});

it('reads a transfer that left memory back from the database, as it ended', () => {
  const records = new TransferRecords(store, bus, 1);
  const first = incoming(records, 1);
  first.setState('transferring');
  first.progress(10);
  first.setState('completed');
  store.insertFile({ peerPort: 7000, name: 'f1 (2).txt', size: 10, sha256: 'c'.repeat(64), fromId: REMOTE, transferId: first.row.id, receivedAt: new Date().toISOString() });
  const live = { ...first.view(), savedAs: 'f1 (2).txt' };
  incoming(records, 2).setState('completed');
  expect(records.get(first.row.id)).toBeUndefined();
  const back = records.find(first.row.id)!;
  expect(back).not.toBeNull();
  expect(back.view()).toEqual({ ...live, speed: null, eta: null });
  expect(back.view()).toMatchObject({ state: 'completed', from: REMOTE, to: LOCAL, bytesDone: 10, savedAs: 'f1 (2).txt' });
  expect(records.find('no-such-transfer')).toBeNull();
});

it('answers a re-offer of a declined file from memory and, once it has left, from the database', () => {
  const records = new TransferRecords(store, bus, 1);
  const declined = incoming(records, 1);
  declined.setState('rejected', { code: 'rejected_by_user', message: 'the receiver declined the file' });
  const wire = declined.row.wireId;
  const want = { code: 'rejected_by_user', message: 'the receiver declined the file' };
  expect(records.declined(7000, REMOTE, wire)).toEqual(want);
  incoming(records, 2).setState('completed');
  expect(records.get(declined.row.id)).toBeUndefined();
  expect(records.declined(7000, REMOTE, wire)).toEqual(want);
  // Only that sender's offer to that peer, and only if it was declined.
  expect(records.declined(7001, REMOTE, wire)).toBeNull();
  expect(records.declined(7000, LOCAL, wire)).toBeNull();
  expect(records.declined(7000, REMOTE, records.find([...records.values()][0]!.row.id)!.row.wireId)).toBeNull();
});
