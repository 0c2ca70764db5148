// BlockWriter stores an upload in blocks (O_DIRECT where the filesystem has it) and
// hashes it: whatever the sizes of the pieces, the file and its SHA-256 are the bytes
// that came in, the GrowingFile learns them in order, and a lie about the size fails.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { payloadPool } from '../../../server/protocol/buffer-pool.js';
import { BlockWriter } from '../../../server/transfer/block-writer.js';
import { ChunkFile } from '../../../server/transfer/chunk-file.js';
import { GrowingFile } from '../../../server/transfer/growing-file.js';

const dir = mkdtempSync(join(tmpdir(), 'block-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** `data` cut into pieces of sizes that never line up with blocks or pages. */
function pieces(data: Buffer): Readable {
  const out: Buffer[] = [];
  for (let at = 0, k = 0; at < data.length; k++) {
    const len = [1, 4095, 65536, 100_003, 7][k % 5]!;
    out.push(data.subarray(at, at + len));
    at += len;
  }
  return Readable.from(out, { objectMode: false });
}

async function store(data: Buffer, growing?: GrowingFile, input = pieces(data)) {
  const path = join(dir, `f${n++}`);
  const file = await ChunkFile.open(path, 'new');
  const writer = new BlockWriter(file, growing);
  try {
    await writer.from(input);
    return { path, writer };
  } finally {
    await file.close();
  }
}

/** Waits until every pooled buffer taken since `baseline` has been given back (hash replies come asynchronously). */
async function allGivenBack(baseline: number): Promise<void> {
  for (let i = 0; i < 200 && payloadPool.inUse !== baseline; i++) await new Promise((r) => setTimeout(r, 10));
  expect(payloadPool.inUse).toBe(baseline);
}

describe('BlockWriter', () => {
  it('stores and hashes an upload of any piece sizes, and reports it to the GrowingFile in order', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 12_345);
    const growing = new GrowingFile(data.length);
    const seen: number[] = [];
    const watch = (async () => {
      while (growing.written < data.length) {
        await growing.changed();
        seen.push(growing.written);
      }
    })();
    const cursor = growing.follow(3); // a sender about to take the last block
    const { path, writer } = await store(data, growing);
    await watch;
    expect(writer.size).toBe(data.length);
    expect(await writer.sha256()).toBe(createHash('sha256').update(data).digest('hex'));
    expect(readFileSync(path).equals(data)).toBe(true);
    expect(seen.at(-1)).toBe(data.length);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    // The upload has ended the GrowingFile; the last block is in memory for the sender, whole.
    expect(await growing.sha256()).toBe(await writer.sha256());
    const last = Buffer.alloc(12_345);
    expect(growing.copy(3, last)).toBe(true);
    expect(last.equals(data.subarray(3 * 1024 * 1024))).toBe(true);
    cursor.close();
    expect(growing.keptBlocks).toBe(0);
  });

  it('stores an upload of unknown size, and an empty one', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 1);
    const { path, writer } = await store(data);
    expect(readFileSync(path).equals(data)).toBe(true);
    expect(await writer.sha256()).toBe(createHash('sha256').update(data).digest('hex'));
    const empty = await store(Buffer.alloc(0));
    expect(readFileSync(empty.path).length).toBe(0);
    expect(await empty.writer.sha256()).toBe(createHash('sha256').digest('hex'));
  });

  it('refuses more bytes than declared, and fails when the input breaks off', async () => {
    const baseline = payloadPool.inUse;
    const data = randomBytes(300_000);
    await expect(store(data, new GrowingFile(200_000))).rejects.toMatchObject({ code: 'size_mismatch' });
    const broken = new Readable({ read() {} });
    broken.push(data.subarray(0, 70_000));
    setTimeout(() => broken.destroy(new Error('connection reset')), 20);
    await expect(store(data, undefined, broken)).rejects.toThrow('connection reset');
    const cut = new Readable({ read() {} });
    cut.push(data.subarray(0, 70_000));
    setTimeout(() => cut.destroy(), 20);
    await expect(store(data, undefined, cut)).rejects.toThrow(/premature close/i);
    // Broken off before the writer even started reading (while the file was being opened);
    // @fastify/multipart has its own 'error' listener on every file stream.
    const gone = new Readable({ read() {} }).on('error', () => {});
    gone.destroy(new Error('aborted'));
    await new Promise((r) => setImmediate(r));
    await expect(store(data, undefined, gone)).rejects.toThrow('aborted');
    const closed = new Readable({ read() {} });
    closed.destroy();
    await new Promise((r) => setImmediate(r));
    await expect(store(data, undefined, closed)).rejects.toThrow(/premature close/i);
    await allGivenBack(baseline);
  });

  it('gives every block back when the input breaks off while a full block waits for a sender', async () => {
    const baseline = payloadPool.inUse;
    const size = 40 * 1024 * 1024;
    const growing = new GrowingFile(size, { graceMs: 200, waitFloorMs: 10_000 });
    // A sender that never moves: the 17th block waits for it.
    const cursor = growing.follow(0);
    const input = new Readable({ read() {} });
    const piece = randomBytes(1024 * 1024 + 512);
    for (let i = 0; i < 20; i++) input.push(piece);
    setTimeout(() => input.destroy(new Error('connection reset')), 50);
    await expect(store(Buffer.alloc(0), growing, input)).rejects.toThrow('connection reset');
    growing.fail({ code: 'upload_failed', message: 'the upload broke off' });
    cursor.close();
    await allGivenBack(baseline);
  });

  it('gives every block back after a whole upload, once no sender holds them', async () => {
    const baseline = payloadPool.inUse;
    const data = randomBytes(5 * 1024 * 1024 + 3);
    const growing = new GrowingFile(data.length);
    await store(data, growing);
    await allGivenBack(baseline);
  });
});
