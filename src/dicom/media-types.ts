/**
 * Media types and Accept negotiation for DICOMweb (PS3.18 8.7; RFC 9110 12.5.1).
 *
 * Parsing is deliberately tolerant: real clients send unquoted parameter values that RFC 9110
 * would reject (OHIF: `multipart/related; type=application/octet-stream; transfer-syntax=*`), so an
 * unquoted value runs up to the next `;` or `,` and may contain `/`. A malformed range is dropped
 * rather than failing the whole header, so one odd entry does not turn into a 406.
 */

export interface MediaType {
  /** Lowercased, e.g. `multipart`. */
  type: string;
  /** Lowercased, e.g. `related`. */
  subtype: string;
  /** Lowercased names, unquoted values (case kept: a transfer-syntax UID or a boundary is case-sensitive). */
  params: Record<string, string>;
}

export interface MediaRange extends MediaType {
  /** Quality 0..1 (1 when absent). The `q` parameter is removed from `params`. */
  q: number;
}

/** Something a resource can produce. `type` is the `type` parameter of a multipart/related response. */
export interface Offer {
  mediaType: string;
  type?: string;
}

export interface Negotiated<O extends Offer = Offer> {
  offer: O;
  range: MediaRange;
  /** The `transfer-syntax` parameter of the chosen range, when the client asked for one. */
  transferSyntax?: string;
}

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const Q_VALUE = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

/**
 * Splits `text` on `sep` outside quoted strings. A quoted string runs to the next unescaped `"`;
 * an unterminated one swallows the rest, and the caller then rejects that piece.
 */
export function splitOutsideQuotes(text: string, sep: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === sep) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

function unquote(raw: string): string | undefined {
  if (!raw.startsWith('"')) return raw;
  if (raw.length < 2 || !raw.endsWith('"')) return undefined;
  let out = '';
  for (let i = 1; i < raw.length - 1; i++) {
    let ch = raw[i] as string;
    if (ch === '\\') {
      i++;
      // A backslash escaping the closing quote means the string never closed.
      if (i >= raw.length - 1) return undefined;
      ch = raw[i] as string;
    } else if (ch === '"') {
      return undefined;
    }
    out += ch;
  }
  return out;
}

/**
 * Parses one media type with parameters (`type/subtype; a=b; c="d"`), or returns undefined when it
 * is not one. Repeated parameters keep the first occurrence; empty `;` segments are skipped.
 */
export function parseMediaType(text: string): MediaType | undefined {
  const segments = splitOutsideQuotes(text, ';');
  const full = (segments[0] ?? '').trim();
  const slash = full.indexOf('/');
  if (slash < 0) return undefined;
  const type = full.slice(0, slash).trim().toLowerCase();
  const subtype = full.slice(slash + 1).trim().toLowerCase();
  if (!TOKEN.test(type) || !TOKEN.test(subtype)) return undefined;
  const params: Record<string, string> = {};
  for (const seg of segments.slice(1)) {
    const s = seg.trim();
    if (s === '') continue;
    const eq = s.indexOf('=');
    if (eq <= 0) return undefined;
    const name = s.slice(0, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) return undefined;
    const value = unquote(s.slice(eq + 1).trim());
    if (value === undefined) return undefined;
    if (!(name in params)) params[name] = value;
  }
  return { type, subtype, params };
}

/**
 * Parses an Accept header into media ranges sorted by q descending (ties keep header order).
 * Absent or empty → []; negotiate() treats [] as `*\/*`. Ranges with a malformed q or syntax are dropped.
 */
export function parseAccept(header: string | undefined): MediaRange[] {
  if (header === undefined) return [];
  const ranges: MediaRange[] = [];
  for (const piece of splitOutsideQuotes(header, ',')) {
    if (piece.trim() === '') continue;
    const mt = parseMediaType(piece);
    if (mt === undefined) continue;
    // `*/subtype` is not a valid range.
    if (mt.type === '*' && mt.subtype !== '*') continue;
    let q = 1;
    const rawQ = mt.params['q'];
    if (rawQ !== undefined) {
      if (!Q_VALUE.test(rawQ)) continue;
      q = Number(rawQ);
      if (!(q >= 0 && q <= 1)) continue;
      delete mt.params['q'];
    }
    ranges.push({ ...mt, q });
  }
  return ranges.sort((a, b) => b.q - a.q);
}

