import { isDate, isTime } from '../../dicom/matching.js';
import { normalizePersonName } from '../../dicom/person-name.js';
import type { DicomJsonDataset, PersonName } from '../../dicom/types.js';
import type { InstanceColumns, PatientColumns, SeriesColumns, StudyColumns } from '../../storage/metadata.js';

/**
 * Lenient extraction of the indexed columns from a parsed header: an invalid indexed value is
 * left unindexed (null) and reported, the instance is still stored (SPEC §3 WarningReason B007).
 */
export interface IndexValues {
  patient: PatientColumns;
  study: StudyColumns;
  series: SeriesColumns;
  instance: Omit<InstanceColumns, 'sop_class_uid'>;
  /** Keywords of indexed attributes whose values were invalid and left unindexed. */
  invalid: string[];
}


function first(ds: DicomJsonDataset, tag: string): unknown {
  const v = ds[tag]?.Value;
  return v && v.length > 0 ? v[0] : undefined;
}

/**
 * Bytes of UTF-8 an indexed text value may have. Valid values are far shorter (LO 64 characters,
 * PN 64 per group); PostgreSQL refuses a btree entry over ~2.7 kB (the whole commit would fail).
 */
const MAX_INDEXED_TEXT_BYTES = 1024;

/** A text value fit for an index column, else null (and the keyword reported): no NUL, not over-long. */
function indexable(value: string | null, invalid: string[], keyword: string): string | null {
  if (value === null) return null;
  if (value.includes('\0') || (value.length > MAX_INDEXED_TEXT_BYTES / 4 && Buffer.byteLength(value, 'utf8') > MAX_INDEXED_TEXT_BYTES)) {
    invalid.push(keyword);
    return null;
  }
  return value;
}

function rawText(ds: DicomJsonDataset, tag: string): string | null {
  const v = first(ds, tag);
  if (typeof v === 'string') return v === '' ? null : v;
  if (typeof v === 'number') return String(v);
  return null;
}

function text(ds: DicomJsonDataset, tag: string, invalid: string[], keyword: string): string | null {
  return indexable(rawText(ds, tag), invalid, keyword);
}

/** A PN value as its DICOM string form 'Alphabetic=Ideographic=Phonetic'. */
function pnText(ds: DicomJsonDataset, tag: string, invalid: string[], keyword: string): string | null {
  return indexable(rawPnText(ds, tag), invalid, keyword);
}

function rawPnText(ds: DicomJsonDataset, tag: string): string | null {
  const v = first(ds, tag);
  if (v === undefined || v === null || typeof v !== 'object') return null;
  const pn = v as PersonName;
  const groups = [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''];
  while (groups.length > 0 && groups[groups.length - 1] === '') groups.pop();
  const s = groups.join('=');
  return s === '' ? null : s;
}

/**
 * An IS value for an integer column: invalid when not a number, outside the 32-bit range of the
 * column, or dropped by the header reader as unreadable (`dropped`: its tag paths).
 */
function integer(ds: DicomJsonDataset, tag: string, invalid: string[], keyword: string, dropped: readonly string[]): number | null {
  const v = first(ds, tag);
  if (v === undefined || v === null) {
    if (dropped.includes(tag)) invalid.push(keyword);
    return null;
  }
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || n > 2_147_483_647 || n < -2_147_483_648) {
    invalid.push(keyword);
    return null;
  }
  return Math.trunc(n);
}

/**
 * A date or time checked as the query side checks it (dicom/matching.ts): a value it would refuse
 * to search for (`19011331`, `2500`) is not indexed either.
 */
function checked(value: string | null, valid: (s: string) => boolean, invalid: string[], keyword: string): string | null {
  if (value === null) return null;
  if (!valid(value)) {
    invalid.push(keyword);
    return null;
  }
  return value;
}

/**
 * `dropped`: tag paths whose IS/DS text the header reader could not read (ParsedHeader
 * droppedValues); an indexed one among them is reported invalid.
 */
export function extractIndexValues(ds: DicomJsonDataset, dropped: readonly string[] = []): IndexValues {
  const invalid: string[] = [];
  const patientName = pnText(ds, '00100010', invalid, 'PatientName');
  const referring = pnText(ds, '00080090', invalid, 'ReferringPhysicianName');
  return {
    patient: {
      patient_id: text(ds, '00100020', invalid, 'PatientID') ?? '',
      issuer: text(ds, '00100021', invalid, 'IssuerOfPatientID') ?? '',
      patient_name: patientName,
      patient_name_norm: patientName === null ? null : normalizePersonName(patientName),
      birth_date: checked(rawText(ds, '00100030'), isDate, invalid, 'PatientBirthDate'),
      sex: text(ds, '00100040', invalid, 'PatientSex'),
    },
    study: {
      study_date: checked(rawText(ds, '00080020'), isDate, invalid, 'StudyDate'),
      study_time: checked(rawText(ds, '00080030'), isTime, invalid, 'StudyTime'),
      accession_number: text(ds, '00080050', invalid, 'AccessionNumber'),
      referring_physician: referring,
      referring_physician_norm: referring === null ? null : normalizePersonName(referring),
      study_description: text(ds, '00081030', invalid, 'StudyDescription'),
      study_id: text(ds, '00200010', invalid, 'StudyID'),
    },
    series: {
      modality: text(ds, '00080060', invalid, 'Modality'),
      series_number: integer(ds, '00200011', invalid, 'SeriesNumber', dropped),
      series_description: text(ds, '0008103E', invalid, 'SeriesDescription'),
      series_date: checked(rawText(ds, '00080021'), isDate, invalid, 'SeriesDate'),
      series_time: checked(rawText(ds, '00080031'), isTime, invalid, 'SeriesTime'),
      pps_start_date: checked(rawText(ds, '00400244'), isDate, invalid, 'PerformedProcedureStepStartDate'),
      pps_start_time: checked(rawText(ds, '00400245'), isTime, invalid, 'PerformedProcedureStepStartTime'),
      body_part: text(ds, '00180015', invalid, 'BodyPartExamined'),
    },
    instance: {
      instance_number: integer(ds, '00200013', invalid, 'InstanceNumber', dropped),
    },
    invalid,
  };
}
