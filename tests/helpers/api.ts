// A tiny REST + event-stream client for tests, speaking to a real daemon over HTTP.

import WebSocket from 'ws';
import { waitFor } from './wait.js';

export interface ApiReply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** A transfer ended while a test waited for it to get somewhere. */
class TransferEndedError extends Error {}

export class Client {
  constructor(readonly base: string, readonly token: string) {}

  async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiReply<T>> {
    const res = await fetch(this.base + path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  }

  get<T = any>(path: string) {
    return this.request<T>('GET', path);
  }
  post<T = any>(path: string, body: unknown) {
    return this.request<T>('POST', path, body);
  }
  delete<T = any>(path: string) {
    return this.request<T>('DELETE', path);
  }

  /** Waits until transfer `id` reaches a final state; resolves with its record. */
  async transferEnded(id: string, timeoutMs = 30_000): Promise<any> {
    return waitFor(`transfer ${id} to end`, async () => {
      const t = (await this.get(`/api/transfers/${id}`)).body;
      return ['completed', 'failed', 'rejected', 'canceled'].includes(t.state) ? t : null;
    }, { timeoutMs });
  }

  /**
   * Waits until transfer `id` has moved more than `bytes`, polling its record (kept up
   * to date on every chunk), not the progress events (one per 250 ms at most: a fast
   * machine can finish a file between two of them). Fails at once if the transfer
   * ended first, since a test that wants to interrupt it can then never pass.
   */
  async transferPast(id: string, bytes: number, timeoutMs = 15_000): Promise<any> {
    return waitFor(`transfer ${id} past ${bytes} bytes`, async () => {
      const t = (await this.get(`/api/transfers/${id}`)).body;
      if (t.bytesDone > bytes) return t;
      if (['completed', 'failed', 'rejected', 'canceled'].includes(t.state)) throw new TransferEndedError(`transfer ${id} ended ${t.state} before passing ${bytes} bytes`);
      return null;
    }, { timeoutMs, intervalMs: 2, stopOn: (err) => err instanceof TransferEndedError });
  }

  async addPeer(port: number): Promise<{ port: number; id: string }> {
    const res = await this.post('/api/peers', { port });
    if (res.status !== 201) throw new Error(`adding peer ${port}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async connections(port: number): Promise<any[]> {
    const res = await this.get(`/api/peers/${port}/connections`);
    if (res.status !== 200) throw new Error(`connections of ${port}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.connections;
  }

  /** Waits until `port` has exactly the connections to `ports` (by remote listening port). */
  async waitForConnections(port: number, ports: number[], timeoutMs?: number): Promise<any[]> {
    const want = [...ports].sort((a, b) => a - b).join(',');
    return waitFor(`peer ${port} connected to [${want}]`, async () => {
      const conns = await this.connections(port);
      const have = conns.filter((c) => c.state === 'open').map((c) => c.port).sort((a: number, b: number) => a - b).join(',');
      return have === want ? conns : null;
    }, { timeoutMs });
  }

  events(query = ''): EventClient {
    const url = this.base.replace(/^http/, 'ws') + '/api/events' + query;
    return new EventClient(new WebSocket(url, { headers: { authorization: `Bearer ${this.token}` } }));
  }
}

export class EventClient {
  readonly messages: any[] = [];
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse(String(data))));
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
  }

  /** Events with a seq (not stream.* control messages). */
  get events(): any[] {
    return this.messages.filter((m) => typeof m.seq === 'number');
  }

  waitFor(what: string, pred: (m: any) => boolean, timeoutMs?: number): Promise<any> {
    return waitFor(what, () => this.messages.find(pred), { timeoutMs });
  }

  close(): void {
    this.ws.close();
  }
}
