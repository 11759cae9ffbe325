// Small HTTP helpers for the end-to-end tests: raw requests (node:http, so nothing is normalised
// behind our back), multipart bodies, and multipart responses parsed with our own parser.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { parseContentType, parseMultipart } from '../../src/dicom/multipart.js';
import type { DicomJsonDataset, DicomJsonElement } from '../../src/dicom/types.js';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as JSON (throws when it is not). */
  json<T = unknown>(): T;
  text(): string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  body?: Buffer | string;
  /** Fail when no complete response arrived within this many ms (default 20 s): a hung server must not hang the suite. */
  timeoutMs?: number;
}

/** One HTTP/1.1 request on a fresh connection; resolves with the whole response. */
export function request(url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json<T>(): T {
            return JSON.parse(body.toString('utf8')) as T;
          },
          text(): string {
            return body.toString('utf8');
          },
        });
      });
    });
    req.on('error', reject);
    const timeoutMs = opts.timeoutMs ?? 20_000;
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response to ${opts.method ?? 'GET'} ${url} within ${timeoutMs} ms`)));
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

export function get(url: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return request(url, { headers });
}

export interface BodyPart {
  /** undefined: no Content-Type header; default application/dicom. */
  contentType?: string | null;
  headers?: Record<string, string>;
  body: Buffer;
}

export function newBoundary(): string {
  return `test-${randomBytes(12).toString('hex')}`;
}

/** A multipart/related body (no preamble unless given). */
export function multipartBody(parts: BodyPart[], boundary: string, opts: { preamble?: string; epilogue?: string; close?: boolean } = {}): Buffer {
  const pieces: Buffer[] = [];
  if (opts.preamble !== undefined) pieces.push(Buffer.from(`${opts.preamble}\r\n`, 'latin1'));
  parts.forEach((p, i) => {
    let head = `${i === 0 ? '' : '\r\n'}--${boundary}\r\n`;
    const ct = p.contentType === undefined ? 'application/dicom' : p.contentType;
    if (ct !== null) head += `Content-Type: ${ct}\r\n`;
    for (const [k, v] of Object.entries(p.headers ?? {})) head += `${k}: ${v}\r\n`;
    pieces.push(Buffer.from(`${head}\r\n`, 'latin1'), p.body);
  });
  if (opts.close !== false) pieces.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'));
  if (opts.epilogue !== undefined) pieces.push(Buffer.from(opts.epilogue, 'latin1'));
  return Buffer.concat(pieces);
}

/** POST a multipart/related STOW-RS body of DICOM files. */
export function stow(url: string, files: Buffer[], opts: { quoted?: boolean } = {}): Promise<HttpResponse> {
  const boundary = newBoundary();
  const body = multipartBody(files.map((b) => ({ body: b })), boundary);
  const type = opts.quoted === false ? 'application/dicom' : '"application/dicom"';
  return request(url, { method: 'POST', headers: { 'Content-Type': `multipart/related; type=${type}; boundary=${boundary}`, 'Content-Length': body.length }, body });
}

export interface ParsedPart {
  headers: Record<string, string>;
  contentType: string | undefined;
  body: Buffer;
}

/** Parses a multipart/related response with our own streaming parser. */
export async function parseMultipartResponse(res: HttpResponse): Promise<ParsedPart[]> {
  const ct = res.headers['content-type'];
  assert.ok(ct, 'multipart response without Content-Type');
  const { type, params } = parseContentType(ct);
  assert.equal(type, 'multipart/related', `expected multipart/related, got ${ct}`);
  const boundary = params['boundary'];
  assert.ok(boundary, 'multipart response without boundary');
  const out: ParsedPart[] = [];
  for await (const part of parseMultipart(Readable.from([res.body]), boundary)) {
    const chunks: Buffer[] = [];
    for await (const c of part.body) chunks.push(c as Buffer);
    out.push({ headers: part.headers, contentType: part.contentType, body: Buffer.concat(chunks) });
  }
  return out;
}

export interface ErrorShape {
  error: { code: string; message: string; details: Record<string, unknown> };
}

/** Asserts the SPEC §3 error shape and JSON media type; returns the parsed body. */
export function assertJsonError(res: HttpResponse, status: number, code?: string): ErrorShape {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text().slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/);
  const body = res.json<ErrorShape>();
  assert.equal(typeof body.error, 'object');
  assert.match(body.error.code, /^[A-Z][A-Z0-9_]*$/);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(typeof body.error.details, 'object');
  assert.ok(body.error.details !== null && !Array.isArray(body.error.details));
  assert.deepEqual(Object.keys(body).sort(), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'details', 'message']);
  if (code !== undefined) assert.equal(body.error.code, code);
  return body;
}

// ---- DICOM JSON access ----

export function element(ds: DicomJsonDataset, tag: string): DicomJsonElement | undefined {
  return ds[tag] ?? ds[tag.toUpperCase()] ?? ds[tag.toLowerCase()];
}

export function firstValue(ds: DicomJsonDataset, tag: string): unknown {
  return element(ds, tag)?.Value?.[0];
}

export function stringValue(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = firstValue(ds, tag);
  return typeof v === 'string' ? v : v === undefined ? undefined : String(v);
}

export function values(ds: DicomJsonDataset, tag: string): unknown[] {
  return element(ds, tag)?.Value ?? [];
}

export interface PersonNameJson {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

export function personName(ds: DicomJsonDataset, tag = '00100010'): PersonNameJson | undefined {
  const v = firstValue(ds, tag);
  return v !== null && typeof v === 'object' ? (v as PersonNameJson) : undefined;
}

export function items(ds: DicomJsonDataset, tag: string): DicomJsonDataset[] {
  return values(ds, tag).map((v) => v as DicomJsonDataset);
}

// ---- dicomweb-client in Node ----

/** xhr2 is CommonJS with `module.exports = XMLHttpRequest` and no types: load it with require. */
export function installXhr(): void {
  const require = createRequire(import.meta.url);
  const xhr2 = require('xhr2') as unknown;
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = xhr2;
}
