import { ApiError } from './api/client';
import type { Transfer } from './api/types';

export interface ReadableError {
  title: string;
  detail: string;
}

// Short titles for the daemon's stable error codes; the daemon's own message
// (which names the port or the reason) is kept as the detail.
const TITLES: Record<string, string> = {
  port_in_use: 'Port already in use',
  invalid_port: 'Invalid port',
  invalid_host: 'Invalid host',
  bad_request: 'Request rejected',
  peer_not_found: 'Peer not found',
  connection_not_found: 'Connection not found',
  self_connection: 'A peer cannot connect to itself',
  dial_failed: 'Could not connect',
  dial_timeout: 'Connection timed out',
  invalid_target: 'Invalid target',
  invalid_path: 'Invalid file',
  not_connected: 'Not connected',
  transfer_not_found: 'Transfer not found',
  not_offered: 'No longer waiting for an answer',
  wrong_side: 'Only the sender can do that',
  file_not_found: 'File not found',
  too_many_attempts: 'Too many attempts',
  unauthorized: 'Access token rejected',
  network: 'Daemon unreachable',
  internal: 'Daemon error',
};

export function readableError(error: unknown): ReadableError {
  if (error instanceof ApiError) {
    return { title: TITLES[error.code] ?? 'Something went wrong', detail: sentence(error.message) };
  }
  return { title: 'Something went wrong', detail: sentence(error instanceof Error ? error.message : String(error)) };
}

/**
 * Why a transfer ended without the file, in words for the side looking at it.
 * The daemon's reason is written for the side that acted: "canceled by the
 * user" reads wrong on the other peer, so that one is told apart here.
 */
export function transferProblem(transfer: Transfer): string | null {
  const error = transfer.error;
  if (!error || transfer.state === 'completed') return null;
  if (error.code === 'canceled_by_user') {
    if (transfer.state === 'canceled') return 'Canceled on this side.';
    return transfer.direction === 'in' ? 'The sender canceled the transfer.' : 'The receiver canceled the transfer.';
  }
  return sentence(error.message || error.code);
}

/**
 * Why a transfer is paused, for the side looking at it, and whether it goes on
 * by itself. The daemon resumes a paused transfer when the peers reconnect,
 * except one the user paused (that waits for Resume).
 */
export function pauseReason(transfer: Transfer): string {
  const out = transfer.direction === 'out';
  const error = transfer.error;
  if (!error) return 'Paused';
  switch (error.code) {
    case 'paused_by_user':
      return out ? 'Paused' : 'Paused by the sender';
    case 'connection_lost':
      return out ? 'Connection lost — resumes when the peer is back' : 'Connection lost — resumes when the sender is back';
    case 'disk_full':
      return out ? 'Receiver’s disk is full' : 'This peer’s disk is full';
    case 'interrupted':
      return 'The daemon restarted — resumes when the peer is back';
    default:
      return sentence(error.message || error.code).replace(/\.$/, '') || 'Paused';
  }
}

export function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return '';
  const capital = trimmed[0]!.toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
