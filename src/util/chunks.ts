import type { Readable } from 'node:stream';

/**
 * Iterates a stream's chunks as they were pushed. `for await (… of readable)` calls read(), which
 * joins every buffered chunk into one new Buffer — a copy of each byte of a large upload. This
 * reads through 'data' events instead and pauses the stream while `highWater` chunks wait.
 */
export async function* chunksOf(source: AsyncIterable<Uint8Array> | Readable, highWater = 16): AsyncGenerator<Uint8Array> {
  if (!isReadable(source)) {
    yield* source;
    return;
  }
  const stream = source;
  const queue: Uint8Array[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Uint8Array | string): void => {
    queue.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (queue.length >= highWater) stream.pause();
    notify();
  };
  const onEnd = (): void => {
    ended = true;
    notify();
  };
  const onError = (err: unknown): void => {
    failure = err;
    notify();
  };
  // A stream destroyed without an error and without 'end' (e.g. an aborted request) ends the input too.
  const onClose = (): void => {
    if (!ended && failure === undefined) failure = new Error('the stream closed before its end');
    notify();
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', onClose);
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        if (queue.length < highWater / 2 && stream.isPaused()) stream.resume();
        yield chunk;
        continue;
      }
      if (ended) return;
      if (failure !== undefined) throw failure;
      if (stream.isPaused()) stream.resume();
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('error', onError);
    stream.off('close', onClose);
  }
}

function isReadable(x: unknown): x is Readable {
  return typeof x === 'object' && x !== null && typeof (x as Readable).on === 'function' && typeof (x as Readable).pause === 'function';
}
