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

const DA = /^\d{8}$/;
const TM = /^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$/;

function first(ds: DicomJsonDataset, tag: string): unknown {
  const v = ds[tag]?.Value;
  return v && v.length > 0 ? v[0] : undefined;
}

function text(ds: DicomJsonDataset, tag: string): string | null {
  const v = first(ds, tag);
  if (typeof v === 'string') return v === '' ? null : v;
  if (typeof v === 'number') return String(v);
  return null;
}

/** A PN value as its DICOM string form 'Alphabetic=Ideographic=Phonetic'. */
function pnText(ds: DicomJsonDataset, tag: string): string | null {
  const v = first(ds, tag);
  if (v === undefined || v === null || typeof v !== 'object') return null;
  const pn = v as PersonName;
  const groups = [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''];
  while (groups.length > 0 && groups[groups.length - 1] === '') groups.pop();
  const s = groups.join('=');
  return s === '' ? null : s;
}

function integer(ds: DicomJsonDataset, tag: string, invalid: string[], keyword: string): number | null {
  const v = first(ds, tag);
  if (v === undefined || v === null) return null;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n)) {
    invalid.push(keyword);
    return null;
  }
  return Math.trunc(n);
}

function checked(value: string | null, re: RegExp, invalid: string[], keyword: string): string | null {
  if (value === null) return null;
  if (!re.test(value)) {
    invalid.push(keyword);
    return null;
  }
  return value;
}

export function extractIndexValues(ds: DicomJsonDataset): IndexValues {
  const invalid: string[] = [];
  const patientName = pnText(ds, '00100010');
  const referring = pnText(ds, '00080090');
  return {
    patient: {
      patient_id: text(ds, '00100020') ?? '',
      issuer: text(ds, '00100021') ?? '',
      patient_name: patientName,
      patient_name_norm: patientName === null ? null : normalizePersonName(patientName),
      birth_date: checked(text(ds, '00100030'), DA, invalid, 'PatientBirthDate'),
      sex: text(ds, '00100040'),
    },
    study: {
      study_date: checked(text(ds, '00080020'), DA, invalid, 'StudyDate'),
      study_time: checked(text(ds, '00080030'), TM, invalid, 'StudyTime'),
      accession_number: text(ds, '00080050'),
      referring_physician: referring,
      referring_physician_norm: referring === null ? null : normalizePersonName(referring),
      study_description: text(ds, '00081030'),
      study_id: text(ds, '00200010'),
    },
    series: {
      modality: text(ds, '00080060'),
      series_number: integer(ds, '00200011', invalid, 'SeriesNumber'),
      series_description: text(ds, '0008103E'),
      series_date: checked(text(ds, '00080021'), DA, invalid, 'SeriesDate'),
      series_time: checked(text(ds, '00080031'), TM, invalid, 'SeriesTime'),
      pps_start_date: checked(text(ds, '00400244'), DA, invalid, 'PerformedProcedureStepStartDate'),
      pps_start_time: checked(text(ds, '00400245'), TM, invalid, 'PerformedProcedureStepStartTime'),
      body_part: text(ds, '00180015'),
    },
    instance: {
      instance_number: integer(ds, '00200013', invalid, 'InstanceNumber'),
    },
    invalid,
  };
}
