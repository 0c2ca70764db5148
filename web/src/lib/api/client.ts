import type { ApiErrorBody, Connection, DaemonInfo, Peer, ReceivedFile, Transfer } from './types';

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

/**
 * Typed REST client. REST accepts the token only as a header (see docs/API.md,
 * Access), with one exception: a received file's download URL takes it as a
 * query parameter, so a plain link can save the file (see fileUrl).
 */
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

  /**
   * Upload files from the browser and send each to every target (a peer id,
   * host:port or port). Each file's size goes first, so the daemon starts
   * sending it while the upload is still arriving; it answers once it has all
   * the bytes, with one transfer per file and target, and progress comes as
   * events meanwhile.
   */
  async sendFiles(port: number, targets: string[], files: File[], signal?: AbortSignal): Promise<Transfer[]> {
    const form = new FormData();
    // The daemon resolves the targets before it reads any file part, so they go first.
    for (const target of targets) form.append('to', target);
    for (const file of files) {
      form.append('size', String(file.size));
      form.append('file', file, file.name);
    }
    const body = await this.#request<{ transfers: Transfer[] }>('POST', `/api/peers/${port}/transfers`, form, signal);
    return body.transfers;
  }

  async listTransfers(port?: number): Promise<Transfer[]> {
    const query = port === undefined ? '' : `?peer=${port}`;
    const body = await this.#request<{ transfers: Transfer[] }>('GET', `/api/transfers${query}`);
    return body.transfers;
  }

  cancelTransfer(id: string): Promise<Transfer> {
    return this.#request('POST', `/api/transfers/${encodeURIComponent(id)}/cancel`);
  }

  /** Accept an offer from a peer of another daemon that waits for the user (state "offered", direction "in"). */
  acceptTransfer(id: string): Promise<Transfer> {
    return this.#request('POST', `/api/transfers/${encodeURIComponent(id)}/accept`);
  }

  /** Decline such an offer; the record ends "rejected" (rejected_by_user). */
  rejectTransfer(id: string): Promise<Transfer> {
    return this.#request('POST', `/api/transfers/${encodeURIComponent(id)}/reject`);
  }

  /** Pause an outgoing transfer; it waits for resumeTransfer (it does not resume by itself). */
  pauseTransfer(id: string): Promise<Transfer> {
    return this.#request('POST', `/api/transfers/${encodeURIComponent(id)}/pause`);
  }

  resumeTransfer(id: string): Promise<Transfer> {
    return this.#request('POST', `/api/transfers/${encodeURIComponent(id)}/resume`);
  }

  async listTrusted(port: number): Promise<string[]> {
    const body = await this.#request<{ trusted: string[] }>('GET', `/api/peers/${port}/trusted`);
    return body.trusted;
  }

  /** From now on, offers to `port` from the remote peer `id` are accepted without asking. */
  async trust(port: number, id: string): Promise<void> {
    await this.#request('PUT', `/api/peers/${port}/trusted/${encodeURIComponent(id)}`);
  }

  async untrust(port: number, id: string): Promise<void> {
    await this.#request('DELETE', `/api/peers/${port}/trusted/${encodeURIComponent(id)}`);
  }

  async listFiles(port: number): Promise<ReceivedFile[]> {
    const body = await this.#request<{ files: ReceivedFile[] }>('GET', `/api/peers/${port}/files`);
    return body.files;
  }

  async deleteFile(port: number, name: string): Promise<void> {
    await this.#request('DELETE', `/api/peers/${port}/files/${encodeURIComponent(name)}`);
  }

  /** A link that downloads a received file (the one route that takes the token in the URL). */
  fileUrl(port: number, name: string): string {
    return `/api/peers/${port}/files/${encodeURIComponent(name)}?token=${encodeURIComponent(this.#token)}`;
  }

  async #request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#token}` };
    const form = body instanceof FormData;
    // FormData sets its own multipart Content-Type, boundary included.
    if (body !== undefined && !form) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
        cache: 'no-store',
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw error;
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
