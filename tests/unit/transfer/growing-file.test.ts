// GrowingFile keeps an upload's recent blocks in memory for senders that keep up:
// a sender about to take the oldest block holds the upload back for a moment, never
// longer; a block lent to a sender is not let go before the sender gives it back.
// A block is written to disk only if it leaves memory before every receiver has
// reported it saved (saved/1), or is still unsaved when the upload ends.

import { describe, expect, it } from 'vitest';
import { DATA_FRAME_PREFIX } from '../../../server/protocol/transfer-messages.js';
import { GrowingFile, KeepBudget, type GrowingFileTimings } from '../../../server/transfer/growing-file.js';

const MIB = 1024 * 1024;
// 16 MiB of 1 MiB blocks are kept (the sender's chunk size for a 64 MiB file).
const SIZE = 64 * MIB;
const KEPT = 16;

// Each file on a budget of its own, so files a test leaves unfinished do not shrink the next test's.
const growing = (size: number, timings: Partial<GrowingFileTimings> = {}) => new GrowingFile(size, timings, new KeepBudget());

const frame = (fill: number, bytes = MIB) => Buffer.alloc(DATA_FRAME_PREFIX + bytes, fill);

/** A persist() that records which blocks were written. */
const writer = (written: number[] = []) => (i: number) => async () => {
  written.push(i);
};
const noWrite = writer();

/** Keeps blocks [from, to), recording which ones memory let go of (and which were written). */
async function keepAll(file: GrowingFile, from: number, to: number, dropped: number[], written: number[] = []): Promise<void> {
  for (let i = from; i < to; i++) await file.keep(i, frame(i), () => dropped.push(i), writer(written)(i));
}

