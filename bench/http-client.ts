// The load generator's HTTP: plain node:http with keep-alive agents, every request bounded in time.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { EncodedInstance } from './dataset.js';

export function keepAliveAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
}

export interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** Body bytes received. */
  readonly bytes: number;
  /** The body, when asked for with `collect`. */
  readonly body?: Buffer;
  /** Request start to last body byte, in milliseconds. */
  readonly ms: number;
}

export interface RequestOptions {
  readonly agent: http.Agent;
  readonly method?: 'GET' | 'POST';
  readonly headers?: http.OutgoingHttpHeaders;
  /** Request body chunks, written with backpressure. */
  readonly chunks?: readonly Buffer[];
  readonly timeoutMs: number;
  /** Keep the body (QIDO JSON, STOW responses); otherwise bytes are only counted. */
  readonly collect?: boolean;
}

export function request(url: string, options: RequestOptions): Promise<Response> {
  const started = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e6;
  return new Promise<Response>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`${options.method ?? 'GET'} ${url}: no complete response within ${options.timeoutMs} ms`)), options.timeoutMs);
    const req = http.request(url, { method: options.method ?? 'GET', agent: options.agent, headers: options.headers }, (res) => {
      const parts: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (options.collect === true) parts.push(chunk);
      });
      res.on('error', fail);
      res.on('aborted', () => fail(new Error(`${url}: response aborted`)));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const response: Response = { status: res.statusCode ?? 0, headers: res.headers, bytes, ms: elapsed() };
        resolve(options.collect === true ? { ...response, body: Buffer.concat(parts) } : response);
      });
    });
    req.on('error', fail);
    writeBody(req, options.chunks ?? []).catch(fail);
  });
}

async function writeBody(req: http.ClientRequest, chunks: readonly Buffer[]): Promise<void> {
  for (const chunk of chunks) {
    if (req.destroyed) return;
    if (!req.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error): void => {
          req.off('drain', onDrain);
          req.off('error', onError);
          req.off('close', onDrain);
          if (err) reject(err);
          else resolve();
        };
        const onDrain = (): void => done();
        const onError = (err: Error): void => done(err);
        req.on('drain', onDrain);
        req.on('error', onError);
        req.on('close', onDrain);
      });
    }
  }
  req.end();
}

export interface StowResult {
  readonly ms: number;
  readonly bytes: number;
  readonly stored: number;
}

/** POST /studies with `multipart/related; type="application/dicom"`: one part per instance. */
export async function stow(baseUrl: string, instances: readonly EncodedInstance[], agent: http.Agent, timeoutMs: number): Promise<StowResult> {
  const boundary = `pacsnode-bench-${randomBytes(12).toString('hex')}`;
  const partHead = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1');
  const crlf = Buffer.from('\r\n', 'latin1');
  const close = Buffer.from(`--${boundary}--\r\n`, 'latin1');
  const chunks: Buffer[] = [];
  let dicomBytes = 0;
  for (const instance of instances) {
    chunks.push(partHead, ...instance.chunks, crlf);
    dicomBytes += instance.bytes;
  }
  chunks.push(close);
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const res = await request(`${baseUrl}/studies`, {
    agent,
    method: 'POST',
    headers: {
      'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      'content-length': length,
      accept: 'application/dicom+json',
    },
    chunks,
    timeoutMs,
    collect: true,
  });
  if (res.status !== 200) {
    throw new Error(`STOW-RS answered ${res.status} for ${instances.length} instances: ${(res.body ?? Buffer.alloc(0)).toString('utf8').slice(0, 400)}`);
  }
  const stored = referencedCount(res.body ?? Buffer.alloc(0));
  if (stored !== instances.length) throw new Error(`STOW-RS stored ${stored} of ${instances.length} instances`);
  return { ms: res.ms, bytes: dicomBytes, stored };
}

/** Items in ReferencedSOPSequence (0008,1199) of a store response. */
function referencedCount(body: Buffer): number {
  const doc: unknown = JSON.parse(body.toString('utf8'));
  if (typeof doc !== 'object' || doc === null) return 0;
  const seq: unknown = (doc as Record<string, unknown>)['00081199'];
  if (typeof seq !== 'object' || seq === null) return 0;
  const value: unknown = (seq as Record<string, unknown>)['Value'];
  return Array.isArray(value) ? value.length : 0;
}
