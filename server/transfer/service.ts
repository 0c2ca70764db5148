// All transfers of a daemon: routes transfer messages from peer connections to
// the Sender or Receiver they belong to, starts sends, accepts offers, and
// answers the API. Knows peers only through attach(); no HTTP here.

import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, type Reason } from '../errors.js';
import { payloadPool } from '../protocol/buffer-pool.js';
import type { EventBus } from '../events/bus.js';
import type { PeerConnection } from '../peer/connection.js';
import type { Peer } from '../peer/peer.js';
import { TRANSFER_FEATURE, TRANSFER_ID_BYTES, type OfferMessage, type TransferMessage } from '../protocol/transfer-messages.js';
import type { FileRow, Ledger, Store } from '../store/db.js';
import { printable, safeName } from './names.js';
import { UploadFailed, type GrowingFile } from './growing-file.js';
import { PendingOffers, type PendingOffer } from './offers.js';
import { Receiver } from './receiver.js';
import { TransferRecord } from './record.js';
import { incomingKey, TransferRecords } from './records.js';
import { Sender, WriteGate } from './sender.js';
import type { TransferState, TransferView } from './view.js';

// Keep this much free beyond the file itself, so a transfer never fills the disk to the brim.
const SPACE_MARGIN = 64 * 1024 * 1024;

export interface OutgoingFile {
  path: string;
  name: string;
  size: number;
  mime: string;
  /** Known when the file was hashed on arrival (an upload). */
  sha256?: string;
  /** An upload still arriving: sending starts before it ends. */
  growing?: GrowingFile;
}

