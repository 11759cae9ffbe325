import type { ServerResponse } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { drainedOrClosed, readIntoSource } from '../../util/streams.js';
import { closeDelimiter, multipartBoundary, multipartContentType, partHeader } from '../../dicom/multipart.js';

export interface ResponsePart {
  headers: Record<string, string>;
  open(): Promise<Readable | AsyncIterable<unknown>>;
}

/**
 * A multipart/related response body streamed part by part: each part's source is opened only when
 * the previous one is done and piped straight into the response (no per-chunk copies), so memory
 * does not grow with the study and the socket sets the pace. Chunked: for parts of unknown length
 * (frames, bulk data). Stored instances go through sendStoredParts().
 */
export function multipartResponse(type: string, parts: AsyncIterable<ResponsePart>): { contentType: string; body: Readable } {
  const boundary = multipartBoundary();
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  const pump = async (): Promise<void> => {
    let first = true;
    for await (const part of parts) {
      if (body.destroyed) return;
      const header = partHeader(boundary, part.headers, first);
      first = false;
      if (!body.write(header)) await drainedOrClosed(body);
      const source = await part.open();
      const readable = source instanceof Readable ? source : Readable.from(source);
      await copyPart(readable, body);
      if (body.destroyed) return;
    }
    body.end(closeDelimiter(boundary));
  };
  pump().catch((err: unknown) => body.destroy(err instanceof Error ? err : new Error(String(err))));
  return { contentType: multipartContentType(type, boundary), body };
}

/**
 * Writes one part's chunks into the body as they come, pausing the part while the body is full.
 * Not pipeline(…, { end: false }): that left a listener on the body per part
 * (MaxListenersExceededWarning past ten frames); not `for await`: read() joins buffered chunks (a
 * copy). The part is destroyed when it ends, fails, or the body is gone.
 */
function copyPart(part: Readable, body: PassThrough): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      part.off('data', onData);
      part.off('end', onEnd);
      part.off('error', onError);
      part.destroy();
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onData = (chunk: Buffer): void => {
      if (body.destroyed) {
        finish();
        return;
      }
      if (body.write(chunk)) return;
      part.pause();
      void drainedOrClosed(body).then(() => {
        if (body.destroyed) finish();
        else part.resume();
      });
    };
    const onEnd = (): void => finish();
    const onError = (err: unknown): void => finish(err);
    part.on('data', onData);
    part.once('end', onEnd);
    part.once('error', onError);
  });
}

/** A source of known length: its bytes go to the client unchanged (a stored instance). */
export interface SizedPart {
  headers: Record<string, string>;
  length: number;
  open(): Promise<Readable>;
}

/**
 * Stored instances as one multipart/related body, or a single one as the whole body (`type`
 * undefined). Every length is known up front, so the response carries Content-Length (no chunk
 * framing; clients can show progress); a source that delivers another length aborts the response
 * rather than sending a wrong one. The first source is opened before anything is sent, so its
 * failure is still an ordinary JSON error.
 */
export async function sendStoredParts(reply: FastifyReply, parts: SizedPart[], type?: string): Promise<FastifyReply> {
  let items: Item[];
  let contentType: string;
  if (type === undefined) {
    const only = parts[0] as SizedPart;
    contentType = only.headers['Content-Type'] ?? 'application/octet-stream';
    items = [only];
  } else {
    const boundary = multipartBoundary();
    contentType = multipartContentType(type, boundary);
    items = [];
    parts.forEach((p, i) => items.push(partHeader(boundary, p.headers, i === 0), p));
    items.push(closeDelimiter(boundary));
  }
  const length = items.reduce((n, it) => n + it.length, 0);
  reply.code(200).header('content-type', contentType).header('content-length', String(length));
  // HEAD: the same headers (Fastify would send Content-Length: 0 for an empty reply), no blob opened.
  const head = reply.request.method === 'HEAD';
  const firstPart = items.find((it): it is SizedPart => !Buffer.isBuffer(it));
  const first = firstPart && !head ? await firstPart.open() : undefined;
  // From here on the response is written here, straight onto the socket (see writeItems).
  reply.hijack();
  const res = reply.raw;
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) res.setHeader(name, value as string);
  res.strictContentLength = true;
  res.writeHead(200);
  if (head) {
    res.end();
    return reply;
  }
  writeItems(res, items, first).catch((err: unknown) => {
    if (!res.destroyed) {
      reply.log.warn({ err: err instanceof Error ? err.message : String(err), path: reply.request.routeOptions.url }, 'response aborted');
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  });
  return reply;
}

