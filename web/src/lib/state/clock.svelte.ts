/**
 * A shared, coarse "now" for relative times ("3 min ago") and countdowns.
 * One interval for the whole page instead of one per row.
 */
class Clock {
  now = $state(Date.now());

  constructor() {
    setInterval(() => {
      this.now = Date.now();
    }, 1000);
  }
}

export const clock = new Clock();
