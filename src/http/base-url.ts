import type { FastifyRequest } from 'fastify';

export interface BaseUrlSettings {
  publicBaseUrl: string;
  trustProxy: boolean;
}

const HOST = /^[A-Za-z0-9.\-_[\]:]{1,255}$/;

/**
 * Origin for generated URLs (RetrieveURL, BulkDataURI): `public_base_url` when set; otherwise the
 * request's Host (X-Forwarded-Host/-Proto only with trust_proxy). A Host header that is not a plain
 * host[:port] is ignored in favour of the local address, so generated URLs cannot be poisoned.
 */
export function requestOrigin(request: FastifyRequest, settings: BaseUrlSettings): string {
  if (settings.publicBaseUrl !== '') return settings.publicBaseUrl.replace(/\/+$/, '');
  let proto = 'http';
  let host = request.headers.host;
  if (settings.trustProxy) {
    const fp = headerValue(request.headers['x-forwarded-proto']);
    const fh = headerValue(request.headers['x-forwarded-host']);
    if (fp === 'https' || fp === 'http') proto = fp;
    if (fh) host = fh;
  }
  if (!host || !HOST.test(host)) {
    const addr = request.socket.localAddress ?? '127.0.0.1';
    const port = request.socket.localPort ?? 80;
    host = addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
  }
  return `${proto}://${host}`;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s?.split(',')[0]?.trim() || undefined;
}
