import type { QueryLevel } from './query-model.js';
import type { Tag } from './types.js';

/**
 * Attributes with their own indexed column, per level. Constraints on other tags are matched
 * against the stored DICOM JSON header of that level (first value, as text).
 * `pn` columns are stored normalised (dicom/matching normalizePersonName) in `<column>_norm`.
 */
export type IndexedKind = 'uid' | 'string' | 'pn' | 'date' | 'time' | 'number';

export interface IndexedAttribute {
  tag: Tag;
  keyword: string;
  level: QueryLevel;
  column: string;
  kind: IndexedKind;
}

export const INDEXED_ATTRIBUTES: readonly IndexedAttribute[] = [
  { tag: '00100010', keyword: 'PatientName', level: 'patient', column: 'patient_name', kind: 'pn' },
  { tag: '00100020', keyword: 'PatientID', level: 'patient', column: 'patient_id', kind: 'string' },
  { tag: '00100021', keyword: 'IssuerOfPatientID', level: 'patient', column: 'issuer', kind: 'string' },
  { tag: '00100030', keyword: 'PatientBirthDate', level: 'patient', column: 'birth_date', kind: 'date' },
  { tag: '00100040', keyword: 'PatientSex', level: 'patient', column: 'sex', kind: 'string' },

  { tag: '0020000D', keyword: 'StudyInstanceUID', level: 'study', column: 'study_uid', kind: 'uid' },
  { tag: '00080020', keyword: 'StudyDate', level: 'study', column: 'study_date', kind: 'date' },
  { tag: '00080030', keyword: 'StudyTime', level: 'study', column: 'study_time', kind: 'time' },
  { tag: '00080050', keyword: 'AccessionNumber', level: 'study', column: 'accession_number', kind: 'string' },
  { tag: '00080090', keyword: 'ReferringPhysicianName', level: 'study', column: 'referring_physician', kind: 'pn' },
  { tag: '00081030', keyword: 'StudyDescription', level: 'study', column: 'study_description', kind: 'string' },
  { tag: '00200010', keyword: 'StudyID', level: 'study', column: 'study_id', kind: 'string' },

  { tag: '0020000E', keyword: 'SeriesInstanceUID', level: 'series', column: 'series_uid', kind: 'uid' },
  { tag: '00080060', keyword: 'Modality', level: 'series', column: 'modality', kind: 'string' },
  { tag: '00200011', keyword: 'SeriesNumber', level: 'series', column: 'series_number', kind: 'number' },
  { tag: '0008103E', keyword: 'SeriesDescription', level: 'series', column: 'series_description', kind: 'string' },
  { tag: '00080021', keyword: 'SeriesDate', level: 'series', column: 'series_date', kind: 'date' },
  { tag: '00080031', keyword: 'SeriesTime', level: 'series', column: 'series_time', kind: 'time' },
  { tag: '00400244', keyword: 'PerformedProcedureStepStartDate', level: 'series', column: 'pps_start_date', kind: 'date' },
  { tag: '00400245', keyword: 'PerformedProcedureStepStartTime', level: 'series', column: 'pps_start_time', kind: 'time' },
  { tag: '00180015', keyword: 'BodyPartExamined', level: 'series', column: 'body_part', kind: 'string' },

  { tag: '00080018', keyword: 'SOPInstanceUID', level: 'instance', column: 'sop_uid', kind: 'uid' },
  { tag: '00080016', keyword: 'SOPClassUID', level: 'instance', column: 'sop_class_uid', kind: 'uid' },
  { tag: '00200013', keyword: 'InstanceNumber', level: 'instance', column: 'instance_number', kind: 'number' },
];

/** ModalitiesInStudy (0008,0061): a study-level key matched against its series' Modality. */
export const MODALITIES_IN_STUDY: Tag = '00080061';

const byTag = new Map(INDEXED_ATTRIBUTES.map((a) => [a.tag, a]));
export function indexedAttribute(tag: Tag): IndexedAttribute | undefined {
  return byTag.get(tag);
}

const ORDER: Record<QueryLevel, number> = { patient: 0, study: 1, series: 2, instance: 3 };
/** True when attributes of `attrLevel` are visible at query level `level` (higher levels are joined). */
export function levelIncludes(level: QueryLevel, attrLevel: QueryLevel): boolean {
  return ORDER[attrLevel] <= ORDER[level];
}
