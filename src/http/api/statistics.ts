import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { callContext } from '../request-context.js';
import { errorResponses } from '../schemas.js';
import type { RestDeps } from './resources.js';

/** SPEC §5: GET /api/statistics — counters and indexed aggregates, never a scan of the instances. */

export const statisticsSchema = z
  .object({
    patients: z.number().int(),
    studies: z.number().int(),
    series: z.number().int(),
    instances: z.number().int(),
    bytes: z.number().int().meta({ description: 'Total size of the stored files' }),
    by_modality: z.record(z.string(), z.number().int()).meta({ description: 'Instances per series modality (UNKNOWN: none)', example: { CT: 1200, MR: 300 } }),
    received_last_24h: z.number().int().meta({ description: 'Instances stored or replaced in the last 24 hours' }),
  })
  .meta({ id: 'Statistics' });

export function registerStatisticsRoutes(app: FastifyInstance, deps: RestDeps): void {
  app.withTypeProvider<ZodTypeProvider>().get('/api/statistics', {
    schema: {
      tags: ['statistics'],
      operationId: 'getStatistics',
      summary: 'Archive statistics',
      response: { 200: statisticsSchema, ...errorResponses(503) },
    },
  }, async (request) => {
    const s = await deps.archive.statistics(callContext(request, 'rest'));
    return {
      patients: s.patients,
      studies: s.studies,
      series: s.series,
      instances: s.instances,
      bytes: s.bytes,
      by_modality: s.byModality,
      received_last_24h: s.receivedLast24h,
    };
  });
}
