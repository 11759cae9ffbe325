import type { Tag } from './types.js';

/**
 * The one Query model shared by QIDO-RS and C-FIND (PS3.4 C.2.2.2 matching). Built and
 * validated by archive/query; compiled to SQL by storage/sql. Values are already
 * percent-decoded and, for PN, NOT yet normalised (the compiler normalises via dicom/matching).
 */
export type QueryLevel = 'patient' | 'study' | 'series' | 'instance';

export type Constraint =
  /** Single value matching (exact; PN case-insensitive on normalised columns). */
  | { kind: 'single'; tag: Tag; value: string }
  /** List of UID matching. */
  | { kind: 'list'; tag: Tag; values: string[] }
  /** Wildcard matching with `*` and `?` (the compiler escapes SQL `%` and `_`). */
  | { kind: 'wildcard'; tag: Tag; pattern: string }
  /** Range matching for DA/TM/DT: inclusive bounds, either may be absent (not both). */
  | { kind: 'range'; tag: Tag; from?: string; to?: string }
  /** Fuzzy PN matching: every word of `value` is a prefix of some word of the name. */
  | { kind: 'fuzzy'; tag: Tag; value: string };

export interface Query {
  level: QueryLevel;
  /** Scope from the URL (e.g. /studies/{s}/series). */
  studyUid?: string;
  seriesUid?: string;
  constraints: Constraint[];
  /** Extra return attributes, or 'all'. */
  includeFields: Tag[] | 'all';
  fuzzy: boolean;
  limit: number;
  offset: number;
}

/**
 * The shorter spellings of the instant a range's lower bound names: `093000` is also `0930` and
 * `09`, `20210615140000` also `2021061514` (PS3.5 6.2: TM and DT values may omit trailing
 * components). Stored so, a value sorts before the bound it equals (`"0930" < "093000"`), so a
 * text comparison alone would leave it out of `093000-094500` (PS3.4 C.2.2.2.5: times and
 * date-times are compared as such, not as strings); matching these by equality keeps the
 * comparison usable by an index. Empty for a bound without trailing zeros (a DA, usually) and
 * for one with a UTC offset.
 */
export function lowerBoundShortForms(from: string): string[] {
  const forms: string[] = [];
  // A DT with a UTC offset (`…+0100`) ends in the offset, not in the digits of the instant.
  if (/[+-]/.test(from)) return forms;
  for (let k = from.length - 1; k >= 1; k--) {
    // What is dropped must be zeros only, with at most the fraction's point among them.
    if (!/^0*(\.0*)?$/.test(from.slice(k))) break;
    const form = from.slice(0, k);
    // Spellings a TM or DT value can have: whole components (pairs of digits after the year) or a
    // shorter fraction; `09300` or `093000.` are none.
    if (form.includes('.') ? !form.endsWith('.') : form.length % 2 === 0) forms.push(form);
  }
  return forms;
}
