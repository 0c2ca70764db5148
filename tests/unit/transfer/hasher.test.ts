import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { payloadPool } from '../../../server/protocol/buffer-pool.js';
import { hashThread } from '../../../server/transfer/hasher.js';

const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h;
};

describe('hash thread', () => {
  it('answers the digest of everything fed so far (prefix digests) and the whole-file digest at the end', async () => {
    const a = randomBytes(300_000);
    const b = randomBytes(1024 * 1024);
    // One chunk in shared (pooled) memory, one ordinary: both ways of handing data over.
    const shared = payloadPool.take(b.length);
    b.copy(shared);
    const c = randomBytes(17);
    const stream = hashThread.stream();
    const [pa, pb] = await Promise.all([stream.update(a, true), stream.update(shared, true)]);
    expect(await stream.update(c)).toBeNull();
    expect(pa!.toString('hex')).toBe(sha(a).digest('hex'));
    expect(pb!.toString('hex')).toBe(sha(a, b).digest('hex'));
    expect(await stream.digest()).toBe(sha(a, b, c).digest('hex'));
    payloadPool.give(shared);
  });

  it('keeps streams apart', async () => {
    const one = hashThread.stream();
    const two = hashThread.stream();
    const x = randomBytes(5000);
    const y = randomBytes(7000);
    await Promise.all([one.update(x), two.update(y), one.update(y)]);
    expect(await one.digest()).toBe(sha(x, y).digest('hex'));
    expect(await two.digest()).toBe(sha(y).digest('hex'));
  });
});
