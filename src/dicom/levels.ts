/**
 * The information-entity level of an attribute (PS3.3 modules, PS3.4 C.6.1.1 / C.6.2.1 Q/R levels):
 * which record of the archive an attribute belongs to. Patient and study rows keep only patient and
 * study attributes, series rows only series attributes; everything else (and every private or
 * unknown attribute) is instance level and lives in the instance's own header. So a study search
 * parses a few hundred bytes per row, not the whole header of the last instance stored, and an
 * enhanced multi-frame's functional groups are not copied into four rows on every store.
 */
import type { DicomJsonDataset, Tag } from './types.js';

export type InformationLevel = 'patient' | 'study' | 'series' | 'instance';

/** In every level's record: how the values were encoded and their time zone. */
const EVERY_LEVEL: readonly Tag[] = ['00080005', '00080201'];

/**
 * Patient Module (C.7.1.1), Clinical Trial Subject (C.7.1.3): all of groups 0010 and 0012 except
 * the Patient Study Module's attributes (which describe the patient at the time of a study), plus:
 */
const PATIENT_EXTRA: readonly Tag[] = ['00081120'];

/** Patient Study Module (C.7.2.2) attributes in group 0010: study level. */
const PATIENT_STUDY: readonly Tag[] = [
  '00101010', '00101020', '00101021', '00101022', '00101023', '00101024', '00101030', '00102000', '00102110', '00102180',
  '001021A0', '001021B0', '001021C0', '001021D0', '00102203', '00109431',
];

/** General Study (C.7.2.1), Patient Study (C.7.2.2, outside group 0010), Clinical Trial Study (group 0012 is patient). */
const STUDY: readonly Tag[] = [
  '00080020', // StudyDate
  '00080030', // StudyTime
  '00080050', // AccessionNumber
  '00080051', // IssuerOfAccessionNumberSequence
  '00080090', // ReferringPhysicianName
  '00080096', // ReferringPhysicianIdentificationSequence
  '0008009C', // ConsultingPhysicianName
  '0008009D', // ConsultingPhysicianIdentificationSequence
  '00081030', // StudyDescription
  '00081032', // ProcedureCodeSequence
  '00081048', // PhysiciansOfRecord
  '00081049', // PhysiciansOfRecordIdentificationSequence
  '00081060', // NameOfPhysiciansReadingStudy
  '00081062', // PhysiciansReadingStudyIdentificationSequence
  '00081080', // AdmittingDiagnosesDescription
  '00081084', // AdmittingDiagnosesCodeSequence
  '00081110', // ReferencedStudySequence
  '0020000D', // StudyInstanceUID
  '00200010', // StudyID
  '00321032', // RequestingPhysician
  '00321033', // RequestingService
  '00321034', // RequestingServiceCodeSequence
  '00321060', // RequestedProcedureDescription
  '00321064', // RequestedProcedureCodeSequence
  '00321066', // ReasonForVisit
  '00321067', // ReasonForVisitCodeSequence
  '00324000', // StudyComments (retired, still sent)
  '00380010', // AdmissionID
  '00380014', // IssuerOfAdmissionIDSequence
  '00380060', // ServiceEpisodeID
  '00380062', // ServiceEpisodeDescription
  '00380064', // IssuerOfServiceEpisodeIDSequence
  '00380500', // PatientState
  '00401012', // ReasonForPerformedProcedureCodeSequence
];

/** General Series (C.7.3.1), General Equipment (C.7.5.1), Frame of Reference (C.7.4.1), PET/NM series. */
const SERIES: readonly Tag[] = [
  '00080021', // SeriesDate
  '00080031', // SeriesTime
  '00080060', // Modality
  '00080070', // Manufacturer
  '00080080', // InstitutionName
  '00080081', // InstitutionAddress
  '0008103E', // SeriesDescription
  '0008103F', // SeriesDescriptionCodeSequence
  '00081010', // StationName
  '00081040', // InstitutionalDepartmentName
  '00081050', // PerformingPhysicianName
  '00081052', // PerformingPhysicianIdentificationSequence
  '00081070', // OperatorsName
  '00081072', // OperatorIdentificationSequence
  '00081090', // ManufacturerModelName
  '00081111', // ReferencedPerformedProcedureStepSequence
  '00081250', // RelatedSeriesSequence
  '00102210', // AnatomicalOrientationType
  '00180015', // BodyPartExamined
  '00181000', // DeviceSerialNumber
  '00181020', // SoftwareVersions
  '00181030', // ProtocolName
  '00181050', // SpatialResolution
  '00181200', // DateOfLastCalibration
  '00181201', // TimeOfLastCalibration
  '00185100', // PatientPosition
  '0020000E', // SeriesInstanceUID
  '00200011', // SeriesNumber
  '00200052', // FrameOfReferenceUID
  '00200060', // Laterality
  '00201040', // PositionReferenceIndicator
  '00280108', // SmallestPixelValueInSeries
  '00280109', // LargestPixelValueInSeries
  '00400244', // PerformedProcedureStepStartDate
  '00400245', // PerformedProcedureStepStartTime
  '00400250', // PerformedProcedureStepEndDate
  '00400251', // PerformedProcedureStepEndTime
  '00400253', // PerformedProcedureStepID
  '00400254', // PerformedProcedureStepDescription
  '00400260', // PerformedProtocolCodeSequence
  '00400261', // PerformedProtocolType
  '00400275', // RequestAttributesSequence
  '00400280', // CommentsOnThePerformedProcedureStep
  '00541000', // SeriesType
  '00541001', // Units
  '00541002', // CountsSource
  '00541101', // AttenuationCorrectionMethod
  '00541102', // DecayCorrection
  '00541103', // ReconstructionMethod
];

const LEVEL = new Map<Tag, InformationLevel>();
for (const t of PATIENT_EXTRA) LEVEL.set(t, 'patient');
for (const t of PATIENT_STUDY) LEVEL.set(t, 'study');
for (const t of STUDY) LEVEL.set(t, 'study');
for (const t of SERIES) LEVEL.set(t, 'series');

/** The level an attribute belongs to (keywords as upper-case 8-digit hex tags). */
export function informationLevel(tag: Tag): InformationLevel {
  const known = LEVEL.get(tag);
  if (known) return known;
  const group = tag.slice(0, 4);
  if (group === '0010' || group === '0012') return 'patient';
  return 'instance';
}

const ORDER: Record<InformationLevel, number> = { patient: 0, study: 1, series: 2, instance: 3 };

/** The headers of the patient, study and series records, cut from one instance's header. */
export interface LevelHeaders {
  patient: DicomJsonDataset;
  study: DicomJsonDataset;
  series: DicomJsonDataset;
}

/**
 * Splits an instance header into its patient (patient attributes), study (patient and study
 * attributes) and series (series attributes) parts. Values are shared, not copied. Internal bulk
 * references (`_bulk`) stay instance-level.
 */
export function levelHeaders(header: DicomJsonDataset): LevelHeaders {
  const out: LevelHeaders = { patient: {}, study: {}, series: {} };
  for (const tag of EVERY_LEVEL) {
    const el = header[tag];
    if (el) {
      out.patient[tag] = el;
      out.study[tag] = el;
      out.series[tag] = el;
    }
  }
  for (const [tag, el] of Object.entries(header)) {
    if (el._bulk) continue;
    const level = ORDER[informationLevel(tag)];
    if (level === ORDER.patient) out.patient[tag] = el;
    if (level <= ORDER.study) out.study[tag] = el;
    else if (level === ORDER.series) out.series[tag] = el;
  }
  return out;
}
