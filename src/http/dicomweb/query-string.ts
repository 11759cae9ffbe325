import { ArchiveError } from '../../archive/errors.js';

/**
 * The raw query string as ordered [key, value] pairs, percent-decoded per RFC 3986 (a `+` stays a
 * plus: QIDO values such as timezone offsets use it). Repeated keys are kept (includefield).
 */
export function queryPairs(url: string): [string, string][] {
  const q = url.indexOf('?');
  if (q < 0) return [];
  const out: [string, string][] = [];
  for (const piece of url.slice(q + 1).split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const k = eq < 0 ? piece : piece.slice(0, eq);
    const v = eq < 0 ? '' : piece.slice(eq + 1);
    try {
      out.push([decodeURIComponent(k), decodeURIComponent(v)]);
    } catch {
      throw new ArchiveError('INVALID_QUERY', `malformed percent-encoding in query parameter '${k}'`, { key: k });
    }
  }
  return out;
}
