/**
 * Matching semantics of QIDO-RS and C-FIND keys (PS3.4 C.2.2.2), in one place: buildConstraint turns a
 * key value into the Query model's Constraint, storage/sql compiles it, and matchesConstraint is the
 * in-memory reference of the same semantics (post-filtering, and the oracle of the SQL tests).
 */
import { DicomQueryError } from './errors.js';
import { indexedAttribute } from './indexed.js';
import { normalizePersonName } from './person-name.js';
import { lowerBoundShortForms, type Constraint } from './query-model.js';
import type { Tag, VR } from './types.js';

export interface BuildConstraintOptions {
  /** QIDO `fuzzymatching=true`: PN values become prefix matches per name word. */
  fuzzy: boolean;
}

const STRING_VRS: ReadonlySet<VR> = new Set<VR>(['AE', 'AS', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
const INTEGER_VRS: ReadonlySet<VR> = new Set<VR>(['IS', 'SS', 'SL', 'SV']);
const UNSIGNED_VRS: ReadonlySet<VR> = new Set<VR>(['US', 'UL', 'UV']);
const DECIMAL_VRS: ReadonlySet<VR> = new Set<VR>(['DS', 'FL', 'FD']);

const INTEGER = /^[+-]?\d+$/;
const UNSIGNED = /^\+?\d+$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** The value range of the integer VRs of 32 bits or less (PS3.5 6.2): a key outside it names no value. */
const INTEGER_RANGE: Readonly<Partial<Record<VR, readonly [number, number]>>> = {
  IS: [-(2 ** 31), 2 ** 31 - 1],
  SL: [-(2 ** 31), 2 ** 31 - 1],
  SS: [-(2 ** 15), 2 ** 15 - 1],
  US: [0, 2 ** 16 - 1],
  UL: [0, 2 ** 32 - 1],
};
const AT = /^[0-9A-Fa-f]{8}$/;

// PS3.5 6.2 value formats, as prefixes of decreasing precision (range bounds may be partial).
const DA = /^(\d{4})(\d{2})(\d{2})$/;
const TM = /^([01]\d|2[0-3])(?:([0-5]\d)(?:([0-5]\d|60)(?:\.(\d{1,6}))?)?)?$/;
/** A TM value naming a time of day (HH[MM[SS[.F…]]], hour 00-23, minute 00-59, second 00-60). */
export function isTime(s: string): boolean {
  return TM.test(s);
}
const DT =
  /^(\d{4})(?:(0[1-9]|1[0-2])(?:(0[1-9]|[12]\d|3[01])(?:([01]\d|2[0-3])(?:([0-5]\d)(?:([0-5]\d|60)(?:\.(\d{1,6}))?)?)?)?)?)?([+-](?:0\d|1[0-4])[0-5]\d)?$/;
// Filling a partial TM/DT from these makes an inclusive upper bound that plain `<=` compares right.
const TM_MAX = '235959.999999';
const DT_MAX = '99991231235959.999999';

function invalid(key: Tag, message: string): DicomQueryError {
  return new DicomQueryError(key, `${key}: ${message}`);
}

/**
 * UID check for query keys (SPEC §3: 1–64 characters of digits and dots, no empty component; leading
 * zeros accepted). Deliberately local rather than imported from uid.ts, so matching stays self-contained.
 */
function isQueryUid(s: string): boolean {
  return s.length >= 1 && s.length <= 64 && /^[0-9]+(?:\.[0-9]+)*$/.test(s);
}

/** A DA value naming a day of the calendar (YYYYMMDD, month 01-12, a day that month has). */
export function isDate(s: string): boolean {
  const m = DA.exec(s);
  if (m === null) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (mo < 1 || mo > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1] as number;
  return d <= days;
}

function checkTemporal(key: Tag, vr: 'DA' | 'TM' | 'DT', s: string): void {
  if (!isTemporal(vr, s)) {
    const form = vr === 'DA' ? 'YYYYMMDD' : vr === 'TM' ? 'HH[MM[SS[.FFFFFF]]]' : 'YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]][&ZZXX]';
    throw invalid(key, `${JSON.stringify(s)} is not a ${vr} value (${form})`);
  }
}

/** Completes a partial TM/DT upper bound to the last instant it designates (`12` → `125959.999999`). */
function upperBound(vr: 'DA' | 'TM' | 'DT', s: string): string {
  if (vr === 'DA') return s;
  // An explicit UTC offset makes the value fixed-form already; left as given.
  if (vr === 'DT' && /[+-]/.test(s)) return s;
  const max = vr === 'TM' ? TM_MAX : DT_MAX;
  return s.length >= max.length ? s : s + max.slice(s.length);
}

function isTemporal(vr: 'DA' | 'TM' | 'DT', s: string): boolean {
  return vr === 'DA' ? isDate(s) : vr === 'TM' ? TM.test(s) : DT.test(s);
}

function temporalConstraint(tag: Tag, vr: 'DA' | 'TM' | 'DT', value: string): Constraint {
  if (value.includes('*') || value.includes('?')) throw invalid(tag, `wildcards are not allowed for ${vr}`);
  // A DT may end in a `-ZZXX` UTC offset: a value valid as a whole is a single value, not a range.
  if (!value.includes('-') || (vr === 'DT' && isTemporal(vr, value))) {
    checkTemporal(tag, vr, value);
    return { kind: 'single', tag, value };
  }
  if (value.trim() === '-') throw invalid(tag, 'a range needs at least one bound');
  const dashes = [...value.matchAll(/-/g)].map((m) => m.index);
  // The range dash is the first one leaving a valid (or empty) bound on each side.
  const split =
    dashes.find((i) => {
      const from = value.slice(0, i).trim();
      const to = value.slice(i + 1).trim();
      return (from === '' || isTemporal(vr, from)) && (to === '' || isTemporal(vr, to));
    }) ?? (dashes[0] as number);
  const from = value.slice(0, split).trim();
  const to = value.slice(split + 1).trim();
  if (from !== '') checkTemporal(tag, vr, from);
  if (to !== '') checkTemporal(tag, vr, to);
  const c: Constraint = { kind: 'range', tag };
  if (from !== '') c.from = from;
  if (to !== '') c.to = upperBound(vr, to);
  // PS3.4 C.2.2.2.5: `<a>-<b>` with a at most b; reversed bounds would silently match nothing.
  // (A DT with a UTC offset is compared as written: left alone.)
  if (c.from !== undefined && c.to !== undefined && !/[+-]/.test(c.from + c.to) && c.from > c.to) throw invalid(tag, 'the range starts after it ends');
  return c;
}

/**
 * Turns one key value into a Constraint, or null for universal matching (empty value or `*` alone,
 * which matches empty and absent values too, so no constraint at all). Throws DicomQueryError
 * INVALID_QUERY naming the key when the value cannot be matched against that VR.
 */
export function buildConstraint(tag: Tag, vr: VR, rawValue: string, opts: BuildConstraintOptions): Constraint | null {
  // DICOM pads values with spaces (UIDs with NUL); padding is never significant in a key.
  const value = rawValue.replace(/^[ \0]+|[ \0]+$/g, '');
  if (value === '' || value === '*') return null;
  // No value holds a NUL (PS3.5 6.1.2: not in any repertoire; trailing NULs are a UID's padding).
  if (value.includes('\0')) throw invalid(tag, 'a NUL character is not allowed in a value');
  const hasWildcard = value.includes('*') || value.includes('?');

  if (vr === 'UI') {
    if (hasWildcard) throw invalid(tag, 'wildcards are not allowed for UIDs');
    const values = [...new Set(value.split(/[,\\]/).map((u) => u.replace(/^[ \0]+|[ \0]+$/g, '')))];
    for (const u of values) {
      if (!isQueryUid(u)) throw invalid(tag, `${JSON.stringify(u)} is not a valid UID`);
    }
    return values.length === 1 ? { kind: 'single', tag, value: values[0] as string } : { kind: 'list', tag, values };
  }
  if (vr === 'DA' || vr === 'TM' || vr === 'DT') return temporalConstraint(tag, vr, value);
  if (INTEGER_VRS.has(vr) || UNSIGNED_VRS.has(vr) || DECIMAL_VRS.has(vr)) {
    const re = INTEGER_VRS.has(vr) ? INTEGER : UNSIGNED_VRS.has(vr) ? UNSIGNED : DECIMAL;
    const range = INTEGER_RANGE[vr];
    if (!re.test(value) || (range !== undefined && !(Number(value) >= range[0] && Number(value) <= range[1]))) throw invalid(tag, `${JSON.stringify(value)} is not a valid ${vr} number`);
    return { kind: 'single', tag, value };
  }
  if (vr === 'AT') {
    if (!AT.test(value)) throw invalid(tag, `${JSON.stringify(value)} is not a tag (8 hex digits)`);
    return { kind: 'single', tag, value: value.toUpperCase() };
  }
  if (!STRING_VRS.has(vr)) throw invalid(tag, `matching on ${vr} values is not supported`);
  if (hasWildcard) return { kind: 'wildcard', tag, pattern: value };
  // Multiple value matching (PS3.4 C.2.2.2.8) for code strings, e.g. ModalitiesInStudy=CT\MR.
  if (vr === 'CS' && value.includes('\\')) {
    const values = [...new Set(value.split('\\').map((v) => v.trim()).filter((v) => v !== ''))];
    if (values.length === 0) return null;
    return values.length === 1 ? { kind: 'single', tag, value: values[0] as string } : { kind: 'list', tag, values };
  }
  if (vr === 'PN' && opts.fuzzy) return { kind: 'fuzzy', tag, value };
  return { kind: 'single', tag, value };
}

/** Escapes SQL LIKE metacharacters (with `\` as the ESCAPE character). */
export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, '\\$&');
}

