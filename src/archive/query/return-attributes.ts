import { informationLevel } from '../../dicom/levels.js';
import type { QueryLevel } from '../../dicom/query-model.js';
import type { Tag } from '../../dicom/types.js';

/**
 * Default return attributes per level, PS3.18 tables 10.6.3-3 (study), -4 (series), -5 (instance).
 * Computed ones (InstanceAvailability, counts, ModalitiesInStudy, RetrieveURL) are filled by the builder.
 */
export const PATIENT_ATTRIBUTES: readonly Tag[] = ['00100010', '00100020', '00100021', '00100030', '00100040'];

export const STUDY_ATTRIBUTES: readonly Tag[] = [
  '00080005', // SpecificCharacterSet
  '00080020', // StudyDate
  '00080030', // StudyTime
  '00080050', // AccessionNumber
  '00080056', // InstanceAvailability (computed)
  '00080061', // ModalitiesInStudy (computed)
  '00080090', // ReferringPhysicianName
  '00080201', // TimezoneOffsetFromUTC
  '00081030', // StudyDescription (not in the table, but every viewer's study list shows it)
  '00081190', // RetrieveURL (computed)
  '00100010', // PatientName
  '00100020', // PatientID
  '00100030', // PatientBirthDate
  '00100040', // PatientSex
  '0020000D', // StudyInstanceUID
  '00200010', // StudyID
  '00201206', // NumberOfStudyRelatedSeries (computed)
  '00201208', // NumberOfStudyRelatedInstances (computed)
];

export const SERIES_ATTRIBUTES: readonly Tag[] = [
  '00080005',
  '00080060', // Modality
  '00080201',
  '0008103E', // SeriesDescription
  '00081190',
  '0020000E', // SeriesInstanceUID
  '00200011', // SeriesNumber
  '00201209', // NumberOfSeriesRelatedInstances (computed)
  '00400244', // PerformedProcedureStepStartDate
  '00400245', // PerformedProcedureStepStartTime
  '00400275', // RequestAttributesSequence
];

export const INSTANCE_ATTRIBUTES: readonly Tag[] = [
  '00080005',
  '00080016', // SOPClassUID
  '00080018', // SOPInstanceUID
  '00080056',
  '00080201',
  '00081190',
  '00200013', // InstanceNumber
  '00280008', // NumberOfFrames
  '00280010', // Rows
  '00280011', // Columns
  '00280100', // BitsAllocated
];

/**
 * Which level's record an attribute is read from (dicom/levels.ts): patient and study attributes
 * from the study record, series attributes from the series record, the rest from the instance.
 */
export function attributeLevel(tag: Tag): QueryLevel {
  const level = informationLevel(tag);
  return level === 'patient' ? 'study' : level;
}
