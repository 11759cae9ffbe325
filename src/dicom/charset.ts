/**
 * Decoding text values per Specific Character Set (0008,0005) — PS3.3 C.12.1.1.2, PS3.5 6.1.
 *
 * Values are decoded whole and only then split on `\`, `=` and `^`: in GB18030/GBK and in
 * ISO 2022 two-byte sets those byte values can be the second half of a character.
 */
import { TextDecoder } from 'node:util';

/** The defined terms (0008,0005) may hold, upper-cased and trimmed. '' = default repertoire. */
export function parseSpecificCharacterSet(value: string | readonly (string | null)[] | null | undefined): string[] {
  if (value === null || value === undefined) return [];
  const parts = typeof value === 'string' ? value.split('\\') : value.map((v) => v ?? '');
  const terms = parts.map(canonicalTerm);
  while (terms.length > 0 && terms[terms.length - 1] === '') terms.pop();
  return terms;
}

// Writers get the spelling wrong often enough ("ISO_IR100", "ISO-IR 100", "iso_ir 192") that
// refusing them would lose names that are perfectly decodable.
function canonicalTerm(raw: string): string {
  const t = raw.replace(/[\0 ]+$/, '').trim().toUpperCase();
  let m = /^ISO[ _-]?2022[ _-]?IR[ _-]?(\d+)$/.exec(t);
  if (m) return `ISO 2022 IR ${Number(m[1])}`;
  m = /^ISO[ _-]?IR[ _-]?(\d+)$/.exec(t);
  if (m) return `ISO_IR ${Number(m[1])}`;
  if (t === 'UTF-8' || t === 'UTF8') return 'ISO_IR 192';
  return t;
}

/** G1 sets reached through ISO 2022 escapes or implied by a single-valued term. */
type G1Set =
  | { kind: 'sb'; label: string } // a 96-character set decoded by a TextDecoder (ISO 8859 family, TIS 620)
  | { kind: 'latin1' }
  | { kind: 'katakana' } // JIS X 0201 right half (IR 13)
  | { kind: 'ksx1001' } // KS X 1001 in GR (IR 149) = EUC-KR
  | { kind: 'gb2312' }; // GB 2312 in GR (IR 58) = EUC-CN

type G0Set = 'ascii' | 'jis0208' | 'jis0212';

const SINGLE_BYTE: Readonly<Record<string, G1Set>> = {
  '100': { kind: 'latin1' },
  '101': { kind: 'sb', label: 'iso-8859-2' },
  '109': { kind: 'sb', label: 'iso-8859-3' },
  '110': { kind: 'sb', label: 'iso-8859-4' },
  '144': { kind: 'sb', label: 'iso-8859-5' },
  '127': { kind: 'sb', label: 'iso-8859-6' },
  '126': { kind: 'sb', label: 'iso-8859-7' },
  '138': { kind: 'sb', label: 'iso-8859-8' },
  '148': { kind: 'sb', label: 'iso-8859-9' },
  '166': { kind: 'sb', label: 'windows-874' }, // TIS 620 = windows-874 without its C1 additions
  '13': { kind: 'katakana' },
};

// ESC - F designates a 96-character set to G1 (PS3.3 Table C.12-3)
const ESC_DASH: Readonly<Record<string, string>> = {
  A: '100', B: '101', C: '109', D: '110', F: '126', G: '127', H: '138', L: '144', M: '148', T: '166',
};

/** Decodes text values of one dataset; obtained from {@link resolveCharacterSet}. */
export interface CharsetDecoder {
  /** The terms as declared (after canonicalisation). */
  readonly terms: readonly string[];
  /** A declared term is not one we know: values were decoded with the default character set instead. */
  readonly unknown: boolean;
  decode(bytes: Uint8Array, isPersonName?: boolean): string;
}

const textDecoders = new Map<string, TextDecoder>();
function textDecoder(label: string): TextDecoder {
  let d = textDecoders.get(label);
  if (d === undefined) {
    d = new TextDecoder(label);
    textDecoders.set(label, d);
  }
  return d;
}

