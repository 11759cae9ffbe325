/**
 * A counting semaphore: at most `permits` holders at once, the others served in arrival order.
 * `acquire` resolves with the release function (calling it more than once releases once).
 */
export interface Semaphore {
  acquire(): Promise<() => void>;
  /** Holders now, and callers waiting. */
  readonly held: number;
  readonly waiting: number;
}

export function createSemaphore(permits: number): Semaphore {
  if (!Number.isInteger(permits) || permits < 1) throw new RangeError(`permits must be a positive integer, got ${permits}`);
  let held = 0;
  const queue: (() => void)[] = [];
  const grant = (): (() => void) => {
    held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      held--;
      const next = queue.shift();
      next?.();
    };
  };
  return {
    acquire(): Promise<() => void> {
      if (held < permits && queue.length === 0) return Promise.resolve(grant());
      return new Promise((resolve) => queue.push(() => resolve(grant())));
    },
    get held() {
      return held;
    },
    get waiting() {
      return queue.length;
    },
  };
}
