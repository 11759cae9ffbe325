import type { Writable } from 'node:stream';

/** Resolves on 'drain' or on 'close' (a destroyed stream never drains): the wait after write() said false. */
export function drainedOrClosed(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}
