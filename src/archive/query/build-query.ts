import { parseTagOrKeyword, vrForTag } from '../../dicom/dictionary.js';
import { MODALITIES_IN_STUDY } from '../../dicom/indexed.js';
import { DicomQueryError } from '../../dicom/errors.js';
import { buildConstraint } from '../../dicom/matching.js';
import type { Constraint, Query, QueryLevel } from '../../dicom/query-model.js';
import type { Tag, VR } from '../../dicom/types.js';
import { isAddressableUid } from '../../dicom/uid.js';
import type { ArchiveSettings } from '../context.js';
import { ArchiveError } from '../errors.js';

/** Query parameters as received (already percent-decoded), in order; a key may repeat. */
export type QueryParams = ReadonlyArray<readonly [string, string]>;

export interface QueryRequest {
  level: QueryLevel;
  studyUid?: string;
  seriesUid?: string;
  params: QueryParams;
}

const CONTROL = new Set(['limit', 'offset', 'fuzzymatching', 'includefield']);

function invalid(message: string, key: string): ArchiveError {
  return new ArchiveError('INVALID_QUERY', message, { key });
}

function nonNegativeInt(raw: string, key: string): number {
  if (!/^\d{1,10}$/.test(raw.trim())) throw invalid(`${key} must be a non-negative integer`, key);
  return Number(raw.trim());
}

function tagOf(key: string): Tag {
  const tag = parseTagOrKeyword(key.trim());
  if (!tag) throw invalid(`unknown attribute '${key}' (use a keyword or 8 hexadecimal digits)`, key);
  return tag;
}

function vrOf(tag: Tag): VR {
  if (tag === MODALITIES_IN_STUDY) return 'CS';
  return vrForTag(tag) ?? 'UN';
}

/**
 * Builds the one Query model from QIDO-RS parameters (also used by C-FIND through its own key
 * extraction). Throws ArchiveError INVALID_QUERY naming the offending key.
 */
export function buildQuery(req: QueryRequest, settings: Pick<ArchiveSettings, 'qidoDefaultLimit' | 'qidoMaxLimit'>): Query {
  for (const [name, uid] of [['StudyInstanceUID', req.studyUid], ['SeriesInstanceUID', req.seriesUid]] as const) {
    if (uid !== undefined && !isAddressableUid(uid)) throw new ArchiveError('INVALID_UID', `${name} in the path is not a valid UID`, { key: name });
  }
  let limit = settings.qidoDefaultLimit;
  let offset = 0;
  let fuzzy = false;
  let includeAll = false;
  const includeFields: Tag[] = [];
  const matchKeys: [Tag, string, string][] = [];

  for (const [rawKey, value] of req.params) {
    const key = rawKey.trim();
    const lower = key.toLowerCase();
    if (CONTROL.has(lower)) {
      if (lower === 'limit') {
        const n = nonNegativeInt(value, key);
        limit = n === 0 ? settings.qidoDefaultLimit : Math.min(n, settings.qidoMaxLimit);
      } else if (lower === 'offset') {
        offset = nonNegativeInt(value, key);
      } else if (lower === 'fuzzymatching') {
        const v = value.trim().toLowerCase();
        if (v !== 'true' && v !== 'false') throw invalid('fuzzymatching must be true or false', key);
        fuzzy = v === 'true';
      } else {
        for (const part of value.split(',')) {
          const p = part.trim();
          if (p === '') continue;
          if (p.toLowerCase() === 'all') includeAll = true;
          else includeFields.push(tagOf(p));
        }
      }
      continue;
    }
    if (key.includes('.')) throw invalid(`nested attribute keys are not supported: '${key}'`, key);
    matchKeys.push([tagOf(key), value, key]);
  }

  const constraints: Constraint[] = [];
  for (const [tag, value, key] of matchKeys) {
    try {
      const c = buildConstraint(tag, vrOf(tag), value, { fuzzy });
      if (c) constraints.push(c);
    } catch (err) {
      if (err instanceof DicomQueryError) throw new ArchiveError('INVALID_QUERY', err.message, { key });
      throw err;
    }
    // Matching keys are returned too (PS3.18 8.3.4.1).
    if (!includeFields.includes(tag)) includeFields.push(tag);
  }

  return {
    level: req.level,
    ...(req.studyUid !== undefined ? { studyUid: req.studyUid } : {}),
    ...(req.seriesUid !== undefined ? { seriesUid: req.seriesUid } : {}),
    constraints,
    includeFields: includeAll ? 'all' : includeFields,
    fuzzy,
    limit,
    offset,
  };
}