type Item = Buffer | SizedPart;

/** Buffers a response fills and the socket writes; reused after each write callback. */
const BUFFER_BYTES = 1024 * 1024;
const BUFFERS_PER_RESPONSE = 3;
/** Free buffers kept between responses (bounded: 4 MiB, which the server keeps while idle). */
const spare: Buffer[] = [];
const SPARE_MAX = 4;
function keepSpare(buf: Buffer): void {
  if (spare.length < SPARE_MAX) spare.push(buf);
}

/**
 * Writes the items in order. Sources that can read into our buffers (the filesystem store) fill a
 * few reused buffers — part headers copied in front, several small instances packed into one
 * buffer — and each buffer is written with a callback that frees it: at most
 * BUFFERS_PER_RESPONSE are in flight, so the socket sets the pace and memory stays bounded. Other
 * sources are written chunk by chunk with backpressure.
 */
async function writeItems(res: ServerResponse, items: Item[], first: Readable | undefined): Promise<void> {
  const free: Buffer[] = [];
  let allocated = 0;
  let waiter: (() => void) | undefined;
  let closed = false;
  let failed: Error | undefined;
  const onClose = (): void => {
    closed = true;
    waiter?.();
  };
  res.once('close', onClose);

  let done = false;
  const release = (buf: Buffer, err: Error | null | undefined): void => {
    if (err) failed ??= err;
    else if (done) keepSpare(buf); // the body is complete: nothing will write into this buffer again
    else if (!closed) free.push(buf);
    waiter?.();
  };
  const acquire = async (): Promise<Buffer> => {
    for (;;) {
      if (closed || failed) throw failed ?? new Error('client closed the connection');
      const buf = free.pop();
      if (buf) return buf;
      if (allocated < BUFFERS_PER_RESPONSE) {
        allocated++;
        return spare.pop() ?? Buffer.allocUnsafeSlow(BUFFER_BYTES);
      }
      await new Promise<void>((resolve) => (waiter = resolve));
      waiter = undefined;
    }
  };

  let buf: Buffer | undefined;
  let used = 0;
  const flush = (): void => {
    if (!buf || used === 0) return;
    const out = buf;
    buf = undefined;
    res.write(out.subarray(0, used), (err) => release(out, err));
    used = 0;
  };
  /** Copies small bytes (part headers, the close delimiter) into the current buffer. */
  const put = async (bytes: Buffer): Promise<void> => {
    if (buf && used + bytes.length > buf.length) flush();
    if (bytes.length > BUFFER_BYTES) {
      res.write(bytes);
      return;
    }
    buf ??= await acquire();
    used += bytes.copy(buf, used);
  };

  let pending = first;
  try {
    for (const item of items) {
      if (Buffer.isBuffer(item)) {
        await put(item);
        continue;
      }
      const source = pending ?? (await item.open());
      pending = undefined;
      try {
        const direct = readIntoSource(source);
        if (direct && direct.byteLength !== item.length) throw new Error(`stored blob has ${direct.byteLength} bytes, the index says ${item.length}`);
        let remaining = item.length;
        if (direct) {
          while (remaining > 0) {
            if (closed || failed) throw failed ?? new Error('client closed the connection');
            if (buf && used === buf.length) flush();
            buf ??= await acquire();
            const got = await direct.readInto(buf, used, Math.min(buf.length - used, remaining));
            if (got === 0) throw new Error(`stored blob ended ${remaining} bytes early`);
            used += got;
            remaining -= got;
          }
        } else {
          flush();
          for await (const chunk of source) {
            const b = chunk as Buffer;
            remaining -= b.length;
            if (remaining < 0) break;
            if (!res.write(b)) await drainedOrClosed(res);
            if (closed) throw new Error('client closed the connection');
          }
          if (remaining !== 0) throw new Error(`stored blob has ${item.length - remaining} bytes, the index says ${item.length}`);
        }
      } finally {
        source.destroy();
      }
    }
    flush();
    if (closed || failed) throw failed ?? new Error('client closed the connection');
    done = true;
    res.end();
    for (const b of free.splice(0)) keepSpare(b);
  } finally {
    pending?.destroy();
  }
}
