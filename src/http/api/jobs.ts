import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BROWSE_DEFAULT_LIMIT, BROWSE_MAX_LIMIT } from '../../archive/browse.js';
import type { JobService } from '../../archive/jobs.js';
import { JOB_STATES, type JobRecord, type JobState } from '../../storage/jobs.js';
import { callContext } from '../request-context.js';
import { errorResponses, intQuery } from '../schemas.js';
import { listSchema } from './resources.js';

/**
 * SPEC §5: /api/jobs — progress and cancellation of long operations (SCU store/move/get), read
 * from the database, so any instance answers for a job running on another.
 */

export interface JobRouteDeps {
  jobs: JobService;
}

const timestamp = z.string().meta({ format: 'date-time', description: 'ISO-8601 UTC' });
const count = (description: string) => z.number().int().meta({ description });
const jobStates = JOB_STATES as unknown as [JobState, ...JobState[]];

export const jobSchema = z
  .object({
    id: z.string().meta({ description: 'Job id (UUID)', format: 'uuid' }),
    kind: z.string().meta({ description: 'What the job does', example: 'move' }),
    state: z.enum(jobStates),
    request: z.record(z.string(), z.unknown()).meta({ description: 'The request that started the job (JSON object)' }),
    remaining: count('Sub-operations still to do'),
    completed: count('Sub-operations completed'),
    failed: count('Sub-operations failed'),
    warning: count('Sub-operations completed with a warning'),
    failed_uids: z.array(z.string()).meta({ description: 'SOP Instance UIDs of failed sub-operations' }),
    error: z.string().nullable().meta({ description: 'Why the job failed' }),
    cancel_requested: z.boolean(),
    created_by: z.string().nullable(),
    created_at: timestamp,
    started_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
    updated_at: timestamp,
    heartbeat_at: timestamp.nullable().meta({ description: 'Last sign of life of the process running the job; a pending or running job without one for long is failed as interrupted' }),
  })
  .meta({ id: 'Job' });

export const jobListSchema = listSchema(jobSchema, 'JobList');

const jobParams = z.object({ id: z.string().meta({ description: 'Job id (UUID)' }) });

export type JobJson = z.output<typeof jobSchema>;

export function jobJson(j: JobRecord): JobJson {
  return {
    id: j.id,
    kind: j.kind,
    state: j.state,
    request: j.request,
    remaining: j.remaining,
    completed: j.completed,
    failed: j.failed,
    warning: j.warning,
    failed_uids: j.failedUids,
    error: j.error,
    cancel_requested: j.cancelRequested,
    created_by: j.createdBy,
    created_at: j.createdAt.toISOString(),
    started_at: j.startedAt ? j.startedAt.toISOString() : null,
    finished_at: j.finishedAt ? j.finishedAt.toISOString() : null,
    updated_at: j.updatedAt.toISOString(),
    heartbeat_at: j.heartbeatAt ? j.heartbeatAt.toISOString() : null,
  };
}

export function registerJobRoutes(app: FastifyInstance, deps: JobRouteDeps): void {
  const { jobs } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/jobs', {
    schema: {
      tags: ['jobs'],
      operationId: 'listJobs',
      summary: 'List jobs, newest first',
      querystring: z.object({
        limit: intQuery(`Page size (1–${BROWSE_MAX_LIMIT})`, { min: 1, max: BROWSE_MAX_LIMIT, default: BROWSE_DEFAULT_LIMIT }),
        offset: intQuery('Rows to skip', { min: 0, default: 0 }),
        state: z.enum(jobStates).optional().meta({ description: 'Only jobs in this state' }),
        kind: z.string().optional().meta({ description: 'Only jobs of this kind', example: 'move' }),
      }),
      response: { 200: jobListSchema, ...errorResponses(400) },
    },
  }, async (request) => {
    const q = request.query;
    const page = await jobs.list(callContext(request, 'rest'), {
      limit: q.limit,
      offset: q.offset,
      ...(q.state !== undefined ? { state: q.state } : {}),
      ...(q.kind !== undefined ? { kind: q.kind } : {}),
    });
    return { items: page.items.map(jobJson), total: page.total, limit: page.limit, offset: page.offset };
  });

  r.get('/api/jobs/:id', {
    schema: {
      tags: ['jobs'],
      operationId: 'getJob',
      summary: 'A job: state, counters, failed UIDs',
      params: jobParams,
      response: { 200: jobSchema, ...errorResponses(404) },
    },
  }, async (request) => jobJson(await jobs.get(callContext(request, 'rest'), request.params.id)));

  r.delete('/api/jobs/:id', {
    schema: {
      tags: ['jobs'],
      operationId: 'cancelJob',
      summary: 'Cancel a job',
      description:
        'A pending job is cancelled at once; a running one is flagged (cancel_requested) and stops at its next progress report, on whichever instance runs it. 409 when the job has already finished.',
      params: jobParams,
      response: { 202: jobSchema, ...errorResponses(404, 409) },
    },
  }, async (request, reply) => {
    const job = await jobs.cancel(callContext(request, 'rest'), request.params.id);
    return reply.code(202).send(jobJson(job));
  });
}
