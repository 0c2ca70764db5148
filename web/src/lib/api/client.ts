import type { ApiErrorBody, Connection, DaemonInfo, Peer } from './types';

/** An error answer from the daemon (or a network failure, with code "network"). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code;
  }
}

function isErrorBody(value: unknown): value is { error: ApiErrorBody } {
  if (typeof value !== 'object' || value === null || !('error' in value)) return false;
  const error = (value as { error: unknown }).error;
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as ApiErrorBody).code === 'string' &&
    typeof (error as ApiErrorBody).message === 'string'
  );
}

/** Typed REST client. REST accepts the token only as a header (see docs/API.md, Access). */
export class ApiClient {
  readonly #token: string;

  constructor(token: string) {
    this.#token = token;
  }

  daemon(): Promise<DaemonInfo> {
    return this.#request('GET', '/api/daemon');
  }

  async listPeers(): Promise<Peer[]> {
    const body = await this.#request<{ peers: Peer[] }>('GET', '/api/peers');
    return body.peers;
  }

  addPeer(port: number): Promise<Peer> {
    return this.#request('POST', '/api/peers', { port });
  }

  async removePeer(port: number): Promise<void> {
    await this.#request('DELETE', `/api/peers/${port}`);
  }

  async listConnections(port: number): Promise<Connection[]> {
    const body = await this.#request<{ connections: Connection[] }>('GET', `/api/peers/${port}/connections`);
    return body.connections;
  }

  connect(port: number, host: string, remotePort: number): Promise<Connection> {
    return this.#request('POST', `/api/peers/${port}/connections`, { host, port: remotePort });
  }

  async disconnect(port: number, connectionId: string): Promise<void> {
    await this.#request('DELETE', `/api/peers/${port}/connections/${encodeURIComponent(connectionId)}`);
  }

  async #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, { code: 'network', message: 'The daemon is not reachable. Is it still running?' });
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Fall through: a non-JSON answer is reported below with its status.
    }
    if (!response.ok) {
      if (isErrorBody(parsed)) throw new ApiError(response.status, parsed.error);
      throw new ApiError(response.status, {
        code: 'http_' + response.status,
        message: `The daemon answered ${response.status} ${response.statusText}`.trim(),
      });
    }
    return parsed as T;
  }
}
