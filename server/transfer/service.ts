// All transfers of a daemon: routes transfer messages from peer connections to
// the Sender or Receiver they belong to, starts sends, accepts offers, and
// answers the API. Knows peers only through attach(); no HTTP here.

import { randomBytes } from 'node:crypto';
import { mkdir, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, type Reason } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { PeerConnection } from '../peer/connection.js';
import type { Peer } from '../peer/peer.js';
import { TRANSFER_FEATURE, TRANSFER_ID_BYTES, type OfferMessage, type TransferMessage } from '../protocol/transfer-messages.js';
import type { FileRow, Store } from '../store/db.js';
import { printable, safeName } from './names.js';
import { Receiver } from './receiver.js';
import { TransferRecord } from './record.js';
import { Sender, WriteGate } from './sender.js';
import type { TransferState, TransferView } from './view.js';

// Keep this much free beyond the file itself, so a transfer never fills the disk to the brim.
const SPACE_MARGIN = 64 * 1024 * 1024;

export interface OutgoingFile {
  path: string;
  name: string;
  size: number;
  mime: string;
  /** Known when the file was hashed on arrival (an upload): the sender checks it still matches. */
  sha256?: string;
}

interface Attached {
  peer: Peer;
  inboxDir: string;
  partialDir: string;
}

export class TransferService {
  readonly #store: Store;
  readonly #bus: EventBus;
  readonly #dataDir: string;
  readonly #peers = new Map<number, Attached>();
  readonly #records = new Map<string, TransferRecord>();
  readonly #senders = new Map<string, Sender>(); // by wire id (we chose it)
  readonly #receivers = new Map<string, Receiver>(); // by `${port}:${remoteId}:${wireId}`
  readonly #gates = new WeakMap<PeerConnection, WriteGate>();

  constructor(opts: { store: Store; bus: EventBus; dataDir: string }) {
    this.#store = opts.store;
    this.#bus = opts.bus;
    this.#dataDir = opts.dataDir;
    // Transfers cut short by a previous run of the daemon cannot resume yet: say so.
    for (const row of this.#store.listTransfers()) {
      if (!['completed', 'failed', 'rejected', 'canceled'].includes(row.state)) {
        this.#store.saveTransfer({ ...row, state: 'failed', errorCode: 'interrupted', errorMessage: 'the daemon stopped during the transfer', updatedAt: new Date().toISOString() });
      }
    }
  }

