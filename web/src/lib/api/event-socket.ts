import type { DaemonEvent, StreamMessage } from './types';

export type SocketStatus =
  | { kind: 'connecting' }
  | { kind: 'open' }
  | { kind: 'waiting'; retryAt: number; attempt: number };

export interface EventSocketHandlers {
  /** A numbered event, delivered once and in order (duplicates by seq are dropped here). */
  onEvent(event: DaemonEvent): void;
  /**
   * A stream control message. `resume` on hello is true when we asked for
   * `since=N`, i.e. the daemon is replaying what we missed rather than starting fresh.
   */
  onStream(message: StreamMessage, resume: boolean): void;
  onStatus(status: SocketStatus): void;
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;

/**
 * The one WebSocket to /api/events. It owns reconnection: after a drop it
 * waits with exponential backoff (with jitter, so many tabs do not stampede a
 * restarted daemon) and resumes with `since=<last seq>` so no event is lost.
 */
export class EventSocket {
  readonly #token: string;
  readonly #handlers: EventSocketHandlers;
  #socket: WebSocket | null = null;
  #lastSeq: number | null = null;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = true;

  constructor(token: string, handlers: EventSocketHandlers) {
    this.#token = token;
    this.#handlers = handlers;
  }

  get lastSeq(): number | null {
    return this.#lastSeq;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    window.addEventListener('online', this.#retryNow);
    this.#open();
  }

  stop(): void {
    this.#stopped = true;
    window.removeEventListener('online', this.#retryNow);
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const socket = this.#socket;
    this.#socket = null;
    socket?.close(1000, 'dashboard closed');
  }

  /** Skip the remaining backoff (the browser came back online, or the user asked). */
  readonly #retryNow = (): void => {
    if (this.#stopped || this.#socket !== null) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#open();
  };

  retryNow(): void {
    this.#retryNow();
  }

  #url(): string {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ token: this.#token });
    if (this.#lastSeq !== null) params.set('since', String(this.#lastSeq));
    return `${scheme}//${window.location.host}/api/events?${params.toString()}`;
  }

  #open(): void {
    this.#handlers.onStatus({ kind: 'connecting' });
    const resume = this.#lastSeq !== null;
    const socket = new WebSocket(this.#url());
    this.#socket = socket;

    socket.onmessage = (message) => {
      if (this.#socket !== socket || typeof message.data !== 'string') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return; // A malformed frame cannot be applied; the next gap/reset check will resync.
      }
      this.#dispatch(parsed, resume);
    };

    socket.onclose = () => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      if (this.#stopped) return;
      this.#scheduleReconnect();
    };
    // onerror is always followed by onclose, which does the work.
  }

  #dispatch(parsed: unknown, resume: boolean): void {
    if (typeof parsed !== 'object' || parsed === null) return;
    const message = parsed as { type?: unknown; seq?: unknown };
    if (typeof message.type !== 'string') return;

    if (message.type.startsWith('stream.')) {
      const stream = parsed as StreamMessage;
      if (stream.type === 'stream.hello') {
        // Only now is the link known good, so only now reset the backoff.
        this.#attempt = 0;
        this.#handlers.onStatus({ kind: 'open' });
        if (this.#lastSeq === null) this.#lastSeq = stream.lastSeq;
      } else if (stream.type === 'stream.reset') {
        this.#lastSeq = stream.lastSeq;
      }
      this.#handlers.onStream(stream, resume);
      return;
    }

    if (typeof message.seq !== 'number') return;
    if (this.#lastSeq !== null && message.seq <= this.#lastSeq) return;
    this.#lastSeq = message.seq;
    this.#handlers.onEvent(parsed as DaemonEvent);
  }

  #scheduleReconnect(): void {
    const attempt = this.#attempt++;
    const base = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.#handlers.onStatus({ kind: 'waiting', retryAt: Date.now() + delay, attempt: attempt + 1 });
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#stopped) this.#open();
    }, delay);
  }
}
