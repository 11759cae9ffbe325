/**
 * Streaming multipart/related codec (RFC 2046 5.1, RFC 2387) for STOW-RS bodies and WADO-RS responses.
 *
 * Why our own: dicer crashes the process on a part-header line beginning with a space
 * (CVE-2022-24434) and is unmaintained; the other parsers found buffer whole parts, while DICOM parts
 * can be gigabytes. This parser pulls from the source only when the current part's consumer asks for
 * bytes, so memory stays bounded by one source chunk plus the delimiter-length lookbehind.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseMediaType } from './media-types.js';

export type MultipartErrorCode =
  | 'NO_BOUNDARY'
  | 'BAD_HEADER'
  | 'HEADER_TOO_LARGE'
  | 'MISSING_CLOSE'
  | 'NO_PARTS'
  | 'TOO_MANY_PARTS';

export class MultipartError extends Error {
  readonly code: MultipartErrorCode;
  constructor(code: MultipartErrorCode, message: string) {
    super(message);
    this.name = 'MultipartError';
    this.code = code;
  }
}

export interface MultipartPart {
  /** Lowercased names; folded lines unfolded; a repeated header keeps its values joined by `, `. */
  headers: Record<string, string>;
  contentType?: string;
  /** This part's bytes, fed as they arrive. */
  body: Readable;
}

export interface ParseMultipartOptions {
  /** Largest header block of one part, in bytes (default 8192). */
  maxHeaderBytes?: number;
  /** More parts than this → TOO_MANY_PARTS (default: unlimited). */
  maxParts?: number;
}

/**
 * Parses a Content-Type header value. Throws MultipartError BAD_HEADER when it is not a media type.
 * Values may be quoted or not (clients differ: dicomweb-client quotes `type`, OHIF does not).
 */
export function parseContentType(header: string): { type: string; params: Record<string, string> } {
  const mt = parseMediaType(header);
  if (mt === undefined) throw new MultipartError('BAD_HEADER', 'Content-Type is not a media type');
  return { type: `${mt.type}/${mt.subtype}`, params: mt.params };
}

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const DASH = 0x2d;
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
// Transport padding after a boundary is rare and short; past this much the bytes are data.
const MAX_PADDING = 256;
// RFC 2046 bchars; a boundary outside them could be split by our own header parsing.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const MORE: unique symbol = Symbol('more');

type Classification =
  | { kind: 'boundary'; end: number }
  | { kind: 'close'; end: number }
  | { kind: 'data' }
  | { kind: 'more' };

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * The shared cursor over the source. Only one caller drives it at a time: the part body's pump or
 * the generator draining a part, never both (see PartFeeder).
 */
class Scanner {
  private buf: Buffer;
  private eof = false;
  readonly delimiter: Buffer;
  /** 'body' while inside a part, 'end' after the close delimiter. */
  state: 'preamble' | 'headers' | 'body' | 'end' = 'preamble';
  /** Body bytes known to hold no delimiter start, handed out before `buf` (see pull). */
  private carry: Buffer | undefined;
  private readonly source: AsyncIterator<Uint8Array | string>;

  constructor(
    source: AsyncIterable<Uint8Array | string>,
    boundary: string,
    private readonly maxHeaderBytes: number,
  ) {
    this.source = source[Symbol.asyncIterator]();
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
    // A virtual CRLF lets the first dash-boundary (no CRLF before it) match the same delimiter.
    this.buf = Buffer.from(CRLF);
  }

  /** Appends the next source chunk; false at end of input. */
  private async pull(): Promise<boolean> {
    if (this.eof) return false;
    for (;;) {
      const r = await this.source.next();
      if (r.done === true) {
        this.eof = true;
        return false;
      }
      const chunk = toBuffer(r.value);
      if (chunk.length === 0) continue;
      if (this.state === 'body' && this.buf.length > 0 && this.buf.length < this.delimiter.length && chunk.length >= this.delimiter.length) {
        // The kept-back tail is usually plain body data: when no delimiter starts in it, hand it out
        // as its own piece instead of copying every chunk of a large part onto it.
        const joint = Buffer.concat([this.buf, chunk.subarray(0, this.delimiter.length)]);
        const at = joint.indexOf(this.delimiter);
        if (at < 0 || at >= this.buf.length) {
          this.carry = this.buf;
          this.buf = chunk;
          return true;
        }
      }
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      return true;
    }
  }