function latin1(bytes: Uint8Array, start = 0, end = bytes.length): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if ((bytes[i] as number) >= 0x80 || bytes[i] === 0x1b) return false;
  return true;
}

function decodeKatakanaRun(bytes: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) {
    const b = bytes[i] as number;
    s += b >= 0xa1 && b <= 0xdf ? String.fromCharCode(0xff61 + b - 0xa1) : '\ufffd';
  }
  return s;
}

function decodeG1Run(set: G1Set, bytes: Uint8Array, start: number, end: number): string {
  switch (set.kind) {
    case 'latin1':
      return latin1(bytes, start, end);
    case 'sb':
      return textDecoder(set.label).decode(bytes.subarray(start, end));
    case 'katakana':
      return decodeKatakanaRun(bytes, start, end);
    case 'ksx1001':
      return textDecoder('euc-kr').decode(bytes.subarray(start, end));
    case 'gb2312':
      return textDecoder('gb18030').decode(bytes.subarray(start, end));
  }
}

/** A whole value decoded by one function: single-valued terms without code extensions. */
function simpleDecoder(terms: readonly string[], unknown: boolean, fn: (bytes: Uint8Array) => string): CharsetDecoder {
  return { terms, unknown, decode: (bytes) => (isAscii(bytes) ? latin1(bytes) : fn(bytes)) };
}

function singleTermDecoder(term: string): ((bytes: Uint8Array) => string) | undefined {
  if (term === 'ISO_IR 192') return (b) => textDecoder('utf-8').decode(b);
  if (term === 'GB18030' || term === 'GBK') return (b) => textDecoder('gb18030').decode(b);
  const m = /^ISO_IR (\d+)$/.exec(term);
  if (m === null) return undefined;
  const set = SINGLE_BYTE[m[1] as string];
  if (set === undefined) return undefined;
  // ISO_IR 13: G0 is JIS X 0201 Roman, read as ASCII so that 0x5C stays the value delimiter
  return (b) => decodeMixed(b, set);
}

/** G0 ASCII, G1 = set: each run decoded by its half. */
function decodeMixed(bytes: Uint8Array, set: G1Set): string {
  if (set.kind !== 'katakana') return decodeG1Run(set, bytes, 0, bytes.length);
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const high = (bytes[i] as number) >= 0x80;
    let j = i + 1;
    while (j < bytes.length && ((bytes[j] as number) >= 0x80) === high) j++;
    out += high ? decodeKatakanaRun(bytes, i, j) : latin1(bytes, i, j);
    i = j;
  }
  return out;
}

interface Iso2022State {
  g0: G0Set;
  g1: G1Set | undefined;
}

function initialState(firstTerm: string): Iso2022State {
  const m = /^ISO(?: 2022 IR|_IR) (\d+)$/.exec(firstTerm);
  const ir = m === null ? '' : (m[1] as string);
  if (ir === '149') return { g0: 'ascii', g1: { kind: 'ksx1001' } };
  if (ir === '58') return { g0: 'ascii', g1: { kind: 'gb2312' } };
  return { g0: 'ascii', g1: SINGLE_BYTE[ir] };
}

/**
 * Parses an escape sequence at bytes[i] (ESC). Returns its length and applies it to `state`;
 * unknown sequences are skipped as a lone ESC so the remaining text still shows.
 */
