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