function decodeQueryValue(v: string): string {
  if (!/%[0-9a-fA-F]{2}/.test(v)) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/**
 * The `accept` query parameter (PS3.18 8.3.3.1; OHIF thumbnails send `?accept=image%2Fjpeg` with
 * `Accept: *\/*`) overrides the Accept header when present and not empty. Repeated or comma-separated
 * values are all ranges. A value left percent-encoded by the router is decoded; `+` is kept
 * because it belongs to media types such as `application/dicom+json`.
 */
export function acceptFromQuery(
  query: string | readonly string[] | undefined,
  header: string | undefined,
): MediaRange[] {
  const values = query === undefined ? [] : typeof query === 'string' ? [query] : query;
  const joined = values
    .map(decodeQueryValue)
    .filter((v) => v.trim() !== '')
    .join(',');
  if (joined !== '') return parseAccept(joined);
  return parseAccept(header);
}

function splitType(mediaType: string): [string, string] {
  const lower = mediaType.toLowerCase();
  const slash = lower.indexOf('/');
  return slash < 0 ? [lower, ''] : [lower.slice(0, slash), lower.slice(slash + 1)];
}

/** `application/dicom` against `application/*`, `*\/*` or itself. */
function typeMatches(pattern: string, mediaType: string): boolean {
  const [pt, ps] = splitType(pattern);
  const [t, s] = splitType(mediaType);
  if (pt === '*') return true;
  return pt === t && (ps === '*' || ps === s);
}

const ANY_RANGE: MediaRange = { type: '*', subtype: '*', params: {}, q: 1 };

/**
 * How specifically `range` designates `offer` (higher wins, RFC 9110: the most specific range sets an
 * offer's quality), or -1 when it does not match. For multipart ranges the `type` parameter is part of
 * the match; a multipart/related range without it means the resource's default, taken to be the first
 * multipart offer of the same media type.
 */
function specificity(range: MediaRange, offer: Offer, offers: readonly Offer[]): number {
  const [ot, os] = splitType(offer.mediaType);
  let score: number;
  if (range.type === '*') score = 0;
  else if (range.type !== ot) return -1;
  else if (range.subtype === '*') score = 1;
  else if (range.subtype !== os) return -1;
  else score = 2;
  if (range.type === '*' || offer.type === undefined) return score;
  const requested = range.params['type'];
  if (requested === undefined) {
    const defaultOffer = offers.find(
      (o) => o.type !== undefined && o.mediaType.toLowerCase() === offer.mediaType.toLowerCase(),
    );
    // Wildcard ranges such as multipart/* reach every multipart offer; an exact one only the default.
    return score === 2 && defaultOffer !== offer ? -1 : score;
  }
  if (!typeMatches(requested, offer.type)) return -1;
  return score + (requested.includes('*') ? 0.5 : 1);
}

/**
 * Picks what to produce. Each offer takes the quality of its most specific matching range; offers at
 * q=0 are excluded. Among the rest the highest q wins, then the range the client listed first, then
 * offer order. No ranges (absent or unparseable Accept) → the first offer. Undefined → 406.
 */
export function negotiate<O extends Offer>(
  ranges: readonly MediaRange[],
  offers: readonly O[],
): Negotiated<O> | undefined {
  if (offers.length === 0) return undefined;
  if (ranges.length === 0) return { offer: offers[0] as O, range: ANY_RANGE };
  let best: { offer: O; range: MediaRange; rangeIndex: number } | undefined;
  for (const offer of offers) {
    let chosen: { range: MediaRange; rangeIndex: number; score: number } | undefined;
    ranges.forEach((range, rangeIndex) => {
      const score = specificity(range, offer, offers);
      if (score < 0) return;
      if (chosen === undefined || score > chosen.score) chosen = { range, rangeIndex, score };
    });
    if (chosen === undefined || chosen.range.q <= 0) continue;
    if (
      best === undefined ||
      chosen.range.q > best.range.q ||
      (chosen.range.q === best.range.q && chosen.rangeIndex < best.rangeIndex)
    ) {
      best = { offer, range: chosen.range, rangeIndex: chosen.rangeIndex };
    }
  }
  if (best === undefined) return undefined;
  const ts = best.range.params['transfer-syntax'];
  return ts === undefined
    ? { offer: best.offer, range: best.range }
    : { offer: best.offer, range: best.range, transferSyntax: ts };
}

/**
 * The Content-Type of a DICOM JSON answer (QIDO-RS, metadata) negotiated by `negotiate` over
 * application/dicom+json and application/json: application/dicom+json, also for a plain
 * `Accept: application/json` (SPEC §3); application/json only for a client that refuses
 * application/dicom+json outright (q=0) and takes application/json.
 */
export function dicomJsonResponseType(ranges: readonly MediaRange[], chosen: Offer): 'application/dicom+json' | 'application/json' {
  const refused = ranges.some((r) => r.type === 'application' && r.subtype === 'dicom+json' && r.q <= 0);
  return chosen.mediaType === 'application/json' && refused ? 'application/json' : 'application/dicom+json';
}
