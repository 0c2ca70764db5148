// The embedded database (SQLite via better-sqlite3) in the data directory:
// peers with their identities, and the remote peers each one keeps dialling.
// Schema changes are numbered migrations tracked in PRAGMA user_version.

import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const DB_FILE = 'meshdrop.db';
/**
 * A ledger's chunk hashes are kept in segments of this many chunks (2 KiB). A receiver
 * saves its ledger every 16 MiB; rewriting all the hashes each time made a file's ledger
 * writes grow with the square of its chunk count (4.5 s of blocked event loop for a
 * 100 GiB file, ~256 GiB written to SQLite for 1 TB); a save now rewrites only the
 * segments that changed.
 */
const HASH_SEGMENT_CHUNKS = 64;
const HASH_BYTES = 32;

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE peers (
     port INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
     id TEXT NOT NULL UNIQUE,
     cert_pem TEXT NOT NULL,
     key_pem TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE remotes (
     peer_port INTEGER NOT NULL REFERENCES peers(port) ON DELETE CASCADE,
     remote_id TEXT NOT NULL,
     host TEXT NOT NULL,
     port INTEGER NOT NULL,
     added_at TEXT NOT NULL,
     PRIMARY KEY (peer_port, remote_id)
   );`,
  // The transfer ledger (both directions) and the files each peer received.
  `CREATE TABLE transfers (
     id TEXT PRIMARY KEY,
     wire_id TEXT NOT NULL,
     direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
     peer_port INTEGER NOT NULL,
     remote_id TEXT NOT NULL,
     name TEXT NOT NULL,
     size INTEGER NOT NULL,
     state TEXT NOT NULL,
     bytes_done INTEGER NOT NULL DEFAULT 0,
     sha256 TEXT,
     path TEXT,
     error_code TEXT,
     error_message TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE INDEX transfers_by_peer ON transfers (peer_port, state);
   CREATE TABLE files (
     peer_port INTEGER NOT NULL REFERENCES peers(port) ON DELETE CASCADE,
     name TEXT NOT NULL,
     size INTEGER NOT NULL,
     sha256 TEXT NOT NULL,
     from_id TEXT NOT NULL,
     transfer_id TEXT NOT NULL,
     received_at TEXT NOT NULL,
     PRIMARY KEY (peer_port, name)
   );`,
  // What resume needs: the chunking, and on the receiving side how many chunks are
  // durable in the temporary file with each one's SHA-256 (32 bytes per chunk).
  `ALTER TABLE transfers ADD COLUMN mime TEXT NOT NULL DEFAULT 'application/octet-stream';
   ALTER TABLE transfers ADD COLUMN chunk_size INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE transfers ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE transfers ADD COLUMN chunk_hashes BLOB;
   ALTER TABLE transfers ADD COLUMN temp_path TEXT;`,
  // Remote peers whose offers a local peer accepts without asking.
  `CREATE TABLE trusted (
     peer_port INTEGER NOT NULL REFERENCES peers(port) ON DELETE CASCADE,
     remote_id TEXT NOT NULL,
     added_at TEXT NOT NULL,
     PRIMARY KEY (peer_port, remote_id)
   );`,
  // Ledger chunk hashes by segment (HASH_SEGMENT_CHUNKS chunks each); transfers.chunk_hashes
  // is only read for ledgers saved before this table existed.
  `CREATE TABLE ledger_hashes (
     transfer_id TEXT NOT NULL REFERENCES transfers(id) ON DELETE CASCADE,
     segment INTEGER NOT NULL,
     hashes BLOB NOT NULL,
     PRIMARY KEY (transfer_id, segment)
   );`,
  // Ended transfers leave the daemon's memory (TransferRecords) and are read back from here:
  // with the local peer's id (its port may be reused by another peer later) and the inbox
  // name a received file got (its files row goes when the user deletes the file); a
  // re-offer of a declined one is found by key rather than by a scan.
  `ALTER TABLE transfers ADD COLUMN local_id TEXT;
   ALTER TABLE transfers ADD COLUMN saved_as TEXT;
   CREATE INDEX transfers_by_wire ON transfers (wire_id);
   CREATE INDEX files_by_transfer ON files (transfer_id);`,
];

export interface PeerRow {
  port: number;
  id: string;
  certPem: string;
  keyPem: string;
  createdAt: string;
}

export interface RemoteRow {
  peerPort: number;
  remoteId: string;
  host: string;
  port: number;
}

export interface TransferRow {
  id: string;
  wireId: string;
  direction: 'in' | 'out';
  peerPort: number;
  remoteId: string;
  name: string;
  size: number;
  state: string;
  bytesDone: number;
  sha256: string | null;
  path: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface Ledger {
  chunkSize: number;
  verified: number;
  chunkHashes: Buffer | null;
  tempPath: string | null;
  mime: string;
}

export interface FileRow {
  peerPort: number;
  name: string;
  size: number;
  sha256: string;
  fromId: string;
  transferId: string;
  receivedAt: string;
}

const TRANSFER_COLUMNS = `id, wire_id AS wireId, direction, peer_port AS peerPort, remote_id AS remoteId, name, size, state,
  bytes_done AS bytesDone, sha256, path, error_code AS errorCode, error_message AS errorMessage,
  created_at AS createdAt, updated_at AS updatedAt`;

export class Store {
  readonly #db: Database.Database;
  /** Prepared statements by SQL text: preparing one costs more than running it. */
  readonly #statements = new Map<string, Database.Statement>();
  /** Per ledger saved by this process: how many chunk hashes ledger_hashes holds as given. */
  readonly #storedHashes = new Map<string, number>();
  #ledgerHashBytes = 0;

  constructor(dataDir: string) {
    const file = join(dataDir, DB_FILE);
    const fresh = !existsSync(file);
    this.#db = new Database(file);
    // The database holds private keys: owner-only.
    if (fresh) chmodSync(file, 0o600);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 5000');
    this.#migrate();
  }

  #sql(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (!stmt) this.#statements.set(sql, (stmt = this.#db.prepare(sql)));
    return stmt;
  }

  #migrate(): void {
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new Error(`database schema version ${version} is newer than this build understands (${MIGRATIONS.length})`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.#db.transaction(() => {
        this.#db.exec(MIGRATIONS[v]!);
        this.#db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  listPeers(): PeerRow[] {
    return this.#sql('SELECT port, id, cert_pem AS certPem, key_pem AS keyPem, created_at AS createdAt FROM peers ORDER BY port')
      .all() as PeerRow[];
  }

  insertPeer(row: PeerRow): void {
    this.#sql('INSERT INTO peers (port, id, cert_pem, key_pem, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(row.port, row.id, row.certPem, row.keyPem, row.createdAt);
  }

  deletePeer(port: number): void {
    this.#sql('DELETE FROM peers WHERE port = ?').run(port);
  }

  listRemotes(peerPort: number): RemoteRow[] {
    return this.#sql('SELECT peer_port AS peerPort, remote_id AS remoteId, host, port FROM remotes WHERE peer_port = ? ORDER BY added_at')
      .all(peerPort) as RemoteRow[];
  }

  upsertRemote(row: RemoteRow): void {
    this.#sql(
        `INSERT INTO remotes (peer_port, remote_id, host, port, added_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (peer_port, remote_id) DO UPDATE SET host = excluded.host, port = excluded.port`,
      )
      .run(row.peerPort, row.remoteId, row.host, row.port, new Date().toISOString());
  }

  deleteRemote(peerPort: number, remoteId: string): void {
    this.#sql('DELETE FROM remotes WHERE peer_port = ? AND remote_id = ?').run(peerPort, remoteId);
  }

  /** Inserts or updates a transfer; `local` adds the local peer's id and a received file's inbox name. */
  saveTransfer(row: TransferRow, local: { localId?: string; savedAs?: string | null } = {}): void {
    this.#sql(
        `INSERT INTO transfers (id, wire_id, direction, peer_port, remote_id, name, size, state, bytes_done, sha256, path,
           error_code, error_message, created_at, updated_at, local_id, saved_as)
         VALUES (@id, @wireId, @direction, @peerPort, @remoteId, @name, @size, @state, @bytesDone, @sha256, @path,
           @errorCode, @errorMessage, @createdAt, @updatedAt, @localId, @savedAs)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, bytes_done = excluded.bytes_done, sha256 = excluded.sha256,
           path = excluded.path, name = excluded.name, size = excluded.size, error_code = excluded.error_code,
           error_message = excluded.error_message, updated_at = excluded.updated_at,
           local_id = COALESCE(local_id, excluded.local_id), saved_as = COALESCE(excluded.saved_as, saved_as)`,
      )
      .run({ ...row, localId: local.localId ?? null, savedAs: local.savedAs ?? null });
  }

  /** Records that the first `verified` chunks of an incoming transfer are durable, with their hashes. */
  saveLedger(id: string, ledger: Ledger): void {
    const hashes = ledger.chunkHashes ?? Buffer.alloc(0);
    const count = Math.floor(hashes.length / HASH_BYTES);
    // Segments before the one holding the first new hash are as they were saved; a ledger
    // that shrank (damage found on resume) is rewritten from where it now ends.
    const from = Math.floor(Math.min(this.#storedHashes.get(id) ?? 0, count) / HASH_SEGMENT_CHUNKS);
    const segmentBytes = HASH_SEGMENT_CHUNKS * HASH_BYTES;
    // Until this save has landed nothing is known about the table (a failed shrink would
    // leave the old hashes behind it): the next save then rewrites from the start.
    this.#storedHashes.delete(id);
    this.#db.transaction(() => {
      this.#sql('UPDATE transfers SET chunk_size = ?, verified = ?, chunk_hashes = NULL, temp_path = ?, mime = ? WHERE id = ?')
        .run(ledger.chunkSize, ledger.verified, ledger.tempPath, ledger.mime, id);
      this.#sql('DELETE FROM ledger_hashes WHERE transfer_id = ? AND segment >= ?').run(id, from);
      const insert = this.#sql('INSERT INTO ledger_hashes (transfer_id, segment, hashes) VALUES (?, ?, ?)');
      for (let seg = from; seg * HASH_SEGMENT_CHUNKS < count; seg++) {
        const part = hashes.subarray(seg * segmentBytes, Math.min(count * HASH_BYTES, (seg + 1) * segmentBytes));
        insert.run(id, seg, part);
        this.#ledgerHashBytes += part.length;
      }
    })();
    if (count > 0) this.#storedHashes.set(id, count);
  }

  /** Chunk-hash bytes saveLedger() has written (to show a save costs what changed, not the file's size). */
  get ledgerHashBytesWritten(): number {
    return this.#ledgerHashBytes;
  }

  /** saveLedger() that reports failure (e.g. SQLITE_FULL) instead of throwing. */
  saveLedgerSafely(id: string, ledger: Ledger): boolean {
    try {
      this.saveLedger(id, ledger);
      return true;
    } catch (err) {
      process.emitWarning(`could not record the ledger of transfer ${id}: ${(err as Error).message}`);
      return false;
    }
  }

  ledger(id: string): Ledger | null {
    const row = this.#sql('SELECT chunk_size AS chunkSize, verified, chunk_hashes AS chunkHashes, temp_path AS tempPath, mime FROM transfers WHERE id = ?')
      .get(id) as Ledger | undefined;
    if (!row) return null;
    const segments = this.#sql('SELECT hashes FROM ledger_hashes WHERE transfer_id = ? ORDER BY segment').all(id) as Array<{ hashes: Buffer }>;
    // Ledgers saved before ledger_hashes existed keep their hashes in the row.
    if (segments.length > 0) row.chunkHashes = Buffer.concat(segments.map((s) => s.hashes));
    return row;
  }

  /** A peer's transfers that had not ended when the daemon last stopped (by the transfers_by_peer index). */
  unfinishedTransfers(peerPort: number): TransferRow[] {
    return this.#sql(
      `SELECT ${TRANSFER_COLUMNS} FROM transfers
       WHERE peer_port = ? AND state NOT IN ('completed', 'failed', 'rejected', 'canceled') ORDER BY created_at`,
    ).all(peerPort) as TransferRow[];
  }

  /** One transfer, with its local peer's id and (received files) the inbox name it was stored under. */
  transfer(id: string): (TransferRow & { localId: string | null; savedAs: string | null }) | null {
    const row = this.#sql(
      // Rows saved before local_id and saved_as existed: the peer on that port now, the file's row.
      `SELECT ${TRANSFER_COLUMNS}, COALESCE(local_id, (SELECT p.id FROM peers p WHERE p.port = transfers.peer_port)) AS localId,
         COALESCE(saved_as, (SELECT f.name FROM files f WHERE f.transfer_id = transfers.id)) AS savedAs
       FROM transfers WHERE id = ?`,
    ).get(id);
    return (row as (TransferRow & { localId: string | null; savedAs: string | null }) | undefined) ?? null;
  }

  /** How an incoming offer with this wire id from `remoteId` was declined, if it was. */
  declinedOffer(peerPort: number, remoteId: string, wireId: string): { errorCode: string | null; errorMessage: string | null } | null {
    const row = this.#sql(
      `SELECT error_code AS errorCode, error_message AS errorMessage FROM transfers
       WHERE wire_id = ? AND direction = 'in' AND peer_port = ? AND remote_id = ? AND state IN ('rejected', 'canceled') LIMIT 1`,
    ).get(wireId, peerPort, remoteId);
    return (row as { errorCode: string | null; errorMessage: string | null } | undefined) ?? null;
  }

  insertFile(row: FileRow): void {
    this.#sql(
        `INSERT OR REPLACE INTO files (peer_port, name, size, sha256, from_id, transfer_id, received_at)
         VALUES (@peerPort, @name, @size, @sha256, @fromId, @transferId, @receivedAt)`,
      )
      .run(row);
  }

  listFiles(peerPort: number): FileRow[] {
    return this.#sql(
        `SELECT peer_port AS peerPort, name, size, sha256, from_id AS fromId, transfer_id AS transferId, received_at AS receivedAt
         FROM files WHERE peer_port = ? ORDER BY received_at DESC, name`,
      )
      .all(peerPort) as FileRow[];
  }

  file(peerPort: number, name: string): FileRow | null {
    const row = this.#sql(
      `SELECT peer_port AS peerPort, name, size, sha256, from_id AS fromId, transfer_id AS transferId, received_at AS receivedAt
       FROM files WHERE peer_port = ? AND name = ?`,
    ).get(peerPort, name);
    return (row as FileRow | undefined) ?? null;
  }

  deleteFile(peerPort: number, name: string): boolean {
    return this.#sql('DELETE FROM files WHERE peer_port = ? AND name = ?').run(peerPort, name).changes > 0;
  }

  trust(peerPort: number, remoteId: string): void {
    this.#sql('INSERT OR IGNORE INTO trusted (peer_port, remote_id, added_at) VALUES (?, ?, ?)').run(peerPort, remoteId, new Date().toISOString());
  }

  untrust(peerPort: number, remoteId: string): boolean {
    return this.#sql('DELETE FROM trusted WHERE peer_port = ? AND remote_id = ?').run(peerPort, remoteId).changes > 0;
  }

  trusted(peerPort: number): string[] {
    return (this.#sql('SELECT remote_id AS id FROM trusted WHERE peer_port = ? ORDER BY added_at').all(peerPort) as Array<{ id: string }>).map((r) => r.id);
  }

  isTrusted(peerPort: number, remoteId: string): boolean {
    return this.#sql('SELECT 1 FROM trusted WHERE peer_port = ? AND remote_id = ?').get(peerPort, remoteId) !== undefined;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
