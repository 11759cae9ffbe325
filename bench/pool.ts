// A fixed number of tasks run by a fixed number of workers, bounded in time.

export interface PoolOptions {
  readonly tasks: number;
  readonly concurrency: number;
  /** Absolute deadline (ms since epoch): no task starts after it and the pool fails. */
  readonly deadline: number;
  readonly label: string;
}

/** Runs task(0 .. tasks-1), `concurrency` at a time; the first failure stops the pool and is thrown. */
export async function runPool(options: PoolOptions, task: (index: number, worker: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (w: number): Promise<void> => {
    while (failed === undefined && next < options.tasks) {
      if (Date.now() > options.deadline) throw new Error(`${options.label}: time budget exceeded after ${next} of ${options.tasks} tasks`);
      const index = next++;
      await task(index, w);
    }
  };
  const workers = Array.from({ length: Math.min(options.concurrency, options.tasks) }, (_, w) =>
    worker(w).catch((err: unknown) => {
      failed ??= err;
    }),
  );
  await Promise.all(workers);
  if (failed !== undefined) throw failed;
}