function applyEscape(bytes: Uint8Array, i: number, state: Iso2022State): number {
  const b1 = bytes[i + 1];
  const b2 = bytes[i + 2];
  const b3 = bytes[i + 3];
  if (b1 === 0x28 && (b2 === 0x42 || b2 === 0x4a)) {
    // ESC ( B ASCII, ESC ( J JIS X 0201 Roman (read as ASCII, see singleTermDecoder)
    state.g0 = 'ascii';
    return 3;
  }
  if (b1 === 0x29 && b2 === 0x49) {
    state.g1 = { kind: 'katakana' };
    return 3;
  }
  if (b1 === 0x24 && (b2 === 0x42 || b2 === 0x40)) {
    state.g0 = 'jis0208';
    return 3;
  }
  if (b1 === 0x24 && b2 === 0x28 && b3 === 0x44) {
    state.g0 = 'jis0212';
    return 4;
  }
  if (b1 === 0x24 && b2 === 0x29 && b3 === 0x43) {
    state.g1 = { kind: 'ksx1001' };
    return 4;
  }
  if (b1 === 0x24 && b2 === 0x29 && b3 === 0x41) {
    state.g1 = { kind: 'gb2312' };
    return 4;
  }
  if (b1 === 0x2d && b2 !== undefined) {
    const ir = ESC_DASH[String.fromCharCode(b2)];
    const set = ir === undefined ? undefined : SINGLE_BYTE[ir];
    if (set !== undefined) {
      state.g1 = set;
      return 3;
    }
  }
  return 1;
}

type RunKind = 'ascii' | 'jis0208' | 'jis0212' | 'g1' | 'fallback';

function decodeRun(kind: RunKind, g1: G1Set | undefined, fallback: (b: Uint8Array) => string, bytes: Uint8Array, start: number, end: number): string {
  switch (kind) {
    case 'ascii':
      return latin1(bytes, start, end);
    case 'jis0208': {
      // JIS X 0208 in G0 is EUC-JP with the high bit cleared
      const euc = new Uint8Array(end - start);
      for (let i = start; i < end; i++) euc[i - start] = (bytes[i] as number) | 0x80;
      return textDecoder('euc-jp').decode(euc);
    }
    case 'jis0212': {
      const n = end - start;
      const euc = new Uint8Array(n + Math.ceil(n / 2));
      let o = 0;
      for (let i = start; i < end; i += 2) {
        euc[o++] = 0x8f;
        euc[o++] = (bytes[i] as number) | 0x80;
        if (i + 1 < end) euc[o++] = (bytes[i + 1] as number) | 0x80;
      }
      return textDecoder('euc-jp').decode(euc.subarray(0, o));
    }
    case 'g1':
      return g1 === undefined ? '' : decodeG1Run(g1, bytes, start, end);
    case 'fallback':
      return fallback(bytes.subarray(start, end));
  }
}

function iso2022Decoder(terms: readonly string[], unknown: boolean, fallback: (b: Uint8Array) => string): CharsetDecoder {
  const init = initialState(terms[0] ?? '');
  return {
    terms,
    unknown,
    decode(bytes: Uint8Array, isPersonName = false): string {
      if (isAscii(bytes)) return latin1(bytes);
      const state: Iso2022State = { g0: init.g0, g1: init.g1 };
      let out = '';
      let runStart = 0;
      let runKind: RunKind = 'ascii';
      let runG1 = state.g1;
      let i = 0;
      while (i < bytes.length) {
        const b = bytes[i] as number;
        if (b === 0x1b) {
          if (i > runStart) out += decodeRun(runKind, runG1, fallback, bytes, runStart, i);
          i += applyEscape(bytes, i, state);
          runStart = i;
          continue;
        }
        let kind: RunKind;
        if (b >= 0x80) kind = state.g1 === undefined ? 'fallback' : 'g1';
        else if (b > 0x20 && b < 0x7f && state.g0 !== 'ascii') kind = state.g0;
        else kind = 'ascii';
        if (kind !== runKind || (kind === 'g1' && state.g1 !== runG1)) {
          if (i > runStart) out += decodeRun(runKind, runG1, fallback, bytes, runStart, i);
          runStart = i;
          runKind = kind;
          runG1 = state.g1;
        }
        if (kind === 'jis0208' || kind === 'jis0212') {
          i += 2; // a delimiter byte inside a two-byte character is not a delimiter
          continue;
        }
        // PS3.5 6.1.2.5.3: the initial character sets are active again after these delimiters
        if (b === 0x5c || b === 0x0d || b === 0x0a || b === 0x09 || b === 0x0c || (isPersonName && (b === 0x5e || b === 0x3d))) {
          state.g0 = init.g0;
          state.g1 = init.g1;
        }
        i++;
      }
      if (bytes.length > runStart) out += decodeRun(runKind, runG1, fallback, bytes, runStart, Math.min(i, bytes.length));
      return out;
    },
  };
}

