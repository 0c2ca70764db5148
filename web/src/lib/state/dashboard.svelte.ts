import { ApiClient, ApiError } from '../api/client';
import { EventSocket, type SocketStatus } from '../api/event-socket';
import type { Connection, DaemonEvent, StreamMessage, Transfer } from '../api/types';
import { readableError, transferProblem } from '../errors';
import { PeersState } from './peers.svelte';
import { TransfersState } from './transfers.svelte';

export type LinkStatus = 'connecting' | 'live' | 'reconnecting';

/**
 * Glue between the event socket, the REST client and the state classes
 * (PeersState, TransfersState), plus the
 * user's actions (which update state from the REST answer at once instead of
 * waiting for the matching event; both paths are idempotent).
 *
 * Ordering rule: the socket is opened first; once it says hello, a REST
 * snapshot is loaded while incoming events are buffered, then the buffer is
 * applied on top. The snapshot is taken after hello, so it already contains
 * everything up to the hello's lastSeq and nothing is missed in between.
 */
export class Dashboard {
  readonly api: ApiClient;
  readonly peers = new PeersState();
  readonly transfers = new TransfersState();

  link = $state<LinkStatus>('connecting');
  /** Epoch ms of the next reconnect attempt while `link` is reconnecting. */
  retryAt = $state<number | null>(null);
  /** True until the first snapshot has been applied (drives the loading skeleton). */
  loading = $state(true);
  /** A blocking problem such as a rejected token; shown instead of the dashboard. */
  fatal = $state<ApiError | null>(null);
  /** A non-blocking problem loading state; shown as a banner, retried on next hello. */
  syncError = $state<string | null>(null);

  readonly #socket: EventSocket;
  #bootId: string | null = null;
  #buffer: DaemonEvent[] | null = null;
  #generation = 0;
  #synced = false;
  #uploadSeq = 0;
  /** Latest received-files request per port; an older answer never overwrites a newer one. */
  readonly #filesRequest = new Map<number, number>();

