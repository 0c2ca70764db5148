// The order of the interleaved items in each round. A plain rotation (round r starts at
// item r) keeps every item behind the same neighbour in every round, and on this VM the
// item before one matters: the rounds that ran C right after rsync and A right after the
// TLS pipe measured C / A at 0.617, the same rounds with the two swapped 0.754 (the
// items that write and delete files leave the disk in a state the next writer feels;
// docs/PERFORMANCE-HISTORY.md). A Williams design (E. J. Williams, 1949, "Experimental designs
// balanced for the estimation of residual effects of treatments") also rotates, but
// its first row zigzags (0, 1, n-1, 2, n-2, ...), so across n rounds each item follows
// every other item exactly once, and in any few rounds no item has the same one before it twice.

/** Item indices for `round` (0-based) of `n` items: a permutation of 0..n-1. */
export function roundOrder(n: number, round: number): number[] {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(round) || round < 0) {
    throw new RangeError(`roundOrder wants n >= 1 and round >= 0, got ${n}, ${round}`);
  }
  // The zigzag is balanced for an even count: an odd one gets a placeholder, dropped after.
  const m = n % 2 ? n + 1 : n;
  const first = [0];
  for (let k = 1; first.length < m; k++) {
    first.push(k);
    if (first.length < m) first.push(m - k);
  }
  return first.map((x) => (x + round) % m).filter((x) => x < n);
}
