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

it('reads back who the local peer was and where the file went, after the peer and the file are gone', () => {
  const records = new TransferRecords(store, bus, 1);
  const first = incoming(records, 1);
  first.savedAs = 'f1.txt';
  first.setState('completed');
  incoming(records, 2).setState('completed');
  // The user deletes the file, then removes the peer; another peer takes its port.
  store.deletePeer(7000);
  store.insertPeer({ port: 7000, id: 'c'.repeat(64), certPem: 'cert', keyPem: 'key', createdAt: new Date().toISOString() });
  expect(records.find(first.row.id)!.view()).toMatchObject({ from: REMOTE, to: LOCAL, savedAs: 'f1.txt' });
});

it('does not read back a transfer that had not ended, and keeps an ended one the database could not take', async () => {
  const records = new TransferRecords(store, bus, 1);
  // A row left unfinished by an earlier run, for a peer that is not running.
  const now = new Date().toISOString();
  store.saveTransfer({
    id: 'old', wireId: 'ff'.repeat(16), direction: 'in', peerPort: 7000, remoteId: REMOTE, name: 'old.txt', size: 1, state: 'transferring',
    bytesDone: 0, sha256: null, path: null, errorCode: null, errorMessage: null, createdAt: now, updatedAt: now,
  });
  expect(records.find('old')).toBeNull();

  const full = new Store(dir);
  let failing = true;
  const realSave = full.saveTransfer.bind(full);
  full.saveTransfer = (row, local) => {
    if (failing && row.state === 'completed') throw new Error('SQLITE_FULL: database or disk is full');
    realSave(row, local);
  };
  const warnings: string[] = [];
  const warn = (w: Error) => warnings.push(w.message);
  process.on('warning', warn);
  try {
    const records2 = new TransferRecords(full, bus, 1);
    const r = records2.add(new TransferRecord({ wireId: '01'.repeat(16), direction: 'in', peerPort: 7000, localId: LOCAL, remoteId: REMOTE, name: 'u.txt', size: 1, path: null }, full, bus));
    r.setState('completed');
    expect(r.unsaved).toBe(true);
    for (let i = 2; i <= 3; i++) records2.add(new TransferRecord({ wireId: `0${i}`.repeat(16), direction: 'in', peerPort: 7000, localId: LOCAL, remoteId: REMOTE, name: `v${i}.txt`, size: 1, path: null }, full, bus)).setState('completed');
    // Its final state exists only in memory, so it stays there.
    expect(records2.get(r.row.id)).toBe(r);
    expect(records2.find(r.row.id)!.view().state).toBe('completed');
    // Once the database takes it again, the next transfer to end lets it go.
    failing = false;
    records2.add(new TransferRecord({ wireId: '04'.repeat(16), direction: 'in', peerPort: 7000, localId: LOCAL, remoteId: REMOTE, name: 'w.txt', size: 1, path: null }, full, bus)).setState('completed');
    expect(records2.get(r.row.id)).toBeUndefined();
    expect(r.unsaved).toBe(false);
    expect(records2.find(r.row.id)!.view().state).toBe('completed');
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    expect(warnings.some((w) => /could not record transfer/.test(w))).toBe(true);
  } finally {
    process.off('warning', warn);
    full.close();
  }
});
