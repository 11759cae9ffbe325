import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { drainedOrClosed } from '../../util/streams.js';
import { closeDelimiter, multipartBoundary, multipartContentType, partHeader } from '../../dicom/multipart.js';

export interface ResponsePart {
  headers: Record<string, string>;
  open(): Promise<Readable | AsyncIterable<unknown>>;
}

/**
 * A multipart/related response body streamed part by part: each part's source is opened only when
 * the previous one is done and piped straight into the response (no per-chunk copies), so memory
 * does not grow with the study and the socket sets the pace.
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
      await pipeline(readable, body, { end: false });
    }
    body.end(closeDelimiter(boundary));
  };
  pump().catch((err: unknown) => body.destroy(err instanceof Error ? err : new Error(String(err))));
  return { contentType: multipartContentType(type, boundary), body };
}
