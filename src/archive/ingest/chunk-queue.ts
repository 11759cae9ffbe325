/**
 * A push-to-pull bridge: the ingest pump pushes chunks, the header reader pulls them as an
 * AsyncIterable. Closing drops whatever is queued; the reader stopping early never affects the pump.
 */
export class ChunkQueue implements AsyncIterable<Uint8Array> {
  private chunks: Uint8Array[] = [];
  private queuedBytes = 0;
  private ended = false;
  private waiter: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];

  get bytes(): number {
    return this.queuedBytes;
  }

  push(chunk: Uint8Array): void {
    if (this.ended) return;
    this.chunks.push(chunk);
    this.queuedBytes += chunk.length;
    this.wake();
  }

  /** No more chunks will come (the reader sees the end of input). */
  end(): void {
    this.ended = true;
    this.wake();
  }

  /** The reader is done: drop queued chunks and release anyone waiting for a drain. */
  close(): void {
    this.ended = true;
    this.chunks = [];
    this.queuedBytes = 0;
    this.wake();
    this.releaseDrain();
  }

  /** Resolves once queued bytes fall to `lowWater` or the queue closes. */
  async drained(lowWater: number): Promise<void> {
    while (this.queuedBytes > lowWater && !(this.ended && this.chunks.length === 0)) {
      await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private releaseDrain(): void {
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        for (;;) {
          const chunk = this.chunks.shift();
          if (chunk) {
            this.queuedBytes -= chunk.length;
            this.releaseDrain();
            return { value: chunk, done: false };
          }
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (this.waiter = resolve));
        }
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
