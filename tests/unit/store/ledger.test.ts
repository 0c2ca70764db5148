// The receive ledger's chunk hashes: a receiver saves its ledger every 16 MiB, so a
// save must cost what changed since the last one, not the whole file's hashes (which
// made a large file's ledger writes quadratic), and what is read back must be exactly
// what was saved: after growth, after a shrink (damage found on resume), across a
// restart of the daemon, and for a ledger written before hashes moved to segments.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { DB_FILE, Store, type Ledger } from '../../../server/store/db.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ledger-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const ID = 'transfer-1';
const CHUNK = 4 * 1024 * 1024;

/** 32 distinct bytes per chunk, so a hash at a wrong place shows. */
function hashes(count: number, salt = ''): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => createHash('sha256').update(`${salt}${i}`).digest()));
}

function ledger(chunkHashes: Buffer | null): Ledger {
  return { chunkSize: CHUNK, verified: chunkHashes ? chunkHashes.length / 32 : 0, chunkHashes, tempPath: '/tmp/x.part', mime: 'application/octet-stream' };
}

function withTransfer(store: Store): Store {
  const now = new Date().toISOString();
  store.saveTransfer({
    id: ID, wireId: 'ab'.repeat(16), direction: 'in', peerPort: 1, remoteId: 'r', name: 'big.bin', size: 0, state: 'transferring',
    bytesDone: 0, sha256: null, path: null, errorCode: null, errorMessage: null, createdAt: now, updatedAt: now,
  });
  return store;
}

it('writes only the hashes a save adds, however many came before', () => {
  const store = withTransfer(new Store(dir));
  const all = hashes(5000);
  // Growing one chunk at a time, as a slow transfer's ledger does.
  for (let n = 1; n <= 5000; n += 7) store.saveLedger(ID, ledger(all.subarray(0, n * 32)));
  const before = store.ledgerHashBytesWritten;
  store.saveLedger(ID, ledger(all));
  // One more save at 5,000 chunks rewrites at most the segment it ends in (64 hashes),
  // not the 160,000 bytes of hashes before it.
  expect(store.ledgerHashBytesWritten - before).toBeLessThanOrEqual(64 * 32);
  expect(store.ledger(ID)!.chunkHashes!.equals(all)).toBe(true);
  expect(store.ledger(ID)!.verified).toBe(5000);
});

it('reads back a ledger that shrank and grew again with other hashes', () => {
  const store = withTransfer(new Store(dir));
  store.saveLedger(ID, ledger(hashes(1000)));
  // Resume found chunk 130 damaged: the ledger keeps 130 chunks, then the rest arrive anew.
  store.saveLedger(ID, ledger(hashes(130)));
  expect(store.ledger(ID)!.chunkHashes!.equals(hashes(130))).toBe(true);
  const regrown = Buffer.concat([hashes(130), hashes(900, 'again').subarray(130 * 32)]);
  store.saveLedger(ID, ledger(regrown));
  expect(store.ledger(ID)!.chunkHashes!.equals(regrown)).toBe(true);
  store.saveLedger(ID, ledger(null));
  const reset = store.ledger(ID)!;
  expect(reset.verified).toBe(0);
  expect(reset.chunkHashes).toBeNull();
});

it('reads back the right hashes after a save that failed (a full disk) and one that did not', () => {
  const store = withTransfer(new Store(dir));
  store.saveLedger(ID, ledger(hashes(1000)));
  // Another connection makes the next hash insert fail, as SQLITE_FULL would.
  const db = new Database(join(dir, DB_FILE));
  db.exec(`CREATE TABLE fail_saves (x);
    CREATE TRIGGER fail_ledger BEFORE INSERT ON ledger_hashes WHEN EXISTS (SELECT 1 FROM fail_saves)
    BEGIN SELECT RAISE(ABORT, 'simulated full disk'); END;
    INSERT INTO fail_saves VALUES (1);`);
  // Resume kept 130 chunks; recording that fails, and the table still holds the old 1,000.
  expect(() => store.saveLedger(ID, ledger(hashes(130)))).toThrow(/simulated full disk/);
  db.exec('DELETE FROM fail_saves');
  db.close();
  const regrown = Buffer.concat([hashes(130), hashes(1100, 'again').subarray(130 * 32)]);
  store.saveLedger(ID, ledger(regrown));
  expect(store.ledger(ID)!.chunkHashes!.equals(regrown)).toBe(true);
});

it('keeps the ledger across a restart, and goes on saving where it was', () => {
  withTransfer(new Store(dir)).saveLedger(ID, ledger(hashes(700)));
  const again = new Store(dir);
  expect(again.ledger(ID)!.chunkHashes!.equals(hashes(700))).toBe(true);
  again.saveLedger(ID, ledger(hashes(800)));
  expect(new Store(dir).ledger(ID)!.chunkHashes!.equals(hashes(800))).toBe(true);
});

it('reads a ledger saved by an earlier version, whose hashes are in the transfer row', () => {
  withTransfer(new Store(dir));
  // What saveLedger wrote before ledger_hashes existed.
  const db = new Database(join(dir, DB_FILE));
  db.prepare('UPDATE transfers SET chunk_size = ?, verified = ?, chunk_hashes = ? WHERE id = ?').run(CHUNK, 300, hashes(300), ID);
  db.close();
  const store = new Store(dir);
  expect(store.ledger(ID)!.chunkHashes!.equals(hashes(300))).toBe(true);
  store.saveLedger(ID, ledger(hashes(310)));
  expect(new Store(dir).ledger(ID)!.chunkHashes!.equals(hashes(310))).toBe(true);
});
