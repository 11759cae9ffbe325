import type { DicomJsonDataset, DicomJsonElement, Tag, VR } from '../../dicom/types.js';

/**
 * "Only the requested return keys" (C-FIND, PS3.4 C.2.2.1 and C.4.1.2.3): a query result (the QIDO
 * dataset of one match, built by results.ts) cut down to the keys the request named, each present,
 * empty when the match has no value. QIDO's own return attributes are not affected.
 */
export interface ReturnKey {
  tag: Tag;
  /** The VR the request gave (or the dictionary's): used for a key the match has no value for. */
  vr: VR;
  /**
   * Sequence keys: the keys asked for inside its items (PS3.4 C.2.2.1.3). Absent or empty: the
   * request's sequence had no item or an empty one, and the stored items are returned whole.
   */
  itemKeys?: ReturnKey[];
}

/** The request's keys, from its identifier decoded as DICOM JSON (tags upper case). */
export function returnKeysOf(identifier: DicomJsonDataset, skip: ReadonlySet<Tag> = new Set()): ReturnKey[] {
  const keys: ReturnKey[] = [];
  for (const [rawTag, el] of Object.entries(identifier)) {
    const tag = rawTag.toUpperCase();
    if (skip.has(tag) || tag.endsWith('0000')) continue;
    const key: ReturnKey = { tag, vr: el.vr };
    if (el.vr === 'SQ') {
      const item = el.Value?.[0];
      if (item !== null && item !== undefined && typeof item === 'object' && !('Alphabetic' in item || 'Ideographic' in item || 'Phonetic' in item)) {
        const inner = returnKeysOf(item as DicomJsonDataset);
        if (inner.length > 0) key.itemKeys = inner;
      }
    }
    keys.push(key);
  }
  return keys;
}

function selectElement(key: ReturnKey, el: DicomJsonElement | undefined): DicomJsonElement {
  if (el === undefined) return key.vr === 'SQ' ? { vr: 'SQ', Value: [] } : { vr: key.vr };
  const itemKeys = key.itemKeys;
  if (el.vr !== 'SQ' || itemKeys === undefined || el.Value === undefined) return el;
  return {
    vr: 'SQ',
    Value: el.Value.map((item) => (item !== null && typeof item === 'object' ? selectReturnKeys(item as DicomJsonDataset, itemKeys) : item)),
  };
}

/** The requested keys of `match`, in tag order; a key without a value in `match` is present and empty. */
export function selectReturnKeys(match: DicomJsonDataset, keys: readonly ReturnKey[]): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const key of [...keys].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))) {
    out[key.tag] = selectElement(key, match[key.tag]);
  }
  return out;
}