  constructor(token: string) {
    this.api = new ApiClient(token);
    this.#socket = new EventSocket(token, {
      onEvent: (event) => this.#onEvent(event),
      onStream: (message, resume) => this.#onStream(message, resume),
      onStatus: (status) => this.#onStatus(status),
    });
  }

  start(): void {
    this.#socket.start();
  }

  stop(): void {
    this.#socket.stop();
  }

  retryNow(): void {
    this.#socket.retryNow();
  }

  #onStatus(status: SocketStatus): void {
    if (status.kind === 'open') {
      this.link = 'live';
      this.retryAt = null;
    } else if (status.kind === 'waiting') {
      this.link = 'reconnecting';
      this.retryAt = status.retryAt;
      // The browser hides why an upgrade failed; REST tells a rejected token
      // (fatal, say so) from a daemon that is merely down (keep retrying).
      if (status.attempt === 1 || status.attempt % 3 === 0) void this.#probeAuth();
    }
    // 'connecting' leaves `link` alone: the first attempt already shows
    // "connecting", and a retry keeps saying "reconnecting" so the badge does not flicker.
  }

  async addPeer(port: number): Promise<void> {
    const peer = await this.api.addPeer(port);
    this.peers.upsertPeer(peer);
  }

  async removePeer(port: number): Promise<void> {
    try {
      await this.api.removePeer(port);
    } catch (error) {
      // Already gone is what the user wanted.
      if (!(error instanceof ApiError && error.code === 'peer_not_found')) throw error;
    }
    this.peers.removePeer(port);
    this.transfers.removePeer(port);
  }

  async connect(port: number, host: string, remotePort: number): Promise<void> {
    const connection = await this.api.connect(port, host, remotePort);
    this.peers.upsertConnection(port, connection);
  }

  /**
   * Fresh RTT and byte counters for one peer's connections. The daemon sends
   * connection.updated at most once a minute per connection, so the page polls
   * the peer the user is looking at instead.
   */
  async refreshStats(port: number): Promise<void> {
    const fresh = await this.api.listConnections(port);
    const known = new Set((this.peers.connections[port] ?? []).map((c) => c.id));
    // Only update rows the event stream already knows; opening and closing stay event-driven.
    for (const connection of fresh) if (known.has(connection.id)) this.peers.upsertConnection(port, connection);
  }

  async disconnect(port: number, connectionId: string): Promise<void> {
    try {
      await this.api.disconnect(port, connectionId);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'connection_not_found')) throw error;
    }
    this.peers.removeConnection(port, connectionId);
  }

  /**
   * Upload files to the daemon and send them to one connection. The upload is
   * shown as its own row until the daemon answers with the transfer records,
   * which then carry on with progress from events.
   */
  async sendFiles(port: number, target: string, files: File[]): Promise<void> {
    if (files.length === 0) return;
    const key = `upload-${++this.#uploadSeq}`;
    const controller = new AbortController();
    this.transfers.addUpload({
      key,
      port,
      target,
      files: files.map((f) => ({ name: f.name, size: f.size })),
      size: files.reduce((sum, f) => sum + f.size, 0),
      startedAt: new Date().toISOString(),
      error: null,
      controller,
    });
    try {
      const created = await this.api.sendFiles(port, [target], files, controller.signal);
      for (const transfer of created) this.transfers.upsert(transfer);
      this.transfers.removeUpload(key);
    } catch (error) {
      if (controller.signal.aborted) this.transfers.removeUpload(key);
      else this.transfers.failUpload(key, readableError(error));
    }
  }

  cancelUpload(key: string): void {
    const upload = this.transfers.uploads.find((u) => u.key === key);
    upload?.controller.abort();
    this.transfers.removeUpload(key);
  }

  async cancelTransfer(id: string): Promise<void> {
    this.transfers.upsert(await this.api.cancelTransfer(id));
  }

  /** Accept an offer that waits for the user; progress then comes as events. */
  async acceptTransfer(id: string): Promise<void> {
    this.transfers.upsert(await this.api.acceptTransfer(id));
  }

  async rejectTransfer(id: string): Promise<void> {
    this.transfers.upsert(await this.api.rejectTransfer(id));
  }

  /** Trust the sender of an offer (its later offers to `port` need no answer), then accept this one. */
  async trustAndAccept(port: number, remoteId: string, id: string): Promise<void> {
    await this.api.trust(port, remoteId);
    await this.acceptTransfer(id);
  }

  async pauseTransfer(id: string): Promise<void> {
    this.transfers.upsert(await this.api.pauseTransfer(id));
  }

  async resumeTransfer(id: string): Promise<void> {
    this.transfers.upsert(await this.api.resumeTransfer(id));
  }

  /** (Re)load one peer's received files. */
  async refreshFiles(port: number): Promise<void> {
    const request = (this.#filesRequest.get(port) ?? 0) + 1;
    this.#filesRequest.set(port, request);
    try {
      const files = await this.api.listFiles(port);
      if (this.#filesRequest.get(port) === request) this.transfers.setFiles(port, files);
    } catch (error) {
      if (this.#filesRequest.get(port) !== request) return;
      // A removed peer has no files to show; its removal clears the rest.
      if (error instanceof ApiError && error.code === 'peer_not_found') return;
      this.transfers.setFilesError(port, readableError(error));
    }
  }

  async deleteFile(port: number, name: string): Promise<void> {
    try {
      await this.api.deleteFile(port, name);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'file_not_found')) throw error;
    }
    this.transfers.removeFile(port, name);
  }

  fileUrl(port: number, name: string): string {
    return this.api.fileUrl(port, name);
  }

  #onStream(message: StreamMessage, resume: boolean): void {
    switch (message.type) {
      case 'stream.hello': {
        const rebooted = this.#bootId !== null && this.#bootId !== message.bootId;
        this.#bootId = message.bootId;
        // A resumed stream replays what we missed, so state stays valid unless
        // the daemon restarted or we never managed to load it.
        if (!resume || rebooted || !this.#synced) void this.resync();
        break;
      }
      case 'stream.gap':
      case 'stream.reset':
        void this.resync();
        break;
    }
  }

  #onEvent(event: DaemonEvent): void {
    if (this.#buffer) this.#buffer.push(event);
    else this.#apply(event);
  }

  #apply(event: DaemonEvent): void {
    this.peers.apply(event);
    this.transfers.apply(event);
    switch (event.type) {
      case 'transfer.offered':
        this.#offered(event.data.transfer);
        break;
      case 'transfer.completed':
      case 'transfer.failed':
      case 'transfer.rejected':
      case 'transfer.canceled':
        this.#transferEnded(event.data.transfer);
        break;
      default:
        break;
    }
  }

  /** An offer from another daemon's peer waits for an answer: tell a screen reader on the peer shown. */
  #offered(transfer: Transfer): void {
    if (transfer.direction !== 'in' || transfer.peer !== this.peers.selectedPort) return;
    const remote = this.peers.remoteLabel(transfer.peer, transfer.from);
    this.transfers.announcement = `${remote} wants to send you ${transfer.name}.`;
  }

  #transferEnded(transfer: Transfer): void {
    const port = transfer.peer;
    const shown = port === this.peers.selectedPort;
    if (shown) this.transfers.announcement = this.#outcome(transfer);
    // The byte counters on screen are polled; show what the transfer moved now, not in a few seconds.
    if (shown && this.link === 'live') void this.refreshStats(port).catch(() => {});
    if (transfer.state === 'completed' && transfer.direction === 'in') {
      // A new file in that peer's inbox: reload the list on screen, or let the next look load it.
      if (shown) void this.refreshFiles(port);
      else this.transfers.forgetFiles(port);
    }
  }

  #outcome(transfer: Transfer): string {
    const out = transfer.direction === 'out';
    const remote = this.peers.remoteLabel(transfer.peer, out ? transfer.to : transfer.from);
    const what = `${transfer.name} ${out ? 'to' : 'from'} ${remote}`;
    switch (transfer.state) {
      case 'completed':
        return `${out ? 'Sent' : 'Received'} ${what}.`;
      case 'canceled':
        return `Canceled ${out ? 'sending' : 'receiving'} ${what}.`;
      default:
        return `${out ? 'Sending' : 'Receiving'} ${what} ${transfer.state === 'rejected' ? 'was rejected' : 'failed'}: ${transferProblem(transfer) ?? ''}`.trim();
    }
  }

  /** Reload all state by REST while buffering events, then apply the buffer. */
  async resync(): Promise<void> {
    const generation = ++this.#generation;
    this.#buffer ??= [];
    this.#synced = false;
    try {
      const [peers, transfers] = await Promise.all([this.api.listPeers(), this.api.listTransfers()]);
      const lists = await Promise.all(
        peers.map(async (peer): Promise<[number, Connection[]]> => {
          try {
            return [peer.port, await this.api.listConnections(peer.port)];
          } catch (error) {
            // The peer vanished between the two calls; its removal event is buffered.
            if (error instanceof ApiError && error.code === 'peer_not_found') return [peer.port, []];
            throw error;
          }
        }),
      );
      if (generation !== this.#generation) return; // A newer resync superseded this one.
      this.peers.replaceAll(peers, Object.fromEntries(lists));
      this.transfers.replaceAll(transfers);
      // Received files are loaded per peer when shown; whatever is cached may be out of date now.
      this.transfers.forgetFiles();
      const buffered = this.#buffer ?? [];
      this.#buffer = null;
      for (const event of buffered) this.#apply(event);
      this.#synced = true;
      this.syncError = null;
      this.loading = false;
    } catch (error) {
      if (generation !== this.#generation) return;
      // Keep buffering: the next hello (after the socket reconnects) retries the load.
      if (error instanceof ApiError && error.status === 401) {
        this.fatal = error;
        this.stop();
        return;
      }
      this.syncError = error instanceof Error ? error.message : String(error);
      if (this.link === 'live') setTimeout(() => void this.#retryIfStale(generation), 3000);
    }
  }

  async #retryIfStale(generation: number): Promise<void> {
    if (generation === this.#generation && !this.#synced) await this.resync();
  }

  async #probeAuth(): Promise<void> {
    try {
      await this.api.daemon();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        this.fatal = error;
        this.stop();
      }
    }
  }
}
