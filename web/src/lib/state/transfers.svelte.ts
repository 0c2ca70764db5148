import type { DaemonEvent, ReceivedFile, Transfer, TransferState } from '../api/types';
import type { ReadableError } from '../errors';

const FINAL_STATES: ReadonlySet<TransferState> = new Set(['completed', 'failed', 'rejected', 'canceled']);

/**
 * Ended transfers the page keeps (as the daemon does, server/transfer/records.ts): a
 * dashboard left open through thousands of transfers would otherwise hold and sort
 * every one of them on each update.
 */
export const KEEP_ENDED = 1000;

export function isFinal(transfer: Transfer): boolean {
  return FINAL_STATES.has(transfer.state);
}

// How far along the state machine a live transfer is; a record from further back is stale.
const STAGE: Record<TransferState, number> = {
  queued: 0,
  offered: 1,
  transferring: 2,
  paused: 2,
  completed: 3,
  failed: 3,
  rejected: 3,
  canceled: 3,
};

/**
 * True when `next` is older than what we already show. Records reach us from
 * three places (events, the POST answer, REST snapshots) that can cross: the
 * 202 of a send is "queued" but often lands after the first progress events.
 */
function isStale(next: Transfer, prev: Transfer): boolean {
  if (STAGE[next.state] !== STAGE[prev.state]) return STAGE[next.state] < STAGE[prev.state];
  if (isFinal(next)) return false;
  // Paused and transferring go back and forth at the same stage: the later change wins
  // (the answer to a resume still says "paused" and may land after "started"; a resumed
  // transfer may restart from fewer bytes than it showed when it paused).
  if (next.state !== prev.state) return next.updatedAt < prev.updatedAt;
  return next.bytesDone < prev.bytesDone;
}

function newestFirst(a: { at: string; key: string }, b: { at: string; key: string }): number {
  return a.at === b.at ? (a.key < b.key ? -1 : 1) : a.at < b.at ? 1 : -1;
}

/** Files the browser is still uploading to the daemon, before it has transfer records for them. */
export interface Upload {
  key: string;
  port: number;
  /** The connection (remote peer id) the files go to. */
  target: string;
  files: { name: string; size: number }[];
  size: number;
  startedAt: string;
  error: ReadableError | null;
  controller: AbortController;
}

/**
 * Transfers of every peer of the daemon, kept current by events (like
 * PeersState, so switching peers never waits), the uploads this page has in
 * flight, and the received files of the peers the user has looked at.
 *
 * Upserts are idempotent and ignore stale records, so a REST snapshot and the
 * events buffered around it can be applied in any overlap.
 */
export class TransfersState {
  byId = $state<Record<string, Transfer>>({});
  uploads = $state<Upload[]>([]);
  /** Received files by peer port; a port is missing until loaded (or after it went stale). */
  files = $state<Record<number, ReceivedFile[]>>({});
  filesError = $state<Record<number, ReadableError>>({});
  /** The last outcome worth telling a screen reader about ("Sent report.pdf to 7001."). */
  announcement = $state('');
  readonly #keep: number;
  /** Ids of the ended transfers in byId, in the order they ended (not reactive). */
  #ended = new Set<string>();
  /**
   * Ids forgotten lately: a late REST answer (an upload's 202, a resume) that still names
   * one must not bring it back, as it would then never end here.
   */
  #forgotten = new Set<string>();

  constructor(keepEnded = KEEP_ENDED) {
    this.#keep = keepEnded;
  }

  /** One peer's transfers, both directions, newest first. */
  forPeer(port: number): Transfer[] {
    return Object.values(this.byId)
      .filter((t) => t.peer === port)
      .sort((a, b) => newestFirst({ at: a.createdAt, key: a.id }, { at: b.createdAt, key: b.id }));
  }

  uploadsFor(port: number): Upload[] {
    return this.uploads.filter((u) => u.port === port);
  }

  replaceAll(transfers: Transfer[]): void {
    const next: Record<string, Transfer> = {};
    for (const t of transfers) next[t.id] = t;
    this.byId = next;
    this.#ended = new Set();
    this.#forgotten = new Set();
    const ended = transfers.filter(isFinal).sort((a, b) => (a.updatedAt < b.updatedAt ? -1 : a.updatedAt > b.updatedAt ? 1 : 0));
    for (const t of ended) this.#retire(t.id);
  }

  upsert(transfer: Transfer): void {
    if (this.#forgotten.has(transfer.id)) return;
    const prev = this.byId[transfer.id];
    if (prev && isStale(transfer, prev)) return;
    this.byId[transfer.id] = transfer;
    if (isFinal(transfer)) this.#retire(transfer.id);
  }

  /** Counts `id` as ended; past the limit, the one that ended first is forgotten. */
  #retire(id: string): void {
    if (this.#ended.has(id)) return;
    this.#ended.add(id);
    for (const old of this.#ended) {
      if (this.#ended.size <= this.#keep) break;
      this.#ended.delete(old);
      delete this.byId[old];
      this.#forgotten.add(old);
      for (const gone of this.#forgotten) {
        if (this.#forgotten.size <= this.#keep) break;
        this.#forgotten.delete(gone);
      }
    }
  }

  addUpload(upload: Upload): void {
    this.uploads.push(upload);
  }

  failUpload(key: string, error: ReadableError): void {
    const upload = this.uploads.find((u) => u.key === key);
    if (upload) upload.error = error;
  }

  removeUpload(key: string): void {
    const index = this.uploads.findIndex((u) => u.key === key);
    if (index !== -1) this.uploads.splice(index, 1);
  }

  hasFiles(port: number): boolean {
    return port in this.files;
  }

  setFiles(port: number, files: ReceivedFile[]): void {
    this.files[port] = [...files].sort((a, b) =>
      newestFirst({ at: a.receivedAt, key: a.name }, { at: b.receivedAt, key: b.name }),
    );
    delete this.filesError[port];
  }

  setFilesError(port: number, error: ReadableError): void {
    this.filesError[port] = error;
  }

  removeFile(port: number, name: string): void {
    const list = this.files[port];
    const index = list?.findIndex((f) => f.name === name) ?? -1;
    if (list && index !== -1) list.splice(index, 1);
  }

  /** Drop cached file lists: they are loaded again when next shown. */
  forgetFiles(port?: number): void {
    if (port === undefined) {
      this.files = {};
      this.filesError = {};
    } else {
      delete this.files[port];
      delete this.filesError[port];
    }
  }

  removePeer(port: number): void {
    const next: Record<string, Transfer> = {};
    for (const t of Object.values(this.byId)) if (t.peer !== port) next[t.id] = t;
    this.byId = next;
    for (const id of this.#ended) if (!(id in next)) this.#ended.delete(id);
    for (const upload of this.uploadsFor(port)) upload.controller.abort();
    this.uploads = this.uploads.filter((u) => u.port !== port);
    this.forgetFiles(port);
  }

  apply(event: DaemonEvent): void {
    switch (event.type) {
      case 'transfer.offered':
      case 'transfer.started':
      case 'transfer.paused':
      case 'transfer.progress':
      case 'transfer.completed':
      case 'transfer.failed':
      case 'transfer.rejected':
      case 'transfer.canceled':
        this.upsert(event.data.transfer);
        break;
      case 'peer.removed':
        this.removePeer(event.data.port);
        break;
      default:
        break;
    }
  }
}