  /** What the bytes after a delimiter found at `at` make of it. */
  private classify(at: number): Classification {
    const b = this.buf;
    const p0 = at + this.delimiter.length;
    if (p0 >= b.length) return this.eof ? { kind: 'data' } : { kind: 'more' };
    if (b[p0] === DASH) {
      if (p0 + 1 >= b.length) return this.eof ? { kind: 'data' } : { kind: 'more' };
      if (b[p0 + 1] === DASH) return { kind: 'close', end: p0 + 2 };
      return { kind: 'data' };
    }
    let p = p0;
    while (p < b.length && (b[p] === SP || b[p] === HT)) {
      if (p - p0 >= MAX_PADDING) return { kind: 'data' };
      p++;
    }
    if (p + 1 >= b.length) {
      if (p < b.length && b[p] !== CR) return { kind: 'data' };
      return this.eof ? { kind: 'data' } : { kind: 'more' };
    }
    return b[p] === CR && b[p + 1] === LF ? { kind: 'boundary', end: p + 2 } : { kind: 'data' };
  }

  /**
   * The first delimiter at or after `from` (and starting before `limit`) that is a real boundary or
   * close, or 'more' when one may be starting but the bytes to decide have not arrived.
   */
  private findDelimiter(
    from: number,
    limit = Infinity,
  ): { at: number; c: Exclude<Classification, { kind: 'data' }> } | undefined {
    let pos = from;
    for (;;) {
      const at = this.buf.indexOf(this.delimiter, pos);
      if (at < 0 || at >= limit) return undefined;
      const c = this.classify(at);
      if (c.kind !== 'data') return { at, c };
      // A boundary can't start inside the match (boundaries hold no CR), so skip past all of it.
      pos = at + this.delimiter.length;
    }
  }

  /** Bytes at the end of buf that could still become the start of a delimiter. */
  private keepBack(): number {
    return Math.min(this.buf.length, this.delimiter.length - 1);
  }

  private enter(c: { kind: 'boundary' | 'close'; end: number }): void {
    this.buf = this.buf.subarray(c.end);
    this.state = c.kind === 'close' ? 'end' : 'headers';
  }

  /** Discards the preamble up to the first boundary. */
  async skipPreamble(): Promise<void> {
    for (;;) {
      const found = this.findDelimiter(0);
      if (found !== undefined && found.c.kind !== 'more') {
        if (found.c.kind === 'close') throw new MultipartError('NO_PARTS', 'multipart body has no part');
        this.enter(found.c);
        return;
      }
      const keepFrom = found !== undefined ? found.at : this.buf.length - this.keepBack();
      this.buf = this.buf.subarray(keepFrom);
      if (!(await this.pull())) throw new MultipartError('NO_PARTS', 'no multipart boundary found in the body');
    }
  }

  /** Reads one part's header block; leaves the cursor at the start of its body. */
  async readHeaders(): Promise<Record<string, string>> {
    for (;;) {
      const r = this.tryReadHeaders();
      if (r !== MORE) return r;
      await this.pullOrMissingClose();
    }
  }

  private tryReadHeaders(): Record<string, string> | typeof MORE {
    const b = this.buf;
    if (b.length < 2) return MORE;
    if (b[0] === CR && b[1] === LF) {
      // Either the blank line of an empty header block, or (when the part has no header block and
      // no body at all) the next delimiter.
      if (b.length < this.delimiter.length && this.delimiter.subarray(0, b.length).equals(b) && !this.eof) return MORE;
      const d = this.findDelimiter(0, 1);
      if (d?.c.kind === 'more') return MORE;
      if (d === undefined) this.buf = b.subarray(2);
      this.state = 'body';
      return {};
    }
    const end = b.indexOf(CRLFCRLF);
    // Lenient: a header block ended directly by the next delimiter is a part with an empty body.
    const d = this.findDelimiter(0, end < 0 ? Infinity : end);
    if (d !== undefined && d.c.kind !== 'more') {
      if (d.at > this.maxHeaderBytes) throw tooLarge(this.maxHeaderBytes);
      const headers = parseHeaderBlock(b.subarray(0, d.at));
      this.buf = b.subarray(d.at);
      this.state = 'body';
      return headers;
    }
    if (end >= 0 && d === undefined) {
      if (end > this.maxHeaderBytes) throw tooLarge(this.maxHeaderBytes);
      const headers = parseHeaderBlock(b.subarray(0, end));
      this.buf = b.subarray(end + CRLFCRLF.length);
      this.state = 'body';
      return headers;
    }
    if (b.length > this.maxHeaderBytes + CRLFCRLF.length) throw tooLarge(this.maxHeaderBytes);
    return MORE;
  }

