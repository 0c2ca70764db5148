// Access control for the local API: the daemon token, DNS-rebinding (Host)
// and cross-site (Origin) checks, and throttling of failed token attempts.
// See docs/API.md "Access" and ../shared/field-notes.md section 4.

import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ApiError } from '../errors.js';

export const TOKEN_FILE = 'api-token';
const MAX_FAILURES = 20;
const FAILURE_WINDOW_MS = 60_000;

/** Reads the daemon token, creating it (mode 0600) on first start. */
export function loadOrCreateToken(dataDir: string): string {
  const file = join(dataDir, TOKEN_FILE);
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 32) return token;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  chmodSync(file, 0o600); // writeFileSync's mode is ignored when the file already existed
  return token;
}

/** Constant-time comparison; hashing first makes lengths equal so the length is not leaked either. */
export function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
}

/** The host name of a Host header or URL authority, without the port. */
export function hostnameOf(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1);
  const colon = authority.lastIndexOf(':');
  return (colon === -1 ? authority : authority.slice(0, colon)).toLowerCase();
}

export interface GuardOptions {
  token: string;
  /** True when the API listens on a loopback address: then Host and Origin must be loopback too. */
  loopbackOnly: boolean;
  now?: () => number;
}

export interface RequestFacts {
  host: string | undefined;
  origin: string | undefined;
  /** The token the client presented, or undefined. */
  token: string | undefined;
  remoteAddress: string;
}

/** Checks one request; throws the ApiError to answer with, or returns when allowed. */
export class Guard {
  readonly #opts: GuardOptions;
  readonly #failures = new Map<string, { count: number; since: number }>();

  constructor(opts: GuardOptions) {
    this.#opts = opts;
  }

  check(req: RequestFacts): void {
    this.checkHostAndOrigin(req);
    this.checkToken(req.token, req.remoteAddress);
  }

  checkToken(token: string | undefined, remoteAddress: string): void {
    // A request without a token is not a guess (any web page can make one with an <img>),
    // so only wrong tokens count towards the throttle; otherwise a page could lock us out.
    if (token === undefined) throw new ApiError('unauthorized', 'missing token: send "Authorization: Bearer <token>"');
    const now = (this.#opts.now ?? Date.now)();
    const record = this.#failures.get(remoteAddress);
    if (record && now - record.since > FAILURE_WINDOW_MS) this.#failures.delete(remoteAddress);
    const current = this.#failures.get(remoteAddress);
    if (current && current.count >= MAX_FAILURES) {
      throw new ApiError('too_many_attempts', 'too many failed token attempts; wait a minute');
    }
    if (!tokenMatches(token, this.#opts.token)) {
      if (current) current.count++;
      else this.#failures.set(remoteAddress, { count: 1, since: now });
      throw new ApiError('unauthorized', 'wrong token');
    }
  }

  checkHostAndOrigin(req: Pick<RequestFacts, 'host' | 'origin'>): void {
    const host = req.host ?? '';
    if (this.#opts.loopbackOnly && !isLoopbackAddress(hostnameOf(host))) {
      throw new ApiError('forbidden_host', `host "${hostnameOf(host)}" is not allowed; use localhost or 127.0.0.1`);
    }
    if (req.origin !== undefined) {
      let originHost: string;
      try {
        originHost = new URL(req.origin).host;
      } catch {
        throw new ApiError('forbidden_origin', 'malformed Origin header');
      }
      // Same origin means same host:port as this request addressed.
      if (originHost.toLowerCase() !== host.toLowerCase()) {
        throw new ApiError('forbidden_origin', `requests from ${req.origin} are not allowed`);
      }
    }
  }
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}
