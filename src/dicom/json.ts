/** Small readers and builders over DICOM JSON (PS3.18 F.2), the internal metadata form. */
import type { DicomJsonDataset, DicomJsonElement, DicomJsonValue, PersonName, Tag, VR } from './types.js';

/** 'Alphabetic=Ideographic=Phonetic', trailing empty groups removed ("Doe^John", "=山田"). */
export function personNameString(pn: PersonName): string {
  const groups = [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''];
  while (groups.length > 0 && groups[groups.length - 1] === '') groups.pop();
  return groups.join('=');
}

function isPersonName(v: DicomJsonValue): v is PersonName {
  return typeof v === 'object' && v !== null && ('Alphabetic' in v || 'Ideographic' in v || 'Phonetic' in v);
}

/** First value as text: strings as they are, numbers formatted, person names as 'A=I=P'. */
export function firstString(ds: DicomJsonDataset | undefined, tag: Tag): string | undefined {
  const v = ds?.[tag]?.Value?.[0];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (v !== undefined && isPersonName(v)) return personNameString(v);
  return undefined;
}

/** First value as a number: numbers, and strings holding a finite number (SV/UV beyond 2^53 stay undefined). */
export function firstNumber(ds: DicomJsonDataset | undefined, tag: Tag): number | undefined {
  const v = ds?.[tag]?.Value?.[0];
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) && Number.isSafeInteger(Math.trunc(n)) ? n : undefined;
  }
  return undefined;
}

/** Deep copy without the internal `_bulk` references, for anything that leaves the core. */
export function stripInternal(ds: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const [tag, el] of Object.entries(ds)) {
    const copy: DicomJsonElement = { vr: el.vr };
    if (el.Value !== undefined) {
      copy.Value = el.vr === 'SQ'
        ? el.Value.map((item) => (item !== null && typeof item === 'object' ? stripInternal(item as DicomJsonDataset) : item))
        : el.Value.map((v) => (v !== null && typeof v === 'object' ? { ...v } : v));
    }
    if (el.InlineBinary !== undefined) copy.InlineBinary = el.InlineBinary;
    if (el.BulkDataURI !== undefined) copy.BulkDataURI = el.BulkDataURI;
    out[tag] = copy;
  }
  return out;
}

/** An element; no values gives an element without Value (DICOM JSON's empty value). */
export function element(vr: VR, values: readonly DicomJsonValue[] = []): DicomJsonElement {
  return values.length === 0 ? { vr } : { vr, Value: [...values] };
}