function knownTerm(term: string): boolean {
  if (term === '' || term === 'ISO_IR 6' || term === 'ISO 2022 IR 6') return true;
  if (term === 'ISO_IR 192' || term === 'GB18030' || term === 'GBK') return true;
  const m = /^ISO(?: 2022 IR|_IR) (\d+)$/.exec(term);
  if (m === null) return false;
  const ir = m[1] as string;
  if (SINGLE_BYTE[ir] !== undefined) return true;
  return term.startsWith('ISO 2022') && (ir === '87' || ir === '159' || ir === '149' || ir === '58');
}

export function isKnownCharacterSet(term: string): boolean {
  return knownTerm(canonicalTerm(term));
}

function defaultDecoderFn(defaultCharacterSet: string): (b: Uint8Array) => string {
  return singleTermDecoder(canonicalTerm(defaultCharacterSet)) ?? ((b) => latin1(b));
}

function buildDecoder(terms: readonly string[], defaultCharacterSet: string): CharsetDecoder {
  const fallback = defaultDecoderFn(defaultCharacterSet);
  const unknown = terms.some((t) => !knownTerm(t));
  // Absent or plain ASCII: bytes above 0x7F are out of repertoire; SPEC §2 decodes them with the
  // configured default (archive.default_character_set), which is what such files mean in practice.
  const effective = terms.filter((t) => t !== '' && t !== 'ISO_IR 6' && t !== 'ISO 2022 IR 6');
  // Unicode and GB18030 replace code extensions entirely (PS3.3 C.12.1.1.2): nothing to switch to.
  const whole = terms.find((t) => t === 'ISO_IR 192' || t === 'GB18030' || t === 'GBK');
  if (whole !== undefined) return simpleDecoder(terms, unknown, singleTermDecoder(whole) ?? fallback);
  const iso2022 = terms.length > 1 || terms.some((t) => t.startsWith('ISO 2022'));
  if (iso2022) return iso2022Decoder(terms, unknown, fallback);
  const single = effective[0] === undefined ? fallback : (singleTermDecoder(effective[0]) ?? fallback);
  return simpleDecoder(terms, unknown, single);
}

const decoderCache = new Map<string, CharsetDecoder>();

/**
 * The decoder for a dataset whose (0008,0005) holds `terms` (see {@link parseSpecificCharacterSet}).
 * Unknown terms fall back to `defaultCharacterSet` and set `unknown`.
 */
export function resolveCharacterSet(terms: readonly string[], defaultCharacterSet = 'ISO_IR 100'): CharsetDecoder {
  const key = `${defaultCharacterSet}|${terms.join('\\')}`;
  let d = decoderCache.get(key);
  if (d === undefined) {
    d = buildDecoder(terms.map(canonicalTerm), defaultCharacterSet);
    // distinct (0008,0005) values are few; the bound only guards against hostile input
    if (decoderCache.size >= 256) decoderCache.clear();
    decoderCache.set(key, d);
  }
  return d;
}

export interface DecodeOptions {
  isPersonName?: boolean;
  /** archive.default_character_set; 'ISO_IR 100' when not given. */
  defaultCharacterSet?: string;
}

/** Decodes one text value (all of its `\`-separated values) declared in `charsets`. */
export function decodeString(bytes: Uint8Array, charsets: readonly string[], opts: DecodeOptions = {}): string {
  return resolveCharacterSet(charsets, opts.defaultCharacterSet).decode(bytes, opts.isPersonName === true);
}
