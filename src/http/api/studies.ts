import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BROWSE_DEFAULT_LIMIT, BROWSE_MAX_LIMIT, STUDY_DATE_PATTERN, STUDY_SORTS } from '../../archive/browse.js';
import { callContext } from '../request-context.js';
import { errorResponses, intQuery, uidParam } from '../schemas.js';
import { listSchema, seriesJson, seriesSchema, studyDetailJson, studyDetailSchema, studyJson, studySchema, type RestDeps } from './resources.js';

/** SPEC §5: /api/studies (list, detail, its series, DELETE). */

const studyParams = z.object({ study: uidParam('Study Instance UID') });

export const pageQuery = {
  limit: intQuery(`Page size (1–${BROWSE_MAX_LIMIT})`, { min: 1, max: BROWSE_MAX_LIMIT, default: BROWSE_DEFAULT_LIMIT }),
  offset: intQuery('Rows to skip', { min: 0, default: 0 }),
};

const studyListQuery = z.object({
  ...pageQuery,
  sort: z
    .enum(STUDY_SORTS as [string, ...string[]])
    .default('-received_at')
    .meta({ description: 'Sort key; a leading `-` sorts descending. Studies without a study date come last.' }),
  patient_name: z.string().optional().meta({ description: 'PN matching: case-insensitive, DICOM wildcards `*` and `?`, any component group', example: 'DOE*' }),
  patient_id: z.string().optional().meta({ description: 'Patient ID (DICOM wildcards allowed)' }),
  study_date: z
    .string()
    .regex(STUDY_DATE_PATTERN, 'must be YYYYMMDD or YYYYMMDD-YYYYMMDD')
    .optional()
    .meta({ description: 'YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end may be left open)', example: '20240101-20241231' }),
  modality: z.string().optional().meta({ description: 'Any series of the study has this modality', example: 'CT' }),
  accession_number: z.string().optional().meta({ description: 'Accession number (DICOM wildcards allowed)' }),
});

export const studyListSchema = listSchema(studySchema, 'StudyList');
export const seriesListSchema = listSchema(seriesSchema, 'SeriesList');

export function registerStudyRoutes(app: FastifyInstance, deps: RestDeps): void {
  const { archive } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/studies', {
    schema: {
      tags: ['studies'],
      operationId: 'listStudies',
      summary: 'List studies',
      description: 'Studies matching every given filter, sorted and paged.',
      querystring: studyListQuery,
      response: { 200: studyListSchema, ...errorResponses(400) },
    },
  }, async (request) => {
    const q = request.query;
    const page = await archive.studies(callContext(request, 'rest'), {
      sort: q.sort,
      limit: q.limit,
      offset: q.offset,
      ...(q.patient_name !== undefined ? { patientName: q.patient_name } : {}),
      ...(q.patient_id !== undefined ? { patientId: q.patient_id } : {}),
      ...(q.study_date !== undefined ? { studyDate: q.study_date } : {}),
      ...(q.modality !== undefined ? { modality: q.modality } : {}),
      ...(q.accession_number !== undefined ? { accessionNumber: q.accession_number } : {}),
    });
    return { items: page.items.map(studyJson), total: page.total, limit: page.limit, offset: page.offset };
  });

  r.get('/api/studies/:study', {
    schema: {
      tags: ['studies'],
      operationId: 'getStudy',
      summary: 'A study with its series',
      params: studyParams,
      response: { 200: studyDetailSchema, ...errorResponses(400, 404) },
    },
  }, async (request) => studyDetailJson(await archive.study(callContext(request, 'rest'), request.params.study)));

  r.get('/api/studies/:study/series', {
    schema: {
      tags: ['studies'],
      operationId: 'listStudySeries',
      summary: 'The series of a study',
      params: studyParams,
      querystring: z.object(pageQuery),
      response: { 200: seriesListSchema, ...errorResponses(400, 404) },
    },
  }, async (request) => {
    const page = await archive.studySeries(callContext(request, 'rest'), request.params.study, request.query);
    return { items: page.items.map(seriesJson), total: page.total, limit: page.limit, offset: page.offset };
  });

  r.delete('/api/studies/:study', {
    schema: {
      tags: ['studies'],
      operationId: 'deleteStudy',
      summary: 'Delete a study',
      description: 'Removes the study, its series and instances (index rows and stored files).',
      params: studyParams,
      response: { 204: z.undefined().meta({ description: 'Deleted' }), ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    await archive.remove(callContext(request, 'rest'), { level: 'study', studyUid: request.params.study });
    return reply.code(204).send();
  });
}
