import { z } from 'zod';
import type { Archive } from '../../archive/archive.js';
import type { StudyDetail } from '../../archive/browse.js';
import type { InstanceRow, SeriesSummary, StudySummary } from '../../storage/metadata.js';

/**
 * The REST resources of SPEC §5 (snake_case JSON): their zod schemas (response validation,
 * serialization, OpenAPI) and the mapping from the archive's rows. Shared by studies.ts,
 * series.ts and instances.ts.
 */

export interface RestDeps {
  archive: Archive;
}

const uid = z.string().meta({ description: 'DICOM UID' });
const timestamp = z.string().meta({ format: 'date-time', description: 'ISO-8601 UTC' });
const da = z.string().nullable().meta({ description: 'DICOM DA (YYYYMMDD)' });

export const studySchema = z
  .object({
    study_uid: uid,
    patient_name: z.string().nullable().meta({ description: 'DICOM PN (Alphabetic=Ideographic=Phonetic)' }),
    patient_id: z.string(),
    patient_birth_date: da,
    patient_sex: z.string().nullable(),
    study_date: da,
    study_time: z.string().nullable(),
    study_description: z.string().nullable(),
    accession_number: z.string().nullable(),
    modalities: z.array(z.string()),
    num_series: z.number().int(),
    num_instances: z.number().int(),
    total_bytes: z.number().int(),
    received_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Study' });

export const seriesSchema = z
  .object({
    series_uid: uid,
    study_uid: uid,
    modality: z.string().nullable(),
    series_number: z.number().int().nullable(),
    series_description: z.string().nullable(),
    series_date: da,
    body_part: z.string().nullable(),
    num_instances: z.number().int(),
    total_bytes: z.number().int(),
    received_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Series' });

export const instanceSchema = z
  .object({
    sop_uid: uid,
    series_uid: uid,
    study_uid: uid,
    sop_class_uid: uid,
    transfer_syntax_uid: uid,
    instance_number: z.number().int().nullable(),
    size: z.number().int().meta({ description: 'Bytes of the stored Part-10 file' }),
    received_at: timestamp,
  })
  .meta({ id: 'Instance' });

export const studyDetailSchema = studySchema.extend({ series: z.array(seriesSchema) }).meta({ id: 'StudyDetail' });

/** SPEC §5 list envelope. */
export function listSchema<T extends z.ZodType>(item: T, id: string) {
  return z
    .object({
      items: z.array(item),
      total: z.number().int().meta({ description: 'Matches ignoring limit/offset' }),
      limit: z.number().int(),
      offset: z.number().int(),
    })
    .meta({ id });
}

export type StudyJson = z.output<typeof studySchema>;
export type SeriesJson = z.output<typeof seriesSchema>;
export type InstanceJson = z.output<typeof instanceSchema>;

export function studyJson(s: StudySummary): StudyJson {
  return {
    study_uid: s.studyUid,
    patient_name: s.patientName,
    patient_id: s.patientId,
    patient_birth_date: s.patientBirthDate,
    patient_sex: s.patientSex,
    study_date: s.studyDate,
    study_time: s.studyTime,
    study_description: s.studyDescription,
    accession_number: s.accessionNumber,
    modalities: s.modalities,
    num_series: s.numSeries,
    num_instances: s.numInstances,
    total_bytes: s.totalBytes,
    received_at: s.receivedAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
  };
}

export function studyDetailJson(s: StudyDetail): z.output<typeof studyDetailSchema> {
  return { ...studyJson(s), series: s.series.map(seriesJson) };
}

export function seriesJson(s: SeriesSummary): SeriesJson {
  return {
    series_uid: s.seriesUid,
    study_uid: s.studyUid,
    modality: s.modality,
    series_number: s.seriesNumber,
    series_description: s.seriesDescription,
    series_date: s.seriesDate,
    body_part: s.bodyPart,
    num_instances: s.numInstances,
    total_bytes: s.totalBytes,
    received_at: s.receivedAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
  };
}

export function instanceJson(r: InstanceRow): InstanceJson {
  return {
    sop_uid: r.sopUid,
    series_uid: r.seriesUid,
    study_uid: r.studyUid,
    sop_class_uid: r.sopClassUid,
    transfer_syntax_uid: r.transferSyntaxUid,
    instance_number: r.instanceNumber,
    size: r.size,
    received_at: r.receivedAt.toISOString(),
  };
}
