import { Readable } from 'node:stream';
import { closeDelimiter, multipartBoundary, multipartContentType, partHeader } from '../../dicom/multipart.js';

export interface ResponsePart {
  headers: Record<string, string>;
  open(): Promise<AsyncIterable<unknown>>;
}

/**
 * A multipart/related response body streamed part by part: each part's source is opened only when
 * the previous one is done, so memory does not grow with the study and the socket sets the pace.
 */
export function multipartResponse(type: string, parts: AsyncIterable<ResponsePart>): { contentType: string; body: Readable } {
  const boundary = multipartBoundary();
  async function* generate(): AsyncGenerator<Buffer> {
    let first = true;
    for await (const part of parts) {
      yield partHeader(boundary, part.headers, first);
      first = false;
      for await (const chunk of await part.open()) yield chunk as Buffer;
    }
    yield closeDelimiter(boundary);
  }
  return { contentType: multipartContentType(type, boundary), body: Readable.from(generate(), { objectMode: false }) };
}