const settledWithin = async (p: Promise<unknown>, ms: number) =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('GrowingFile', () => {
  it('keeps the last blocks and lets the oldest go when nobody follows', async () => {
    const file = growing(SIZE, { graceMs: 10_000, waitFloorMs: 10_000 });
    expect(file.blockSize).toBe(MIB);
    const dropped: number[] = [];
    const written: number[] = [];
    await keepAll(file, 0, KEPT + 3, dropped, written);
    expect(dropped).toEqual([0, 1, 2]);
    // No receiver has saved anything: what leaves memory is written first.
    expect(written).toEqual([0, 1, 2]);
    expect(file.keptBlocks).toBe(KEPT);
    expect(file.ready(3)).toBe(true);
    expect(file.ready(0)).toBe(true);
    expect(file.written).toBe(3 * MIB);
  });

  it('waits for a sender about to take the oldest block, and goes on once it has', async () => {
    const file = growing(SIZE, { graceMs: 10_000, waitFloorMs: 10_000 });
    const dropped: number[] = [];
    const cursor = file.follow(0);
    await keepAll(file, 0, KEPT, dropped);
    const next = file.keep(KEPT, frame(KEPT), () => dropped.push(KEPT), noWrite(KEPT));
    expect(await settledWithin(next, 50)).toBe(false);
    const into = Buffer.alloc(MIB);
    expect(file.copy(0, into)).toBe(true);
    expect(into.every((b) => b === 0)).toBe(true);
    cursor.at(1);
    expect(await settledWithin(next, 1000)).toBe(true);
    expect(dropped).toEqual([0]);
    cursor.close();
  });

  it('waits for a stalled sender only for the grace period, then the sender reads from disk', async () => {
    const file = growing(SIZE, { graceMs: 30, waitFloorMs: 10_000 });
    const dropped: number[] = [];
    const cursor = file.follow(0);
    // Waits once, for block 0 (with no grace period this would hang and time out); after
    // that the sender is behind what memory holds and holds nothing back.
    await keepAll(file, 0, KEPT + 2, dropped);
    expect(dropped).toEqual([0, 1]);
    expect(file.copy(0, Buffer.alloc(MIB))).toBe(false);
    cursor.close();
  });

  it('does not wait for a sender much slower than the upload: the total wait is budgeted', async () => {
    // No budget: a sender sitting at the oldest block does not hold the upload at all.
    const file = growing(SIZE, { graceMs: 10_000, waitFloorMs: 0, waitRatio: 0 });
    const dropped: number[] = [];
    const cursor = file.follow(0);
    await keepAll(file, 0, KEPT + 4, dropped);
    expect(dropped).toEqual([0, 1, 2, 3]);
    cursor.close();
  });

  it('once the upload is over, does not pin memory for a sender that is behind it', async () => {
    const file = growing(SIZE, { graceMs: 0 });
    const dropped: number[] = [];
    const slow = file.follow(0);
    await keepAll(file, 0, 64, dropped);
    expect(file.keptBlocks).toBe(KEPT);
    file.finish('cd'.repeat(32));
    // The sender reads blocks 0-47 from disk first: holding 48-63 for it all that time is waste.
    expect(file.keptBlocks).toBe(0);
    slow.close();
  });

  it('does not call a short last block ready: an upload shorter than declared fails its sender', async () => {
    const file = growing(2 * MIB + 100);
    await file.keep(2, frame(2, 40), () => {}, noWrite(2));
    expect(file.ready(2)).toBe(false);
    await file.keep(1, frame(1), () => {}, noWrite(1));
    expect(file.ready(1)).toBe(true);
    file.fail({ code: 'size_mismatch', message: 'the upload declared 2097252 bytes but sent 2097192' });
    expect(() => file.ready(2)).toThrow('declared');
  });

  it('lends a block to one sender at a time and keeps it until it is given back', async () => {
    const file = growing(SIZE, { graceMs: 0 });
    const dropped: number[] = [];
    await keepAll(file, 0, 1, dropped);
    const lent = file.lend(0)!;
    expect(lent.frame.length).toBe(DATA_FRAME_PREFIX + MIB);
    expect(file.lend(0)).toBeNull();
    // A second sender copies it instead.
    expect(file.copy(0, Buffer.alloc(MIB))).toBe(true);
    // Memory lets go of it while it is lent: the buffer is not reused before release().
    await keepAll(file, 1, KEPT + 1, dropped);
    expect(file.keptBlocks).toBe(KEPT);
    expect(dropped).not.toContain(0);
    lent.release();
    lent.release();
    expect(dropped.filter((i) => i === 0)).toHaveLength(1);
  });

  it('lets every block go when the upload ends with no sender following, or fails', async () => {
    const ended = growing(2 * MIB);
    const dropped: number[] = [];
    await ended.keep(0, frame(0), () => dropped.push(0), noWrite(0));
    await ended.keep(1, frame(1), () => dropped.push(1), noWrite(1));
    const cursor = ended.follow(1);
    ended.finish('ab'.repeat(32));
    // Over: what the one sender has passed goes at once, the rest when it is taken.
    expect(dropped).toEqual([0]);
    cursor.at(2);
    expect(dropped).toEqual([0, 1]);
    cursor.close();
    await expect(ended.sha256()).resolves.toBe('ab'.repeat(32));

    const failed = growing(2 * MIB);
    const lost: number[] = [];
    await failed.keep(0, frame(0), () => lost.push(0), noWrite(0));
    failed.fail({ code: 'upload_failed', message: 'gone' });
    expect(lost).toEqual([0]);
    expect(() => failed.ready(1)).toThrow('gone');
    await expect(failed.sha256()).rejects.toThrow('gone');
    // A block arriving after the end is let go at once.
    await failed.keep(1, frame(1), () => lost.push(1), noWrite(1));
    expect(lost).toEqual([0, 1]);
  });

  it('shares the memory for kept blocks among the uploads in progress', async () => {
    const budget = new KeepBudget();
    const uploads = [0, 1, 2].map(() => new GrowingFile(SIZE, { graceMs: 0 }, budget));
    const dropped: number[][] = [[], [], []];
    // All three are under way (each has a block), then each goes on: 24 MiB among three.
    for (const [u, file] of uploads.entries()) await keepAll(file, 0, 1, dropped[u]!);
    for (const [u, file] of uploads.entries()) await keepAll(file, 1, KEPT + 4, dropped[u]!);
    expect(uploads.map((f) => f.keptBlocks)).toEqual([8, 8, 8]);
    // Two end; the one left keeps its full 16 MiB again.
    uploads[1]!.fail({ code: 'upload_failed', message: 'gone' });
    uploads[2]!.fail({ code: 'upload_failed', message: 'gone' });
    await keepAll(uploads[0]!, KEPT + 4, 2 * KEPT + 4, dropped[0]!);
    expect(uploads[0]!.keptBlocks).toBe(KEPT);
  });

  it('writes only the blocks some receiver has not saved, and never lends out what it dropped unwritten', async () => {
    const file = growing(SIZE, { graceMs: 0 });
    const claim = file.claim();
    claim.saved(10);
    const dropped: number[] = [];
    const written: number[] = [];
    await keepAll(file, 0, KEPT + 12, dropped, written);
    expect(dropped).toEqual([...Array(12).keys()]);
    expect(written).toEqual([10, 11]);
    expect(file.skippedBlocks).toBe(10);
    expect(file.ready(11)).toBe(true);
    // Only a receiver that lost what it reported saved asks for such a block again.
    expect(() => file.ready(5)).toThrow(/chunk 5 of the upload is gone/);
  });

  it('counts every transfer: a block is dropped unwritten only once all have saved it or ended', async () => {
    const file = growing(SIZE, { graceMs: 0 });
    const [a, b] = [file.claim(), file.claim()];
    a.saved(8);
    b.saved(3);
    const written: number[] = [];
    await keepAll(file, 0, KEPT + 6, [], written);
    expect(written).toEqual([3, 4, 5]);
    b.done();
    await keepAll(file, KEPT + 6, KEPT + 10, [], written);
    // Blocks 6 and 7 only a's receiver lacked, and it has them; 8 and 9 it has not.
    expect(written).toEqual([3, 4, 5, 8, 9]);
  });

  it('waits a moment for a receiver that reports as it goes, and drops the block unwritten once it has', async () => {
    const file = growing(SIZE, { graceMs: 10_000, waitFloorMs: 10_000 });
    const claim = file.claim();
    claim.live(true);
    const written: number[] = [];
    await keepAll(file, 0, KEPT, [], written);
    claim.sent(KEPT);
    const next = file.keep(KEPT, frame(KEPT), () => {}, writer(written)(KEPT));
    expect(await settledWithin(next, 50)).toBe(false);
    claim.saved(1);
    expect(await settledWithin(next, 1000)).toBe(true);
    expect(written).toEqual([]);
    // A receiver that does not report (no saved/1, or its link is down) is not waited for.
    claim.live(false);
    const after = file.keep(KEPT + 1, frame(KEPT + 1), () => {}, writer(written)(KEPT + 1));
    expect(await settledWithin(after, 50)).toBe(true);
    expect(written).toEqual([1]);
  });

  it('does not wait for a receiver that reports but has not been sent the block yet (a slow link)', async () => {
    const file = growing(SIZE, { graceMs: 10_000, waitFloorMs: 10_000 });
    const claim = file.claim();
    claim.live(true);
    claim.sent(0);
    const written: number[] = [];
    await keepAll(file, 0, KEPT, [], written);
    const next = file.keep(KEPT, frame(KEPT), () => {}, writer(written)(KEPT));
    expect(await settledWithin(next, 50)).toBe(true);
    expect(written).toEqual([0]);
  });

  it('writes what is still unsaved when the upload ends, and keeps the saved blocks unwritten', async () => {
    const file = growing(6 * MIB, { graceMs: 0 });
    const claim = file.claim();
    claim.saved(2);
    const written: number[] = [];
    await keepAll(file, 0, 6, [], written);
    expect(written).toEqual([]);
    // No receiver reports as it saves (no saved/1): nothing to wait for.
    await file.end('ef'.repeat(32));
    expect(written).toEqual([2, 3, 4, 5]);
    expect(await file.sha256()).toBe('ef'.repeat(32));
    expect(file.skippedBlocks).toBe(2);
    await file.end('ef'.repeat(32));
    expect(written).toEqual([2, 3, 4, 5]);
  });

  it('at the end, lets senders send END at once and waits for a receiver that keeps up: nothing written once it completes', async () => {
    const file = growing(6 * MIB, { endMs: 10_000, waitFloorMs: 10_000 });
    const claim = file.claim();
    claim.live(true);
    const written: number[] = [];
    await keepAll(file, 0, 6, [], written);
    claim.sent(4); // blocks 4 and 5 are still to go, from memory
    const ended = file.end('ab'.repeat(32));
    expect(await file.sha256()).toBe('ab'.repeat(32));
    expect(await settledWithin(ended, 50)).toBe(false);
    claim.saved(3);
    claim.sent(6);
    expect(await settledWithin(ended, 50)).toBe(false);
    claim.done(); // RESULT: the receiver has the whole file
    expect(await settledWithin(ended, 1000)).toBe(true);
    expect(written).toEqual([]);
    expect(file.skippedBlocks).toBe(6);
    expect(file.keptBlocks).toBe(0);
  });

  it('at the end, writes at once what a receiver that does not report lacks, and the rest at the deadline', async () => {
    const file = growing(6 * MIB, { endMs: 100, waitFloorMs: 10_000 });
    const live = file.claim();
    live.live(true);
    live.sent(6);
    const written: number[] = [];
    await keepAll(file, 0, 6, [], written);
    const t0 = performance.now();
    await file.end('cd'.repeat(32));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    expect(written).toEqual([0, 1, 2, 3, 4, 5]);

    const other = growing(6 * MIB, { endMs: 10_000, waitFloorMs: 10_000 });
    const a = other.claim();
    a.live(true);
    a.sent(6);
    other.claim(); // no saved/1: never reports
    const writtenToo: number[] = [];
    await keepAll(other, 0, 6, [], writtenToo);
    expect(await settledWithin(other.end('cd'.repeat(32)), 1000)).toBe(true);
    expect(writtenToo).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('at the end, fails an upload shorter than declared', async () => {
    const file = growing(6 * MIB);
    await keepAll(file, 0, 5, []);
    await file.end('ef'.repeat(32));
    await expect(file.sha256()).rejects.toThrow(/declared/);
  });
});