  peerDir(port: number): string {
    return join(this.#dataDir, 'peers', String(port));
  }

  async attach(port: number, peer: Peer): Promise<void> {
    const dir = this.peerDir(port);
    const attached = { peer, inboxDir: join(dir, 'inbox'), partialDir: join(dir, 'partial') };
    await mkdir(attached.inboxDir, { recursive: true, mode: 0o700 });
    await mkdir(attached.partialDir, { recursive: true, mode: 0o700 });
    this.#peers.set(port, attached);
    peer.on('connection.opened', (conn) => conn.on('message', (msg) => this.#route(port, conn, msg)));
    peer.on('connection.closed', (conn, info) => this.#connectionLost(conn, info.reason));
  }

  detach(port: number): void {
    this.#peers.delete(port);
    const reason = { code: 'peer_removed', message: `peer ${port} was removed` };
    for (const s of this.#senders.values()) if (s.record.row.peerPort === port) s.stop(reason, 'canceled');
    for (const r of this.#receivers.values()) if (r.record.row.peerPort === port) r.fail(reason, false, 'canceled');
  }

  /** The open connection of `port` that a target names: a peer id, "host:port", or a bare port on 127.0.0.1. */
  resolveTarget(port: number, target: string): PeerConnection {
    const peer = this.#attached(port).peer;
    const conns = peer.connections();
    let conn: PeerConnection | undefined;
    if (/^[0-9a-f]{64}$/.test(target)) {
      conn = peer.connection(target);
    } else {
      const m = /^(?:(.+):)?([0-9]{1,5})$/.exec(target);
      if (!m) throw new ApiError('invalid_target', `"${printable(target)}" is not a peer id, host:port or port`);
      const host = (m[1] ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
      const p = Number(m[2]);
      conn = conns.find((c) => c.remote?.port === p && (c.remoteHost === host || (host === 'localhost' && c.remoteHost === '127.0.0.1')));
    }
    if (!conn) throw new ApiError('not_connected', `peer ${port} has no connection to ${printable(target)}`);
    if (!conn.sharedFeatures.includes(TRANSFER_FEATURE)) {
      throw new ApiError('not_connected', `the peer at ${printable(target)} does not support file transfer`);
    }
    return conn;
  }

  /** Starts one transfer per file and target; answers at once with their records. */
  send(port: number, targets: PeerConnection[], files: OutgoingFile[], opts: { removeAfter?: boolean } = {}): TransferView[] {
    const { peer } = this.#attached(port);
    const views: TransferView[] = [];
    for (const file of files) {
      // An uploaded file lives in the outbox until every transfer of it has ended.
      let pending = targets.length;
      const release = () => {
        if (opts.removeAfter && --pending === 0) void unlink(file.path).catch(() => {});
      };
      for (const conn of targets) {
        const wireId = randomBytes(TRANSFER_ID_BYTES).toString('hex');
        const record = this.#track(
          new TransferRecord(
            { wireId, direction: 'out', peerPort: port, localId: peer.id, remoteId: conn.remoteId!, name: file.name, size: file.size, path: file.path },
            this.#store,
            this.#bus,
          ),
        );
        let gate = this.#gates.get(conn);
        if (!gate) this.#gates.set(conn, (gate = new WriteGate()));
        const sender = new Sender(record, conn, gate, file.path, file.mime, file.sha256);
        this.#senders.set(wireId, sender);
        void sender
          .run()
          .catch((err: NodeJS.ErrnoException) => sender.stop({ code: 'read_failed', message: `cannot read ${file.name}: ${err.code ?? err.message}` }, 'failed'))
          .finally(() => {
            this.#senders.delete(wireId);
            release();
          });
        views.push(record.view());
      }
    }
    return views;
  }

  list(filter: { peer?: number; state?: TransferState } = {}): TransferView[] {
    return [...this.#records.values()]
      .filter((r) => (filter.peer === undefined || r.row.peerPort === filter.peer) && (filter.state === undefined || r.state === filter.state))
      .map((r) => r.view());
  }

  get(id: string): TransferView {
    return this.#record(id).view();
  }

  cancel(id: string): TransferView {
    const record = this.#record(id);
    const reason = { code: 'canceled_by_user', message: 'the transfer was canceled by the user' };
    for (const s of this.#senders.values()) if (s.record === record) s.cancel(reason);
    for (const r of this.#receivers.values()) if (r.record === record) r.fail(reason, true, 'canceled');
    return record.view();
  }

  files(port: number): FileRow[] {
    this.#attached(port);
    return this.#store.listFiles(port);
  }

  /** The inbox path of a received file, after checking it is one the store knows. */
  filePath(port: number, name: string): string {
    const known = this.files(port).find((f) => f.name === name);
    if (!known) throw new ApiError('file_not_found', `peer ${port} has no received file named "${printable(name)}"`);
    return join(this.#attached(port).inboxDir, known.name);
  }

  async deleteFile(port: number, name: string): Promise<void> {
    const path = this.filePath(port, name);
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.#store.deleteFile(port, name);
  }

  #track(record: TransferRecord): TransferRecord {
    this.#records.set(record.row.id, record);
    return record;
  }

  #record(id: string): TransferRecord {
    const record = this.#records.get(id);
    if (!record) throw new ApiError('transfer_not_found', `no transfer ${printable(id)}`);
    return record;
  }

  #attached(port: number): Attached {
    const attached = this.#peers.get(port);
    if (!attached) throw new ApiError('peer_not_found', `no running peer on port ${port}`);
    return attached;
  }

  #route(port: number, conn: PeerConnection, msg: TransferMessage): void {
    const remoteId = conn.remoteId!;
    const sender = this.#senders.get(msg.id);
    if (sender && sender.connection === conn && ['accept', 'reject', 'credit', 'result', 'cancel'].includes(msg.type)) {
      sender.onMessage(msg);
      return;
    }
    const key = `${port}:${remoteId}:${msg.id}`;
    if (msg.type === 'offer') {
      void this.#onOffer(port, conn, key, msg).catch((err: Error) =>
        conn.send({ type: 'reject', id: msg.id, code: 'internal_error', message: err.message }),
      );
      return;
    }
    const receiver = this.#receivers.get(key);
    if (!receiver) return; // late frames of a transfer that already ended
    if (msg.type === 'data') receiver.onData(msg);
    else if (msg.type === 'end') receiver.onEnd(msg);
    else if (msg.type === 'cancel') receiver.fail({ code: msg.code, message: msg.message }, false);
  }

  async #onOffer(port: number, conn: PeerConnection, key: string, offer: OfferMessage): Promise<void> {
    const attached = this.#attached(port);
    const reject = (reason: Reason): void => {
      conn.send({ type: 'reject', id: offer.id, ...reason });
    };
    if (this.#receivers.has(key)) return reject({ code: 'duplicate_transfer', message: 'this transfer id is already in progress' });
    const safe = safeName(offer.name);
    if (!safe.ok) return reject({ code: safe.code, message: safe.message });
    const space = await statfs(attached.partialDir);
    const free = space.bavail * space.bsize;
    if (free < offer.size + SPACE_MARGIN) {
      return reject({ code: 'insufficient_space', message: `the file needs ${offer.size} bytes; ${free} are free` });
    }
    const record = this.#track(
      new TransferRecord(
        { wireId: offer.id, direction: 'in', peerPort: port, localId: attached.peer.id, remoteId: conn.remoteId!, name: safe.name, size: offer.size, path: null },
        this.#store,
        this.#bus,
      ),
    );
    const receiver = new Receiver(record, conn, offer, attached, (name) =>
      this.#store.insertFile({
        peerPort: port,
        name,
        size: offer.size,
        sha256: record.row.sha256!,
        fromId: conn.remoteId!,
        transferId: record.row.id,
        receivedAt: new Date().toISOString(),
      }),
    );
    this.#receivers.set(key, receiver);
    // Drop the receiver from the routing table once it ends, whatever the outcome.
    record.onFinal = () => this.#receivers.delete(key);
    await receiver.start();
  }

  #connectionLost(conn: PeerConnection, reason: Reason): void {
    const lost = { code: 'connection_lost', message: `the connection closed: ${reason.message} (${reason.code})` };
    for (const s of this.#senders.values()) if (s.connection === conn) s.stop(lost, 'failed');
    for (const r of this.#receivers.values()) if (r.connection === conn) r.fail(lost, false);
  }
}

/** Size of a regular file the daemon can read, or an ApiError saying why not. */
export async function fileToSend(path: string): Promise<{ size: number }> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new ApiError('invalid_path', `${printable(path)} is not a regular file`);
    return { size: s.size };
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ApiError('file_not_found', `${printable(path)} does not exist`);
    throw new ApiError('invalid_path', `cannot read ${printable(path)}: ${code}`);
  }
}
