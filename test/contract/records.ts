import { randomBytes, randomUUID } from 'node:crypto';
import { normalizePersonName } from '../../src/dicom/person-name.js';
import { levelHeaders } from '../../src/dicom/levels.js';
import type { DicomJsonDataset, DicomJsonElement, PersonName, VR } from '../../src/dicom/types.js';
import type { InstanceRecord } from '../../src/storage/metadata.js';

/** A fresh UID under the 2.25 root (UUID as a decimal integer), like ingest would see. */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replaceAll('-', '')}`).toString()}`;
}

/** A short random token for test-private values (issuers, accession numbers). */
export function token(prefix = 'T'): string {
  return `${prefix}${randomBytes(6).toString('hex').toUpperCase()}`;
}

export interface RecordSpec {
  studyUid?: string;
  seriesUid?: string;
  sopUid?: string;
  patientId?: string;
  issuer?: string;
  patientName?: string | null;
  birthDate?: string | null;
  sex?: string | null;
  studyDate?: string | null;
  studyTime?: string | null;
  accessionNumber?: string | null;
  referringPhysician?: string | null;
  studyDescription?: string | null;
  studyId?: string | null;
  modality?: string | null;
  seriesNumber?: number | null;
  seriesDescription?: string | null;
  seriesDate?: string | null;
  seriesTime?: string | null;
  bodyPart?: string | null;
  sopClassUid?: string;
  instanceNumber?: number | null;
  transferSyntaxUid?: string;
  size?: number;
  sha256?: string;
  blobKey?: string;
  receivedAt?: Date;
  /** Extra header elements (non-indexed attributes). */
  extra?: DicomJsonDataset;
}

function pnValue(name: string): PersonName {
  const [alphabetic, ideographic, phonetic] = name.split('=');
  const v: PersonName = {};
  if (alphabetic) v.Alphabetic = alphabetic;
  if (ideographic) v.Ideographic = ideographic;
  if (phonetic) v.Phonetic = phonetic;
  return v;
}

function el(vr: VR, value: string | number | null | undefined): DicomJsonElement {
  if (value === null || value === undefined || value === '') return { vr };
  if (vr === 'PN') return { vr, Value: [pnValue(String(value))] };
  return { vr, Value: [value] };
}

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';

/** An InstanceRecord whose header (a small DICOM JSON dataset) agrees with its columns. */
export function makeRecord(spec: RecordSpec = {}): InstanceRecord {
  const studyUid = spec.studyUid ?? newUid();
  const seriesUid = spec.seriesUid ?? newUid();
  const sopUid = spec.sopUid ?? newUid();
  const patientName = spec.patientName === undefined ? 'Doe^John' : spec.patientName;
  const referring = spec.referringPhysician ?? null;
  const sopClassUid = spec.sopClassUid ?? CT_IMAGE_STORAGE;
  const r: InstanceRecord = {
    studyUid,
    seriesUid,
    sopUid,
    patient: {
      patient_id: spec.patientId ?? token('PAT'),
      issuer: spec.issuer ?? '',
      patient_name: patientName,
      patient_name_norm: patientName === null ? null : normalizePersonName(patientName),
      birth_date: spec.birthDate ?? null,
      sex: spec.sex ?? null,
    },
    study: {
      study_date: spec.studyDate ?? null,
      study_time: spec.studyTime ?? null,
      accession_number: spec.accessionNumber ?? null,
      referring_physician: referring,
      referring_physician_norm: referring === null ? null : normalizePersonName(referring),
      study_description: spec.studyDescription ?? null,
      study_id: spec.studyId ?? null,
    },
    series: {
      modality: spec.modality === undefined ? 'CT' : spec.modality,
      series_number: spec.seriesNumber === undefined ? 1 : spec.seriesNumber,
      series_description: spec.seriesDescription ?? null,
      series_date: spec.seriesDate ?? null,
      series_time: spec.seriesTime ?? null,
      pps_start_date: null,
      pps_start_time: null,
      body_part: spec.bodyPart ?? null,
    },
    instance: {
      sop_class_uid: sopClassUid,
      instance_number: spec.instanceNumber === undefined ? 1 : spec.instanceNumber,
    },
    header: {},
    levelHeaders: { patient: {}, study: {}, series: {} },
    transferSyntaxUid: spec.transferSyntaxUid ?? EXPLICIT_VR_LE,
    blob: {
      key: spec.blobKey ?? `2026/11/${randomUUID()}.dcm`,
      size: spec.size ?? 1000,
      sha256: spec.sha256 ?? randomBytes(32).toString('hex'),
    },
    receivedAt: spec.receivedAt ?? new Date(),
  };
  const header: DicomJsonDataset = {
    '00080016': el('UI', sopClassUid),
    '00080018': el('UI', sopUid),
    '00080020': el('DA', r.study.study_date),
    '00080030': el('TM', r.study.study_time),
    '00080050': el('SH', r.study.accession_number),
    '00080060': el('CS', r.series.modality),
    '00080090': el('PN', referring),
    '00081030': el('LO', r.study.study_description),
    '0008103E': el('LO', r.series.series_description),
    '00100010': el('PN', patientName),
    '00100020': el('LO', r.patient.patient_id),
    '00100021': el('LO', r.patient.issuer),
    '00100030': el('DA', r.patient.birth_date),
    '00100040': el('CS', r.patient.sex),
    '00180015': el('CS', r.series.body_part),
    '0020000D': el('UI', studyUid),
    '0020000E': el('UI', seriesUid),
    '00200010': el('SH', r.study.study_id),
    '00200011': el('IS', r.series.series_number),
    '00200013': el('IS', r.instance.instance_number),
    ...spec.extra,
  };
  r.header = Object.fromEntries(Object.entries(header).sort(([a], [b]) => (a < b ? -1 : 1)));
  // As archive/ingest does: patient, study and series rows keep only their levels' attributes.
  r.levelHeaders = levelHeaders(r.header);
  return r;
}