/** How long an offer from another daemon waits for the user before it is declined. */
export const DEFAULT_OFFER_TIMEOUT_MS = 10 * 60 * 1000;

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
  readonly #records: TransferRecords;
  readonly #senders = new Map<string, Sender>(); // by wire id (we chose it)
  readonly #receivers = new Map<string, Receiver>(); // by incomingKey()
  readonly #gates = new WeakMap<PeerConnection, WriteGate>();
  /** OFFERs still being looked at (by receiver key), and the CANCEL that arrived meanwhile, if any. */
  readonly #offering = new Map<string, Reason | null>();

  readonly #isLocal: (id: string) => boolean;
  /** Offers from other daemons waiting for the user, by receiver key. */
  readonly #pending: PendingOffers;

  constructor(opts: { store: Store; bus: EventBus; dataDir: string; offerTimeoutMs?: number; isLocal?: (id: string) => boolean; keepEnded?: number }) {
    this.#store = opts.store;
    this.#bus = opts.bus;
    this.#records = new TransferRecords(opts.store, opts.bus, opts.keepEnded);
    this.#dataDir = opts.dataDir;
    this.#pending = new PendingOffers(opts.offerTimeoutMs ?? DEFAULT_OFFER_TIMEOUT_MS);
    this.#isLocal = opts.isLocal ?? (() => false);
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
    this.#restore(port, peer.id, attached);
    peer.on('connection.opened', (conn) => {
      conn.on('message', (msg) => this.#route(port, conn, msg));
      this.#resumeSenders(port, conn);
    });
    peer.on('connection.closed', (conn, info) => this.#connectionLost(conn, info.reason));
  }

  /** Unfinished transfers of a previous run come back paused; they resume when their peer connects. */
  #restore(port: number, localId: string, attached: Attached): void {
    const rows = this.#store.unfinishedTransfers(port);
    const outbox = join(this.peerDir(port), 'outbox');
    // An upload sent to several targets has one outbox copy: it goes when the last of
    // them ends, as in send(), not when the first restored one does.
    const users = new Map<string, number>();
    for (const row of rows) if (row.direction === 'out' && row.path?.startsWith(outbox + '/')) users.set(row.path, (users.get(row.path) ?? 0) + 1);
    const release = (path: string) => () => {
      const left = (users.get(path) ?? 1) - 1;
      users.set(path, left);
      if (left === 0) void unlink(path).catch(() => {});
    };
    for (const row of rows) {
      const ledger = this.#store.ledger(row.id);
      if (row.direction === 'in' && row.state === 'offered' && ledger && ledger.chunkSize > 0) {
        // Still waiting for the user: it goes on waiting (its clock keeps running), and the
        // sender's next OFFER of it finds it here rather than asking again.
        const record = this.#track(new TransferRecord({ ...row, localId, path: null }, this.#store, this.#bus, row));
        const offer: OfferMessage = { type: 'offer', id: row.wireId, name: row.name, size: row.size, mime: ledger.mime, chunkSize: ledger.chunkSize };
        this.#pending.add(incomingKey(port, row.remoteId, row.wireId), { record, conn: null, offer, accepted: false }, Date.now() - Date.parse(row.createdAt));
        continue;
      }
      const record = this.#track(new TransferRecord({ ...row, localId, path: row.path }, this.#store, this.#bus, { ...row, state: 'paused' }));
      const reason = { code: 'interrupted', message: 'the daemon restarted; resumes when the peer connects' };
      if (row.direction === 'out' && row.path) {
        // An uploaded file's hash was recorded when its upload ended: its outbox copy may
        // lack the chunks its receivers had already saved, so it cannot be hashed again.
        const uploaded = row.path.startsWith(outbox + '/');
        if (uploaded && !row.sha256 && (statSync(row.path, { throwIfNoEntry: false })?.size ?? 0) < row.size) {
          // The daemon stopped before the upload had arrived whole: there is nothing to send
          // (every transfer of that upload is in the same case). A whole copy without a
          // recorded hash (a daemon from before the hash was recorded) is hashed again.
          record.setState('failed', { code: 'interrupted', message: 'the daemon stopped while the file was still being uploaded' });
          void unlink(row.path).catch(() => {});
          continue;
        }
        this.#addSender(record, row.path, ledger?.mime ?? 'application/octet-stream', uploaded && row.sha256 ? { sha256: row.sha256 } : {}, uploaded ? release(row.path) : () => {});
        record.setState('paused', reason);
      } else if (row.direction === 'in' && ledger?.tempPath && ledger.chunkSize > 0) {
        const offer: OfferMessage = { type: 'offer', id: row.wireId, name: row.name, size: row.size, mime: ledger.mime, chunkSize: ledger.chunkSize };
        // What counts as done is what the ledger says is durable, not the last progress saved.
        record.row.bytesDone = Math.min(row.size, ledger.verified * ledger.chunkSize);
        this.#addReceiver(port, row.remoteId, record, offer, attached, null, ledger);
        record.setState('paused', reason);
      } else {
        record.setState('failed', { code: 'interrupted', message: 'the daemon stopped before the transfer could be resumed' });
      }
    }
  }

  /** Forgets a peer that could not start (its port is taken), without ending its transfers. */
  release(port: number, peer: Peer): void {
    if (this.#peers.get(port)?.peer === peer) this.#peers.delete(port);
  }

  detach(port: number): void {
    this.#peers.delete(port);
    const reason = { code: 'peer_removed', message: `peer ${port} was removed` };
    for (const s of this.#senders.values()) if (s.record.row.peerPort === port) s.halt(reason, 'canceled');
    for (const r of this.#receivers.values()) if (r.record.row.peerPort === port) r.fail(reason, false, 'canceled');
    this.#pending.dropPeer(port, reason);
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
        this.#store.saveLedger(record.row.id, { chunkSize: 0, verified: 0, chunkHashes: null, tempPath: null, mime: file.mime });
        this.#run(this.#addSender(record, file.path, file.mime, { sha256: file.sha256, growing: file.growing }, release), conn);
        views.push(record.view());
      }
    }
    return views;
  }

  #addSender(record: TransferRecord, path: string, mime: string, known: { sha256?: string; growing?: GrowingFile }, onFinal: () => void): Sender {
    const sender = new Sender(record, path, mime, known);
    this.#senders.set(record.row.wireId, sender);
    record.onFinal = () => {
      this.#senders.delete(record.row.wireId);
      onFinal();
    };
    return sender;
  }

  /** Starts an attempt on `conn` once any previous attempt has finished unwinding. */
  #run(sender: Sender, conn: PeerConnection): void {
    let gate = this.#gates.get(conn);
    if (!gate) this.#gates.set(conn, (gate = new WriteGate()));
    const name = sender.record.row.name;
    void sender
      .whenIdle()
      .then(() => sender.run(conn, gate))
      .catch((err: NodeJS.ErrnoException) =>
        sender.stop(err instanceof UploadFailed ? err.reason : { code: 'read_failed', message: `cannot read ${name}: ${err.code ?? err.message}` }, 'failed'),
      );
  }

  /** A connection to a peer opened: paused transfers to it (not paused by the user) go on. */
  #resumeSenders(port: number, conn: PeerConnection): void {
    for (const s of this.#senders.values()) {
      const r = s.record;
      if (r.row.peerPort === port && r.row.remoteId === conn.remoteId && r.state === 'paused' && r.row.errorCode !== 'paused_by_user') {
        this.#run(s, conn);
      }
    }
  }

  pause(id: string): TransferView {
    const sender = this.#senderOf(id);
    if (!sender.record.final && sender.record.state !== 'paused') {
      sender.stop({ code: 'paused_by_user', message: 'paused by the user' }, 'paused');
    }
    return sender.record.view();
  }

  resume(id: string): TransferView {
    const sender = this.#senderOf(id);
    const r = sender.record;
    if (r.state === 'paused') {
      const conn = this.#peers.get(r.row.peerPort)?.peer.connection(r.row.remoteId);
      if (!conn) throw new ApiError('not_connected', 'the receiving peer is not connected; the transfer resumes when it is');
      this.#run(sender, conn);
    }
    return r.view();
  }

  #senderOf(id: string): Sender {
    const record = this.#record(id);
    if (record.row.direction !== 'out') throw new ApiError('wrong_side', 'pause and resume a transfer on the sending peer');
    const sender = this.#senders.get(record.row.wireId);
    if (!sender) throw new ApiError('transfer_not_found', `transfer ${printable(id)} has ended`);
    return sender;
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
    const waiting = this.#pending.find(record);
    if (waiting) {
      this.#pending.decline(waiting[0], reason);
      return record.view();
    }
    for (const s of this.#senders.values()) if (s.record === record) s.stop(reason, 'canceled');
    for (const r of this.#receivers.values()) if (r.record === record) r.fail(reason, true, 'canceled');
    return record.view();
  }

  /** Fails an outgoing transfer for a reason of our own (its upload broke off), telling the receiver. */
  abort(id: string, reason: Reason): void {
    const record = this.#record(id);
    if (record.row.direction === 'out') this.#senders.get(record.row.wireId)?.stop(reason, 'failed');
  }

  files(port: number): FileRow[] {
    this.#attached(port);
    return this.#store.listFiles(port);
  }

  /** The inbox path of a received file, after checking it is one the store knows. */
  filePath(port: number, name: string): string {
    const { inboxDir } = this.#attached(port);
    const known = this.#store.file(port, name);
    if (!known) throw new ApiError('file_not_found', `peer ${port} has no received file named "${printable(name)}"`);
    return join(inboxDir, known.name);
  }

  async deleteFile(port: number, name: string): Promise<void> {
    const path = this.filePath(port, name);
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.#store.deleteFile(port, name);
  }

  #track(record: TransferRecord): TransferRecord {
    return this.#records.add(record);
  }

  #record(id: string): TransferRecord {
    const record = this.#records.find(id);
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
    if (sender && sender.connection === conn && sender.record.row.remoteId === remoteId && ['accept', 'reject', 'credit', 'saved', 'result', 'cancel'].includes(msg.type)) {
      sender.onMessage(msg);
      return;
    }
    const key = incomingKey(port, remoteId, msg.id);
    if (msg.type === 'offer') {
      this.#offering.set(key, null);
      void this.#onOffer(port, conn, key, msg)
        .catch((err: Error) => conn.send({ type: 'reject', id: msg.id, code: 'internal_error', message: err.message }))
        .finally(() => this.#offering.delete(key));
      return;
    }
    if (msg.type === 'cancel' && this.#offering.has(key) && !this.#receivers.has(key) && !this.#pending.get(key)) {
      // The sender gave up while we were still checking its offer: drop the offer.
      this.#offering.set(key, { code: msg.code, message: msg.message });
      return;
    }
    const waiting = this.#pending.get(key);
    if (waiting && msg.type === 'cancel') {
      // The sender gave up on an offer nobody has answered yet (a pause keeps it waiting).
      if (msg.code !== 'paused_by_user') {
        this.#pending.take(key);
        waiting.record.setState(msg.code === 'canceled_by_user' ? 'canceled' : 'failed', { code: msg.code, message: msg.message });
      }
      return;
    }
    const receiver = this.#receivers.get(key);
    if (!receiver) {
      // Late frames of a transfer that already ended.
      if (msg.type === 'data') payloadPool.give(msg.bytes);
      return;
    }
    if ((msg.type === 'data' || msg.type === 'end') && receiver.connection !== conn) {
      // An earlier attempt's chunks, on a connection the transfer has left (it was offered
      // again on another): they must not mix with the new attempt's.
      if (msg.type === 'data') payloadPool.give(msg.bytes);
      return;
    }
    if (msg.type === 'data') receiver.onData(msg);
    else if (msg.type === 'end') receiver.onEnd(msg);
    else if (msg.type === 'cancel') {
      // A pause keeps the verified chunks for later; anything else ends the transfer.
      if (msg.code === 'paused_by_user') receiver.pause({ code: msg.code, message: msg.message });
      else receiver.fail({ code: msg.code, message: msg.message }, false, msg.code === 'canceled_by_user' ? 'canceled' : 'failed');
    }
  }

  async #onOffer(port: number, conn: PeerConnection, key: string, offer: OfferMessage): Promise<void> {
    const attached = this.#attached(port);
    const reject = (reason: Reason): void => {
      conn.send({ type: 'reject', id: offer.id, ...reason });
    };
    const waiting = this.#pending.get(key);
    if (waiting) {
      // Offered again (the link came back) while still waiting for the user.
      waiting.conn = conn;
      waiting.offer = { ...waiting.offer, live: offer.live };
      if (waiting.accepted) await this.accept(waiting.record.row.id);
      return;
    }
    const known = this.#receivers.get(key);
    if (known) {
      // The same transfer offered again (after a cut, a pause or a restart): resume it.
      if (!known.matches(offer)) return reject({ code: 'duplicate_transfer', message: 'this transfer id is already in progress' });
      // The sender started over (it may have paused while we were accepting): so do we.
      if (known.record.state !== 'paused') known.pause({ code: 'connection_lost', message: 'the sender offered the transfer again' });
      return known.start(conn, offer);
    }
    const answered = this.#records.declined(port, conn.remoteId!, offer.id);
    // Declined (or expired) while its sender was away: tell it now rather than ask again.
    if (answered) return reject(answered);
    const safe = safeName(offer.name);
    if (!safe.ok) return reject({ code: safe.code, message: safe.message });
    const space = await statfs(attached.partialDir);
    if (this.#offering.get(key)) return; // canceled meanwhile
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
    if (!this.#isLocal(conn.remoteId!) && !this.#store.isTrusted(port, conn.remoteId!)) {
      // From another daemon, and not trusted: the user decides (transfer.offered). The
      // ledger keeps the offer, so it still waits after a restart.
      this.#store.saveLedger(record.row.id, { chunkSize: offer.chunkSize, verified: 0, chunkHashes: null, tempPath: null, mime: offer.mime });
      this.#pending.add(key, { record, conn, offer, accepted: false });
      return;
    }
    await this.#addReceiver(port, conn.remoteId!, record, offer, attached, conn, null).start(conn);
  }

  /** The user accepts an offer that was waiting (transfer.offered). */
  async accept(id: string): Promise<TransferView> {
    const [key, p] = this.#pendingOf(id);
    if (p.conn?.state !== 'open') {
      // The sender offers again when it reconnects; accept it then without asking.
      this.#pending.hold(key);
      return p.record.view();
    }
    this.#pending.take(key);
    const port = p.record.row.peerPort;
    await this.#addReceiver(port, p.record.row.remoteId, p.record, p.offer, this.#attached(port), p.conn, null).start(p.conn);
    return p.record.view();
  }

  /** The user declines an offer that was waiting. */
  reject(id: string): TransferView {
    const [key, p] = this.#pendingOf(id);
    this.#pending.decline(key, { code: 'rejected_by_user', message: 'the receiver declined the file' });
    return p.record.view();
  }

  #pendingOf(id: string): [string, PendingOffer] {
    const found = this.#pending.find(this.#record(id));
    if (!found) throw new ApiError('not_offered', `transfer ${printable(id)} is not an offer waiting for an answer`);
    return found;
  }

  trust(port: number, remoteId: string): void {
    this.#attached(port);
    this.#store.trust(port, remoteId);
  }

  untrust(port: number, remoteId: string): void {
    this.#attached(port);
    if (!this.#store.untrust(port, remoteId)) throw new ApiError('not_found', `peer ${port} does not trust ${printable(remoteId)}`);
  }

  trusted(port: number): string[] {
    this.#attached(port);
    return this.#store.trusted(port);
  }

  #addReceiver(port: number, remoteId: string, record: TransferRecord, offer: OfferMessage, attached: Attached, conn: PeerConnection | null, ledger: Ledger | null): Receiver {
    const key = incomingKey(port, remoteId, offer.id);
    const receiver = new Receiver({
      record,
      // A restored receiver has no connection until the sender offers again.
      conn: conn ?? (null as unknown as PeerConnection),
      offer,
      paths: attached,
      store: this.#store,
      ledger,
      onStored: (name) =>
        this.#store.insertFile({ peerPort: port, name, size: offer.size, sha256: record.row.sha256!, fromId: remoteId, transferId: record.row.id, receivedAt: new Date().toISOString() }),
    });
    this.#receivers.set(key, receiver);
    // Drop the receiver from the routing table once it ends, whatever the outcome.
    record.onFinal = () => this.#receivers.delete(key);
    return receiver;
  }

  #connectionLost(conn: PeerConnection, reason: Reason): void {
    const lost = { code: 'connection_lost', message: `the connection closed: ${reason.message} (${reason.code})` };
    // Both ends keep what they have; the sender offers again when the peers reconnect.
    for (const s of this.#senders.values()) if (s.connection === conn && s.running) s.halt(lost, 'paused');
    for (const r of this.#receivers.values()) if (r.connection === conn) r.pause(lost);
  }
}
