import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * Request log lines without PHI: QIDO query strings carry patient names and IDs, so only the
 * path (UIDs) is logged, never the query string or the request headers (SPEC §8).
 */
export class PhiSafeLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      path: pathOnly(request.url),
      statusCode: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
      remoteIp: request.ip,
    };
    if (error) reply.log.error({ ...line, err: error.message }, 'request errored');
    else reply.log.info(line, 'request completed');
  }

  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    // The code, not the message: a message may quote the offending query value (a birth date, a name).
    const line = { method: request.method, path: pathOnly(request.url), statusCode: reply.statusCode, code: (error as { code?: string }).code };
    if (reply.statusCode >= 500) reply.log.error(line, 'request failed');
    else reply.log.info(line, 'request rejected');
  }

  override routeNotFound(request: FastifyRequest): void {
    request.log.info({ method: request.method, path: pathOnly(request.url) }, 'route not found');
  }
}

export function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