/** DICOM wildcard pattern → SQL LIKE pattern: `*` → `%`, `?` → `_`, literal `%` `_` `\` escaped. */
export function wildcardToLike(pattern: string): { like: string; escape: '\\' } {
  let like = '';
  for (const ch of pattern) {
    if (ch === '*') like += '%';
    else if (ch === '?') like += '_';
    else like += escapeLike(ch);
  }
  return { like, escape: '\\' };
}

function wildcardRegExp(pattern: string): RegExp {
  let src = '';
  for (const ch of pattern) {
    if (ch === '*') src += '.*';
    else if (ch === '?') src += '.';
    // Only syntax characters: with the `u` flag an escape of anything else (`\-`) is an error.
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  // `s`: a value may hold line breaks (LT/ST/UT); `u`: `?` is one character, as SQL `_` is.
  return new RegExp(`^${src}$`, 'su');
}

/** A normalised PN and, when the query names no group, each of its component groups. */
function pnCandidates(normValue: string, queryHasGroups: boolean): string[] {
  if (queryHasGroups) return [normValue];
  return [normValue, ...normValue.split('=').filter((g) => g !== '')];
}

function pnWords(s: string): string[] {
  return s.split(/[\^=\s]+/).filter((w) => w !== '');
}

function isPersonName(tag: Tag, vr: VR | undefined): boolean {
  if (vr !== undefined) return vr === 'PN';
  return indexedAttribute(tag)?.kind === 'pn';
}

/**
 * Does `value` (the stored value, first value as text) satisfy `c`? Absent and empty values match no
 * constraint (universal matching produces none). PN comparisons normalise both sides; a query value
 * without `=` matches the whole name or any one component group. The VR is taken from `vr`, else from
 * the indexed attributes; give it for PN keys that are not indexed.
 */
export function matchesConstraint(value: string | undefined, c: Constraint, vr?: VR): boolean {
  if (value === undefined) return false;
  const v = value.replace(/^[ \0]+|[ \0]+$/g, '');
  if (v === '') return false;
  const pn = c.kind === 'fuzzy' || isPersonName(c.tag, vr);
  switch (c.kind) {
    case 'single': {
      if (!pn) return v === c.value;
      const q = normalizePersonName(c.value);
      return pnCandidates(normalizePersonName(v), q.includes('=')).includes(q);
    }
    case 'list':
      return c.values.includes(v);
    case 'wildcard': {
      if (!pn) return wildcardRegExp(c.pattern).test(v);
      const q = normalizePersonName(c.pattern);
      const re = wildcardRegExp(q);
      return pnCandidates(normalizePersonName(v), q.includes('=')).some((cand) => re.test(cand));
    }
    case 'range':
      return (c.from === undefined || v >= c.from || lowerBoundShortForms(c.from).includes(v)) && (c.to === undefined || v <= c.to);
    case 'fuzzy': {
      const words = pnWords(normalizePersonName(v));
      return pnWords(normalizePersonName(c.value)).every((qw) => words.some((w) => w.startsWith(qw)));
    }
  }
}