  async pullOrMissingClose(): Promise<void> {
    if (!(await this.pull())) throw missingClose();
  }

  /**
   * The next piece of the current part's body, null once the part has ended (the cursor then sits
   * after its delimiter), or MORE when the source must be pulled first (pullOrMissingClose).
   * Synchronous so that a part whose bytes are already buffered costs no promise per step.
   */
  tryBodyPiece(): Buffer | null | typeof MORE {
    if (this.state !== 'body') return null;
    if (this.carry !== undefined) {
      const carried = this.carry;
      this.carry = undefined;
      return carried;
    }
    const found = this.findDelimiter(0);
    if (found !== undefined && found.c.kind !== 'more') {
      const piece = this.buf.subarray(0, found.at);
      this.enter(found.c);
      return piece.length > 0 ? piece : null;
    }
    const safe = found !== undefined ? found.at : this.buf.length - this.keepBack();
    if (safe <= 0) return MORE;
    const piece = this.buf.subarray(0, safe);
    this.buf = this.buf.subarray(safe);
    return piece;
  }

  /** Reads and discards whatever follows the close delimiter, so the sender is not left blocked. */
  async drainEpilogue(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.pull()) this.buf = Buffer.alloc(0);
  }
}

function tooLarge(max: number): MultipartError {
  return new MultipartError('HEADER_TOO_LARGE', `part header block exceeds ${max} bytes`);
}

function missingClose(): MultipartError {
  return new MultipartError('MISSING_CLOSE', 'multipart body ended without its closing delimiter');
}

/**
 * RFC 822 header block. A line beginning with space or tab continues the previous header (unfolded
 * with one space); as the first line it continues nothing and is a BAD_HEADER error — thrown, not a
 * crash (the input that brought down dicer).
 */
function parseHeaderBlock(block: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  let last: string | undefined;
  for (const line of block.toString('utf8').split(/\r?\n/)) {
    if (line === '') continue;
    if (line[0] === ' ' || line[0] === '\t') {
      if (last === undefined) {
        throw new MultipartError('BAD_HEADER', 'part header block starts with a continuation line');
      }
      const more = line.trim();
      if (more !== '') headers[last] = headers[last] === '' ? more : `${headers[last]} ${more}`;
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
    if (!HEADER_NAME.test(name)) throw new MultipartError('BAD_HEADER', 'malformed part header line');
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    last = name;
  }
  return headers;
}

/**
 * Couples one part's Readable to the scanner. The pump runs only on the stream's read() demand and
 * stops when push() says the consumer's buffer is full — that is the backpressure to the source.
 */
class PartFeeder {
  readonly body: Readable;
  private pumping: Promise<void> = Promise.resolve();
  private active = false;
  // Set by read(); a read() arriving synchronously inside push() must not be lost, or the stream stalls.
  private wanted = false;
  private ended = false;
  private failure: Error | undefined;
  private discard = false;
  private discarded = 0;

  constructor(private readonly scanner: Scanner) {
    this.body = new Readable({ read: () => this.demand() });
  }

  private demand(): void {
    this.wanted = true;
    if (this.active || this.ended || this.failure !== undefined) return;
    // Set before run(): a run that finishes synchronously clears it again before run() returns.
    this.active = true;
    this.pumping = this.run();
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        const piece = this.scanner.tryBodyPiece();
        if (piece === MORE) {
          await this.scanner.pullOrMissingClose();
          continue;
        }
        if (piece === null) {
          this.ended = true;
          // Nothing thrown away: the body is complete and may still be read.
          if (this.discarded === 0) this.body.push(null);
          else this.body.destroy();
          return;
        }
        if (this.discard) {
          this.discarded += piece.length;
          continue;
        }
        this.wanted = false;
        if (!this.body.push(piece) && !this.wanted && !this.discard) return;
      }
    } catch (e) {
      // Source errors pass through unchanged: an upstream size limit must keep its own error.
      const failure = e instanceof Error ? e : new MultipartError('MISSING_CLOSE', 'multipart source failed');
      this.failure = failure;
      // An 'error' event without a listener would be thrown by the emitter: never crash the process.
      if (!this.discard && this.body.listenerCount('error') > 0) this.body.destroy(failure);
      else this.body.destroy();
    } finally {
      this.active = false;
    }
  }

  /** Called before the next part: lets an unread or half-read body run out, discarding it. */
  async finish(): Promise<void> {
    this.discard = true;
    while (!this.ended && this.failure === undefined) {
      this.demand();
      if (this.active) await this.pumping;
    }
    if (this.failure !== undefined) throw this.failure;
  }
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array | string> {
  return typeof x === 'object' && x !== null && Symbol.asyncIterator in x;
}

