import { describe, expect, it } from 'vitest';
import { roundOrder } from '../../../bench/lib/schedule.js';

/** How often `a` runs right before `b` across the given rounds. */
function follows(n: number, rounds: number): number[][] {
  const count = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let r = 0; r < rounds; r++) {
    const order = roundOrder(n, r);
    for (let i = 1; i < order.length; i++) count[order[i - 1]!]![order[i]!]!++;
  }
  return count;
}

describe('roundOrder', () => {
  it('gives a permutation of every item in every round', () => {
    for (let n = 1; n <= 10; n++) {
      for (let r = 0; r < 2 * n + 3; r++) expect([...roundOrder(n, r)].sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
    }
  });

  it('puts each of an even count of items right after each other item exactly once in n rounds', () => {
    for (const n of [2, 4, 6, 8, 10]) {
      const count = follows(n, n);
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) expect(count[a]![b]).toBe(a === b ? 0 : 1);
    }
  });

  it('gives an odd count of items each neighbour at most twice in n + 1 rounds', () => {
    for (const n of [3, 5, 7, 9]) {
      const count = follows(n, n + 1);
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) expect(count[a]![b]).toBeLessThanOrEqual(a === b ? 0 : 2);
    }
  });

  it('runs each item at each place once in n rounds (even n), like a rotation', () => {
    const n = 8;
    for (let place = 0; place < n; place++) {
      const at = new Set(Array.from({ length: n }, (_, r) => roundOrder(n, r)[place]));
      expect(at.size).toBe(n);
    }
  });

  it('refuses nonsense', () => {
    expect(() => roundOrder(0, 0)).toThrow(RangeError);
    expect(() => roundOrder(3, -1)).toThrow(RangeError);
  });
});
