import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../../server/mesh/redialer.js';

describe('backoffDelay', () => {
  const opts = { minMs: 100, maxMs: 1000 };

  it('doubles per attempt up to the cap', () => {
    const top = (n: number) => backoffDelay(n, { ...opts, random: () => 0.999999 });
    expect([0, 1, 2, 3, 4, 5].map(top)).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('jitters down to half, never below', () => {
    expect(backoffDelay(0, { ...opts, random: () => 0 })).toBe(50);
    expect(backoffDelay(3, { ...opts, random: () => 0 })).toBe(400);
  });

  it('does not overflow on very many attempts', () => {
    expect(backoffDelay(10_000, { ...opts, random: () => 0.5 })).toBe(750);
  });
});
