import { isIP } from 'node:net';
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { isValidUid } from '../dicom/uid.js';

/**
 * Request log lines without PHI: QIDO query strings carry patient names and IDs, so never the
 * query string or the request headers, and of the path only the route and the parameters that
 * are UIDs (loggablePath): a client may put anything where a UID belongs (SPEC §8).
 */
export class PhiSafeLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      path: loggablePath(request),
      statusCode: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
      remoteIp: loggableIp(request.ip),
    };
    if (error) reply.log.error({ ...line, err: error.message }, 'request errored');
    else reply.log.info(line, 'request completed');
  }

  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    // The code, not the message: a message may quote the offending query value (a birth date, a name).
    const line = { method: request.method, path: loggablePath(request), statusCode: reply.statusCode, code: (error as { code?: string }).code };
    if (reply.statusCode >= 500) reply.log.error(line, 'request failed');
    else reply.log.info(line, 'request rejected');
  }

  override routeNotFound(request: FastifyRequest): void {
    request.log.info({ method: request.method, path: loggablePath(request) }, 'route not found');
  }
}

export function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * A route parameter as logged, by its name: a frame list as numbers, a node's AE title, a job id (a
 * UUID); any other (study, series, instance, …) only when it is a UID with at least one dot — a
 * patient ID or accession number of digits alone is a valid one-component UID, but no real one.
 */
function loggableParam(name: string, value: string): boolean {
  if (name === 'frames') return /^\d{1,10}(,\d{1,10})*$/.test(value);
  if (name === 'ae_title') return /^[A-Za-z0-9 _.-]{1,16}$/.test(value);
  if (name === 'id') return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
  return value.includes('.') && isValidUid(value);
}

/**
 * The path of a request as it may be logged: the route it matched with each parameter that is a
 * UID (or a list of frame numbers) filled in, any other as `:name` (a patient ID where a study UID
 * belongs stays out); a path that matched no route by its first segment only, when that is a
 * plain lower-case word (`/wado/…`, `/api/…`), else `/…`.
 */
export function loggablePath(request: FastifyRequest): string {
  const route = request.routeOptions.url;
  if (route === undefined || route === '') {
    const first = pathOnly(request.url).split('/')[1] ?? '';
    return /^[a-z][a-z-]{0,30}$/.test(first) ? `/${first}/…` : '/…';
  }
  const params = (request.params ?? {}) as Record<string, unknown>;
  return route.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (whole, name: string) => {
    const value = params[name];
    return typeof value === 'string' && loggableParam(name, value) ? value : whole;
  });
}

/** request.ip as logged: an IP address; with trust_proxy it comes from X-Forwarded-For, which a client writes. */
export function loggableIp(ip: string | undefined): string | undefined {
  return ip !== undefined && isIP(ip) !== 0 ? ip : 'invalid';
}
