import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ArchiveError, type ArchiveErrorCode } from '../archive/errors.js';
import { UID_ISSUE } from './schemas.js';
import { loggableError } from '../util/loggable-error.js';

/**
 * The one mapping table ArchiveError code -> HTTP status (ARCHITECTURE rule 7), and the one JSON
 * error shape of SPEC §3: {"error":{"code","message","details"}}. Codes are listed in docs/errors.md.
 */
const STATUS: Record<ArchiveErrorCode, number> = {
  INVALID_UID: 400,
  INVALID_QUERY: 400,
  INVALID_PARAMETER: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  STORAGE_UNAVAILABLE: 503,
  DATABASE_UNAVAILABLE: 503,
};

/** Codes that only the HTTP edge produces. */
export const HttpErrorCode = {
  REMOTE_ACCESS_DISABLED: 'REMOTE_ACCESS_DISABLED',
  ROUTE_NOT_FOUND: 'ROUTE_NOT_FOUND',
  URI_TOO_LONG: 'URI_TOO_LONG',
  HEADERS_TOO_LARGE: 'HEADERS_TOO_LARGE',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
} as const;

export interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

export function errorBody(code: string, message: string, details: Record<string, unknown> = {}): ErrorBody {
  return { error: { code, message, details } };
}

export function sendError(reply: FastifyReply, status: number, code: string, message: string, details: Record<string, unknown> = {}): FastifyReply {
  return reply.code(status).type('application/json').send(errorBody(code, message, details));
}

function fastifyMapping(err: FastifyError): { status: number; code: string; message: string; details?: Record<string, unknown> } | undefined {
  if (err.validation) {
    // zod issues (fastify-type-provider-zod) carry the field as instancePath `/limit`; ajv names a
    // missing property in params. Nested paths read `a.0.b`.
    const first = err.validation[0];
    const params = (first?.params ?? {}) as { missingProperty?: string; params?: { errorCode?: string } };
    const path = first ? first.instancePath || params.missingProperty || '' : '';
    const field = path.replace(/^\//, '').replaceAll('/', '.');
    const code = params.params?.errorCode === UID_ISSUE ? 'INVALID_UID' : 'INVALID_PARAMETER';
    const message = first ? `${field || err.validationContext || 'request'}: ${first.message ?? 'invalid'}` : err.message;
    return { status: 400, code, message, details: { field, ...(err.validationContext ? { in: err.validationContext } : {}) } };
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'unsupported content type' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'request body too large' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, code: 'BAD_REQUEST', message: err.message };
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return { status: err.statusCode, code: err.statusCode === 404 ? 'NOT_FOUND' : 'BAD_REQUEST', message: err.message };
  }
  return undefined;
}

export function errorHandler(err: FastifyError | ArchiveError | Error, request: FastifyRequest, reply: FastifyReply): void {
  if (reply.sent || reply.raw.headersSent) {
    // Mid-stream failure: the status line is gone; cut the connection so the client sees a truncated body.
    request.log.warn({ err: err.message }, 'error after the response started');
    reply.raw.destroy();
    return;
  }
  if (err instanceof ArchiveError) {
    void sendError(reply, STATUS[err.code], err.code, err.message, err.details ?? {});
    return;
  }
  const mapped = fastifyMapping(err as FastifyError);
  if (mapped) {
    void sendError(reply, mapped.status, mapped.code, mapped.message, mapped.details ?? {});
    return;
  }
  // The client went away while we read its body (a STOW upload abandoned): nobody to answer, and
  // no fault of ours. Only the request stream's own error ('aborted', ECONNRESET) on a request that
  // is gone: a database driver's ECONNRESET while the client waits is a 500, logged as such.
  const code = (err as { code?: string }).code;
  if ((code === 'ECONNRESET' || err.message === 'aborted') && (request.raw.destroyed || request.raw.socket?.destroyed === true)) {
    request.log.info({ code }, 'client closed the connection');
    reply.raw.destroy();
    return;
  }
  // No stack traces (and no PHI) in responses; the log gets the message only.
  request.log.error({ err: loggableError(err), code: (err as FastifyError).code }, 'unhandled error');
  void sendError(reply, 500, 'INTERNAL', 'internal server error');
}

/** A path quoted in a message stays short: URLs may be tens of KiB long. */
function shortPath(url: string): string {
  const path = url.split('?')[0] ?? '';
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void sendError(reply, 404, HttpErrorCode.ROUTE_NOT_FOUND, `no route for ${request.method} ${shortPath(request.url)}`);
}

/**
 * Fastify's `frameworkErrors`: errors the router raises before any route runs (a path segment over
 * `maxParamLength`, malformed percent-encoding in the path) get the SPEC §3 shape instead of
 * Fastify's own body. `maxParamLength` is only quoted in the answer.
 */
export function frameworkErrorHandler(maxParamLength: number) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    switch (err.code) {
      case 'FST_ERR_MAX_PARAM_LENGTH':
        void sendError(reply, 414, HttpErrorCode.URI_TOO_LONG, `a path segment of the URL is longer than ${maxParamLength} characters`, { maxParamLength });
        return;
      case 'FST_ERR_BAD_URL':
        void sendError(reply, 400, 'BAD_REQUEST', 'the URL path is not valid (malformed percent-encoding)', { reason: 'BAD_URL' });
        return;
      default:
        errorHandler(err, request, reply);
    }
  };
}

/**
 * Node's 'clientError' (Fastify `clientErrorHandler`): the request could not be parsed, so no route,
 * hook or reply exists — the answer is written to the socket by hand, in the SPEC §3 shape, and the
 * connection is closed. Like Node's own handler, nothing is written once a response on this socket
 * has started (keep-alive: the error may belong to the next request).
 */
export function clientErrorHandler(maxHeaderBytes: number) {
  return function handle(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let status: number;
    let body: ErrorBody;
    switch (err.code) {
      case 'HPE_HEADER_OVERFLOW':
        // The parser cannot tell whether the request line or a header field overflowed.
        status = 431;
        body = errorBody(HttpErrorCode.HEADERS_TOO_LARGE, `the request line and header fields are larger than ${maxHeaderBytes} bytes`, { maxHeaderBytes });
        break;
      case 'ERR_HTTP_REQUEST_TIMEOUT':
        status = 408;
        body = errorBody(HttpErrorCode.REQUEST_TIMEOUT, 'the request was not received in time');
        break;
      case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
        status = 413;
        body = errorBody('PAYLOAD_TOO_LARGE', 'chunk extensions too large');
        break;
      default:
        status = 400;
        body = errorBody('BAD_REQUEST', 'the request is not valid HTTP', { reason: 'MALFORMED_REQUEST' });
    }
    this.log.debug({ code: err.code, status }, 'client error');
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      const json = JSON.stringify(body);
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
      );
    }
    socket.destroy(err);
  };
}

export function statusForCode(code: ArchiveErrorCode): number {
  return STATUS[code];
}
