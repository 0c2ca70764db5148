import { readableError, type ReadableError } from '../errors';

/** The error of the last user action a component ran, shown until dismissed or the next run. */
export class ActionError {
  error = $state<ReadableError | null>(null);

  async run(action: () => Promise<void>): Promise<void> {
    this.error = null;
    try {
      await action();
    } catch (cause) {
      this.error = readableError(cause);
    }
  }

  clear(): void {
    this.error = null;
  }
}
