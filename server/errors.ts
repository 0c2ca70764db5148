// Every error meshdrop can report, declared once with a stable code.
// API errors carry the HTTP status they map to; wire (protocol) codes travel in
// CLOSE frames and are listed in docs/PROTOCOL.md.

export const API_ERRORS = {
  bad_request: 400,
  invalid_port: 400,
  invalid_host: 400,
  invalid_target: 400,
  invalid_path: 400,
  size_mismatch: 400,
  unauthorized: 401,
  forbidden_host: 403,
  forbidden_origin: 403,
  not_found: 404,
  peer_not_found: 404,
  connection_not_found: 404,
  transfer_not_found: 404,
  file_not_found: 404,
  port_in_use: 409,
  bad_range: 416,
  self_connection: 409,
  not_connected: 409,
  wrong_side: 409,
  not_offered: 409,
  too_many_attempts: 429,
  internal: 500,
  dial_failed: 502,
  too_many_clients: 503,
  dial_timeout: 504,
  disk_full: 507,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** Reasons a peer connection ends. Sent in CLOSE frames; see docs/PROTOCOL.md "Close codes". */
export const CLOSE_CODES = [
  'shutdown', // the daemon hosting the remote peer is stopping; expect it back
  'peer_removed', // the remote peer was deleted; do not redial
  'closed_by_user', // the user closed this connection
  'duplicate_connection', // another connection between the same two peers won
  'self_connection', // a peer dialled itself
  'unsupported_version', // no protocol version in common
  'identity_mismatch', // HELLO id is not the fingerprint of the TLS certificate
  'identity_changed', // the remote id differs from the one expected for that address
  'handshake_timeout', // no valid HELLO in time
  'heartbeat_timeout', // nothing received for too long
  'frame_too_large', // a length field above the cap for its type
  'unknown_frame', // a frame type this version does not define
  'bad_payload', // a payload that does not decode
  'unexpected_message', // a valid message in the wrong state
  'not_reading', // the remote left more than 16 MiB of our writes unread
  'internal_error', // the sender hit a bug of its own; not the receiver's fault
  'connection_lost', // local only: the transport closed or failed without a CLOSE frame
  'wrong_application', // TLS did not negotiate the ALPN protocol "meshdrop/1"
] as const;

export type CloseCode = (typeof CLOSE_CODES)[number];

export interface Reason {
  code: string;
  message: string;
}

/** An error that the API reports to clients with its status and stable code. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  constructor(code: ApiErrorCode, message: string) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = API_ERRORS[code];
  }
}

/** A remote sent bytes or messages we refuse; the connection closes with this code. */
export class ProtocolError extends Error {
  readonly code: CloseCode;
  constructor(code: CloseCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}
