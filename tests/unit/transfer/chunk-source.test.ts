import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_CHUNK } from '../../../server/protocol/transfer-messages.js';
import { ChunkSource } from '../../../server/transfer/chunk-source.js';
import { hashThread } from '../../../server/transfer/hasher.js';

const CHUNKS = 6;
let dir: string | null = null;

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

/**
 * A real file handle whose reads come back last chunk first: each read, once done, waits
 * for the read of the chunk after it. `finished` gets the positions in the order they came back.
 */
function lastChunkFirst(fh: FileHandle, size: number, finished: number[]): FileHandle {
  const done = new Map<number, { promise: Promise<void>; resolve: () => void }>();
  const gate = (position: number) => {
    let g = done.get(position);
    if (!g) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      done.set(position, (g = { promise, resolve }));
    }
    return g;
  };
  return new Proxy(fh, {
    get(target, prop) {
      if (prop !== 'read') return Reflect.get(target, prop, target);
      return async (buf: Buffer, offset: number, length: number, position: number) => {
        const result = await target.read(buf, offset, length, position);
        if (position + MIN_CHUNK < size) await gate(position + MIN_CHUNK).promise;
        finished.push(position);
        gate(position).resolve();
        return result;
      };
    },
  });
}

describe('ChunkSource', () => {
  it('hands chunks read ahead to the whole-file hash in file order, whatever order their reads finish in', async () => {
    dir = await mkdtemp(join(tmpdir(), 'chunk-source-'));
    const content = randomBytes(CHUNKS * MIN_CHUNK - 1000); // the last chunk is short
    const path = join(dir, 'file.bin');
    await writeFile(path, content);
    const fh = await open(path, 'r');
    const hash = hashThread.stream();
    const need = Array.from({ length: CHUNKS }, (_, i) => i);
    const finished: number[] = [];
    const source = new ChunkSource(lastChunkFirst(fh, content.length, finished), { size: content.length, chunkSize: MIN_CHUNK, hash, growing: undefined, need, halted: () => false });
    try {
      // Every read starts at once, as a sender reading ahead starts them.
      const chunks = await Promise.all(need.map((k) => source.load(k)));
      // The reads really did finish out of order, so the test can tell a wrong hash order.
      expect(finished).toEqual([...need].reverse().map((k) => k * MIN_CHUNK));
      chunks.forEach((c, k) => expect(c!.bytes.equals(content.subarray(k * MIN_CHUNK, (k + 1) * MIN_CHUNK))).toBe(true));
      expect(await hash.digest()).toBe(createHash('sha256').update(content).digest('hex'));
      for (const c of chunks) c!.sent();
    } finally {
      source.close();
      await fh.close();
    }
  });
});