/**
 * Yields the parts of a multipart body one at a time. A part's body streams while the consumer reads
 * it; asking for the next part first discards the rest of the current body. Errors are MultipartError:
 * NO_BOUNDARY (invalid boundary), NO_PARTS, BAD_HEADER, HEADER_TOO_LARGE, TOO_MANY_PARTS, and
 * MISSING_CLOSE (also delivered to the body stream of the part in flight). An error of the source
 * itself is passed through unchanged, the same way.
 */
export async function* parseMultipart(
  body: AsyncIterable<Uint8Array> | Readable,
  boundary: string,
  opts: ParseMultipartOptions = {},
): AsyncGenerator<MultipartPart, void, undefined> {
  if (!BOUNDARY.test(boundary)) throw new MultipartError('NO_BOUNDARY', 'missing or invalid multipart boundary');
  if (!isAsyncIterable(body)) throw new TypeError('multipart body is not an async iterable');
  const scanner = new Scanner(body, boundary, opts.maxHeaderBytes ?? 8192);
  const maxParts = opts.maxParts ?? Infinity;
  await scanner.skipPreamble();
  let count = 0;
  let feeder: PartFeeder | undefined;
  try {
    while (scanner.state === 'headers') {
      const headers = await scanner.readHeaders();
      if (++count > maxParts) throw new MultipartError('TOO_MANY_PARTS', `more than ${maxParts} parts`);
      feeder = new PartFeeder(scanner);
      const contentType = headers['content-type'];
      yield contentType === undefined
        ? { headers, body: feeder.body }
        : { headers, contentType, body: feeder.body };
      await feeder.finish();
      feeder = undefined;
    }
  } finally {
    // The consumer stopped early (or we failed): do not leave a part body waiting forever.
    if (feeder !== undefined && !feeder.body.destroyed && !feeder.body.readableEnded) feeder.body.destroy();
  }
  await scanner.drainEpilogue();
}

// ---- writer ----

/** A fresh boundary: long and random so it cannot plausibly occur inside DICOM bytes. */
export function multipartBoundary(): string {
  return `pacsnode-${randomBytes(18).toString('hex')}`;
}

/**
 * The delimiter line and header block that open a part. Header names are written exactly as given:
 * OHIF matches `Content-Type: application/octet-stream; transfer-syntax=…` case-sensitively.
 */
export function partHeader(boundary: string, headers: Record<string, string>, first: boolean): Buffer {
  let out = `${first ? '' : '\r\n'}--${boundary}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!HEADER_NAME.test(name) || /[\r\n]/.test(value)) {
      throw new MultipartError('BAD_HEADER', `invalid part header ${JSON.stringify(name)}`);
    }
    out += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${out}\r\n`, 'utf8');
}

export function closeDelimiter(boundary: string): Buffer {
  return Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
}

const TOKEN_VALUE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function paramValue(v: string): string {
  return TOKEN_VALUE.test(v) ? v : `"${v.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * `multipart/related; type="application/dicom"; boundary=…`. Values that are not tokens (a `type`
 * always holds `/`) are quoted; `extra` parameters go between type and boundary.
 */
export function multipartContentType(type: string, boundary: string, extra: Record<string, string> = {}): string {
  let out = `multipart/related; type=${paramValue(type)}`;
  for (const [name, value] of Object.entries(extra)) out += `; ${name}=${paramValue(value)}`;
  return `${out}; boundary=${paramValue(boundary)}`;
}
