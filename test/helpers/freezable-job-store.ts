import type { JobStore } from '../../src/storage/jobs.js';

/**
 * A JobStore whose process can be "frozen": once `freeze()` is called every call waits (nothing
 * reaches the database: no heartbeat, no progress, no end), as when the process running a job
 * crashed, was killed or its machine lost power. `thaw()` lets the held calls through, as a
 * process resumed after SIGSTOP would.
 */
export interface FreezableJobStore {
  store: JobStore;
  freeze(): void;
  thaw(): void;
}

export function freezableJobStore(inner: JobStore): FreezableJobStore {
  let gate: Promise<void> | undefined;
  let open: () => void = () => {};
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(inner)) {
    if (typeof fn !== 'function') continue;
    wrapped[name] = async (...args: unknown[]): Promise<unknown> => {
      while (gate) await gate;
      return (fn as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
    };
  }
  return {
    store: wrapped as unknown as JobStore,
    freeze() {
      gate ??= new Promise<void>((resolve) => (open = resolve));
    },
    thaw() {
      gate = undefined;
      open();
    },
  };
}
