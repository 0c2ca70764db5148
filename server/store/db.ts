// The embedded database (SQLite via better-sqlite3) in the data directory:
// peers with their identities, and the remote peers each one keeps dialling.
// Schema changes are numbered migrations tracked in PRAGMA user_version.

import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const DB_FILE = 'meshdrop.db';

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

export class Store {
  readonly #db: Database.Database;

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
    return this.#db
      .prepare('SELECT port, id, cert_pem AS certPem, key_pem AS keyPem, created_at AS createdAt FROM peers ORDER BY port')
      .all() as PeerRow[];
  }

  insertPeer(row: PeerRow): void {
    this.#db
      .prepare('INSERT INTO peers (port, id, cert_pem, key_pem, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(row.port, row.id, row.certPem, row.keyPem, row.createdAt);
  }

  deletePeer(port: number): void {
    this.#db.prepare('DELETE FROM peers WHERE port = ?').run(port);
  }

  listRemotes(peerPort: number): RemoteRow[] {
    return this.#db
      .prepare('SELECT peer_port AS peerPort, remote_id AS remoteId, host, port FROM remotes WHERE peer_port = ? ORDER BY added_at')
      .all(peerPort) as RemoteRow[];
  }

  upsertRemote(row: RemoteRow): void {
    this.#db
      .prepare(
        `INSERT INTO remotes (peer_port, remote_id, host, port, added_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (peer_port, remote_id) DO UPDATE SET host = excluded.host, port = excluded.port`,
      )
      .run(row.peerPort, row.remoteId, row.host, row.port, new Date().toISOString());
  }

  deleteRemote(peerPort: number, remoteId: string): void {
    this.#db.prepare('DELETE FROM remotes WHERE peer_port = ? AND remote_id = ?').run(peerPort, remoteId);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
