import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
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

  // Field 19 of /proc/<pid>/task/<tid>/stat is the thread's nice value (proc(5)).
  // A thread that has exited meanwhile gives null.
  const niceOf = (tid: string): number | null => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // After the command name (which may hold spaces and parentheses), fields 3, 4, ...
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    } catch {
      return null;
    }
  };

  it.runIf(process.platform === 'linux')('runs 5 nicer than the event loop, and leaves the other threads alone', async () => {
    const before = new Map(readdirSync('/proc/self/task').map((tid) => [tid, niceOf(tid)]));
    await hashThread.stream().digest();
    const now = readdirSync('/proc/self/task');
    const own = niceOf(String(process.pid))!;
    const niced = now.filter((tid) => niceOf(tid) === Math.min(19, own + 5));
    expect(own).toBeLessThan(19);
    expect(niced.length).toBe(1);
    expect(niceOf(String(process.pid))).toBe(before.get(String(process.pid)));
    // Threads that came and went meanwhile (V8's, the test runner's) are not compared.
    for (const tid of now) {
      const nice = niceOf(tid);
      if (tid !== niced[0] && before.get(tid) != null && nice !== null) expect(nice).toBe(before.get(tid));
    }
  });
});
