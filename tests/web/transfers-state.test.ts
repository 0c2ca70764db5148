// The dashboard's transfer list keeps every live transfer and only the most recent
// ended ones, like the daemon (server/transfer/records.ts): a page left open through
// thousands of transfers holds and sorts a bounded list.

import { expect, it } from 'vitest';
import type { Transfer, TransferState } from '../../web/src/lib/api/types';
import { TransfersState } from '../../web/src/lib/state/transfers.svelte';

function transfer(n: number, state: TransferState, updated = n): Transfer {
  const at = (sec: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, sec)).toISOString();
  return {
    id: `t${n}`, direction: 'out', peer: 7000, from: 'a', to: 'b', name: `f${n}`, size: 10, bytesDone: state === 'completed' ? 10 : 0,
    state, speed: null, eta: null, sha256: null, savedAs: null, error: null, createdAt: at(n), updatedAt: at(updated),
  } as Transfer;
}

it('forgets the transfers that ended first once more than its limit have ended', () => {
  const s = new TransfersState(3);
  s.upsert(transfer(0, 'transferring'));
  for (let i = 1; i <= 6; i++) s.upsert(transfer(i, 'completed'));
  expect(Object.keys(s.byId).sort()).toEqual(['t0', 't4', 't5', 't6']);
  // A live one that ends counts from when it ended.
  s.upsert(transfer(0, 'completed', 99));
  expect(Object.keys(s.byId).sort()).toEqual(['t0', 't5', 't6']);
  expect(s.forPeer(7000).map((t) => t.id)).toEqual(['t6', 't5', 't0']);
});

it('applies the same limit to a snapshot, keeping the ones that ended last', () => {
  const s = new TransfersState(2);
  s.replaceAll([transfer(1, 'completed', 30), transfer(2, 'failed', 10), transfer(3, 'queued'), transfer(4, 'completed', 20)]);
  expect(Object.keys(s.byId).sort()).toEqual(['t1', 't3', 't4']);
  s.upsert(transfer(5, 'canceled', 40));
  expect(Object.keys(s.byId).sort()).toEqual(['t1', 't3', 't5']);
});

it('does not take back a forgotten transfer from a late answer', () => {
  const s = new TransfersState(2);
  for (let i = 1; i <= 3; i++) s.upsert(transfer(i, 'completed'));
  expect(Object.keys(s.byId).sort()).toEqual(['t2', 't3']);
  // The answer to a resume of t1, sent before it ended, lands now.
  s.upsert(transfer(1, 'paused', 0));
  s.upsert(transfer(1, 'completed'));
  expect(Object.keys(s.byId).sort()).toEqual(['t2', 't3']);
});
